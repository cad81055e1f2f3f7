package snp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/evidence"
)

// TestRealEvidenceThroughTables verifies every accepted SEV-SNP sample until
// its endorsement key holds a precomputed table, and checks that the table
// path gives the same claims and refuses a flipped bit anywhere in the
// signed prefix or the signature.
func TestRealEvidenceThroughTables(t *testing.T) {
	roots, err := AMDRoots()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range evidence.Checks(t, "sev-snp") {
		if c.Expect == "reject" {
			continue
		}
		t.Run(c.ID, func(t *testing.T) {
			raw := evidence.Read(t, c.Files[0])[:ReportSize]
			certs, err := ParseCertificates(evidence.Read(t, c.Files[1]))
			if err != nil {
				t.Fatal(err)
			}
			v := NewVerifier(roots, nil, nil)
			verify := func(b []byte) (*Result, error) {
				rep, err := ParseReport(b)
				if err != nil {
					return nil, err
				}
				return v.Verify(context.Background(), Evidence{Report: rep, Certs: certs}, c.VerifyAt)
			}
			for i := range fastKeyAfter + 1 {
				res, err := verify(raw)
				if err != nil {
					t.Fatalf("verification %d: %v", i+1, err)
				}
				checkClaims(t, res, c.Claims)
			}
			var e *endorsement
			for _, x := range v.verified {
				e = x
			}
			if e == nil || !v.fast.has(e.pub) {
				t.Fatalf("no table after %d verified reports", fastKeyAfter+1)
			}
			// Flips: a byte of every 8 across the signed prefix, and every
			// byte of r and s that holds a value (the top 24 bytes of each
			// 72-byte field are zero and checked by the parser).
			var offsets []int
			for off := 0; off < SignedSize; off += 8 {
				offsets = append(offsets, off)
			}
			for off := 0x2A0; off < 0x2A0+48; off++ {
				offsets = append(offsets, off, off+72)
			}
			for _, off := range offsets {
				b := append([]byte(nil), raw...)
				b[off] ^= 0x01
				if _, err := verify(b); err == nil {
					t.Fatalf("report with byte %#x flipped verifies through the table", off)
				} else if !attest.IsEvidence(err) {
					t.Fatalf("byte %#x: %v is not an evidence error", off, err)
				}
			}
			if !v.fast.has(e.pub) {
				t.Fatal("table lost")
			}
			if _, err := verify(raw); err != nil {
				t.Fatalf("after the flips: %v", err)
			}
			// The verifier's endorsement cache is cleared (it is bounded):
			// the table, keyed by the public key, still serves.
			v.mu.Lock()
			clear(v.verified)
			v.mu.Unlock()
			if _, err := verify(raw); err != nil || !v.fast.has(e.pub) {
				t.Fatalf("after clearing the endorsement cache: %v, table %v", err, v.fast.has(e.pub))
			}
		})
	}
}

// signer is a P-384 key that signs reports for the cache tests.
type signer struct {
	priv *ecdsa.PrivateKey
	st   fastKeyState
}

func newSigner(t *testing.T) *signer {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &signer{priv: k}
	s.st.id = fastKeyID(&k.PublicKey)
	return s
}

// report returns a parsed report signed by s.
func (s *signer) report(t *testing.T) *Report {
	raw := validReport()
	digest := sha512.Sum384(raw[:SignedSize])
	r, sig, err := ecdsa.Sign(rand.Reader, s.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	put := func(off int, v *big.Int) {
		b := v.FillBytes(make([]byte, 48))
		slices.Reverse(b)
		copy(raw[off:off+72], b)
	}
	put(0x2A0, r)
	put(0x2E8, sig)
	rep, err := ParseReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func (s *signer) verify(t *testing.T, f *fastKeys, rep *Report, at time.Time) {
	t.Helper()
	if err := f.verify(&s.st, rep, &s.priv.PublicKey, at); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

func TestFastKeyPlaces(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &fastKeys{max: 1, idle: time.Minute, retry: 10 * time.Second, epoch: t0.Add(-time.Hour), tables: map[[32]byte]*fastTable{}}
	a, b := newSigner(t), newSigner(t)
	ra, rb := a.report(t), b.report(t)
	a.verify(t, f, ra, t0)
	if f.has(&a.priv.PublicKey) {
		t.Fatal("a table after one report")
	}
	a.verify(t, f, ra, t0)
	if !f.has(&a.priv.PublicKey) {
		t.Fatal("no table after two reports")
	}
	// b's second report comes while a's table is busy: b waits.
	b.verify(t, f, rb, t0.Add(10*time.Second))
	b.verify(t, f, rb, t0.Add(20*time.Second))
	if f.has(&b.priv.PublicKey) || !f.has(&a.priv.PublicKey) {
		t.Fatal("a busy table was displaced")
	}
	// A late request carrying an earlier time does not make a look idle.
	a.verify(t, f, ra, t0.Add(50*time.Second))
	a.verify(t, f, ra, t0.Add(5*time.Second))
	b.verify(t, f, rb, t0.Add(100*time.Second))
	if f.has(&b.priv.PublicKey) {
		t.Fatal("a stale time made a busy table idle")
	}
	// a goes idle for over a minute: b, turned away before, now gets the
	// place on a later report (it retries), and a has to earn it again.
	b.verify(t, f, rb, t0.Add(50*time.Second+61*time.Second))
	if !f.has(&b.priv.PublicKey) || f.has(&a.priv.PublicKey) {
		t.Fatal("a key turned away once never got its table")
	}
	if len(f.tables) != 1 {
		t.Errorf("%d tables held, max 1", len(f.tables))
	}
	// Retries are rate limited: with b busy, a's reports try once per
	// retry period, not on every report.
	later := t0.Add(200 * time.Second)
	b.verify(t, f, rb, later)
	a.verify(t, f, ra, later)
	next := a.st.nextTry.Load()
	a.verify(t, f, ra, later.Add(time.Second))
	if a.st.nextTry.Load() != next || next != f.at(later.Add(f.retry)) {
		t.Errorf("retry not rate limited: next try %d, then %d", next, a.st.nextTry.Load())
	}
	// With no places at all, nothing is built.
	none := &fastKeys{}
	c := newSigner(t)
	rc := c.report(t)
	for range 3 {
		c.verify(t, none, rc, t0)
	}
	if none.has(&c.priv.PublicKey) {
		t.Error("table built with no places")
	}
	// A bad signature is refused on both paths and earns nothing; on the
	// table path it does not keep the table busy either.
	bad := *rb
	bad.Raw = slices.Clone(rb.Raw)
	bad.Raw[0x40] ^= 1
	for i := range 20 {
		if err := f.verify(&b.st, &bad, &b.priv.PublicKey, later.Add(time.Duration(i)*5*time.Second)); err == nil {
			t.Fatal("altered report verifies through the table")
		}
	}
	a.verify(t, f, ra, later.Add(100*time.Second))
	if !f.has(&a.priv.PublicKey) {
		t.Error("forged reports kept an idle table busy")
	}
	d := newSigner(t)
	for range 3 {
		if err := f.verify(&d.st, &bad, &d.priv.PublicKey, later); err == nil {
			t.Fatal("report verifies under another key")
		}
	}
	if d.st.uses.Load() != 0 {
		t.Error("refused reports counted towards a table")
	}
}

// TestFastKeysConcurrent runs many keys through few places at once (for the
// race detector) and checks the bound.
func TestFastKeysConcurrent(t *testing.T) {
	f := &fastKeys{max: 2, idle: time.Millisecond, retry: time.Millisecond, epoch: time.Now(), tables: map[[32]byte]*fastTable{}}
	signers := make([]*signer, 5)
	reports := make([]*Report, 5)
	for i := range signers {
		signers[i] = newSigner(t)
		reports[i] = signers[i].report(t)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				k := (g + i) % len(signers)
				if err := f.verify(&signers[k].st, reports[k], &signers[k].priv.PublicKey, time.Now()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.tables) > f.max {
		t.Errorf("%d tables held, max %d", len(f.tables), f.max)
	}
}
