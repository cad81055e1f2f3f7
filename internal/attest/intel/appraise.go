package intel

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/collateral"
	"github.com/kura-project/kura/internal/store"
)

// Kind is the collateral kind of an Intel collateral bundle; its key is
// "<tdx|sgx>/<FMSPC>" (upper-case hex).
const Kind = "intel-collateral"

// Appraiser finds, verifies and applies Intel collateral from the
// collateral store, for one TEE ("TDX" or "SGX", as TCB infos name them).
type Appraiser struct {
	TEE   string
	Roots *x509.CertPool
	Store attest.CollateralStore

	// Now is the clock of the memory cache of store reads and of the
	// fetch memo (nil: time.Now); verification times are Appraise's.
	Now func() time.Time
	// Fetch, when set, fetches collateral from Intel's PCS for a platform
	// with none current on file (off unless the operator allows it).
	Fetch  *PCS
	misses fetchMemo

	// rows serves store reads from memory for up to collateral.TTL (an
	// import through this node applies at once, through another within
	// the TTL); verified remembers collateral verified under Roots by the
	// hash of its stored bytes while all its parts are valid, so its
	// signatures are not checked on every quote.
	once     sync.Once
	rows     *collateral.Cache
	verified collateralCache
}

func (a *Appraiser) cache() *collateral.Cache {
	a.once.Do(func() { a.rows = collateral.New(a.Store, nil, a.Now) })
	return a.rows
}

func (a *Appraiser) key(fmspc string) string {
	return strings.ToLower(a.TEE) + "/" + strings.ToUpper(fmspc)
}

// Appraise finds the collateral of pck's FMSPC, verifies it at now, checks
// the PCK chain against its CRLs and evaluates the platform with eval;
// the newest collateral that verifies is used. No collateral on file,
// none that verifies, a revoked PCK and no matching TCB level are
// evidence errors that say so.
func (a *Appraiser) Appraise(ctx context.Context, pck *PCK, pckChain []*x509.Certificate, now time.Time, eval func(*Verified) (TCB, error)) (TCB, error) {
	fmspc := strings.ToUpper(hex.EncodeToString(pck.FMSPC[:]))
	tcb, err := a.appraise(ctx, fmspc, pckChain, now, eval)
	var stale *noCurrentError
	if !errors.As(err, &stale) || a.Fetch == nil {
		return tcb, err
	}
	// Nothing current on file: ask Intel's PCS (when the operator allows
	// it), import what it answers — verified like any import — and try
	// again once. A failed fetch is remembered for a while.
	if clock := a.clock(); a.misses.recent(a.key(fmspc), clock) {
		return tcb, err
	}
	if ferr := a.fetch(ctx, fmspc); ferr != nil {
		a.misses.miss(a.key(fmspc), a.clock())
		return TCB{}, attest.BadWrap("quote", errors.Join(err, ferr), "no current Intel %s collateral for FMSPC %s on file, and fetching it from Intel's PCS failed", a.TEE, fmspc)
	}
	return a.appraise(ctx, fmspc, pckChain, now, eval)
}

// fetch imports what Intel's PCS answers for fmspc.
func (a *Appraiser) fetch(ctx context.Context, fmspc string) error {
	bundles, err := a.Fetch.Fetch(ctx, a.TEE, fmspc)
	if err != nil {
		return err
	}
	for _, b := range bundles {
		if _, err := a.Import(ctx, b); err != nil {
			return fmt.Errorf("intel PCS answer for FMSPC %s: %w", fmspc, err)
		}
	}
	return nil
}

func (a *Appraiser) clock() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// noCurrentError is an evidence error for a platform without current
// collateral on file (none at all, or none that verifies now): the case
// a fetch from Intel's PCS can mend.
type noCurrentError struct{ error }

func (e *noCurrentError) Unwrap() error { return e.error }

func (a *Appraiser) appraise(ctx context.Context, fmspc string, pckChain []*x509.Certificate, now time.Time, eval func(*Verified) (TCB, error)) (TCB, error) {
	items, err := collateral.Cached(ctx, a.cache(), Kind, a.key(fmspc), func(items []store.Collateral) []store.Collateral { return items })
	if err != nil {
		return TCB{}, &attest.UnavailableError{Err: err}
	}
	if len(items) == 0 {
		return TCB{}, &noCurrentError{attest.Bad("quote", "no Intel %s collateral for FMSPC %s is on file (import Intel's TCB info, QE identity and CRLs for it with `kura collateral import`)", a.TEE, fmspc)}
	}
	var errs []error
	for _, it := range items {
		vc, ok := a.verified.get(it.DER, now)
		if !ok {
			col, err := ParseQVLBundle(it.DER)
			if err == nil {
				vc, err = col.Verify(a.Roots, now)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			a.verified.put(it.DER, col, vc)
		}
		if len(pckChain) == 0 {
			return TCB{}, attest.Bad("quote", "no verified PCK chain to judge")
		}
		if !vc.Root.Equal(pckChain[len(pckChain)-1]) {
			errs = append(errs, fmt.Errorf("collateral of another root (%s) than the PCK's (%s)", rootName(vc.Root), rootName(pckChain[len(pckChain)-1])))
			continue
		}
		if err := vc.CheckRevoked(pckChain); err != nil {
			if errors.Is(err, ErrRevoked) {
				return TCB{}, attest.BadWrap("quote", err, "refused")
			}
			errs = append(errs, err) // collateral that does not fit this chain
			continue
		}
		tcb, err := eval(vc)
		if err != nil {
			return TCB{}, attest.BadWrap("quote", err, "does not match Intel's collateral")
		}
		if tcb.Status == Revoked {
			return TCB{}, attest.Bad("quote", "Intel's collateral for FMSPC %s (evaluation %d) marks this platform's TCB, quoting enclave or TDX module revoked", fmspc, tcb.TCBEvaluationDataNumber)
		}
		if tcb.Status == "" {
			return TCB{}, attest.Bad("quote", "no TCB level of Intel's TCB info for FMSPC %s (evaluation %d) matches this platform, or its quoting enclave or TDX module has no matching level: TCB not supported", fmspc, tcb.TCBEvaluationDataNumber)
		}
		return tcb, nil
	}
	return TCB{}, &noCurrentError{attest.BadWrap("quote", errors.Join(errs...), "the Intel collateral on file for FMSPC %s does not verify at %s", fmspc, now.UTC().Format(time.RFC3339))}
}

// Import stores an Intel collateral bundle (dcap-qvl's JSON: TCB info, QE
// identity, their issuer chains and signatures, the PCK and root CA CRLs)
// of a.TEE under its FMSPC; another TEE's, or a file that is no bundle,
// is attest.ErrNotMine. It is verified here at the start of its window
// (an operator may stage collateral for later, or keep an older one) and
// again, at the time of use, on every use.
func (a *Appraiser) Import(ctx context.Context, data []byte) (int, error) {
	if !strings.Contains(string(data), `"tcb_info"`) {
		return 0, attest.ErrNotMine
	}
	col, err := ParseQVLBundle(data)
	if err != nil {
		return 0, err
	}
	var head struct {
		ID    string `json:"id"`
		FMSPC string `json:"fmspc"`
	}
	if err := json.Unmarshal(col.TCBInfo, &head); err != nil {
		return 0, fmt.Errorf("intel collateral: TCB info: %w", err)
	}
	if head.ID != a.TEE {
		return 0, attest.ErrNotMine
	}
	from, to, err := col.Window()
	if err != nil {
		return 0, fmt.Errorf("intel collateral for FMSPC %s: %w", head.FMSPC, err)
	}
	if !from.Before(to) {
		return 0, fmt.Errorf("intel collateral for FMSPC %s: its parts are never valid together (from %s to %s)", head.FMSPC, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	if _, err := col.Verify(a.Roots, from); err != nil {
		return 0, fmt.Errorf("intel collateral for FMSPC %s: %w", head.FMSPC, err)
	}
	// Filed under its FMSPC for quotes, and under AnyPlatform for what
	// is not per platform (QE identity, CRLs) when served to guests.
	for _, key := range []string{a.key(head.FMSPC), a.key(AnyPlatform)} {
		if err := a.cache().PutItem(ctx, store.Collateral{Kind: Kind, Key: key, DER: data, NotAfter: to}); err != nil {
			return 0, err
		}
	}
	return 1, nil
}

// AnyPlatform is the key suffix under which every bundle of a TEE is also
// filed ("tdx/ANY"); no FMSPC (hex) is spelled so.
const AnyPlatform = "ANY"

// Current returns the newest collateral on file for fmspc (AnyPlatform:
// for any platform of a.TEE) that verifies at now and that accept (nil:
// any) takes, Intel's before any other root's, as stored: the exact
// documents Intel signed, for serving to guests that verify it
// themselves. None on file, or none current, is an error that says so.
// Rows whose stored expiry has passed are not parsed at all (the routes
// that call this are public).
func (a *Appraiser) Current(ctx context.Context, fmspc string, now time.Time, accept func(*Collateral) bool) (*Collateral, error) {
	items, err := collateral.Cached(ctx, a.cache(), Kind, a.key(fmspc), func(items []store.Collateral) []store.Collateral { return items })
	if err != nil {
		return nil, &attest.UnavailableError{Err: err}
	}
	// Intel's own collateral first (a --dev server also holds the
	// simulator's), then the newest.
	var best *Collateral
	var bestIssued time.Time
	bestIntel, intelRoot := false, RootCert()
	for _, it := range items {
		if !it.NotAfter.IsZero() && it.NotAfter.Before(now) {
			continue
		}
		col, vc, ok := a.verified.getBoth(it.DER, now)
		if !ok {
			if col, err = ParseQVLBundle(it.DER); err != nil {
				continue
			}
			if vc, err = col.Verify(a.Roots, now); err != nil {
				continue
			}
			a.verified.put(it.DER, col, vc)
		}
		if accept != nil && !accept(col) {
			continue
		}
		isIntel := vc.Root.Equal(intelRoot)
		if best == nil || isIntel && !bestIntel || isIntel == bestIntel && vc.TCBInfo.IssueDate.After(bestIssued) {
			best, bestIssued, bestIntel = col, vc.TCBInfo.IssueDate, isIntel
		}
	}
	if best == nil {
		if len(items) == 0 {
			return nil, fmt.Errorf("no Intel %s collateral for %s is on file", a.TEE, fmspc)
		}
		return nil, fmt.Errorf("none of the %d Intel %s collateral bundles on file for %s verifies at %s", len(items), a.TEE, fmspc, now.UTC().Format(time.RFC3339))
	}
	return best, nil
}

// CollateralSource is implemented by the TDX and SGX verifiers: their
// TEE's name as Intel's services spell it ("tdx", "sgx") and the
// appraiser holding their collateral.
type CollateralSource interface {
	IntelCollateral() (tee string, a *Appraiser)
}

// rootName names a root in errors: its common name and organization.
func rootName(c *x509.Certificate) string {
	return fmt.Sprintf("%q of %q", c.Subject.CommonName, strings.Join(c.Subject.Organization, ", "))
}
