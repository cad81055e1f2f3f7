// Package storetest is the conformance suite every store.Store engine must
// pass. An engine's test calls Run with a constructor for an empty store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/store"
)

// Run runs the suite; open must return a new, empty store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("SigningKeys", func(t *testing.T) { signingKeys(t, open(t)) })
	t.Run("Policies", func(t *testing.T) { policies(t, open(t)) })
	t.Run("Collateral", func(t *testing.T) { collateral(t, open(t)) })
}

func signingKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b"} {
		k := store.SigningKey{ID: id, Alg: "RS256", CertDER: []byte{1, byte(i)}, Sealed: []byte{2, byte(i)}, Created: t0.Add(time.Duration(i) * time.Hour)}
		if err := s.PutSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutSigningKey(ctx, store.SigningKey{ID: "a", Alg: "RS256", CertDER: []byte{9}, Sealed: []byte{9}, Created: t0}); err == nil {
		t.Error("duplicate signing key id accepted")
	}
	if err := s.RetireSigningKey(ctx, "a", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RetireSigningKey(ctx, "a", t0.Add(3*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("retiring a retired key: %v, want ErrNotFound", err)
	}
	if err := s.RetireSigningKey(ctx, "zz", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("retiring an unknown key: %v, want ErrNotFound", err)
	}
	ks, err := s.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 2 || ks[0].ID != "a" || ks[1].ID != "b" {
		t.Fatalf("keys = %+v", ks)
	}
	if !ks[0].Retired.Equal(t0.Add(2*time.Hour)) || !ks[1].Retired.IsZero() || !ks[0].Created.Equal(t0) {
		t.Errorf("times not kept: %+v", ks)
	}
	if !bytes.Equal(ks[1].Sealed, []byte{2, 1}) || !bytes.Equal(ks[1].CertDER, []byte{1, 1}) {
		t.Errorf("bytes not kept: %+v", ks[1])
	}
}

func policies(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.GetPolicy(ctx, "SevSnpVm"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get missing policy: %v, want ErrNotFound", err)
	}
	p := store.Policy{Type: "SevSnpVm", Text: "version=1.0;", JWS: "x..", Updated: time.Unix(100, 0).UTC(), MAC: []byte{1, 2}}
	if err := s.PutPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	p2 := p
	p2.Text, p2.Signer, p2.MAC = "version=1.2;", []byte{7}, []byte{3}
	if err := s.PutPolicy(ctx, p2); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetPolicy(ctx, "SevSnpVm")
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != p2.Text || !bytes.Equal(got.Signer, []byte{7}) || !got.Updated.Equal(p.Updated) || !bytes.Equal(got.MAC, []byte{3}) {
		t.Errorf("got %+v, want %+v", got, p2)
	}
	if _, err := s.GetPolicy(ctx, "TdxVm"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other type: %v", err)
	}
	if err := s.DeletePolicy(ctx, "SevSnpVm"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPolicy(ctx, "SevSnpVm"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

func collateral(t *testing.T, s store.Store) {
	ctx := context.Background()
	na := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := store.Collateral{Kind: "vcek", Key: "Milan/ab/01", DER: []byte{1, 2, 3}, NotAfter: na}
	for range 2 {
		if err := s.PutCollateral(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	c2 := c
	c2.DER = []byte{4}
	if err := s.PutCollateral(ctx, c2); err != nil {
		t.Fatal(err)
	}
	got, err := s.Collateral(ctx, "vcek", "Milan/ab/01")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d items, want 2 (duplicates are stored once)", len(got))
	}
	if !got[0].NotAfter.Equal(na) {
		t.Errorf("not_after = %v", got[0].NotAfter)
	}
	none, err := s.Collateral(ctx, "vlek", "Milan/ab/01")
	if err != nil || len(none) != 0 {
		t.Errorf("other kind: %v %v", none, err)
	}
}
