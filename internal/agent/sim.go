package agent

import (
	"context"

	"github.com/kura-project/kura/internal/agent/evidence"
	"github.com/kura-project/kura/internal/attest/sim"
)

// SimSource is the simulated TEE as an evidence source (kura agent --sim):
// reports signed by the test-only root that only a --dev kura trusts.
type SimSource struct {
	Authority *sim.Authority
	Debug     bool // simulate a debuggable guest
}

// SNPReport implements evidence.Source.
func (s SimSource) SNPReport(_ context.Context, reportData [64]byte) (*evidence.SNP, error) {
	raw, err := s.Authority.Report(sim.Options{ReportData: reportData, Debug: s.Debug})
	if err != nil {
		return nil, err
	}
	return &evidence.SNP{Report: raw, CertChainPEM: s.Authority.ChainPEM(), Provider: "simulated"}, nil
}
