// Package sevsnpvm is the SevSnpVm attestation module: AMD SEV-SNP reports
// (internal/attest/snp) verified against the pinned AMD roots, with VCEKs,
// VLEKs, intermediates and CRLs from the collateral cache
// (internal/attest/collateral), and the simulated TEE's root pinned when
// the configuration trusts it.
package sevsnpvm

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/collateral/amd"
	"github.com/kura-project/kura/internal/attest/sim"
	"github.com/kura-project/kura/internal/attest/snp"
)

// Type is the MAA attestation type.
const Type = "SevSnpVm"

// DefaultPolicy permits every report that verified: hardware verification
// has already refused anything forged, and the token's claims carry
// everything a relying party (such as a key-release policy) judges.
// Operators who want the attestation service itself to refuse, say,
// debuggable guests set their own policy.
const DefaultPolicy = "version=1.0;\nauthorizationrules\n{\n    => permit();\n};\nissuancerules\n{\n};\n"

const defaultKDS = "https://kdsintf.amd.com"

// Module returns the SevSnpVm registration.
func Module() attest.Module {
	return attest.Module{
		Type:            Type,
		Member:          "report",
		ReportDataField: "report_data[0:32]",
		InitDataField:   "host_data",
		DefaultPolicy:   DefaultPolicy,
		Collateral:      []string{"vcek", "vlek", "intermediate", "crl"},
		Settings: []attest.Setting{
			{Key: "require_crl", Kind: attest.Bool, Default: "false", Flag: true, Usage: "refuse SNP evidence unless a current AMD CRL for its root is on file"},
			{Key: "kds_fetch", Kind: attest.Bool, Default: "false", Flag: true, Usage: "fetch missing VCEKs from AMD KDS"},
			{Key: "kds_url", Kind: attest.String, Default: defaultKDS, Usage: "AMD KDS base URL"},
			{Key: "kds_timeout", Kind: attest.Duration, Default: "10s", Usage: "timeout of one AMD KDS request"},
		},
		New:       build,
		Preflight: preflight,
	}
}

// settings are the module's settings, read.
type settings struct {
	requireCRL, kdsFetch bool
	kdsURL               string
	kdsTimeout           time.Duration
}

func readSettings(d attest.Deps) (settings, error) {
	get := func(k string) string {
		if d.Setting == nil {
			return ""
		}
		return d.Setting(k)
	}
	s := settings{kdsURL: defaultKDS, kdsTimeout: 10 * time.Second}
	var err error
	for _, b := range []struct {
		key string
		dst *bool
	}{{"require_crl", &s.requireCRL}, {"kds_fetch", &s.kdsFetch}} {
		if v := get(b.key); v != "" {
			if *b.dst, err = strconv.ParseBool(v); err != nil {
				return s, fmt.Errorf("%s %q: not a boolean", b.key, v)
			}
		}
	}
	if v := get("kds_url"); v != "" {
		s.kdsURL = v
	}
	if v := get("kds_timeout"); v != "" {
		if s.kdsTimeout, err = time.ParseDuration(v); err != nil || s.kdsTimeout <= 0 {
			return s, fmt.Errorf("kds_timeout %q: want a positive duration such as \"10s\"", v)
		}
	}
	return s, nil
}

// roots returns the pinned AMD roots with the configured extra bundles.
func roots(d attest.Deps) (*snp.Roots, error) {
	rs, err := snp.AMDRoots()
	if err != nil {
		return nil, err
	}
	for _, f := range d.TrustRoots {
		b, err := os.ReadFile(f)
		if err == nil {
			err = rs.AddBundle(b)
		}
		if err != nil {
			return nil, fmt.Errorf("trust root %s: %w", f, err)
		}
	}
	return rs, nil
}

func preflight(d attest.Deps) error {
	if _, err := readSettings(d); err != nil {
		return err
	}
	_, err := roots(d)
	return err
}

func build(d attest.Deps) (*attest.TEE, error) {
	set, err := readSettings(d)
	if err != nil {
		return nil, err
	}
	rs, err := roots(d)
	if err != nil {
		return nil, err
	}
	if d.Simulator {
		a, err := sim.LoadOrCreate(filepath.Join(d.DataDir, "sim"), d.Now())
		if err != nil {
			return nil, fmt.Errorf("simulated TEE: %w", err)
		}
		if err := rs.Add(a.Root()); err != nil {
			return nil, fmt.Errorf("simulated TEE root: %w", err)
		}
	}
	var kds *amd.KDS
	if set.kdsFetch {
		kds = &amd.KDS{Base: set.kdsURL, Timeout: set.kdsTimeout, Now: d.Now}
	}
	cache := amd.New(d.Collateral, kds, d.Now)
	cache.Roots = rs
	// Intermediates imported earlier are pinned again under the ARKs that
	// signed them; one that no longer verifies (edited store) is ignored.
	for _, pl := range rs.ProductLines() {
		inters, err := cache.Intermediates(context.Background(), pl)
		if err != nil {
			return nil, fmt.Errorf("load imported intermediates: %w", err)
		}
		for _, c := range inters {
			_ = rs.AddIntermediate(c)
		}
	}
	v := snp.NewVerifier(rs, cache, cache)
	v.RequireCRL = set.requireCRL
	v.Hint = func(leaf *x509.Certificate) string {
		if !sim.IsSimulated(leaf) {
			return ""
		}
		if d.Simulator {
			return "simulated evidence from another data directory's test root: this kura trusts only the simulated root in its own data directory (" + filepath.Join(d.DataDir, "sim") + "); make the evidence with `kura sim snp --data` naming the server's data directory"
		}
		return "simulated evidence: this kura trusts the simulated TEE only with --dev or trust_simulator"
	}
	return &attest.TEE{Verifier: snp.Attester{V: v}, Import: cache.Import}, nil
}
