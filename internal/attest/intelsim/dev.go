package intelsim

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/store"
)

// Trust is the appraiser of a TDX or SGX module (tee "TDX" or "SGX")
// built from d: over Intel's root and d's collateral store, and, with
// d.Simulator, also the simulated root of d.DataDir and its collateral
// (Dev); fetching from Intel's PCS as d's settings say (intel_pcs_*).
// hint explains refusals of simulated evidence (Hint).
func Trust(d attest.Deps, tee string) (a *intel.Appraiser, hint func([]*x509.Certificate, error) string, err error) {
	roots, st, dir := intel.Roots(), d.Collateral, filepath.Join(d.DataDir, "sim")
	if d.Simulator {
		if roots, st, err = Dev(dir, d.Now(), tee, st); err != nil {
			return nil, nil, err
		}
	}
	fetch, err := intel.PCSFromSettings(d.Setting)
	if err != nil {
		return nil, nil, err
	}
	hint = func(chain []*x509.Certificate, err error) string { return Hint(chain, err, dir, d.Simulator) }
	return &intel.Appraiser{TEE: tee, Roots: roots, Store: st, Now: d.Now, Fetch: fetch}, hint, nil
}

// Dev is what a --dev server's TDX or SGX module trusts: Intel's root and
// the simulated root saved in dir (made on first use), and a collateral
// store that serves, next to base's, fresh simulated collateral for tee
// ("TDX" or "SGX") valid for a year from now. The simulated collateral is
// never written to base.
func Dev(dir string, now time.Time, tee string, base attest.CollateralStore) (*x509.CertPool, attest.CollateralStore, error) {
	a, err := LoadOrCreate(dir, now)
	if err != nil {
		return nil, nil, fmt.Errorf("simulated Intel TEE: %w", err)
	}
	from := now.Add(-time.Hour)
	b, err := a.Collateral(CollateralOptions{TEE: tee, From: from, To: from.AddDate(1, 0, 0)}, now)
	if err != nil {
		return nil, nil, fmt.Errorf("simulated Intel collateral: %w", err)
	}
	roots := intel.Roots()
	roots.AddCert(a.Root)
	key := strings.ToLower(tee) + "/" + FMSPC
	return roots, &overlay{CollateralStore: base, keys: []string{key, strings.ToLower(tee) + "/" + intel.AnyPlatform},
		item: store.Collateral{Kind: intel.Kind, Key: key, DER: b, NotAfter: from.AddDate(1, 0, 0)}}, nil
}

// overlay serves the simulated bundle under the platform's key and under
// the TEE's any-platform key, as Import files a bundle.
type overlay struct {
	attest.CollateralStore
	keys []string
	item store.Collateral
}

func (o *overlay) Collateral(ctx context.Context, kind, key string) ([]store.Collateral, error) {
	items, err := o.CollateralStore.Collateral(ctx, kind, key)
	if err != nil {
		return nil, err
	}
	if kind == intel.Kind && slices.Contains(o.keys, key) {
		items = append(items, o.item)
	}
	return items, nil
}

// Hint explains why a quote whose PCK chain (leaf first) is chain does
// not verify (err), when it is simulated; "" otherwise, or when err says
// enough itself.
func Hint(chain []*x509.Certificate, err error, dir string, trusted bool) string {
	if len(chain) == 0 || !IsSimulated(chain[0]) {
		return ""
	}
	if !trusted {
		return "simulated evidence: this kura trusts the simulated TEE only with --dev or trust_simulator"
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		return "" // tampered or expired: the error says which
	}
	return "simulated evidence from another data directory's test root: this kura trusts only the simulated root in its own data directory (" + dir + "); make the evidence with `kura sim` naming the server's data directory"
}
