package evidence

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"
)

// fakeSNPTSM is a configfs-tsm report subsystem that behaves like the
// sev_guest provider. faketsm's built-in Report611 renders a text outblob
// ("privlevel: 0\ninblob: …"), which is no SNP report, so this plugs SNP
// behaviour into faketsm's exported ReportSubsystem hooks instead; faketsm
// still provides the entry, generation and attribute mechanics.
type fakeSNPTSM struct {
	t        *testing.T
	signer   *sevtest.AmdSigner
	provider string // "sev_guest" unless set
	signWith abi.ReportSigner
	auxblob  []byte
	// mutate, when set, changes the report before it is returned.
	mutate func(report []byte) []byte
	// last is the outblob most recently served.
	last []byte
	sub  *faketsm.ReportSubsystem
}

func (f *fakeSNPTSM) client() configfsi.Client {
	provider := f.provider
	if provider == "" {
		provider = tsmProviderSNP
	}
	provider += "\n" // as the kernel writes it
	f.sub = &faketsm.ReportSubsystem{
		MakeEntry: func() *faketsm.ReportEntry {
			return &faketsm.ReportEntry{
				InAttrs: map[string]*faketsm.ReportAttributeState{
					"inblob":    {},
					"privlevel": {Value: []byte("0\n")},
				},
				// faketsm serves read-only attributes of an entry that was
				// never written only from this cache.
				ROAttrs: map[string][]byte{"provider": []byte(provider)},
			}
		},
		CheckInAttr: func(_ *faketsm.ReportEntry, attr string, contents []byte) error {
			switch attr {
			case "inblob":
				if len(contents) > 64 {
					return syscall.EINVAL
				}
			case "privlevel":
				if _, err := configfsi.Kstrtouint(contents, 10, 2); err != nil {
					return syscall.EINVAL
				}
			default:
				return fmt.Errorf("unwritable attribute %q", attr)
			}
			return nil
		},
		ReadAttr: func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
			switch attr {
			case "provider":
				return []byte(provider), nil
			case "auxblob":
				return bytes.Clone(f.auxblob), nil
			case "outblob":
				inblob := e.InAttrs["inblob"].Value
				vmpl, err := configfsi.Kstrtouint(e.InAttrs["privlevel"].Value, 10, 2)
				if err != nil {
					return nil, err
				}
				var rd [64]byte
				copy(rd[:], inblob)
				report := signedReport(f.t, f.signer, rd, uint32(vmpl), f.signWith)
				if f.mutate != nil {
					report = f.mutate(report)
				}
				f.last = bytes.Clone(report)
				return report, nil
			}
			return nil, fs.ErrNotExist
		},
		Random: rand.Reader,
	}
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": f.sub}}
}

// faultClient injects the errors a Linux configfs client returns (a
// *fs.PathError carrying the errno) in front of another client, and counts
// calls by operation and attribute ("read outblob", "mkdir", …).
type faultClient struct {
	configfsi.Client
	// fault returns the errno to fail a call with, or 0 to let it through;
	// n is how many times that call happened before.
	fault func(call string, n int) syscall.Errno
	calls map[string]int
}

func (c *faultClient) inject(call, name string) error {
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	n := c.calls[call]
	c.calls[call]++
	if c.fault == nil {
		return nil
	}
	if errno := c.fault(call, n); errno != 0 {
		op, _, _ := strings.Cut(call, " ")
		return &fs.PathError{Op: op, Path: name, Err: errno}
	}
	return nil
}

func (c *faultClient) MkdirTemp(dir, pattern string) (string, error) {
	if err := c.inject("mkdir", dir); err != nil {
		return "", err
	}
	return c.Client.MkdirTemp(dir, pattern)
}

func (c *faultClient) ReadFile(name string) ([]byte, error) {
	if err := c.inject("read "+path.Base(name), name); err != nil {
		return nil, err
	}
	return c.Client.ReadFile(name)
}

func (c *faultClient) WriteFile(name string, contents []byte) error {
	if err := c.inject("write "+path.Base(name), name); err != nil {
		return err
	}
	return c.Client.WriteFile(name, contents)
}

func TestConfigfsTSM(t *testing.T) {
	signer := testSigner(t)
	table, err := signer.CertTableBytes() // holds VCEK and VLEK, like some hosts
	if err != nil {
		t.Fatal(err)
	}
	want := [64]byte{0xde, 0xad, 0xbe, 0xef, 63: 0x42}

	tests := []struct {
		name     string
		fake     fakeSNPTSM
		fault    func(call string, n int) syscall.Errno
		vmpl     int
		ctx      func() context.Context
		wantErr  []string // substrings of the error; empty means success
		wantIs   error
		wantLeaf *x509.Certificate // first certificate of the chain
		noChain  bool
		calls    map[string]int // exact call counts to check
	}{
		{
			name:     "report for the requested data, auxblob converted to PEM",
			fake:     fakeSNPTSM{auxblob: table},
			wantLeaf: signer.Vcek,
			calls:    map[string]int{"mkdir": 1, "read outblob": 1},
		},
		{
			name:     "VMPL 2 is written to privlevel and checked in the report",
			fake:     fakeSNPTSM{auxblob: table},
			vmpl:     2,
			wantLeaf: signer.Vcek,
		},
		{
			name:     "VLEK-signed report gets the VLEK as leaf",
			fake:     fakeSNPTSM{auxblob: table, signWith: abi.VlekReportSigner},
			wantLeaf: signer.Vlek,
		},
		{
			name:    "no auxblob means no chain",
			fake:    fakeSNPTSM{},
			noChain: true,
		},
		{
			name: "report with other REPORT_DATA is refused",
			fake: fakeSNPTSM{auxblob: table, mutate: func(r []byte) []byte {
				r[reportDataOffset+5] ^= 1
				return r
			}},
			wantErr: []string{"configfs-tsm", "REPORT_DATA differs", "byte 5", "refusing"},
		},
		{
			name: "report with REPORT_DATA of another request is refused",
			fake: fakeSNPTSM{auxblob: table, mutate: func(r []byte) []byte {
				copy(r[reportDataOffset:reportDataEnd], make([]byte, 64))
				return r
			}},
			wantErr: []string{"REPORT_DATA differs", "byte 0"},
		},
		{
			name:    "short outblob is refused",
			fake:    fakeSNPTSM{auxblob: table, mutate: func(r []byte) []byte { return r[:1000] }},
			wantErr: []string{"configfs-tsm returned 1000 bytes", "1184-byte"},
		},
		{
			name:    "empty outblob is refused",
			fake:    fakeSNPTSM{mutate: func([]byte) []byte { return nil }},
			wantErr: []string{"returned 0 bytes"},
		},
		{
			name:    "long outblob is refused",
			fake:    fakeSNPTSM{mutate: func(r []byte) []byte { return append(r, make([]byte, 4000)...) }},
			wantErr: []string{"returned 5184 bytes"},
		},
		{
			name: "report for another VMPL is refused",
			fake: fakeSNPTSM{mutate: func(r []byte) []byte {
				r[reportVMPLOffset] = 1
				return r
			}},
			wantErr: []string{"VMPL 1", "requested VMPL 0"},
		},
		{
			name:    "other provider is refused",
			fake:    fakeSNPTSM{provider: "tdx_guest"},
			wantErr: []string{`provider is "tdx_guest"`, "not an SEV-SNP guest"},
		},
		{
			name:    "malformed auxblob is refused",
			fake:    fakeSNPTSM{auxblob: table[:30]},
			wantErr: []string{"configfs-tsm: auxblob", "truncated inside entry 1"},
		},
		{
			name: "EBUSY is retried and then succeeds",
			fake: fakeSNPTSM{auxblob: table},
			fault: func(call string, n int) syscall.Errno {
				if call == "read auxblob" && n < 2 {
					return syscall.EBUSY
				}
				return 0
			},
			wantLeaf: signer.Vcek,
			calls:    map[string]int{"mkdir": 3, "read auxblob": 3, "read outblob": 1},
		},
		{
			name: "EAGAIN is retried and then succeeds",
			fake: fakeSNPTSM{auxblob: table},
			fault: func(call string, n int) syscall.Errno {
				if call == "read outblob" && n == 0 {
					return syscall.EAGAIN
				}
				return 0
			},
			wantLeaf: signer.Vcek,
			calls:    map[string]int{"mkdir": 2, "read outblob": 2},
		},
		{
			name: "EBUSY forever fails after bounded retries",
			fake: fakeSNPTSM{auxblob: table},
			fault: func(call string, _ int) syscall.Errno {
				if call == "read auxblob" {
					return syscall.EBUSY
				}
				return 0
			},
			wantErr: []string{"configfs-tsm: read auxblob", "device or resource busy", "after 5 attempts", "rate-limiting"},
			wantIs:  syscall.EBUSY,
			calls:   map[string]int{"mkdir": defaultAttempts, "read auxblob": defaultAttempts, "read outblob": 0},
		},
		{
			name: "permission denied is not retried and says what to do",
			fake: fakeSNPTSM{},
			fault: func(call string, _ int) syscall.Errno {
				if call == "mkdir" {
					return syscall.EACCES
				}
				return 0
			},
			wantErr: []string{"configfs-tsm: create report entry in", "permission denied", "run it as root"},
			wantIs:  fs.ErrPermission,
			calls:   map[string]int{"mkdir": 1},
		},
		{
			name: "VMPL below privlevel_floor",
			fake: fakeSNPTSM{},
			fault: func(call string, _ int) syscall.Errno {
				if call == "write privlevel" {
					return syscall.EINVAL
				}
				return 0
			},
			wantErr: []string{"write privlevel", "invalid argument", "below this guest's privlevel_floor"},
			wantIs:  syscall.EINVAL,
			calls:   map[string]int{"write privlevel": 1},
		},
		{
			name: "firmware error",
			fake: fakeSNPTSM{},
			fault: func(call string, _ int) syscall.Errno {
				if call == "read auxblob" {
					return syscall.EIO
				}
				return 0
			},
			wantErr: []string{"read auxblob", "input/output error", "secure processor or the host rejected"},
			wantIs:  syscall.EIO,
		},
		{
			name:    "VMPL out of range is refused before any request",
			fake:    fakeSNPTSM{},
			vmpl:    4,
			wantErr: []string{"VMPL 4 out of range"},
			calls:   map[string]int{"mkdir": 0},
		},
		{
			name: "cancelled context stops the retries",
			fake: fakeSNPTSM{},
			fault: func(string, int) syscall.Errno {
				return syscall.EBUSY
			},
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			wantIs: context.Canceled,
			calls:  map[string]int{"mkdir": 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fake.t, tc.fake.signer = t, signer
			fc := &faultClient{Client: tc.fake.client(), fault: tc.fault}
			src := &ConfigfsTSM{Client: fc, VMPL: tc.vmpl, retry: fastRetry()}
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			got, err := src.SNPReport(ctx, want)

			for call, n := range tc.calls {
				if fc.calls[call] != n {
					t.Errorf("%q happened %d times, want %d", call, fc.calls[call], n)
				}
			}
			if len(tc.fake.sub.Entries) != 0 {
				t.Errorf("%d configfs report entries left behind", len(tc.fake.sub.Entries))
			}
			if len(tc.wantErr) > 0 || tc.wantIs != nil {
				checkRefusal(t, got, err, tc.wantErr, tc.wantIs)
				return
			}
			if err != nil {
				t.Fatalf("SNPReport: %v", err)
			}
			if got.Provider != ProviderConfigfsTSM {
				t.Errorf("Provider = %q, want %q", got.Provider, ProviderConfigfsTSM)
			}
			if !bytes.Equal(got.Report, tc.fake.last) {
				t.Errorf("Report is not the outblob the provider returned")
			}
			if len(got.Report) != ReportSize || !bytes.Equal(got.Report[reportDataOffset:reportDataEnd], want[:]) {
				t.Errorf("Report does not carry the requested REPORT_DATA")
			}
			if tc.noChain {
				if got.CertChainPEM != nil {
					t.Errorf("CertChainPEM = %q, want nil", got.CertChainPEM)
				}
				return
			}
			// The fake table puts ASK under the ASK GUID and the ASVK under
			// a zero GUID, so the chain is leaf, ASK, ARK for both leaves.
			assertChain(t, got.CertChainPEM, tc.wantLeaf, signer.Ask, signer.Ark)
		})
	}
}

// TestConfigfsTSMBuiltinFakeIsNotSNP documents why the tests use their own
// provider: faketsm's stock report subsystem returns a text outblob, which
// SNPReport must refuse rather than pass on as evidence.
func TestConfigfsTSMBuiltinFakeIsNotSNP(t *testing.T) {
	c := &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": faketsm.Report611(0)}}
	_, err := (&ConfigfsTSM{Client: c}).SNPReport(context.Background(), data64(1))
	if err == nil || !strings.Contains(err.Error(), `provider is "fake"`) {
		t.Fatalf("SNPReport with faketsm.Report611 = %v, want a refusal naming the provider", err)
	}
}

// checkRefusal checks that SNPReport failed with no evidence, an error
// containing every string of want, and matching is (when set).
func checkRefusal(t *testing.T, got *SNP, err error, want []string, is error) {
	t.Helper()
	if err == nil {
		t.Fatalf("SNPReport succeeded, want error %q", want)
	}
	if got != nil {
		t.Errorf("SNPReport returned evidence along with error %v", err)
	}
	for _, s := range want {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %v is not %v", err, is)
	}
}
