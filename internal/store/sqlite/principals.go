package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/store"
)

const principalsSchema = `
CREATE TABLE IF NOT EXISTS principals (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL UNIQUE,
	secret_hash  BLOB,
	oidc_subject TEXT UNIQUE,
	created      INTEGER NOT NULL,
	mac          BLOB
);
CREATE TABLE IF NOT EXISTS role_assignments (
	principal_id TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
	role         TEXT NOT NULL,
	scope        TEXT NOT NULL,
	PRIMARY KEY (principal_id, role, scope)
);
CREATE TABLE IF NOT EXISTS access_tokens (
	hash         BLOB PRIMARY KEY,
	principal_id TEXT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
	expires      INTEGER NOT NULL,
	mac          BLOB
);
`

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Store) CreatePrincipal(ctx context.Context, p store.Principal) error {
	_, err := s.exec(ctx, `INSERT INTO principals (id, name, secret_hash, oidc_subject, created, mac) VALUES (?, ?, ?, ?, ?, ?)`,
		p.ID, p.Name, p.SecretHash, nullString(p.OIDCSubject), unix(p.Created), p.MAC)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") || strings.Contains(err.Error(), "constraint") {
			return fmt.Errorf("principal %q: %w", p.Name, store.ErrConflict)
		}
		return fmt.Errorf("create principal: %w", err)
	}
	return nil
}

func (s *Store) getPrincipal(ctx context.Context, where string, arg any) (store.Principal, error) {
	var p store.Principal
	var sub sql.NullString
	var created int64
	err := s.q.QueryRowContext(ctx, `SELECT id, name, secret_hash, oidc_subject, created, mac FROM principals WHERE `+where+` = ?`, arg).
		Scan(&p.ID, &p.Name, &p.SecretHash, &sub, &created, &p.MAC)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("principal: %w", store.ErrNotFound)
	}
	p.OIDCSubject, p.Created = sub.String, fromUnix(created)
	return p, err
}

func (s *Store) GetPrincipal(ctx context.Context, id string) (store.Principal, error) {
	return s.getPrincipal(ctx, "id", id)
}

func (s *Store) GetPrincipalByName(ctx context.Context, name string) (store.Principal, error) {
	return s.getPrincipal(ctx, "name", name)
}

func (s *Store) GetPrincipalBySubject(ctx context.Context, subject string) (store.Principal, error) {
	return s.getPrincipal(ctx, "oidc_subject", subject)
}

func (s *Store) ListPrincipals(ctx context.Context) ([]store.Principal, error) {
	return queryAll(ctx, s.q, func(r scanner) (store.Principal, error) {
		var p store.Principal
		var sub sql.NullString
		var created int64
		err := r.Scan(&p.ID, &p.Name, &p.SecretHash, &sub, &created, &p.MAC)
		p.OIDCSubject, p.Created = sub.String, fromUnix(created)
		return p, err
	}, `SELECT id, name, secret_hash, oidc_subject, created, mac FROM principals ORDER BY name`)
}

func (s *Store) DeletePrincipal(ctx context.Context, id string) error {
	return s.tx(ctx, func(tx querier) error {
		for _, q := range []string{`DELETE FROM access_tokens WHERE principal_id = ?`, `DELETE FROM role_assignments WHERE principal_id = ?`} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM principals WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("principal %q: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// SetPrincipalSecret replaces the secret and revokes every access token
// issued with the old one, in one transaction.
func (s *Store) SetPrincipalSecret(ctx context.Context, id string, hash []byte) error {
	return s.tx(ctx, func(tx querier) error {
		res, err := tx.ExecContext(ctx, `UPDATE principals SET secret_hash = ? WHERE id = ?`, hash, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("principal %q: %w", id, store.ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE principal_id = ?`, id)
		return err
	})
}

func (s *Store) SetPrincipalMAC(ctx context.Context, id string, mac []byte) error {
	res, err := s.exec(ctx, `UPDATE principals SET mac = ? WHERE id = ?`, mac, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("principal %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) AddRole(ctx context.Context, a store.RoleAssignment) error {
	_, err := s.exec(ctx, `INSERT INTO role_assignments (principal_id, role, scope) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, a.PrincipalID, a.Role, a.Scope)
	if err != nil && strings.Contains(err.Error(), "FOREIGN KEY") {
		return fmt.Errorf("principal %q: %w", a.PrincipalID, store.ErrNotFound)
	}
	return err
}

func (s *Store) RemoveRole(ctx context.Context, a store.RoleAssignment) error {
	res, err := s.exec(ctx, `DELETE FROM role_assignments WHERE principal_id = ? AND role = ? AND scope = ?`, a.PrincipalID, a.Role, a.Scope)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("role assignment: %w", store.ErrNotFound)
	}
	return nil
}

func (s *Store) Roles(ctx context.Context, principalID string) ([]store.RoleAssignment, error) {
	return queryAll(ctx, s.q, func(r scanner) (a store.RoleAssignment, err error) {
		return a, r.Scan(&a.PrincipalID, &a.Role, &a.Scope)
	}, `SELECT principal_id, role, scope FROM role_assignments WHERE principal_id = ? ORDER BY role, scope`, principalID)
}

func (s *Store) PutAccessToken(ctx context.Context, t store.AccessToken) error {
	_, err := s.exec(ctx, `INSERT INTO access_tokens (hash, principal_id, expires, mac) VALUES (?, ?, ?, ?)`, t.Hash, t.PrincipalID, unix(t.Expires), t.MAC)
	return err
}

func (s *Store) GetAccessToken(ctx context.Context, hash []byte) (store.AccessToken, error) {
	var t store.AccessToken
	var exp int64
	err := s.q.QueryRowContext(ctx, `SELECT hash, principal_id, expires, mac FROM access_tokens WHERE hash = ?`, hash).Scan(&t.Hash, &t.PrincipalID, &exp, &t.MAC)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("access token: %w", store.ErrNotFound)
	}
	t.Expires = fromUnix(exp)
	return t, err
}

func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) error {
	_, err := s.exec(ctx, `DELETE FROM access_tokens WHERE expires < ?`, unix(now))
	return err
}
