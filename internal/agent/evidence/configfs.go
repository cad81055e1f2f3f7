package evidence

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"
)

const (
	// TSMReportDir is where Linux (6.7 and later, CONFIG_TSM_REPORTS)
	// exposes configfs-tsm attestation reports.
	TSMReportDir = configfsi.TsmPrefix + "/report"

	// tsmProviderSNP is the configfs-tsm provider name of the SEV-SNP
	// guest driver (the kernel appends a newline, which is trimmed).
	tsmProviderSNP = "sev_guest"

	ifaceConfigfs = "configfs-tsm"
)

// ConfigfsTSM reads reports through Linux configfs-tsm
// (/sys/kernel/config/tsm/report, kernel ≥ 6.7), with the auxblob (the
// host-provided certificate table) converted to PEM. Privilege level (VMPL)
// configurable, default 0.
//
// Each call creates its own report entry and removes it afterwards, so
// concurrent calls do not share state and a ConfigfsTSM is safe for
// concurrent use. A request the kernel refuses as busy
// (EBUSY, EAGAIN) is retried a few times with exponential backoff.
type ConfigfsTSM struct {
	// Client performs the configfs file operations. Nil means the real
	// Linux client (linuxtsm); tests pass go-configfs-tsm's faketsm.
	Client configfsi.Client
	// VMPL is the privilege level written to privlevel, 0..3. It must not
	// be below the guest's privlevel_floor (non-zero when running under an
	// SVSM).
	VMPL int

	retry retryPolicy
}

// Evidence implements Source: SNPReport as SevSnpVm evidence.
func (c *ConfigfsTSM) Evidence(ctx context.Context, reportData [64]byte) (*Evidence, error) {
	return FromSNP(ctx, c, reportData)
}

// SNPReport gets a report over reportData through configfs-tsm.
func (c *ConfigfsTSM) SNPReport(ctx context.Context, reportData [64]byte) (*SNP, error) {
	if err := checkVMPL(ifaceConfigfs, c.VMPL); err != nil {
		return nil, err
	}
	client := c.Client
	if client == nil {
		var err error
		if client, err = linuxtsm.MakeClient(); err != nil {
			return nil, fmt.Errorf("evidence: %s: %s unavailable (needs Linux 6.7 or later with CONFIG_TSM_REPORTS and the sev-guest driver): %w", ifaceConfigfs, TSMReportDir, err)
		}
	}

	var resp *report.Response
	attempts, err := withRetry(ctx, c.retry, func() error {
		var err error
		resp, err = c.getOnce(client, reportData)
		return err
	})
	if err != nil {
		if transient(err) {
			return nil, fmt.Errorf("evidence: %s: %w (still busy after %d attempts; the host is rate-limiting attestation requests)", ifaceConfigfs, err, attempts)
		}
		return nil, fmt.Errorf("evidence: %s: %w%s", ifaceConfigfs, err, configfsHint(err, c.VMPL))
	}

	if p := strings.TrimSpace(resp.Provider); p != tsmProviderSNP {
		return nil, fmt.Errorf("evidence: %s: report provider is %q, not %q; this is not an SEV-SNP guest", ifaceConfigfs, p, tsmProviderSNP)
	}
	if err := checkReport(ifaceConfigfs, resp.OutBlob, reportData, c.VMPL); err != nil {
		return nil, err
	}
	chain, err := certTablePEM(resp.AuxBlob, reportLeaf(resp.OutBlob))
	if err != nil {
		return nil, fmt.Errorf("evidence: %s: auxblob: %w", ifaceConfigfs, err)
	}
	return &SNP{Report: resp.OutBlob, CertChainPEM: chain, Provider: ProviderConfigfsTSM}, nil
}

// getOnce runs one configfs-tsm request in a fresh report entry.
func (c *ConfigfsTSM) getOnce(client configfsi.Client, reportData [64]byte) (*report.Response, error) {
	return tsmGet(client, &report.Request{
		InBlob:     reportData[:],
		GetAuxBlob: true,
		Privilege:  &report.Privilege{Level: uint(c.VMPL)},
	})
}

// tsmGet runs one configfs-tsm request in a fresh report entry.
func tsmGet(client configfsi.Client, req *report.Request) (*report.Response, error) {
	rec := &tsmRecorder{Client: client}
	r, err := report.Create(rec, req)
	if err != nil {
		return nil, rec.cause(err)
	}
	resp, err := r.Get()
	if err != nil {
		err = rec.cause(err)
	}
	// Remove the entry even after a failure: entries are kernel objects
	// that would otherwise accumulate for the life of the VM.
	if derr := r.Destroy(); derr != nil && err == nil {
		err = fmt.Errorf("report obtained but its entry could not be removed: %w", rec.cause(derr))
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// configfsHint explains the failures an operator can fix.
func configfsHint(err error, vmpl int) string {
	var gen *report.GenerationErr
	var op *tsmOpError
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf(" (the agent needs permission to create report entries under %s: run it as root)", TSMReportDir)
	case errors.As(err, &gen):
		return " (another process wrote to this report entry concurrently; the report was discarded)"
	case errors.As(err, &op) && op.attr == "privlevel" && errors.Is(err, syscall.EINVAL):
		return fmt.Sprintf(" (VMPL %d is below this guest's privlevel_floor; configure the agent's VMPL)", vmpl)
	case errors.Is(err, syscall.ENXIO), errors.Is(err, fs.ErrNotExist):
		return " (no attestation provider is registered with configfs-tsm; is the sev-guest driver loaded?)"
	case errors.Is(err, syscall.EIO):
		return " (the AMD secure processor or the host rejected the request)"
	case errors.Is(err, syscall.ETIMEDOUT):
		return " (the host kept throttling the request beyond the kernel's own retry window)"
	}
	return ""
}

// tsmRecorder passes configfs operations through to a configfsi.Client and
// remembers the first one that failed. go-configfs-tsm's report package
// formats client errors with %v, which drops the errno; without the original
// error the agent could not tell host rate limiting (EBUSY) from a missing
// permission.
type tsmRecorder struct {
	configfsi.Client
	failed *tsmOpError
}

// tsmOpError is a failed configfs operation on one report entry attribute.
type tsmOpError struct {
	op   string // "create", "read", "write", "remove"
	attr string // attribute name, or the directory for "create"
	err  error
}

func (e *tsmOpError) Error() string { return e.op + " " + e.attr + ": " + e.err.Error() }
func (e *tsmOpError) Unwrap() error { return e.err }

func (r *tsmRecorder) note(op, attr string, err error) {
	if err != nil && r.failed == nil {
		r.failed = &tsmOpError{op: op, attr: attr, err: err}
	}
}

func (r *tsmRecorder) MkdirTemp(dir, pattern string) (string, error) {
	p, err := r.Client.MkdirTemp(dir, pattern)
	r.note("create report entry in", dir, err)
	return p, err
}

func (r *tsmRecorder) ReadFile(name string) ([]byte, error) {
	b, err := r.Client.ReadFile(name)
	r.note("read", path.Base(name), err)
	return b, err
}

func (r *tsmRecorder) WriteFile(name string, contents []byte) error {
	err := r.Client.WriteFile(name, contents)
	r.note("write", path.Base(name), err)
	return err
}

func (r *tsmRecorder) RemoveAll(name string) error {
	err := r.Client.RemoveAll(name)
	r.note("remove report entry", name, err)
	return err
}

// cause returns the most precise error for a failed request: the client's
// own error (errno intact) named by the operation, or the library's error
// when no client call failed (a generation mismatch, a parse error).
func (r *tsmRecorder) cause(libErr error) error {
	if r.failed == nil {
		return libErr
	}
	return r.failed
}
