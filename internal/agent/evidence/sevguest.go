package evidence

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/google/go-sev-guest/client"
)

// DefaultSevGuestPath is the legacy SEV-SNP guest device node.
const DefaultSevGuestPath = "/dev/sev-guest"

// SevGuestDevice reads reports through the legacy /dev/sev-guest ioctl
// (extended report → certificate table → PEM).
//
// go-sev-guest's Linux device throttles itself to one command per two
// seconds (a workaround for a Linux 6.1 driver lockout), and an extended
// report takes two commands (certificate length query, then the report), so
// each call takes at least two seconds. Prefer ConfigfsTSM where the kernel
// has it, as Detect does.
//
// With the default OpenDevice every call opens its own device handle, so a
// SevGuestDevice is safe for concurrent use (the driver serialises requests).
type SevGuestDevice struct {
	// Path is the device node; empty means DefaultSevGuestPath.
	Path string
	// VMPL is the privilege level the report is requested for, 0..3.
	VMPL int
	// OpenDevice opens the device at path and returns it open; the caller
	// closes it. Nil means go-sev-guest's Linux ioctl device. Tests return
	// go-sev-guest's fake (testing.Device) after calling its Open.
	OpenDevice func(path string) (client.Device, error)

	retry retryPolicy
}

// Evidence implements Source: SNPReport as SevSnpVm evidence.
func (s *SevGuestDevice) Evidence(ctx context.Context, reportData [64]byte) (*Evidence, error) {
	return FromSNP(ctx, s, reportData)
}

// SNPReport gets an extended report over reportData through the ioctl.
func (s *SevGuestDevice) SNPReport(ctx context.Context, reportData [64]byte) (*SNP, error) {
	devPath := s.Path
	if devPath == "" {
		devPath = DefaultSevGuestPath
	}
	if err := checkVMPL(devPath, s.VMPL); err != nil {
		return nil, err
	}
	open := s.OpenDevice
	if open == nil {
		open = openLinuxSevGuest
	}

	var rawReport, certTable []byte
	attempts, err := withRetry(ctx, s.retry, func() error {
		d, err := open(devPath)
		if err != nil {
			return &openError{err}
		}
		rec := &ioctlRecorder{Device: d}
		//lint:ignore SA1019 the legacy ioctl is exactly what this fallback drives; LeveledQuoteProvider would probe configfs-tsm first, which Detect already did.
		rawReport, certTable, err = client.GetRawExtendedReportAtVmpl(rec, reportData, s.VMPL)
		if cerr := d.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close: %w", cerr)
		}
		if err != nil {
			return withErrno(fmt.Errorf("extended report: %w", err), rec.errno)
		}
		return nil
	})
	if err != nil {
		var oe *openError
		switch {
		case errors.As(err, &oe) && errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("evidence: %s: %w (the agent needs read-write access to %s: run it as root or grant its user the device)", devPath, oe.err, devPath)
		case errors.As(err, &oe) && errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("evidence: %s: %w (not an SEV-SNP guest, or the sev-guest driver is not loaded)", devPath, oe.err)
		case errors.As(err, &oe):
			return nil, fmt.Errorf("evidence: %s: %w", devPath, oe.err)
		case transient(err):
			return nil, fmt.Errorf("evidence: %s: %w (still busy after %d attempts; the host is rate-limiting attestation requests)", devPath, err, attempts)
		}
		return nil, fmt.Errorf("evidence: %s: %w", devPath, err)
	}

	if err := checkReport(devPath, rawReport, reportData, s.VMPL); err != nil {
		return nil, err
	}
	chain, err := certTablePEM(certTable, reportLeaf(rawReport))
	if err != nil {
		return nil, fmt.Errorf("evidence: %s: extended report: %w", devPath, err)
	}
	return &SNP{Report: rawReport, CertChainPEM: chain, Provider: ProviderSevGuest}, nil
}

// openError marks a failure to open the device, which needs its own advice.
type openError struct{ err error }

func (e *openError) Error() string { return "open: " + e.err.Error() }
func (e *openError) Unwrap() error { return e.err }

// openLinuxSevGuest opens the device with go-sev-guest's Linux client.
func openLinuxSevGuest(path string) (client.Device, error) {
	d := &client.LinuxDevice{}
	if err := d.Open(path); err != nil {
		// client.LinuxDevice.Open formats the errno with %v; open the node
		// ourselves to recover a *fs.PathError that says what went wrong
		// (permission denied versus no such device).
		f, perr := os.OpenFile(path, os.O_RDWR, 0)
		if perr != nil {
			return nil, perr
		}
		_ = f.Close()
		return nil, err
	}
	return d, nil
}

// ioctlRecorder passes ioctls through and remembers the errno of the most
// recent one (zero when it succeeded or failed without an errno).
// go-sev-guest formats the certificate-length query's error with %v, which
// would otherwise hide EBUSY/EAGAIN from the retry. The most recent call
// counts, not the first failure, because the length query is expected to
// fail (EIO with "invalid length") on the way to success.
type ioctlRecorder struct {
	client.Device
	errno syscall.Errno
}

func (r *ioctlRecorder) Ioctl(command uintptr, argument any) (uintptr, error) {
	res, err := r.Device.Ioctl(command, argument)
	r.errno = 0
	errors.As(err, &r.errno)
	return res, err
}
