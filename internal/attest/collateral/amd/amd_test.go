package amd_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest"
	collateral "github.com/kura-project/kura/internal/attest/collateral/amd"
	"github.com/kura-project/kura/internal/attest/sim"
	"github.com/kura-project/kura/internal/attest/snp"
	"github.com/kura-project/kura/internal/evidence"
	"github.com/kura-project/kura/internal/store/sqlite"
)

func openCache(t *testing.T) *collateral.Cache {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return collateral.New(st, nil, time.Now)
}

// TestAirGappedVCEK: an operator imports VCEKs and VLEKs; reports that arrive
// without any certificate then verify from the cache, for v2 reports (no
// CPUID), Turin (8-byte hwID) and VLEK-signed reports.
func TestAirGappedVCEK(t *testing.T) {
	ctx := context.Background()
	roots, err := snp.AMDRoots()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		report, key string
		at          time.Time
	}{
		{"snp/milan-gce-2022/attestation.bin", "snp/milan-gce-2022/vcek.der", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"snp/turin/turin-report.bin", "snp/turin/turin-vcek.der", time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)},
		{"snp/genoa-line-siena-trustee/report.derived.bin", "snp/genoa-line-siena-trustee/vcek.derived.der", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"snp/vlek-milan-aws-trustee/test-vlek-report.bin", "snp/vlek-milan-aws-trustee/test-vlek.der", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(c.report, func(t *testing.T) {
			cache := openCache(t)
			rep, err := snp.ParseReport(evidence.Read(t, c.report))
			if err != nil {
				t.Fatal(err)
			}
			v := snp.NewVerifier(roots, cache, cache)
			if _, err := v.Verify(ctx, snp.Evidence{Report: rep}, c.at); err == nil || !strings.Contains(err.Error(), "none is cached") {
				t.Fatalf("before import: %v", err)
			}
			n, err := cache.Import(ctx, evidence.Read(t, c.key))
			if err != nil || n != 1 {
				t.Fatalf("import: %d %v", n, err)
			}
			if _, err := v.Verify(ctx, snp.Evidence{Report: rep}, c.at); err != nil {
				t.Fatalf("after import: %v", err)
			}
		})
	}
}

func TestImportRefusals(t *testing.T) {
	ctx := context.Background()
	cache := openCache(t)
	foreign, _ := sim.New(time.Now())
	pemOf := func(c *x509.Certificate) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	amd, _ := snp.AMDRoots()
	cache.Roots = amd
	// AMD's own ASK and ARK are already pinned: accepted, changing nothing that matters.
	if n, err := cache.Import(ctx, evidence.Read(t, "amd-roots/ask_ark_milan.pem")); err != nil || n != 1 {
		t.Errorf("AMD ASK/ARK bundle: %d %v", n, err)
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"unpinned ARK", pemOf(foreign.ARK), "trust anchor, never learned from collateral"},
		{"ASK of an unpinned ARK", pemOf(foreign.ASK), "not signed by any pinned ARK-Milan"},
		{"good VCEK then a bad item", append(evidence.Read(t, "snp/milan-gce-2022/vcek.der"), []byte("x")...), "neither"},
		{"garbage", []byte("hello"), "neither an X.509 certificate nor a CRL"},
		{"empty", nil, "empty"},
		{"PEM key", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "not collateral here (want CERTIFICATE or X509 CRL)"},
	} {
		if _, err := cache.Import(ctx, c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestCRL: an imported CRL is enforced (revoked ASK refused), must be signed
// by the pinned ARK, and fails closed once past its nextUpdate.
func TestCRL(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	a, err := sim.New(now)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := sim.New(now)
	roots := &snp.Roots{}
	if err := roots.Add(a.Root()); err != nil {
		t.Fatal(err)
	}
	body := func() snp.Evidence {
		raw, err := a.Report(sim.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, _ := snp.ParseReport(raw)
		return snp.Evidence{Report: rep, Certs: []*x509.Certificate{a.VCEK}}
	}
	verify := func(cache *collateral.Cache, at time.Time) error {
		return func() error {
			_, err := snp.NewVerifier(roots, cache, cache).Verify(ctx, body(), at)
			return err
		}()
	}
	week := 7 * 24 * time.Hour

	cache := openCache(t)
	good, _ := a.CRL(nil, now.Add(-time.Hour), now.Add(week))
	if _, err := cache.Import(ctx, good); err != nil {
		t.Fatal(err)
	}
	if err := verify(cache, now); err != nil {
		t.Fatalf("with a clean CRL: %v", err)
	}
	if err := verify(cache, now.Add(2*week)); err == nil || !strings.Contains(err.Error(), "import a current CRL") {
		t.Errorf("past nextUpdate: %v", err)
	}

	revoking := openCache(t)
	bad, _ := a.CRL([]*big.Int{a.ASK.SerialNumber}, now.Add(-time.Hour), now.Add(week))
	revoking.Import(ctx, bad)
	if err := verify(revoking, now); err == nil || !strings.Contains(err.Error(), "revoked") || !attest.IsEvidence(err) {
		t.Errorf("revoked ASK: %v", err)
	}

	// A CRL from another ARK cannot revoke: import refuses it when the
	// cache knows the pinned roots, and verification ignores it otherwise.
	fake, _ := other.CRL([]*big.Int{a.ASK.SerialNumber}, now.Add(-time.Hour), now.Add(week))
	pinned := openCache(t)
	pinned.Roots = roots
	if _, err := pinned.Import(ctx, fake); err == nil || !strings.Contains(err.Error(), "not signed by any pinned ARK-Milan") {
		t.Errorf("import of another ARK's CRL: %v", err)
	}
	if _, err := pinned.Import(ctx, bad); err != nil {
		t.Errorf("import of the pinned ARK's CRL: %v", err)
	}
	unpinned := openCache(t)
	if _, err := unpinned.Import(ctx, fake); err != nil {
		t.Fatal(err)
	}
	if err := verify(unpinned, now); err != nil {
		t.Errorf("another ARK's CRL was applied: %v", err)
	}
}

// TestKDS: with fetching enabled a missing VCEK is fetched once, recorded only
// after the report verified with it, a KDS miss is a 400 (evidence error)
// remembered for later, and a KDS outage is a dependency failure.
func TestKDS(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	a, err := sim.New(now)
	if err != nil {
		t.Fatal(err)
	}
	roots := &snp.Roots{}
	roots.Add(a.Root())
	var hits atomic.Int64
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !strings.HasPrefix(r.URL.Path, "/vcek/v1/Milan/") || r.URL.Query().Get("ucodeSPL") != "115" {
			t.Errorf("unexpected KDS request %s", r.URL)
		}
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		w.Write(a.VCEK.Raw)
	}))
	defer srv.Close()

	st, _ := sqlite.Open(filepath.Join(t.TempDir(), "kura.db"))
	defer st.Close()
	cache := collateral.New(st, &collateral.KDS{Base: srv.URL, Client: srv.Client(), Timeout: 2 * time.Second}, time.Now)
	v := snp.NewVerifier(roots, cache, cache)
	raw, _ := a.Report(sim.Options{})
	rep, _ := snp.ParseReport(raw)
	if _, err := v.Verify(ctx, snp.Evidence{Report: rep}, now); err != nil {
		t.Fatalf("with KDS: %v", err)
	}
	stored, _ := st.Collateral(ctx, "vcek", "Milan/"+hex.EncodeToString(a.ChipID[:])+"/7308000000000003")
	if len(stored) != 1 {
		t.Fatalf("fetched VCEK not recorded: %d rows", len(stored))
	}
	if _, err := v.Verify(ctx, snp.Evidence{Report: rep}, now); err != nil || hits.Load() != 1 {
		t.Fatalf("second verification: %v, %d KDS requests", err, hits.Load())
	}

	// An unknown chip: KDS answers 404 → 400, remembered, nothing stored.
	other, _ := sim.New(now)
	raw2, _ := other.Report(sim.Options{})
	rep2, _ := snp.ParseReport(raw2)
	status = http.StatusNotFound
	for range 3 {
		_, err := v.Verify(ctx, snp.Evidence{Report: rep2}, now)
		if err == nil || !attest.IsEvidence(err) || !strings.Contains(err.Error(), "AMD KDS has no VCEK") {
			t.Fatalf("unknown chip: %v", err)
		}
	}
	if hits.Load() != 2 {
		t.Errorf("KDS misses are not remembered: %d requests", hits.Load())
	}

	// A forged report naming a real chip: the fetched VCEK does not verify
	// it, and nothing is recorded.
	status = http.StatusOK
	forged := bytes.Clone(raw)
	forged[0x90] ^= 1
	copy(forged[0x180:], []byte{4, 0, 0, 0, 0, 0, 9, 115}) // another TCB: a cache miss
	copy(forged[0x1E0:], forged[0x180:0x188])
	rep3, err := snp.ParseReport(forged)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, snp.Evidence{Report: rep3}, now); err == nil {
		t.Fatal("forged report verified")
	}
	rows, _ := st.Collateral(ctx, "vcek", "Milan/"+hex.EncodeToString(a.ChipID[:])+"/7309000000000004")
	if len(rows) != 0 {
		t.Error("a key fetched for a forged report was recorded")
	}

	// KDS down: a dependency failure, not a verdict on the evidence.
	status = http.StatusInternalServerError
	third, _ := sim.New(now)
	raw4, _ := third.Report(sim.Options{})
	rep4, _ := snp.ParseReport(raw4)
	_, err = v.Verify(ctx, snp.Evidence{Report: rep4}, now)
	var ue *attest.UnavailableError
	if !errors.As(err, &ue) {
		t.Errorf("KDS outage: %v, want an UnavailableError", err)
	}
}

// TestRequireCRL: with RequireCRL, verification fails until a current CRL
// from the evidence's ARK is on file.
func TestRequireCRL(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	a, _ := sim.New(now)
	roots := &snp.Roots{}
	roots.Add(a.Root())
	cache := openCache(t)
	v := snp.NewVerifier(roots, cache, cache)
	v.RequireCRL = true
	raw, _ := a.Report(sim.Options{})
	rep, _ := snp.ParseReport(raw)
	ev := snp.Evidence{Report: rep, Certs: []*x509.Certificate{a.VCEK}}
	if _, err := v.Verify(ctx, ev, now); err == nil || !strings.Contains(err.Error(), "a current Milan CRL is required") {
		t.Fatalf("without a CRL: %v", err)
	}
	crl, _ := a.CRL(nil, now.Add(-time.Hour), now.Add(time.Hour))
	if _, err := cache.Import(ctx, crl); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, ev, now); err != nil {
		t.Fatalf("with a CRL: %v", err)
	}
	// At a time before the CRL was issued, it does not apply.
	if _, err := v.Verify(ctx, ev, now.Add(-2*time.Hour)); err == nil {
		t.Error("a CRL issued after the verification time was applied")
	}
}

// TestReissuedASK: an ASK reissued by a pinned ARK (same key, new validity)
// keeps VCEKs verifying after the pinned ASK certificate expired; one issued
// by another ARK is refused (TestImportRefusals).
func TestReissuedASK(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	a, err := sim.New(now)
	if err != nil {
		t.Fatal(err)
	}
	short, err := a.ReissueASK(now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	roots := &snp.Roots{}
	if err := roots.Add(snp.Root{ProductLine: "Milan", Kind: snp.VCEK, ARK: a.ARK, Intermediate: short}); err != nil {
		t.Fatal(err)
	}
	cache := openCache(t)
	cache.Roots = roots
	raw, _ := a.Report(sim.Options{})
	rep, _ := snp.ParseReport(raw)
	ev := snp.Evidence{Report: rep, Certs: []*x509.Certificate{a.VCEK}}
	later := now.Add(48 * time.Hour)
	if _, err := snp.NewVerifier(roots, nil, nil).Verify(ctx, ev, later); err == nil || !strings.Contains(err.Error(), "ASK/ASVK expired") {
		t.Fatalf("after the pinned ASK expired: %v", err)
	}
	if n, err := cache.Import(ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.ASK.Raw})); err != nil || n != 1 {
		t.Fatalf("import the reissued ASK: %d %v", n, err)
	}
	inters, err := cache.Intermediates(ctx, "Milan")
	if err != nil || len(inters) != 1 {
		t.Fatalf("stored intermediates: %d %v", len(inters), err)
	}
	fresh := roots.Clone()
	for _, c := range inters {
		if err := fresh.AddIntermediate(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := snp.NewVerifier(fresh, nil, nil).Verify(ctx, ev, later); err != nil {
		t.Fatalf("with the reissued ASK: %v", err)
	}
	if _, err := snp.NewVerifier(fresh, nil, nil).Verify(ctx, ev, now); err != nil {
		t.Fatalf("now, either path: %v", err)
	}
}
