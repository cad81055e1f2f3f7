package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest/sim"
	"github.com/kura-project/kura/internal/certtest"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/keys"
	"github.com/kura-project/kura/internal/keys/keyops"
)

// TestAuditFailsClosed: when the audit record cannot be written, every
// audited key operation fails as unavailable and changes nothing; once
// records can be written again, each operation leaves exactly one record.
func TestAuditFailsClosed(t *testing.T) {
	// An isolated instance, so that policy management certificates can
	// change too.
	signerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signerCert := certtest.SelfSigned(t, signerKey, "policy management")
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherCert := certtest.SelfSigned(t, otherKey, "another policy management")
	thirdCert := certtest.SelfSigned(t, otherKey, "a third policy management")
	signers := filepath.Join(t.TempDir(), "signers.pem")
	if err := os.WriteFile(signers, pemOf(signerCert.Raw), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, time.Now(), issuerOpt, func(c *config.Config) { c.PolicySigners = []string{signers} })
	ctx := context.Background()
	policy := releasePolicy(kuraIssuer+"/", nil, cond("x-ms-attestation-type", "equals", "sevsnpvm"))
	r.importKey(t, "kept", true, policy)
	m := r.srv.Keys()
	if _, err := m.Create(ctx, "gone", keys.CreateParams{Kty: "EC"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, "gone2", keys.CreateParams{Kty: "EC"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Delete(ctx, "gone2"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, "bk", keys.CreateParams{Kty: "EC"}); err != nil {
		t.Fatal(err)
	}
	backup, err := m.Backup(ctx, "bk")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Delete(ctx, "bk"); err != nil {
		t.Fatal(err)
	}
	if err := m.Purge(ctx, "bk"); err != nil {
		t.Fatal(err)
	}
	g := newTEE(t)
	tok := g.token(t, r, "n-1", sim.Options{}, nil)
	code, body, _ := r.do("POST", "/kura/v1/principals", []byte(`{"name":"audited","role":"crypto-user"}`), "Authorization", "Bearer "+r.admin)
	if code != 201 {
		t.Fatalf("create principal: %d %s", code, body)
	}
	if err := r.httpOp("POST", "/certificates:add?api-version=2020-10-01", certificateChange(t, signerKey, signerCert, thirdCert))(); err != nil {
		t.Fatal(err) // the one the remove below removes
	}
	var created struct{ ID string }
	json.Unmarshal(body, &created)
	pid := created.ID

	db, err := sql.Open("sqlite", filepath.Join(r.dir, "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	records := func() int {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM audit_log`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	state := func() string {
		var b strings.Builder
		rows, err := db.Query(`SELECT name, version, enabled, updated FROM key_versions ORDER BY name, version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var n, v string
			var e, u int64
			rows.Scan(&n, &v, &e, &u)
			b.WriteString(n + "/" + v + "/" + string(rune('0'+e)) + "/" + time.Unix(0, u).String() + ";")
		}
		var dn int
		db.QueryRow(`SELECT COUNT(*) FROM keys WHERE deleted_at != 0`).Scan(&dn)
		var rp int
		db.QueryRow(`SELECT COUNT(*) FROM rotation_policies`).Scan(&rp)
		b.WriteString(strings.Repeat("d", dn) + strings.Repeat("r", rp))
		// What the other audited operations change: policies, signing
		// keys, principals and their roles and secrets.
		for _, q := range []string{
			`SELECT COUNT(*) || ':' || COALESCE(MAX(updated), 0) FROM policies`,
			`SELECT COUNT(*) || ':' || COALESCE(SUM(retired != 0), 0) FROM signing_keys`,
			`SELECT COUNT(*) || ':' || COALESCE(GROUP_CONCAT(hex(secret_hash)), '') FROM principals`,
			`SELECT COUNT(*) || ':' || COALESCE(GROUP_CONCAT(role || scope), '') FROM role_assignments`,
		} {
			var v string
			if err := db.QueryRow(q).Scan(&v); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			b.WriteString(";" + v)
		}
		return b.String()
	}
	enabled := false
	ops := []struct {
		name string
		do   func() error
	}{
		{"create", func() error { _, err := m.Create(ctx, "new", keys.CreateParams{Kty: "EC"}); return err }},
		{"import", func() error {
			_, err := m.Import(ctx, "imp", keys.ImportParams{JWK: keyops.JWK{Kty: "oct", K: make([]byte, 32)}})
			return err
		}},
		{"update", func() error {
			_, err := m.Update(ctx, "kept", "", keys.UpdateParams{Attributes: keys.Attributes{Enabled: &enabled}})
			return err
		}},
		{"rotate", func() error { _, err := m.Rotate(ctx, "kept"); return err }},
		{"rotation policy", func() error {
			_, err := m.SetRotationPolicy(ctx, "kept", keys.RotationPolicy{ExpiryTime: "P90D"})
			return err
		}},
		{"delete", func() error { _, err := m.Delete(ctx, "kept"); return err }},
		{"recover", func() error { _, err := m.Recover(ctx, "gone"); return err }},
		{"purge", func() error { return m.Purge(ctx, "gone2") }},
		{"restore", func() error { _, err := m.Restore(ctx, backup); return err }},
		// The operations served over HTTP, which fail as 503.
		{"policy set", r.httpOp("PUT", "/policies/SevSnpVm?api-version=2022-08-01", signedPolicy(t, `version=1.0; authorizationrules{=> permit();}; issuancerules{};`, signerKey, signerCert, "ES256"))},
		{"policy reset", r.httpOp("POST", "/policies/SevSnpVm:reset?api-version=2022-08-01", certtest.CompactX5C(t, "ES256", signerKey, signerCert, nil))},
		{"policy certificate add", r.httpOp("POST", "/certificates:add?api-version=2020-10-01", certificateChange(t, signerKey, signerCert, otherCert))},
		{"policy certificate remove", r.httpOp("POST", "/certificates:remove?api-version=2020-10-01", certificateChange(t, signerKey, signerCert, thirdCert))},
		{"token-key rotation", r.httpOp("POST", "/kura/v1/token-keys:rotate", "")},
		{"principal create", r.httpOp("POST", "/kura/v1/principals", `{"name":"second","role":"crypto-user"}`)},
		{"role add", r.httpOp("POST", "/kura/v1/principals/"+pid+"/roles", `{"role":"crypto-officer"}`)},
		{"role remove", r.httpOp("DELETE", "/kura/v1/principals/"+pid+"/roles", `{"role":"crypto-user"}`)},
		{"secret reset", r.httpOp("POST", "/kura/v1/principals/"+pid+"/secret", "")},
		{"principal delete", r.httpOp("DELETE", "/kura/v1/principals/"+pid, "")},
	}

	if _, err := db.Exec(`CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END`); err != nil {
		t.Fatal(err)
	}
	before, n0 := state(), records()
	for _, op := range ops {
		err := op.do()
		if err == nil || !strings.Contains(err.Error(), "audit record could not be written") {
			t.Errorf("%s with the audit log down: %v, want an audit failure", op.name, err)
		} else if k := fault.Of(err); k != fault.Unavailable && !strings.Contains(err.Error(), ": 503 ") {
			t.Errorf("%s: %v is not Unavailable", op.name, err)
		}
		if got := state(); got != before {
			t.Errorf("%s changed the store with the audit log down:\n%s\n%s", op.name, before, got)
		}
	}
	if code, resp := r.release(t, "kept", tok, "n-1", ""); code != 503 || strings.Contains(string(resp), "key_hsm") {
		t.Errorf("release with the audit log down: %d %.200s, want 503", code, resp)
	}
	if records() != n0 {
		t.Errorf("records written with the audit log down")
	}

	if _, err := db.Exec(`DROP TRIGGER audit_down`); err != nil {
		t.Fatal(err)
	}
	if code, resp := r.release(t, "kept", tok, "n-1", ""); code != 200 {
		t.Fatalf("release: %d %.300s", code, resp)
	}
	var action, object, actor string
	db.QueryRow(`SELECT action, object, actor FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&action, &object, &actor)
	if action != "key.release" || !strings.HasPrefix(object, "keys/kept/") || actor == "" {
		t.Errorf("last record %s %s by %q, want the release by its principal", action, object, actor)
	}
	for _, op := range ops {
		n := records()
		if err := op.do(); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if records() != n+1 {
			t.Errorf("%s left %d records, want 1", op.name, records()-n)
		}
	}
}

// httpOp is an audited operation over HTTP as the administrator: nil on
// 2xx, an error naming the status otherwise (503 carries the audit
// failure's message).
func (r *rig) httpOp(method, path, body string) func() error {
	return func() error {
		code, resp, _ := r.do(method, path, []byte(body), "Authorization", "Bearer "+r.admin)
		if code/100 == 2 {
			return nil
		}
		// The 503 must itself say why: the caller checks for the audit
		// failure in the answer's message.
		return fmt.Errorf("%s %s: %d %s", method, path, code, resp)
	}
}

// certificateChange is a /certificates:add or :remove body as the
// 2020-10-01 clients send it: a JSON string holding the JWS, signed by
// key and cert, whose body names target.
func certificateChange(t *testing.T, key crypto.Signer, cert, target *x509.Certificate) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"policyCertificate": map[string]any{"kty": "EC", "x5c": []string{base64.StdEncoding.EncodeToString(target.Raw)}}})
	b, _ := json.Marshal(certtest.CompactX5C(t, "ES256", key, cert, body))
	return string(b)
}
