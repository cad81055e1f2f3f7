package token

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
)

// memKeys is an in-memory KeyStore a test can tamper with. It is a whole
// store only for the audit log (WithTx, AppendAudit); anything else would
// panic on the nil embedded Store.
type memKeys struct {
	store.Store
	rows      []store.SigningKey
	audited   []store.AuditRecord
	auditDown bool
}

func (m *memKeys) WithTx(ctx context.Context, f func(tx store.Store) error) error {
	rows, audited := append([]store.SigningKey(nil), m.rows...), len(m.audited)
	if err := f(m); err != nil {
		m.rows, m.audited = rows, m.audited[:audited]
		return err
	}
	return nil
}

func (m *memKeys) AppendAudit(_ context.Context, r store.AuditRecord) (int64, error) {
	if m.auditDown {
		return 0, errors.New("audit log down")
	}
	m.audited = append(m.audited, r)
	return int64(len(m.audited)), nil
}

func (m *memKeys) PutSigningKey(_ context.Context, k store.SigningKey) error {
	m.rows = append(m.rows, k)
	return nil
}

func (m *memKeys) RetireSigningKey(_ context.Context, id string, at time.Time) error {
	for i := range m.rows {
		if m.rows[i].ID == id && m.rows[i].Retired.IsZero() {
			m.rows[i].Retired = at
			return nil
		}
	}
	return store.ErrNotFound
}

func (m *memKeys) SigningKeys(context.Context) ([]store.SigningKey, error) {
	return append([]store.SigningKey(nil), m.rows...), nil
}

func sealer(t *testing.T) *seal.Sealer {
	root, err := seal.OpenSoftwareRoot(t.TempDir()+"/root", bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return seal.New(root)
}

func TestStoredKeyTampering(t *testing.T) {
	ctx := context.Background()
	sl := sealer(t)
	cfg := Config{Issuer: "https://kura.test", Alg: ES256}
	st := &memKeys{}
	if _, err := Open(ctx, cfg, st, sl); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(st.rows[0].Sealed, []byte("PRIVATE")) {
		t.Fatal("sealed key looks like plaintext")
	}
	// An attacker's certificate swapped into the row.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	evil, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)

	for _, c := range []struct {
		name   string
		tamper func(r *store.SigningKey)
		want   string
	}{
		{"certificate swapped", func(r *store.SigningKey) { r.CertDER = evil }, "does not match the key id"},
		{"certificate and id swapped", func(r *store.SigningKey) { r.CertDER, r.ID = evil, b64sum(evil) }, "open signing key"},
		{"algorithm relabelled", func(r *store.SigningKey) { r.Alg = "ES384" }, "open signing key"},
		{"unknown algorithm", func(r *store.SigningKey) { r.Alg = "HS256" }, "not supported"},
		{"sealed key corrupted", func(r *store.SigningKey) { r.Sealed = append([]byte(nil), r.Sealed[:len(r.Sealed)-1]...) }, "open signing key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cp := &memKeys{rows: append([]store.SigningKey(nil), st.rows...)}
			c.tamper(&cp.rows[0])
			_, err := Open(ctx, cfg, cp, sl)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func b64sum(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestIssue(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, alg := range []Alg{RS256, ES256, ES384} {
		kr, err := Open(ctx, Config{Issuer: "https://kura.test", Alg: alg, Now: func() time.Time { return now }}, &memKeys{}, sealer(t))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := kr.Issue(map[string]any{"a": int64(1)})
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(tok, ".")
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var h, p map[string]any
		json.Unmarshal(hb, &h)
		json.Unmarshal(pb, &p)
		if h["alg"] != string(alg) || h["typ"] != "JWT" || h["jku"] != "https://kura.test/certs" || h["kid"] == "" {
			t.Errorf("%s header %v", alg, h)
		}
		if p["iat"].(float64) != float64(now.Unix()) || p["exp"].(float64)-p["iat"].(float64) != 28800 || len(p["jti"].(string)) != 64 {
			t.Errorf("%s claims %v", alg, p)
		}
		for _, r := range []string{"iss", "exp", "jti"} {
			if _, err := kr.Issue(map[string]any{r: 1}); err == nil {
				t.Errorf("%s: claim %q accepted from the caller", alg, r)
			}
		}
		pub := kr.Published()
		if len(pub) != 1 || pub[0].Alg != alg || pub[0].Cert == nil {
			t.Fatalf("%s published %+v", alg, pub)
		}
		if err := pub[0].Cert.CheckSignature(pub[0].Cert.SignatureAlgorithm, pub[0].Cert.RawTBSCertificate, pub[0].Cert.Signature); err != nil {
			t.Errorf("%s: the published certificate is not self-signed by the key: %v", alg, err)
		}
	}
}

func TestRotateRetiresEveryOtherKey(t *testing.T) {
	ctx := context.Background()
	st := &memKeys{}
	sl := sealer(t)
	cfg := Config{Issuer: "https://kura.test", Alg: ES256}
	a, _ := Open(ctx, cfg, st, sl)
	b, _ := Open(ctx, cfg, st, sl) // a second node on the same store
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, r := range st.rows {
		if r.Retired.IsZero() {
			active++
		}
	}
	if active != 1 {
		t.Fatalf("%d active keys after rotations on two nodes", active)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Alg() != ES256 || len(a.Published()) != len(b.Published()) {
		t.Errorf("after refresh node a publishes %d keys, node b %d", len(a.Published()), len(b.Published()))
	}
}

// TestNoActiveKeyKeepsSigning: a store in which every key is retired (two
// nodes rotating at once) does not leave the keyring without a key.
func TestNoActiveKeyKeepsSigning(t *testing.T) {
	ctx := context.Background()
	st := &memKeys{}
	kr, err := Open(ctx, Config{Issuer: "https://kura.test", Alg: ES256}, st, sealer(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.rows {
		st.RetireSigningKey(ctx, r.ID, time.Now())
	}
	if err := kr.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "no active") {
		t.Errorf("refresh with every key retired: %v", err)
	}
	if _, err := kr.Issue(map[string]any{"a": 1}); err != nil {
		t.Errorf("issue after the refused refresh: %v", err)
	}
	if _, err := kr.SignX5C([]byte("{}")); err != nil {
		t.Errorf("SignX5C after the refused refresh: %v", err)
	}
}

// TestEncodeClaimsMatchesJSON: the fast claim encoder writes exactly what
// json.Marshal writes, for every kind of value a token carries.
func TestEncodeClaimsMatchesJSON(t *testing.T) {
	claims := map[string]any{
		"s": "abc", "hex": "00ff", "html": "<a&b>", "quote": `a"b\c`, "ctrl": "a\nb", "utf8": "日本", "bad": "\xff",
		"i": int64(-5), "n": 7, "t": true, "f": false, "nested": map[string]any{"keys": []any{map[string]any{"kid": "k"}}},
		"num": json.Number("12"), "float": 1.5, "nil": nil, "arr": []any{"a", int64(1)},
	}
	got, err := encodeClaims(claims)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(claims)
	if string(got) != string(want) {
		t.Errorf("encodeClaims\n got %s\nwant %s", got, want)
	}
	if _, err := encodeClaims(map[string]any{"c": make(chan int)}); err == nil {
		t.Error("unencodable claim accepted")
	}
}

// TestRotationAudited: every new signing key leaves one audit record; with
// the audit log down a rotation fails and leaves the keys as they were.
func TestRotationAudited(t *testing.T) {
	ctx := context.Background()
	st := &memKeys{}
	kr, err := Open(ctx, Config{Issuer: "https://kura.test", Alg: ES256}, st, sealer(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.audited) != 1 || st.audited[0].Action != "token-key.rotate" {
		t.Fatalf("first key: audit records %+v", st.audited)
	}
	st.auditDown = true
	before := len(st.rows)
	if err := kr.Rotate(ctx); err == nil || !strings.Contains(err.Error(), "audit record could not be written") {
		t.Fatalf("rotate with the audit log down: %v", err)
	}
	if len(st.rows) != before || len(kr.Published()) != 1 {
		t.Errorf("a failed rotation changed the keys: %d rows, %d published", len(st.rows), len(kr.Published()))
	}
	st.auditDown = false
	if err := kr.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if len(st.audited) != 2 || st.audited[1].Details == nil {
		t.Errorf("rotation: audit records %+v", st.audited)
	}
}

// TestCertify: with a Certifier, the published x5c and a release answer's
// x5c are the issued chain; a reload keeps it; a leaf near its end is
// issued anew; a certificate that does not hold the key is refused.
func TestCertify(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	issued := 0
	var wrongKey bool
	certify := func(pub crypto.PublicKey, at time.Time) ([]*x509.Certificate, error) {
		issued++
		if wrongKey {
			pub = &caKey.PublicKey
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(issued + 1)), DNSNames: []string{"vault.test"},
			NotBefore: at.Add(-time.Hour), NotAfter: at.Add(30 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
		if err != nil {
			return nil, err
		}
		leaf, err := x509.ParseCertificate(der)
		return []*x509.Certificate{leaf, ca}, err
	}
	clock := now
	st := &memKeys{}
	k, err := Open(context.Background(), Config{Purpose: "release", Issuer: "https://vault.test", Alg: ES256,
		Now: func() time.Time { return clock }, Certify: certify}, st, sealer(t))
	if err != nil {
		t.Fatal(err)
	}
	x5c := func() []string {
		jws, err := k.SignX5C([]byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			X5C []string `json:"x5c"`
		}
		b, _ := base64.RawURLEncoding.DecodeString(strings.Split(jws, ".")[0])
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatal(err)
		}
		return h.X5C
	}
	first := x5c()
	if len(first) != 2 || first[1] != base64.StdEncoding.EncodeToString(ca.Raw) {
		t.Fatalf("x5c is not leaf + CA: %d certificates", len(first))
	}
	pub := k.Published()
	if len(pub) != 1 || len(pub[0].Chain) != 2 || base64.StdEncoding.EncodeToString(pub[0].Cert.Raw) != first[0] {
		t.Fatal("the published certificate is not the one in x5c")
	}
	leaf := pub[0].Cert
	if err := leaf.VerifyHostname("vault.test"); err != nil {
		t.Error(err)
	}
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := x5c(); got[0] != first[0] || issued != 1 {
		t.Errorf("a reload issued a new certificate (%d issued)", issued)
	}
	clock = now.Add(25 * 24 * time.Hour) // within reissueBefore of the leaf's end
	if got := x5c(); got[0] == first[0] || issued != 2 {
		t.Errorf("a leaf near its end was not issued anew (%d issued)", issued)
	}
	wrongKey = true
	if err := k.Rotate(context.Background()); err == nil || !strings.Contains(err.Error(), "does not hold the signing key") {
		t.Errorf("a certificate for another key: %v", err)
	}
}
