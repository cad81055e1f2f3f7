package evidence

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name        string
		tsmDir      bool   // create the configfs-tsm report directory
		tsmFile     bool   // create it as a plain file instead
		provider    string // configfs-tsm provider, when tsmDir
		mkdirErrno  syscall.Errno
		device      bool   // create the device node
		want        string // "configfs", "device" or "" for an error
		wantErr     []string
		wantMissing *NotPresentError // expected *NotPresentError fields (paths filled in below)
	}{
		{name: "configfs-tsm with the sev_guest provider", tsmDir: true, provider: "sev_guest", device: true, want: "configfs"},
		{name: "configfs-tsm only", tsmDir: true, provider: "sev_guest", want: "configfs"},
		{name: "device only", device: true, want: "device"},
		{name: "configfs-tsm with the tdx_guest provider", tsmDir: true, provider: "tdx_guest", want: "tdx"},
		{name: "configfs-tsm with another provider falls back to the device", tsmDir: true, provider: "arm_cca_guest", device: true, want: "device"},
		{
			name: "neither present", wantMissing: &NotPresentError{},
			wantErr: []string{"no SEV-SNP or TDX attestation interface", "is not present", "--sim"},
		},
		{
			name: "configfs-tsm with another provider and no device", tsmDir: true, provider: "arm_cca_guest",
			wantMissing: &NotPresentError{TSMProvider: "arm_cca_guest"},
			wantErr:     []string{`is served by "arm_cca_guest", not "sev_guest" or "tdx_guest"`, "--sim"},
		},
		{
			name: "configfs-tsm present but not permitted", tsmDir: true, provider: "sev_guest", mkdirErrno: syscall.EACCES, device: true,
			wantErr: []string{"asking", "for its provider", "permission denied", "run it as root"},
		},
		{name: "configfs-tsm path is not a directory", tsmFile: true, wantErr: []string{"is not a directory"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			paths := detectPaths{
				tsmReportDir: filepath.Join(root, "sys/kernel/config/tsm/report"),
				sevGuestPath: filepath.Join(root, "dev/sev-guest"),
			}
			if tc.tsmDir {
				if err := os.MkdirAll(paths.tsmReportDir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.tsmFile {
				mustWrite(t, paths.tsmReportDir)
			}
			if tc.device {
				mustWrite(t, paths.sevGuestPath)
			}
			fake := &fakeSNPTSM{t: t, provider: tc.provider} // only the provider is read
			fc := &faultClient{Client: fake.client(), fault: func(call string, _ int) syscall.Errno {
				if call == "mkdir" {
					return tc.mkdirErrno
				}
				return 0
			}}
			paths.tsmClient = func() (configfsi.Client, error) { return fc, nil }

			src, err := detect(paths)

			if tc.tsmDir && tc.mkdirErrno == 0 {
				if fc.calls["read provider"] != 1 {
					t.Errorf("provider read %d times, want 1", fc.calls["read provider"])
				}
				if len(fake.sub.Entries) != 0 {
					t.Errorf("provider probe left %d configfs entries behind", len(fake.sub.Entries))
				}
			}
			switch tc.want {
			case "configfs":
				c, ok := src.(*ConfigfsTSM)
				if err != nil || !ok {
					t.Fatalf("detect = %T, %v; want *ConfigfsTSM", src, err)
				}
				if c.Client != fc || c.VMPL != 0 {
					t.Errorf("ConfigfsTSM = %+v, want the probed client and VMPL 0", c)
				}
				return
			case "tdx":
				c, ok := src.(*TDXConfigfs)
				if err != nil || !ok || c.Client != fc {
					t.Fatalf("detect = %T, %v; want *TDXConfigfs with the probed client", src, err)
				}
				return
			case "device":
				d, ok := src.(*SevGuestDevice)
				if err != nil || !ok {
					t.Fatalf("detect = %T, %v; want *SevGuestDevice", src, err)
				}
				if d.Path != paths.sevGuestPath || d.VMPL != 0 {
					t.Errorf("SevGuestDevice = %+v, want Path %s and VMPL 0", d, paths.sevGuestPath)
				}
				return
			}
			if err == nil {
				t.Fatalf("detect = %T, want an error", src)
			}
			if src != nil {
				t.Errorf("detect returned a source along with error %v", err)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			var np *NotPresentError
			if got := errors.As(err, &np); got != (tc.wantMissing != nil) {
				t.Fatalf("error %v: *NotPresentError = %v, want %v", err, got, tc.wantMissing != nil)
			}
			if np != nil {
				want := *tc.wantMissing
				want.TSMReportDir, want.SevGuestPath = paths.tsmReportDir, paths.sevGuestPath
				if *np != want {
					t.Errorf("NotPresentError = %+v, want %+v", *np, want)
				}
				for _, p := range []string{paths.tsmReportDir, paths.sevGuestPath} {
					if !strings.Contains(err.Error(), p) {
						t.Errorf("error %q does not name %s", err, p)
					}
				}
			}
			if tc.mkdirErrno != 0 && !errors.Is(err, tc.mkdirErrno) {
				t.Errorf("error %v is not %v", err, tc.mkdirErrno)
			}
		})
	}
}

// TestDetectOnThisMachine runs the real Detect: on a machine without
// SEV-SNP (like CI) it must say that neither interface is present.
func TestDetectOnThisMachine(t *testing.T) {
	for _, p := range []string{TSMReportDir, DefaultSevGuestPath} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Skipf("%s exists here (stat: %v); this test is for machines without SEV-SNP", p, err)
		}
	}
	src, err := Detect()
	var np *NotPresentError
	if !errors.As(err, &np) {
		t.Fatalf("Detect() = %T, %v; want *NotPresentError", src, err)
	}
	if np.TSMReportDir != TSMReportDir || np.SevGuestPath != DefaultSevGuestPath {
		t.Errorf("NotPresentError names %s and %s, want %s and %s", np.TSMReportDir, np.SevGuestPath, TSMReportDir, DefaultSevGuestPath)
	}
	for _, s := range []string{TSMReportDir, DefaultSevGuestPath, "--sim"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func mustWrite(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}
