package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kura-project/kura/internal/store"
)

const keysSchema = `
CREATE TABLE IF NOT EXISTS keys (
	name        TEXT PRIMARY KEY,
	latest      TEXT NOT NULL,
	created     INTEGER NOT NULL,
	deleted_at  INTEGER NOT NULL DEFAULT 0,
	purge_at    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS keys_purge ON keys (purge_at) WHERE deleted_at != 0;
CREATE TABLE IF NOT EXISTS key_versions (
	name        TEXT NOT NULL REFERENCES keys(name) ON DELETE CASCADE,
	version     TEXT NOT NULL,
	seq         INTEGER NOT NULL,
	kty         TEXT NOT NULL,
	key_ops     TEXT,
	enabled     INTEGER NOT NULL,
	nbf         INTEGER NOT NULL,
	exp         INTEGER NOT NULL,
	exportable  INTEGER NOT NULL,
	created     INTEGER NOT NULL,
	updated     INTEGER NOT NULL,
	tags        TEXT,
	release     BLOB,
	public_jwk  BLOB NOT NULL,
	sealed      BLOB NOT NULL,
	mac         BLOB NOT NULL,
	PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS key_versions_seq ON key_versions (name, seq);
CREATE TABLE IF NOT EXISTS rotation_policies (
	name     TEXT PRIMARY KEY REFERENCES keys(name) ON DELETE CASCADE,
	doc      BLOB NOT NULL,
	created  INTEGER NOT NULL,
	updated  INTEGER NOT NULL
);
`

const versionCols = `v.name, v.version, v.kty, v.key_ops, v.enabled, v.nbf, v.exp, v.exportable, v.created, v.updated, v.tags, v.release, v.public_jwk, v.sealed, v.mac`

type scanner interface{ Scan(dest ...any) error }

func scanVersion(r scanner, extra ...any) (store.KeyVersion, error) {
	var v store.KeyVersion
	var ops, tags sql.NullString
	var enabled, exportable int
	var nbf, exp, created, updated int64
	dest := append([]any{&v.Name, &v.Version, &v.Kty, &ops, &enabled, &nbf, &exp, &exportable, &created, &updated, &tags, &v.ReleasePolicy, &v.PublicJWK, &v.Sealed, &v.MAC}, extra...)
	if err := r.Scan(dest...); err != nil {
		return v, err
	}
	v.Enabled, v.Exportable = enabled != 0, exportable != 0
	v.NotBefore, v.Expires, v.Created, v.Updated = fromUnix(nbf), fromUnix(exp), fromUnix(created), fromUnix(updated)
	if ops.Valid {
		if err := json.Unmarshal([]byte(ops.String), &v.KeyOps); err != nil {
			return v, fmt.Errorf("key_ops of %s/%s: %w", v.Name, v.Version, err)
		}
	}
	if tags.Valid {
		if err := json.Unmarshal([]byte(tags.String), &v.Tags); err != nil {
			return v, fmt.Errorf("tags of %s/%s: %w", v.Name, v.Version, err)
		}
	}
	return v, nil
}

func jsonOrNull(v any, isNil bool) (any, error) {
	if isNil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Store) insertVersion(ctx context.Context, tx querier, v store.KeyVersion) error {
	ops, err := jsonOrNull(v.KeyOps, v.KeyOps == nil)
	if err != nil {
		return err
	}
	tags, err := jsonOrNull(v.Tags, v.Tags == nil)
	if err != nil {
		return err
	}
	mac := v.MAC
	if mac == nil {
		mac = []byte{}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO key_versions (name, version, seq, kty, key_ops, enabled, nbf, exp, exportable, created, updated, tags, release, public_jwk, sealed, mac)
		VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM key_versions WHERE name = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		v.Name, v.Version, v.Name, v.Kty, ops, b2i(v.Enabled), unix(v.NotBefore), unix(v.Expires), b2i(v.Exportable),
		unix(v.Created), unix(v.Updated), tags, v.ReleasePolicy, v.PublicJWK, v.Sealed, mac)
	if err != nil {
		return fmt.Errorf("insert key version %s/%s: %w", v.Name, v.Version, err)
	}
	return nil
}

func (s *Store) CreateKeyVersion(ctx context.Context, v store.KeyVersion, newKey bool) error {
	return s.tx(ctx, func(tx querier) error {
		var deleted int64
		err := tx.QueryRowContext(ctx, `SELECT deleted_at FROM keys WHERE name = ?`, v.Name).Scan(&deleted)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if !newKey {
				return fmt.Errorf("key %q: %w", v.Name, store.ErrNotFound)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO keys (name, latest, created) VALUES (?, ?, ?)`, v.Name, v.Version, unix(v.Created)); err != nil {
				return err
			}
		case err != nil:
			return err
		case deleted != 0:
			if newKey {
				return fmt.Errorf("key %q is deleted but recoverable: %w", v.Name, store.ErrConflict)
			}
			return fmt.Errorf("key %q: %w", v.Name, store.ErrNotFound)
		default:
			// Create on an existing name adds a version, as Key Vault does.
			if _, err := tx.ExecContext(ctx, `UPDATE keys SET latest = ? WHERE name = ?`, v.Version, v.Name); err != nil {
				return err
			}
		}
		return s.insertVersion(ctx, tx, v)
	})
}

func (s *Store) GetKeyVersion(ctx context.Context, name, version string) (store.KeyVersion, error) {
	q := `SELECT ` + versionCols + ` FROM key_versions v JOIN keys k ON k.name = v.name WHERE v.name = ? AND k.deleted_at = 0 AND v.version = `
	args := []any{name}
	if version == "" {
		q += `k.latest`
	} else {
		q += `?`
		args = append(args, version)
	}
	v, err := scanVersion(s.q.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("key %s/%s: %w", name, version, store.ErrNotFound)
	}
	return v, err
}

func (s *Store) UpdateKeyVersion(ctx context.Context, v store.KeyVersion, prevUpdated time.Time) error {
	ops, err := jsonOrNull(v.KeyOps, v.KeyOps == nil)
	if err != nil {
		return err
	}
	tags, err := jsonOrNull(v.Tags, v.Tags == nil)
	if err != nil {
		return err
	}
	res, err := s.exec(ctx, `UPDATE key_versions SET key_ops = ?, enabled = ?, nbf = ?, exp = ?, exportable = ?, updated = ?, tags = ?, release = ?, mac = ?
		WHERE name = ? AND version = ? AND updated = ? AND name IN (SELECT name FROM keys WHERE deleted_at = 0)`,
		ops, b2i(v.Enabled), unix(v.NotBefore), unix(v.Expires), b2i(v.Exportable), unix(v.Updated), tags, v.ReleasePolicy, v.MAC,
		v.Name, v.Version, unix(prevUpdated))
	if err != nil {
		return fmt.Errorf("update key version: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.GetKeyVersion(ctx, v.Name, v.Version); err == nil {
			return fmt.Errorf("key %s/%s changed meanwhile: %w", v.Name, v.Version, store.ErrConflict)
		}
		return fmt.Errorf("key %s/%s: %w", v.Name, v.Version, store.ErrNotFound)
	}
	return nil
}

func (s *Store) queryVersions(ctx context.Context, q string, args ...any) ([]store.KeyVersion, error) {
	return queryAll(ctx, s.q, func(r scanner) (store.KeyVersion, error) { return scanVersion(r) }, q, args...)
}

func (s *Store) ListKeys(ctx context.Context, after string, limit int) ([]store.KeyVersion, error) {
	return s.queryVersions(ctx, `SELECT `+versionCols+` FROM keys k JOIN key_versions v ON v.name = k.name AND v.version = k.latest
		WHERE k.deleted_at = 0 AND k.name > ? ORDER BY k.name LIMIT ?`, after, limit)
}

func (s *Store) ListKeyVersions(ctx context.Context, name, after string, limit int) ([]store.KeyVersion, error) {
	var exists int
	if err := s.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM keys WHERE name = ? AND deleted_at = 0`, name).Scan(&exists); err != nil {
		return nil, err
	}
	if exists == 0 {
		return nil, fmt.Errorf("key %q: %w", name, store.ErrNotFound)
	}
	return s.queryVersions(ctx, `SELECT `+versionCols+` FROM key_versions v WHERE v.name = ?
		AND v.seq > COALESCE((SELECT seq FROM key_versions WHERE name = ? AND version = ?), 0) ORDER BY v.seq LIMIT ?`, name, name, after, limit)
}

func (s *Store) DeleteKey(ctx context.Context, name string, at, purgeAt time.Time) (store.DeletedKey, error) {
	res, err := s.exec(ctx, `UPDATE keys SET deleted_at = ?, purge_at = ? WHERE name = ? AND deleted_at = 0`, unix(at), unix(purgeAt), name)
	if err != nil {
		return store.DeletedKey{}, fmt.Errorf("delete key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.DeletedKey{}, fmt.Errorf("key %q: %w", name, store.ErrNotFound)
	}
	return s.GetDeletedKey(ctx, name)
}

const deletedQuery = `SELECT ` + versionCols + `, k.deleted_at, k.purge_at FROM keys k JOIN key_versions v ON v.name = k.name AND v.version = k.latest WHERE k.deleted_at != 0`

func scanDeleted(r scanner) (store.DeletedKey, error) {
	var d store.DeletedKey
	var at, purge int64
	v, err := scanVersion(r, &at, &purge)
	if err != nil {
		return d, err
	}
	d.Latest, d.DeletedAt, d.PurgeAt = v, fromUnix(at), fromUnix(purge)
	return d, nil
}

func (s *Store) GetDeletedKey(ctx context.Context, name string) (store.DeletedKey, error) {
	d, err := scanDeleted(s.q.QueryRowContext(ctx, deletedQuery+` AND k.name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("deleted key %q: %w", name, store.ErrNotFound)
	}
	return d, err
}

func (s *Store) ListDeletedKeys(ctx context.Context, after string, limit int) ([]store.DeletedKey, error) {
	return queryAll(ctx, s.q, scanDeleted, deletedQuery+` AND k.name > ? ORDER BY k.name LIMIT ?`, after, limit)
}

func (s *Store) RecoverKey(ctx context.Context, name string) error {
	res, err := s.exec(ctx, `UPDATE keys SET deleted_at = 0, purge_at = 0 WHERE name = ? AND deleted_at != 0`, name)
	if err != nil {
		return fmt.Errorf("recover key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("deleted key %q: %w", name, store.ErrNotFound)
	}
	return nil
}

func (s *Store) PurgeKey(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx querier) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM keys WHERE name = ? AND deleted_at != 0`, name)
		if err != nil {
			return fmt.Errorf("purge key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("deleted key %q: %w", name, store.ErrNotFound)
		}
		// Foreign keys cascade; delete explicitly too so no sealed blob
		// outlives its key if a connection runs without foreign keys.
		if _, err := tx.ExecContext(ctx, `DELETE FROM key_versions WHERE name = ?`, name); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM rotation_policies WHERE name = ?`, name)
		return err
	})
}

func (s *Store) PurgeDue(ctx context.Context, now time.Time) ([]string, error) {
	return queryAll(ctx, s.q, func(r scanner) (n string, err error) { return n, r.Scan(&n) },
		`SELECT name FROM keys WHERE deleted_at != 0 AND purge_at <= ? ORDER BY name`, unix(now))
}

func scanRotationPolicy(r scanner) (store.RotationPolicy, error) {
	var p store.RotationPolicy
	var created, updated int64
	err := r.Scan(&p.Name, &p.JSON, &created, &updated)
	p.Created, p.Updated = fromUnix(created), fromUnix(updated)
	return p, err
}

func (s *Store) GetRotationPolicy(ctx context.Context, name string) (store.RotationPolicy, error) {
	p, err := scanRotationPolicy(s.q.QueryRowContext(ctx, `SELECT r.name, r.doc, r.created, r.updated FROM rotation_policies r JOIN keys k ON k.name = r.name WHERE r.name = ? AND k.deleted_at = 0`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("rotation policy %q: %w", name, store.ErrNotFound)
	}
	return p, err
}

func (s *Store) PutRotationPolicy(ctx context.Context, p store.RotationPolicy) error {
	_, err := s.exec(ctx, `INSERT INTO rotation_policies (name, doc, created, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, updated = excluded.updated`, p.Name, p.JSON, unix(p.Created), unix(p.Updated))
	if err != nil {
		return fmt.Errorf("store rotation policy: %w", err)
	}
	return nil
}

func (s *Store) ListRotationPolicies(ctx context.Context) ([]store.RotationPolicy, error) {
	return queryAll(ctx, s.q, scanRotationPolicy,
		`SELECT r.name, r.doc, r.created, r.updated FROM rotation_policies r JOIN keys k ON k.name = r.name WHERE k.deleted_at = 0 ORDER BY r.name`)
}

func (s *Store) RestoreKey(ctx context.Context, versions []store.KeyVersion, policy *store.RotationPolicy) error {
	if len(versions) == 0 {
		return errors.New("restore: no versions")
	}
	name := versions[0].Name
	return s.tx(ctx, func(tx querier) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM keys WHERE name = ?`, name).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("key %q already exists: %w", name, store.ErrConflict)
		}
		latest := versions[len(versions)-1]
		if _, err := tx.ExecContext(ctx, `INSERT INTO keys (name, latest, created) VALUES (?, ?, ?)`, name, latest.Version, unix(versions[0].Created)); err != nil {
			return err
		}
		for _, v := range versions {
			if v.Name != name {
				return errors.New("restore: versions of different keys")
			}
			if err := s.insertVersion(ctx, tx, v); err != nil {
				return err
			}
		}
		if policy != nil {
			if _, err := tx.ExecContext(ctx, `INSERT INTO rotation_policies (name, doc, created, updated) VALUES (?, ?, ?, ?)`,
				name, policy.JSON, unix(policy.Created), unix(policy.Updated)); err != nil {
				return err
			}
		}
		return nil
	})
}
