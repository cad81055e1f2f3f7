package evidence

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"
	sevtest "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/verify"
)

// busyDevice fails the first n ioctls with EBUSY, as a driver does when
// the host throttles, then lets the fake device answer.
type busyDevice struct {
	client.Device
	n, calls int
}

func (d *busyDevice) Ioctl(command uintptr, argument any) (uintptr, error) {
	d.calls++
	if d.n > 0 {
		d.n--
		return 0, syscall.EBUSY
	}
	return d.Device.Ioctl(command, argument)
}

func TestSevGuestDevice(t *testing.T) {
	signer := testSigner(t)
	// go-sev-guest's test cases: reports over fixed REPORT_DATA values,
	// signed on the fly by the fake VCEK/VLEK.
	cases := sevtest.TestCases()
	byName := map[string]sevtest.TestCase{}
	for _, tc := range cases {
		byName[tc.Name] = tc
	}
	// Two more: a device that answers with another request's report, and
	// one that answers with a report for another VMPL.
	confused := data64(0xc0, 0xff, 0xee)
	otherVMPL := data64(0x77)
	otherVMPLReport := sevtest.CreateRawReport(&sevtest.TestReportOptions{ReportData: otherVMPL[:]})
	otherVMPLReport[reportVMPLOffset] = 3
	cases = append(cases,
		sevtest.TestCase{Name: "confused", Input: confused, Output: sevtest.CreateRawReport(&sevtest.TestReportOptions{ReportData: make([]byte, 64)})},
		sevtest.TestCase{Name: "other vmpl", Input: otherVMPL, Output: otherVMPLReport},
	)

	newDevice := func(t *testing.T) *sevtest.Device {
		d, err := sevtest.TcDevice(cases, &sevtest.DeviceOptions{Now: time.Now(), Signer: signer, Product: abi.DefaultSevProduct()})
		if err != nil {
			t.Fatalf("fake device: %v", err)
		}
		return d
	}

	tests := []struct {
		name       string
		reportData [64]byte
		vmpl       int
		noCerts    bool
		busy       int
		open       func(path string) (client.Device, error)
		wantErr    []string
		wantIs     error
		wantLeaf   *x509.Certificate
	}{
		{name: "report for the requested data, VCEK chain", reportData: byName["zeros"].Input, wantLeaf: signer.Vcek},
		{name: "another report, VCEK chain", reportData: byName["zeros and a 1"].Input, wantLeaf: signer.Vcek},
		{name: "Milan v3 report", reportData: byName["zeros milan v3"].Input, wantLeaf: signer.Vcek},
		{name: "VLEK-signed report gets the VLEK as leaf", reportData: byName["zeros, 1, 2 in VLEK"].Input, wantLeaf: signer.Vlek},
		{
			name:       "device answering another request is refused",
			reportData: confused,
			wantErr:    []string{"/dev/sev-guest returned a report whose REPORT_DATA differs", "byte 0", "refusing"},
		},
		{
			name:       "report for another VMPL is refused",
			reportData: otherVMPL,
			wantErr:    []string{"VMPL 3", "requested VMPL 0"},
		},
		{
			name:       "firmware error names the interface",
			reportData: byName["fw oom"].Input,
			wantErr:    []string{"evidence: /dev/sev-guest: extended report"},
		},
		{
			// With no certificates go-sev-guest's fake keeps answering the
			// length query, and the library returns no report and no
			// error; the size check must catch that.
			name:       "library returning no report is refused",
			reportData: byName["zeros"].Input,
			noCerts:    true,
			wantErr:    []string{"returned 0 bytes", "1184-byte"},
		},
		{
			name:       "EBUSY is retried and then succeeds",
			reportData: byName["zeros"].Input,
			busy:       2,
			wantLeaf:   signer.Vcek,
		},
		{
			name:       "EBUSY forever fails after bounded retries",
			reportData: byName["zeros"].Input,
			busy:       1000,
			wantErr:    []string{"extended report", "device or resource busy", "after 5 attempts", "rate-limiting"},
			wantIs:     syscall.EBUSY,
		},
		{
			name:       "permission denied says the agent needs access",
			reportData: byName["zeros"].Input,
			open: func(p string) (client.Device, error) {
				return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
			},
			wantErr: []string{"/dev/sev-guest: open", "permission denied", "agent needs read-write access to /dev/sev-guest"},
			wantIs:  fs.ErrPermission,
		},
		{
			name:       "VMPL out of range",
			reportData: byName["zeros"].Input,
			vmpl:       -1,
			wantErr:    []string{"VMPL -1 out of range"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			if tc.noCerts {
				d.Certs = nil
			}
			bd := &busyDevice{Device: d, n: tc.busy}
			opens := 0
			open := tc.open
			if open == nil {
				open = func(string) (client.Device, error) {
					opens++
					if err := d.Open(""); err != nil {
						return nil, err
					}
					return bd, nil
				}
			}
			src := &SevGuestDevice{VMPL: tc.vmpl, OpenDevice: open, retry: fastRetry()}
			got, err := src.SNPReport(context.Background(), tc.reportData)

			// The fake refuses a second Open while open, so a successful
			// reopen on every attempt also proves the device was closed.
			if tc.busy > 0 && opens != min(tc.busy+1, defaultAttempts) {
				t.Errorf("device opened %d times, want %d", opens, min(tc.busy+1, defaultAttempts))
			}
			if tc.wantErr != nil || tc.wantIs != nil {
				checkRefusal(t, got, err, tc.wantErr, tc.wantIs)
				return
			}
			if err != nil {
				t.Fatalf("SNPReport: %v", err)
			}
			if got.Provider != ProviderSevGuest {
				t.Errorf("Provider = %q, want %q", got.Provider, ProviderSevGuest)
			}
			if len(got.Report) != ReportSize || !bytes.Equal(got.Report[reportDataOffset:reportDataEnd], tc.reportData[:]) {
				t.Fatalf("Report does not carry the requested REPORT_DATA")
			}
			assertChain(t, got.CertChainPEM, tc.wantLeaf, signer.Ask, signer.Ark)
			// The report came through intact: it verifies against the
			// leaf the chain starts with.
			if err := verify.SnpReportSignature(got.Report, pemChain(t, got.CertChainPEM)[0]); err != nil {
				t.Errorf("report signature does not verify with the chain's leaf: %v", err)
			}
		})
	}
}

func TestSevGuestDeviceMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sev-guest")
	_, err := (&SevGuestDevice{Path: p}).SNPReport(context.Background(), data64(1))
	if err == nil {
		t.Fatal("SNPReport on a missing device succeeded")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v is not fs.ErrNotExist", err)
	}
	for _, s := range []string{p + ": open", "not an SEV-SNP guest"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}
