package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/oidc"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/sqlite"
)

func openStore(t *testing.T) *sqlite.Store {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestClientCredentialsAndRoles(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	now := time.Now()
	s := New(st, testSealer(t), Config{Now: func() time.Time { return now }, TokenTTL: time.Hour})
	id, secret, err := s.CreatePrincipal(ctx, NewPrincipal{Name: "app"})
	if err != nil || secret == "" {
		t.Fatal(err)
	}
	if _, _, err := s.CreatePrincipal(ctx, NewPrincipal{Name: "app"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate: %v", err)
	}
	for _, bad := range []string{"", "admin", "a b", "x/y"} {
		if _, _, err := s.CreatePrincipal(ctx, NewPrincipal{Name: bad}); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	if err := s.AddRole(ctx, store.RoleAssignment{PrincipalID: id, Role: CryptoUser, Scope: "/keys/k1"}); err != nil {
		t.Fatal(err)
	}
	for _, cid := range []string{id, "app"} {
		if _, _, err := s.ClientCredentials(ctx, cid, secret); err != nil {
			t.Errorf("client %q: %v", cid, err)
		}
	}
	if _, _, err := s.ClientCredentials(ctx, "app", secret+"x"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("wrong secret: %v", err)
	}
	if _, _, err := s.ClientCredentials(ctx, "nobody", secret); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("unknown client: %v", err)
	}
	tok, exp, err := s.ClientCredentials(ctx, id, secret)
	if err != nil || !exp.Equal(now.Add(time.Hour)) {
		t.Fatal(err)
	}
	p, err := s.Authenticate(ctx, tok)
	if err != nil || p.Name != "app" {
		t.Fatalf("authenticate: %v", err)
	}
	if !p.Can(KeysCrypto, "k1") || p.Can(KeysCrypto, "k2") || p.Can(KeysManage, "k1") || p.Can(KeysCrypto, "") {
		t.Errorf("scoped crypto-user permissions wrong")
	}
	if _, err := s.Authenticate(ctx, tok+"x"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("altered token: %v", err)
	}
	// Expired.
	now = now.Add(2 * time.Hour)
	if _, err := s.Authenticate(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired token: %v", err)
	}
	// The bootstrap admin token.
	h := sha256.Sum256([]byte("admin-secret-token"))
	a := New(st, testSealer(t), Config{AdminTokenHash: h})
	if p, err := a.Authenticate(ctx, "admin-secret-token"); err != nil || !p.Can(Admin, "") {
		t.Errorf("admin token: %v", err)
	}
	// Role table.
	for _, c := range []struct {
		role string
		perm Permission
		ok   bool
	}{
		{Administrator, Admin, true}, {CryptoOfficer, KeysManage, true}, {CryptoOfficer, KeysCrypto, false}, {CryptoUser, KeysCrypto, true},
		{CryptoUser, KeysManage, false}, {ReleaseUser, KeysRelease, true}, {ReleaseUser, KeysRead, false}, {Auditor, KeysRead, true}, {Auditor, KeysCrypto, false},
	} {
		p := &Principal{Roles: []store.RoleAssignment{{Role: c.role, Scope: "/"}}}
		if p.Can(c.perm, "k") != c.ok {
			t.Errorf("%s can %d: %v", c.role, c.perm, !c.ok)
		}
	}
}

// TestExternalOIDC: a JWT from a configured external issuer authenticates
// as the principal bound to its subject; audience and binding are enforced.
func TestExternalOIDC(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	set := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Use: "sig"}}}
	const iss = "https://idp.example/realms/kura"
	v := &oidc.Verifier{Sources: map[string]oidc.KeySource{iss: oidc.Static(func() *jose.JSONWebKeySet { return set })}}
	s := New(st, testSealer(t), Config{External: v, Audience: "kura"})
	id, secret, err := s.CreatePrincipal(ctx, NewPrincipal{Name: "keycloak-app", OIDCSubject: iss + "/|svc-123"})
	if err != nil || secret != "" {
		t.Fatalf("create bound principal: %v (secret %q)", err, secret)
	}
	if err := s.AddRole(ctx, store.RoleAssignment{PrincipalID: id, Role: Auditor, Scope: "/"}); err != nil {
		t.Fatal(err)
	}
	mint := func(claims map[string]any) string {
		sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		b, _ := json.Marshal(claims)
		j, _ := sg.Sign(b)
		out, _ := j.CompactSerialize()
		return out
	}
	exp := time.Now().Add(time.Hour).Unix()
	p, err := s.Authenticate(ctx, mint(map[string]any{"iss": iss, "sub": "svc-123", "aud": "kura", "exp": exp}))
	if err != nil || p.Name != "keycloak-app" || !p.Can(KeysRead, "x") {
		t.Fatalf("external token: %v", err)
	}
	for name, claims := range map[string]map[string]any{
		"wrong audience":  {"iss": iss, "sub": "svc-123", "aud": "other", "exp": exp},
		"unbound subject": {"iss": iss, "sub": "svc-999", "aud": "kura", "exp": exp},
		"no subject":      {"iss": iss, "aud": "kura", "exp": exp},
		"expired":         {"iss": iss, "sub": "svc-123", "aud": "kura", "exp": time.Now().Add(-time.Hour).Unix()},
		"other issuer":    {"iss": "https://other.example", "sub": "svc-123", "aud": "kura", "exp": exp},
	} {
		if _, err := s.Authenticate(ctx, mint(claims)); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestManagementAudited: every principal and role change through the
// Service leaves one audit record naming the actor; with the audit log down
// each fails as unavailable and changes nothing; a role in CreatePrincipal
// commits with the principal or not at all.
func TestManagementAudited(t *testing.T) {
	ctx := audit.WithActor(context.Background(), "ops")
	st := openStore(t)
	sl := testSealer(t)
	s := New(st, sl, Config{})
	id, _, err := s.CreatePrincipal(ctx, NewPrincipal{Name: "app", Role: CryptoUser, Scope: "/keys/k1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreatePrincipal(ctx, NewPrincipal{Name: "bad-role", Role: "nope"}); fault.Of(err) != fault.BadInput {
		t.Errorf("unknown role: %v", err)
	}
	if _, err := st.GetPrincipalByName(ctx, "bad-role"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a principal with a refused role was created: %v", err)
	}
	if _, _, err := s.Principal(ctx, "missing"); fault.Of(err) != fault.NotFound {
		t.Errorf("missing principal: %v", err)
	}
	recs := func() []store.AuditRecord {
		rs, err := st.AuditRecords(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	if rs := recs(); len(rs) != 1 || rs[0].Action != "principal.create" || rs[0].Actor != "ops" {
		t.Fatalf("records after create: %+v", rs)
	}
	role := store.RoleAssignment{PrincipalID: id, Role: CryptoOfficer, Scope: "/"}
	ops := []struct {
		name string
		do   func() error
	}{
		{"create", func() error { _, _, err := s.CreatePrincipal(ctx, NewPrincipal{Name: "other"}); return err }},
		{"add role", func() error { return s.AddRole(ctx, role) }},
		{"remove role", func() error {
			return s.RemoveRole(ctx, store.RoleAssignment{PrincipalID: id, Role: CryptoUser, Scope: "/keys/k1"})
		}},
		{"reset secret", func() error { _, err := s.ResetSecret(ctx, id); return err }},
		{"delete", func() error { return s.DeletePrincipal(ctx, id) }},
	}
	down := New(st, sl, Config{Audit: failingRecorder{}})
	for _, op := range ops {
		before, _ := st.ListPrincipals(ctx)
		roles, _ := st.Roles(ctx, id)
		saved := s
		s = down
		err := op.do()
		s = saved
		if fault.Of(err) != fault.Unavailable || !strings.Contains(err.Error(), "audit record could not be written") {
			t.Errorf("%s with the audit log down: %v", op.name, err)
		}
		after, _ := st.ListPrincipals(ctx)
		roles2, _ := st.Roles(ctx, id)
		if len(after) != len(before) || len(roles2) != len(roles) {
			t.Errorf("%s changed the store with the audit log down", op.name)
		}
	}
	for _, op := range ops {
		n := len(recs())
		if err := op.do(); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if rs := recs(); len(rs) != n+1 || rs[len(rs)-1].Actor != "ops" {
			t.Errorf("%s: %d records, want %d, actor named", op.name, len(rs), n+1)
		}
	}
}

// failingRecorder is an audit log that cannot be written.
type failingRecorder struct{}

func (failingRecorder) Record(context.Context, audit.Event, func(store.Store) error) (audit.Receipt, error) {
	return audit.Receipt{}, &audit.Error{Err: errors.New("audit log down")}
}

func testSealer(t *testing.T) *seal.Sealer {
	root, err := seal.OpenSoftwareRoot(filepath.Join(t.TempDir(), "root.sealed"), bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return seal.New(root)
}
