package evidence

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"
)

// NotPresentError is returned by Detect when the machine offers no SEV-SNP
// or TDX attestation interface. The agent reports it and points at --sim.
type NotPresentError struct {
	// TSMReportDir and SevGuestPath are the locations that were examined.
	TSMReportDir, SevGuestPath string
	// TSMProvider is the configfs-tsm provider found instead of sev_guest
	// or tdx_guest (for example "arm_cca_guest"), or empty when
	// configfs-tsm is absent.
	TSMProvider string
}

func (e *NotPresentError) Error() string {
	tsm := fmt.Sprintf("%s is not present (needs Linux 6.7 or later with CONFIG_TSM_REPORTS)", e.TSMReportDir)
	if e.TSMProvider != "" {
		tsm = fmt.Sprintf("%s is served by %q, not %q or %q", e.TSMReportDir, e.TSMProvider, tsmProviderSNP, tsmProviderTDX)
	}
	return fmt.Sprintf("evidence: no SEV-SNP or TDX attestation interface: %s, and %s is not present (not an SEV-SNP or TDX guest, or its guest driver is not loaded); on machines without a TEE run the agent with --sim", tsm, e.SevGuestPath)
}

// Detect returns the configfs-tsm source when /sys/kernel/config/tsm/report
// exists and reports the provider "sev_guest" (SEV-SNP) or "tdx_guest"
// (TDX), else the /dev/sev-guest source
// when that device exists, else a *NotPresentError saying neither is present
// (and that --sim exists for machines without SEV-SNP).
func Detect() (Source, error) {
	return detect(detectPaths{
		tsmReportDir: TSMReportDir,
		sevGuestPath: DefaultSevGuestPath,
		tsmClient:    linuxtsm.MakeClient,
	})
}

// detectPaths holds what Detect looks at, so tests need not depend on the
// machine they run on.
type detectPaths struct {
	tsmReportDir string
	sevGuestPath string
	// tsmClient returns the configfs client used to ask for the provider
	// when tsmReportDir exists.
	tsmClient func() (configfsi.Client, error)
}

func detect(p detectPaths) (Source, error) {
	var otherProvider string
	switch st, err := os.Stat(p.tsmReportDir); {
	case err == nil && st.IsDir():
		c, err := p.tsmClient()
		if err != nil {
			return nil, fmt.Errorf("evidence: %s: %s exists but cannot be used: %w", ifaceConfigfs, p.tsmReportDir, err)
		}
		provider, err := tsmProvider(c)
		if err != nil {
			// Present but unusable is an operator problem (usually
			// permissions); falling back silently would hide it.
			return nil, fmt.Errorf("evidence: %s: asking %s for its provider: %w%s", ifaceConfigfs, p.tsmReportDir, err, configfsHint(err, 0))
		}
		switch provider {
		case tsmProviderSNP:
			return &ConfigfsTSM{Client: c}, nil
		case tsmProviderTDX:
			return &TDXConfigfs{Client: c}, nil
		}
		otherProvider = provider
	case err == nil:
		return nil, fmt.Errorf("evidence: %s: %s is not a directory", ifaceConfigfs, p.tsmReportDir)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("evidence: %s: %w", ifaceConfigfs, err)
	}

	switch _, err := os.Stat(p.sevGuestPath); {
	case err == nil:
		return &SevGuestDevice{Path: p.sevGuestPath}, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("evidence: %s: %w", p.sevGuestPath, err)
	}
	return nil, &NotPresentError{TSMReportDir: p.tsmReportDir, SevGuestPath: p.sevGuestPath, TSMProvider: otherProvider}
}

// tsmProvider creates a throwaway report entry, reads its provider and
// removes the entry again (go-sev-guest's own probe leaves it behind).
func tsmProvider(c configfsi.Client) (string, error) {
	rec := &tsmRecorder{Client: c}
	r, err := report.CreateOpenReport(rec)
	if err != nil {
		return "", rec.cause(err)
	}
	provider, err := r.ReadOption("provider")
	if err != nil {
		err = rec.cause(err)
	}
	if derr := r.Destroy(); derr != nil && err == nil {
		err = rec.cause(derr)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(provider)), nil
}
