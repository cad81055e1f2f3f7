package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/sqlite"
)

// TestIdentityRowForgery edits the identity tables directly in SQLite, as
// whoever can write kura.db could, and checks that no edit is honoured: an
// inserted, moved or replayed access-token row, an edited secret hash, an
// inserted or replayed role row, an inserted principal. Each is refused and
// logged.
func TestIdentityRowForgery(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kura.db")
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	logs := &bytes.Buffer{}
	now := time.Now()
	s := New(st, testSealer(t), Config{Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(logs, nil))})
	adminID, adminSecret, err := s.CreatePrincipal(ctx, NewPrincipal{Name: "ops", Role: Administrator})
	if err != nil {
		t.Fatal(err)
	}
	userID, userSecret, err := s.CreatePrincipal(ctx, NewPrincipal{Name: "app", Role: Auditor})
	if err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: honoured", what)
			return
		}
		if !errors.Is(err, ErrUnauthenticated) && fault.Of(err) != fault.Unavailable {
			t.Errorf("%s: %v (want unauthenticated or unavailable)", what, err)
		}
		if !errors.Is(err, ErrTampered) && !strings.Contains(err.Error(), "integrity check") {
			t.Errorf("%s: refused, but not as tampering: %v", what, err)
		}
	}
	token := func(secret, id string) string {
		t.Helper()
		tok, _, err := s.ClientCredentials(ctx, id, secret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	admin := func(tok string) error {
		t.Helper()
		s.forgetTokens()
		p, err := s.Authenticate(ctx, tok)
		if err == nil && !p.Can(Admin, "") {
			return errors.New("authenticated without administrator rights")
		}
		return err
	}
	adminTok := token(adminSecret, adminID)
	if err := admin(adminTok); err != nil {
		t.Fatalf("a genuine administrator token: %v", err)
	}

	// 1. An access-token row inserted for the administrator: a bearer
	// token minted from the database.
	forged := tokenPrefix + "forged-by-editing-the-database"
	fh := sha256.Sum256([]byte(forged))
	exec(`INSERT INTO access_tokens (hash, principal_id, expires) VALUES (?, ?, ?)`, fh[:], adminID, now.Add(time.Hour).UnixNano())
	refused("inserted access token", admin(forged))
	// ... even carrying the tag of a genuine token.
	exec(`UPDATE access_tokens SET mac = (SELECT mac FROM access_tokens WHERE hash = ?) WHERE hash = ?`, sha256Of(adminTok), fh[:])
	refused("inserted access token with a copied tag", admin(forged))

	// 2. A user's token row moved to the administrator.
	userTok := token(userSecret, userID)
	exec(`UPDATE access_tokens SET principal_id = ? WHERE hash = ?`, adminID, sha256Of(userTok))
	refused("token moved to another principal", admin(userTok))

	// 3. A role row inserted: the auditor made administrator.
	exec(`INSERT INTO role_assignments (principal_id, role, scope) VALUES (?, ?, '/')`, userID, Administrator)
	userTok2 := userTok
	exec(`UPDATE access_tokens SET principal_id = ? WHERE hash = ?`, userID, sha256Of(userTok2))
	s.forgetTokens()
	_, err = s.Authenticate(ctx, userTok2)
	refused("inserted role", err)
	_, _, err = s.Principal(ctx, userID)
	refused("inserted role (management read)", err)
	if err := s.AddRole(ctx, store.RoleAssignment{PrincipalID: userID, Role: CryptoUser, Scope: "/"}); err == nil {
		t.Error("a role change blessed a forged role set")
	}
	exec(`DELETE FROM role_assignments WHERE principal_id = ? AND role = ?`, userID, Administrator)
	s.forgetTokens()
	if _, err := s.Authenticate(ctx, userTok2); err != nil {
		t.Fatalf("the genuine role set again: %v", err)
	}

	// 4. A revoked role replayed: the row put back after RemoveRole.
	role := store.RoleAssignment{PrincipalID: adminID, Role: CryptoOfficer, Scope: "/keys/k1"}
	if err := s.AddRole(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveRole(ctx, role); err != nil {
		t.Fatal(err)
	}
	exec(`INSERT INTO role_assignments (principal_id, role, scope) VALUES (?, ?, ?)`, role.PrincipalID, role.Role, role.Scope)
	refused("replayed role", admin(adminTok))
	exec(`DELETE FROM role_assignments WHERE principal_id = ? AND role = ?`, role.PrincipalID, role.Role)

	// 5. The administrator's secret hash replaced by the attacker's.
	mine := sha256.Sum256([]byte("kura_cs_attackers-secret"))
	var old []byte
	if err := db.QueryRow(`SELECT secret_hash FROM principals WHERE id = ?`, adminID).Scan(&old); err != nil {
		t.Fatal(err)
	}
	exec(`UPDATE principals SET secret_hash = ? WHERE id = ?`, mine[:], adminID)
	_, _, err = s.ClientCredentials(ctx, "ops", "kura_cs_attackers-secret")
	refused("edited secret hash", err)
	exec(`UPDATE principals SET secret_hash = ? WHERE id = ?`, old, adminID)

	// 6. A token row replayed after a secret reset revoked it.
	var row [3]any
	if err := db.QueryRow(`SELECT hash, expires, mac FROM access_tokens WHERE hash = ?`, sha256Of(adminTok)).Scan(&row[0], &row[1], &row[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResetSecret(ctx, adminID); err != nil {
		t.Fatal(err)
	}
	exec(`INSERT INTO access_tokens (hash, principal_id, expires, mac) VALUES (?, ?, ?, ?)`, row[0], adminID, row[1], row[2])
	refused("token replayed after a secret reset", admin(adminTok))

	// 7. A principal inserted with a secret the attacker knows.
	exec(`INSERT INTO principals (id, name, secret_hash, created) VALUES ('evil', 'evil', ?, ?)`, mine[:], now.UnixNano())
	exec(`INSERT INTO role_assignments (principal_id, role, scope) VALUES ('evil', ?, '/')`, Administrator)
	_, _, err = s.ClientCredentials(ctx, "evil", "kura_cs_attackers-secret")
	refused("inserted principal", err)

	if n := strings.Count(logs.String(), "fails its integrity check"); n < 8 {
		t.Errorf("%d integrity alerts logged, want one per refusal:\n%s", n, logs)
	}
	if strings.Contains(logs.String(), "attackers-secret") || strings.Contains(logs.String(), forged) {
		t.Error("a credential reached the log")
	}
}

// TestAdopt: principals without a tag (a database from before schema 3) are
// refused until an administrator adopts them; adopting is audited.
func TestAdopt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kura.db")
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(st, testSealer(t), Config{})
	id, secret, err := s.CreatePrincipal(ctx, NewPrincipal{Name: "legacy", Role: CryptoUser})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetPrincipalMAC(ctx, id, nil); err != nil { // as a schema-2 row
		t.Fatal(err)
	}
	if _, _, err := s.ClientCredentials(ctx, id, "kura_cs_wrong"); !errors.Is(err, ErrUnauthenticated) || strings.Contains(err.Error(), "integrity") {
		t.Errorf("a wrong secret for an untagged principal: %v (the row is not judged for a caller without the secret)", err)
	}
	if _, _, err := s.ClientCredentials(ctx, id, secret); err == nil || !strings.Contains(err.Error(), "no integrity tag") {
		t.Fatalf("untagged principal: %v", err)
	}
	if _, err := s.Adopt(ctx, nil); fault.Of(err) != fault.BadInput {
		t.Errorf("adopt without names: %v", err)
	}
	adopted, err := s.Adopt(ctx, []string{"legacy", "legacy"}) // a name given twice is adopted once
	if err != nil || len(adopted) != 1 || adopted[0].Name != "legacy" || len(adopted[0].Roles) != 1 || adopted[0].Roles[0].Role != CryptoUser {
		t.Fatalf("adopt: %+v %v", adopted, err)
	}
	if _, _, err := s.ClientCredentials(ctx, id, secret); err != nil {
		t.Fatalf("adopted principal: %v", err)
	}
	if _, err := s.Adopt(ctx, []string{"legacy"}); fault.Of(err) != fault.Conflict {
		t.Errorf("adopting a tagged principal: %v", err)
	}
	if _, err := s.Adopt(ctx, []string{"nobody"}); fault.Of(err) != fault.NotFound {
		t.Errorf("adopting an unknown name: %v", err)
	}
	recs, err := st.AuditRecords(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		if r.Action == "principal.adopt" && strings.Contains(string(r.Details), `"legacy":"crypto-user@/"`) {
			found = true
		}
	}
	if !found {
		t.Error("adopt was not audited")
	}
}

func sha256Of(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// TestRootDownIsNotTampering: with the root unable to answer, identity rows
// are not judged: 503 (Unavailable), no integrity alert.
func TestRootDownIsNotTampering(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &bytes.Buffer{}
	sl := testSealer(t)
	s := New(st, sl, Config{Log: slog.New(slog.NewTextHandler(logs, nil))})
	id, secret, err := s.CreatePrincipal(ctx, NewPrincipal{Name: "app", Role: Auditor})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.ClientCredentials(ctx, id, secret)
	if err != nil {
		t.Fatal(err)
	}
	sl.Forget()
	s.forgetTokens()
	if _, err := s.Authenticate(ctx, tok); fault.Of(err) != fault.Unavailable || errors.Is(err, ErrUnauthenticated) {
		t.Errorf("authenticate with the root down: %v", err)
	}
	if _, _, err := s.ClientCredentials(ctx, id, secret); fault.Of(err) != fault.Unavailable {
		t.Errorf("client credentials with the root down: %v", err)
	}
	if strings.Contains(logs.String(), "integrity check") {
		t.Errorf("a down root raised an integrity alert:\n%s", logs)
	}
}
