// Package simsource is the simulated TEE as an agent evidence source (kura
// agent --sim): SEV-SNP reports, or Intel TDX quotes (--sim-tee tdx), signed
// by the test-only roots that only a --dev kura trusts. It is kept out of package agent so the agent itself
// does not link the simulator.
package simsource

import (
	"context"
	"encoding/base64"

	"github.com/kura-project/kura/internal/agent/evidence"
	"github.com/kura-project/kura/internal/attest/intelsim"
	"github.com/kura-project/kura/internal/attest/sim"
)

// Source is the simulated TEE.
type Source struct {
	Authority *sim.Authority
	Debug     bool // simulate a debuggable guest
}

// Provider is the Provider of the simulator's evidence.
const Provider = "simulated"

// SNPReport returns a simulated SNP report over reportData with the
// simulator's certificate chain.
func (s Source) SNPReport(_ context.Context, reportData [64]byte) (*evidence.SNP, error) {
	raw, err := s.Authority.Report(sim.Options{ReportData: reportData, Debug: s.Debug})
	if err != nil {
		return nil, err
	}
	return &evidence.SNP{Report: raw, CertChainPEM: s.Authority.ChainPEM(), Provider: Provider}, nil
}

// Evidence implements evidence.Source.
func (s Source) Evidence(ctx context.Context, reportData [64]byte) (*evidence.Evidence, error) {
	return evidence.FromSNP(ctx, s, reportData)
}

// TDX is the simulated Intel TDX guest: quotes signed under the simulated
// Intel root that only a --dev kura trusts.
type TDX struct {
	Authority *intelsim.Authority
	Debug     bool // simulate a debuggable TD
}

// Evidence implements evidence.Source: a TdxVm quote over reportData.
func (s TDX) Evidence(_ context.Context, reportData [64]byte) (*evidence.Evidence, error) {
	q, err := s.Authority.TDXQuote(intelsim.TDXOptions{ReportData: reportData, Debug: s.Debug})
	if err != nil {
		return nil, err
	}
	return &evidence.Evidence{Type: evidence.TypeTdxVm, Member: evidence.MemberTdxVm, Body: base64.RawURLEncoding.EncodeToString(q), Provider: Provider}, nil
}
