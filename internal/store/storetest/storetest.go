// Package storetest is the conformance suite every store.Store engine must
// pass. An engine's test calls Run with an Engine: how to open an empty
// store and how to open a second handle on the same database.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/store"
)

// Engine tells the suite how to get stores of one engine.
type Engine struct {
	// Open returns a new, empty store, closed when t ends.
	Open func(t *testing.T) store.Store
	// Reopen returns a new handle on the database of s, independent of s
	// (its own connections, as another process would have), closed when
	// t ends. With nil, the cases that need two handles are skipped.
	Reopen func(t *testing.T, s store.Store) store.Store
}

// Run runs the suite.
func Run(t *testing.T, e Engine) {
	open := e.Open
	t.Run("SigningKeys", func(t *testing.T) { signingKeys(t, open(t)) })
	t.Run("Policies", func(t *testing.T) { policies(t, open(t)) })
	t.Run("Collateral", func(t *testing.T) { collateral(t, open(t)) })
	t.Run("Keys", func(t *testing.T) { keys(t, open(t)) })
	t.Run("KeyPaging", func(t *testing.T) { keyPaging(t, open(t)) })
	t.Run("Principals", func(t *testing.T) { principals(t, open(t)) })
	t.Run("Nonces", func(t *testing.T) { nonces(t, open(t)) })
	t.Run("Ledger", func(t *testing.T) { ledger(t, open(t)) })
	t.Run("LedgerACL", func(t *testing.T) { ledgerACL(t, open(t)) })
	t.Run("LedgerList", func(t *testing.T) { ledgerList(t, open(t)) })
	t.Run("TxCommit", func(t *testing.T) { txCommit(t, open(t)) })
	t.Run("TxRollback", func(t *testing.T) { txRollback(t, open(t)) })
	t.Run("TxFailedCall", func(t *testing.T) { txFailedCall(t, open(t)) })
	two := func(name string, f func(t *testing.T, a, b store.Store)) {
		t.Run(name, func(t *testing.T) {
			if e.Reopen == nil {
				t.Skip("engine has no Reopen")
			}
			a := open(t)
			f(t, a, e.Reopen(t, a))
		})
	}
	two("TwoHandles", twoHandles)
	two("RacingNonces", racingNonces)
	two("RacingCreates", racingCreates)
	two("OptimisticUpdate", optimisticUpdate)
}

func signingKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"a", "b"} {
		k := store.SigningKey{Purpose: "token", ID: id, Alg: "RS256", CertDER: []byte{1, byte(i)}, Sealed: []byte{2, byte(i)}, Created: t0.Add(time.Duration(i) * time.Hour)}
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
	// Expiry: per kind, the earliest of each key's newest item. The CRL
	// under key "b" was superseded (a newer one is on file); key "a" runs
	// out first.
	day := func(d int) time.Time { return time.Date(2027, 1, d, 0, 0, 0, 0, time.UTC) }
	for i, it := range []store.Collateral{
		{Kind: "crl", Key: "a", NotAfter: day(10)}, {Kind: "crl", Key: "b", NotAfter: day(3)}, {Kind: "crl", Key: "b", NotAfter: day(20)},
	} {
		it.DER = []byte{byte(10 + i)}
		if err := s.PutCollateral(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	exp, err := s.CollateralExpiry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp) != 2 || !exp["crl"].Equal(day(10)) || !exp["vcek"].Equal(na) {
		t.Errorf("collateral expiry: %v", exp)
	}
	all, err := s.AllCollateral(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got5 []string
	for _, c := range all {
		got5 = append(got5, fmt.Sprintf("%s/%s/%x/%d", c.Kind, c.Key, c.DER, c.NotAfter.Day()))
	}
	if want := []string{"crl/a/0a/10", "crl/b/0b/3", "crl/b/0c/20", "vcek/Milan/ab/01/010203/1", "vcek/Milan/ab/01/04/1"}; !slices.Equal(got5, want) {
		t.Errorf("all collateral: %v, want %v", got5, want)
	}
}

func kv(name, version string, at time.Time) store.KeyVersion {
	return store.KeyVersion{Name: name, Version: version, Kty: "EC", KeyOps: []string{"sign"}, Enabled: true,
		Created: at, Updated: at, Tags: map[string]string{"a": "b"}, PublicJWK: []byte(`{"kty":"EC"}`), Sealed: []byte{9, 9}}
}

func keys(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	if err := s.CreateKeyVersion(ctx, kv("k1", "v1", t0), true); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKeyVersion(ctx, kv("k2", "v1", t0), false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("new version of a missing key: %v", err)
	}
	v2 := kv("k1", "v2", t0.Add(time.Hour))
	v2.NotBefore, v2.Expires, v2.ReleasePolicy, v2.Exportable = t0, t0.Add(48*time.Hour), []byte(`{"x":1}`), true
	if err := s.CreateKeyVersion(ctx, v2, false); err != nil {
		t.Fatal(err)
	}
	latest, err := s.GetKeyVersion(ctx, "k1", "")
	if err != nil || latest.Version != "v2" || !latest.Expires.Equal(v2.Expires) || !latest.Exportable || string(latest.ReleasePolicy) != `{"x":1}` || latest.Tags["a"] != "b" || latest.KeyOps[0] != "sign" {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	first, _ := s.GetKeyVersion(ctx, "k1", "v1")
	prev := first.Updated
	first.Enabled, first.Tags, first.KeyOps, first.Updated, first.MAC = false, nil, nil, prev.Add(time.Second), []byte{5}
	if err := s.UpdateKeyVersion(ctx, first, prev); err != nil {
		t.Fatal(err)
	}
	// A writer that read the old row loses: optimistic concurrency.
	stale := first
	stale.Enabled = true
	if err := s.UpdateKeyVersion(ctx, stale, prev); !errors.Is(err, store.ErrConflict) {
		t.Errorf("stale update: %v", err)
	}
	if got, _ := s.GetKeyVersion(ctx, "k1", "v1"); got.Enabled || got.Tags != nil || got.KeyOps != nil || !bytes.Equal(got.Sealed, []byte{9, 9}) || !bytes.Equal(got.MAC, []byte{5}) {
		t.Errorf("after update: %+v", got)
	}
	if _, err := s.GetKeyVersion(ctx, "k1", "v9"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing version: %v", err)
	}
	pol := store.RotationPolicy{Name: "k1", JSON: []byte(`{"p":1}`), Created: t0, Updated: t0}
	if err := s.PutRotationPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	pols, _ := s.ListRotationPolicies(ctx)
	if len(pols) != 1 {
		t.Errorf("rotation policies: %d", len(pols))
	}

	// Soft delete, conflicts, recovery, purge.
	d, err := s.DeleteKey(ctx, "k1", t0.Add(2*time.Hour), t0.Add(72*time.Hour))
	if err != nil || d.Latest.Version != "v2" || !d.PurgeAt.Equal(t0.Add(72*time.Hour)) {
		t.Fatalf("delete: %+v %v", d, err)
	}
	if _, err := s.GetKeyVersion(ctx, "k1", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get of a deleted key: %v", err)
	}
	if err := s.CreateKeyVersion(ctx, kv("k1", "v3", t0), true); !errors.Is(err, store.ErrConflict) {
		t.Errorf("create over a deleted key: %v", err)
	}
	if _, err := s.DeleteKey(ctx, "k1", t0, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("double delete: %v", err)
	}
	if _, err := s.GetRotationPolicy(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rotation policy of a deleted key: %v", err)
	}
	if due, _ := s.PurgeDue(ctx, t0.Add(71*time.Hour)); len(due) != 0 {
		t.Errorf("purge due early: %v", due)
	}
	if due, _ := s.PurgeDue(ctx, t0.Add(73*time.Hour)); len(due) != 1 || due[0] != "k1" {
		t.Errorf("purge due: %v", due)
	}
	if err := s.RecoverKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetKeyVersion(ctx, "k1", ""); err != nil || got.Version != "v2" {
		t.Errorf("after recover: %v %v", got.Version, err)
	}
	if err := s.PurgeKey(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("purge of an active key: %v", err)
	}
	s.DeleteKey(ctx, "k1", t0, t0)
	if err := s.PurgeKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDeletedKey(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after purge: %v", err)
	}
	if err := s.CreateKeyVersion(ctx, kv("k1", "v9", t0), true); err != nil {
		t.Errorf("create after purge: %v", err)
	}

	// Restore: all versions, in order, and the policy; conflict on a taken name.
	vs := []store.KeyVersion{kv("r1", "a", t0), kv("r1", "b", t0.Add(time.Minute))}
	if err := s.RestoreKey(ctx, vs, &store.RotationPolicy{Name: "r1", JSON: []byte("{}"), Created: t0, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetKeyVersion(ctx, "r1", ""); got.Version != "b" {
		t.Errorf("restored latest %q", got.Version)
	}
	if err := s.RestoreKey(ctx, vs, nil); !errors.Is(err, store.ErrConflict) {
		t.Errorf("restore over an existing key: %v", err)
	}
}

func keyPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for i := range 30 {
		name := fmt.Sprintf("key-%02d", i)
		if err := s.CreateKeyVersion(ctx, kv(name, "v", t0), true); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		if err := s.CreateKeyVersion(ctx, kv("key-00", fmt.Sprintf("w%02d", i), t0.Add(time.Duration(i)*time.Second)), false); err != nil {
			t.Fatal(err)
		}
	}
	page, _ := s.ListKeys(ctx, "", 25)
	rest, _ := s.ListKeys(ctx, page[len(page)-1].Name, 25)
	if len(page) != 25 || len(rest) != 5 || rest[0].Name != "key-25" || page[0].Version != "w29" {
		t.Errorf("key pages: %d + %d, first latest %q", len(page), len(rest), page[0].Version)
	}
	vp, _ := s.ListKeyVersions(ctx, "key-00", "", 25)
	vr, _ := s.ListKeyVersions(ctx, "key-00", vp[len(vp)-1].Version, 25)
	if len(vp) != 25 || len(vr) != 6 || vp[0].Version != "v" || vr[5].Version != "w29" {
		t.Errorf("version pages: %d + %d", len(vp), len(vr))
	}
	s.DeleteKey(ctx, "key-03", t0, t0)
	if all, _ := s.ListKeys(ctx, "", 100); len(all) != 29 {
		t.Errorf("deleted key listed: %d", len(all))
	}
	if del, _ := s.ListDeletedKeys(ctx, "", 25); len(del) != 1 || del[0].Latest.Name != "key-03" {
		t.Errorf("deleted keys: %+v", del)
	}
	if _, err := s.ListKeyVersions(ctx, "key-03", "", 25); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("versions of a deleted key: %v", err)
	}
}

func principals(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	p := store.Principal{ID: "p1", Name: "app", SecretHash: []byte{1}, Created: t0, MAC: []byte("tag-1")}
	if err := s.CreatePrincipal(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePrincipal(ctx, store.Principal{ID: "p2", Name: "app", Created: t0}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate name: %v", err)
	}
	if err := s.CreatePrincipal(ctx, store.Principal{ID: "p3", Name: "ext", OIDCSubject: "iss|sub", Created: t0}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetPrincipalBySubject(ctx, "iss|sub"); err != nil || got.ID != "p3" {
		t.Errorf("by subject: %v %v", got, err)
	}
	if got, err := s.GetPrincipalByName(ctx, "app"); err != nil || got.ID != "p1" || !bytes.Equal(got.SecretHash, []byte{1}) || string(got.MAC) != "tag-1" {
		t.Errorf("by name: %v %v", got, err)
	}
	if err := s.SetPrincipalMAC(ctx, "p1", []byte("tag-2")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetPrincipal(ctx, "p1"); err != nil || string(got.MAC) != "tag-2" {
		t.Errorf("principal tag not replaced: %q %v", got.MAC, err)
	}
	if ps, err := s.ListPrincipals(ctx); err != nil || len(ps) != 2 || string(ps[0].MAC) != "tag-2" {
		t.Errorf("list does not carry the tag: %v %v", ps, err)
	}
	if err := s.SetPrincipalMAC(ctx, "nope", []byte("x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("tag of a missing principal: %v", err)
	}
	for range 2 {
		if err := s.AddRole(ctx, store.RoleAssignment{PrincipalID: "p1", Role: "crypto-user", Scope: "/"}); err != nil {
			t.Fatal(err)
		}
	}
	s.AddRole(ctx, store.RoleAssignment{PrincipalID: "p1", Role: "auditor", Scope: "/keys/k1"})
	if rs, _ := s.Roles(ctx, "p1"); len(rs) != 2 {
		t.Errorf("roles: %v", rs)
	}
	if err := s.AddRole(ctx, store.RoleAssignment{PrincipalID: "nope", Role: "auditor", Scope: "/"}); err == nil {
		t.Error("role for a missing principal")
	}
	if err := s.SetPrincipalSecret(ctx, "p1", []byte{2}); err != nil {
		t.Fatal(err)
	}
	tok := store.AccessToken{Hash: []byte{7, 7}, PrincipalID: "p1", Expires: t0.Add(time.Hour), MAC: []byte("tok-tag")}
	if err := s.PutAccessToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetAccessToken(ctx, []byte{7, 7}); err != nil || got.PrincipalID != "p1" || !got.Expires.Equal(tok.Expires) || string(got.MAC) != "tok-tag" {
		t.Errorf("token: %+v %v", got, err)
	}
	s.DeleteExpiredTokens(ctx, t0.Add(2*time.Hour))
	if _, err := s.GetAccessToken(ctx, []byte{7, 7}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired token kept: %v", err)
	}
	if err := s.DeletePrincipal(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if rs, _ := s.Roles(ctx, "p1"); len(rs) != 0 {
		t.Errorf("roles of a deleted principal: %v", rs)
	}
	if ps, _ := s.ListPrincipals(ctx); len(ps) != 1 {
		t.Errorf("principals: %v", ps)
	}
}

func nonces(t *testing.T, s store.Store) {
	ctx := context.Background()
	// The caller's clock, not the machine's, decides what has expired: a
	// clock far in the past (a test, an offline re-check) still sees its
	// records.
	now := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := now.Add(time.Hour)
	if err := s.UseNonce(ctx, "n1", now, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.UseNonce(ctx, "n1", now.Add(30*time.Minute), exp); !errors.Is(err, store.ErrConflict) {
		t.Errorf("reused nonce: %v", err)
	}
	if err := s.UseNonce(ctx, "n2", now, exp); err != nil {
		t.Errorf("another nonce: %v", err)
	}
	// An expired record is forgotten.
	if err := s.UseNonce(ctx, "old", now, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.UseNonce(ctx, "old", now, exp); err != nil {
		t.Errorf("nonce whose record expired: %v", err)
	}
	// n1 is forgotten once its expiry has passed.
	if err := s.UseNonce(ctx, "n1", exp.Add(time.Second), exp.Add(time.Hour)); err != nil {
		t.Errorf("nonce after its record expired: %v", err)
	}
}
