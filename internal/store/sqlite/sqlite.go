// Package sqlite is kura's embedded storage engine: SQLite through the
// pure-Go modernc.org/sqlite driver, in WAL mode, so `kura serve` needs
// nothing else on the machine.
package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kura-project/kura/internal/store"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Store is a SQLite-backed store.Store. Its methods run their statements
// on q: the database, or in a WithTx view the open transaction.
type Store struct {
	db   *sql.DB
	q    querier
	inTx *sql.Tx    // the view's transaction; nil outside WithTx
	vs   *viewState // the view's guard (groupcommit.go)
	path string
	// writes queues this process's writers. SQLite admits one writer at
	// a time and makes the others wait in its busy handler, which sleeps
	// in steps of milliseconds; queueing in Go instead hands the lock on
	// at once. Writers in other processes still wait out busy_timeout.
	writes writeQueue
	group  *groupCommit // shared by a store and its views
	obs    Observer     // nil: not observed
}

// Observer is told the duration and outcome of each statement ("read",
// "write") and each commit ("commit"): for metrics, bounded labels only.
type Observer func(op string, d time.Duration, err error)

// Observe reports every later statement and commit of s to f. Call it
// before s is shared.
func (s *Store) Observe(f func(op string, d time.Duration, err error)) {
	s.obs = f
	s.q = s.observed(s.db)
}

func (s *Store) observed(q querier) querier {
	if s.obs == nil {
		return q
	}
	return observedQuerier{q: q, f: s.obs}
}

// observedQuerier times the statements of q.
type observedQuerier struct {
	q querier
	f Observer
}

func (o observedQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	t := time.Now()
	r, err := o.q.ExecContext(ctx, query, args...)
	o.f("write", time.Since(t), err)
	return r, err
}

func (o observedQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	t := time.Now()
	r, err := o.q.QueryContext(ctx, query, args...)
	o.f("read", time.Since(t), err)
	return r, err
}

func (o observedQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	t := time.Now()
	r := o.q.QueryRowContext(ctx, query, args...)
	o.f("read", time.Since(t), r.Err())
	return r
}

// writeQueue admits one writer of this process at a time. A writer that
// waits longer than busy_timeout fails as SQLite's own wait would, rather
// than hang (a change that wrote through the store instead of its view
// would otherwise wait for itself).
type writeQueue chan struct{}

// busyTimeout is how long a writer waits for another, in this process (the
// queue) and across processes (SQLite's busy_timeout).
var busyTimeout = 5 * time.Second

func (q writeQueue) lock(ctx context.Context) error {
	select {
	case q <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(busyTimeout)
	defer t.Stop()
	select {
	case q <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("sqlite: database is busy: another writer of this process held it for %s", busyTimeout)
	}
}

func (q writeQueue) unlock() { <-q }

var _ store.Store = (*Store)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS signing_keys (
	id       TEXT PRIMARY KEY,
	purpose  TEXT NOT NULL DEFAULT 'token',
	alg      TEXT NOT NULL,
	cert     BLOB NOT NULL,
	sealed   BLOB NOT NULL,
	created  INTEGER NOT NULL,
	retired  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS policies (
	type     TEXT PRIMARY KEY,
	text     TEXT NOT NULL,
	jws      TEXT NOT NULL,
	signer   BLOB,
	updated  INTEGER NOT NULL,
	mac      BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS used_nonces (
	nonce    TEXT PRIMARY KEY,
	expires  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS used_nonces_expires ON used_nonces (expires);
CREATE TABLE IF NOT EXISTS collateral (
	kind      TEXT NOT NULL,
	key       TEXT NOT NULL,
	digest    BLOB NOT NULL,
	der       BLOB NOT NULL,
	not_after INTEGER NOT NULL,
	PRIMARY KEY (kind, key, digest)
);
`

// Open opens (creating if needed) the database file at path. Transactions
// begin IMMEDIATE: a read-then-write transaction in WAL mode that another
// connection overtakes would otherwise fail at once with SQLITE_BUSY
// instead of waiting out busy_timeout.
func Open(path string) (*Store, error) {
	// journal_mode is set after the schema check, so that a database kura
	// refuses is left exactly as it was found.
	// The database holds sealed keys and every grant: it is made 0600, and
	// SQLite makes its -wal and -shm files with the database's mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create sqlite %s: %w", path, err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := db.Exec(`PRAGMA journal_mode = WAL`); err != nil { // persistent: every connection uses it
		db.Close()
		return nil, fmt.Errorf("%s: WAL mode: %w", path, err)
	}
	// Opening a connection parses the schema and runs the pragmas (about
	// a millisecond): with database/sql's default of two idle connections,
	// concurrent readers would open and close one each. Keep as many idle
	// as may be open.
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	return &Store{db: db, q: db, path: path, writes: make(writeQueue, 1), group: &groupCommit{}}, nil
}

// maxConns bounds the connections (each has its own page cache). A reader
// holds one for a statement only; a writer (one at a time) one for its
// transaction.
const maxConns = 32

// queryAll runs query and scans every row with scan.
func queryAll[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Close closes the database; on a WithTx view it fails with store.ErrTxView.
func (s *Store) Close() error {
	if s.inTx != nil {
		return fmt.Errorf("sqlite close: %w", store.ErrTxView)
	}
	return s.db.Close()
}

// Ping checks the database; on a WithTx view it fails with store.ErrTxView.
func (s *Store) Ping(ctx context.Context) error {
	if s.inTx != nil {
		return fmt.Errorf("sqlite ping: %w", store.ErrTxView)
	}
	return s.db.PingContext(ctx)
}

// WithTx runs f on a view of s bound to one IMMEDIATE transaction (see
// store.Store), which concurrent callers share: group commit, in
// groupcommit.go. On a view it runs f on the same view.
func (s *Store) WithTx(ctx context.Context, f func(tx store.Store) error) error {
	if s.inTx != nil {
		return f(s)
	}
	return s.withGroupTx(ctx, f)
}

// commit commits tx, observed.
func (s *Store) commit(tx *sql.Tx) error {
	t := time.Now()
	err := tx.Commit()
	if s.obs != nil {
		s.obs("commit", time.Since(t), err)
	}
	return err
}

// tx runs f in a transaction: a new one, or in a WithTx view a savepoint
// of the view's, so that a failed call leaves the caller's transaction as
// it was.
func (s *Store) tx(ctx context.Context, f func(querier) error) error {
	if tx := s.inTx; tx != nil {
		// A shared transaction's statements run without the caller's
		// cancellation (groupcommit.go).
		var q querier = tx
		if s.vs != nil {
			q = s.vs
		}
		if _, err := q.ExecContext(ctx, `SAVEPOINT kura_call`); err != nil {
			return err
		}
		if err := f(q); err != nil {
			bg := context.WithoutCancel(ctx)
			_, e1 := q.ExecContext(bg, `ROLLBACK TO kura_call`)
			_, e2 := q.ExecContext(bg, `RELEASE kura_call`)
			return errors.Join(err, e1, e2)
		}
		_, err := q.ExecContext(ctx, `RELEASE kura_call`)
		return err
	}
	if err := s.writes.lock(ctx); err != nil {
		return err
	}
	defer s.writes.unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tx.Rollback()
		}
	}()
	if err := f(tx); err != nil {
		return err
	}
	done = true
	return s.commit(tx)
}

// exec runs one writing statement: in a view, in its transaction; outside,
// queued behind this process's other writers.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s.inTx == nil {
		if err := s.writes.lock(ctx); err != nil {
			return nil, err
		}
		defer s.writes.unlock()
	}
	return s.q.ExecContext(ctx, query, args...)
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnix(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (s *Store) PutSigningKey(ctx context.Context, k store.SigningKey) error {
	purpose := k.Purpose
	if purpose == "" {
		purpose = "token"
	}
	_, err := s.exec(ctx, `INSERT INTO signing_keys (id, purpose, alg, cert, sealed, created, retired) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		k.ID, purpose, k.Alg, k.CertDER, k.Sealed, unix(k.Created), unix(k.Retired))
	if err != nil {
		return fmt.Errorf("store signing key: %w", err)
	}
	return nil
}

func (s *Store) RetireSigningKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE signing_keys SET retired = ? WHERE id = ? AND retired = 0`, unix(at), id)
	if err != nil {
		return fmt.Errorf("retire signing key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("active signing key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	out, err := queryAll(ctx, s.q, func(r scanner) (store.SigningKey, error) {
		var k store.SigningKey
		var created, retired int64
		err := r.Scan(&k.ID, &k.Purpose, &k.Alg, &k.CertDER, &k.Sealed, &created, &retired)
		k.Created, k.Retired = fromUnix(created), fromUnix(retired)
		return k, err
	}, `SELECT id, purpose, alg, cert, sealed, created, retired FROM signing_keys ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return out, nil
}

func (s *Store) GetPolicy(ctx context.Context, typ string) (store.Policy, error) {
	var p store.Policy
	var updated int64
	err := s.q.QueryRowContext(ctx, `SELECT type, text, jws, signer, updated, mac FROM policies WHERE type = ?`, typ).
		Scan(&p.Type, &p.Text, &p.JWS, &p.Signer, &updated, &p.MAC)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("policy %q: %w", typ, store.ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("get policy: %w", err)
	}
	p.Updated = fromUnix(updated)
	return p, nil
}

func (s *Store) PutPolicy(ctx context.Context, p store.Policy) error {
	_, err := s.exec(ctx, `INSERT INTO policies (type, text, jws, signer, updated, mac) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (type) DO UPDATE SET text = excluded.text, jws = excluded.jws, signer = excluded.signer, updated = excluded.updated, mac = excluded.mac`,
		p.Type, p.Text, p.JWS, p.Signer, unix(p.Updated), p.MAC)
	if err != nil {
		return fmt.Errorf("store policy: %w", err)
	}
	return nil
}

func (s *Store) DeletePolicy(ctx context.Context, typ string) error {
	if _, err := s.exec(ctx, `DELETE FROM policies WHERE type = ?`, typ); err != nil {
		return fmt.Errorf("delete policy: %w", err)
	}
	return nil
}

func (s *Store) PutCollateral(ctx context.Context, c store.Collateral) error {
	d := sha256.Sum256(c.DER)
	_, err := s.exec(ctx, `INSERT INTO collateral (kind, key, digest, der, not_after) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (kind, key, digest) DO NOTHING`, c.Kind, c.Key, d[:], c.DER, unix(c.NotAfter))
	if err != nil {
		return fmt.Errorf("store collateral: %w", err)
	}
	return nil
}

func (s *Store) Collateral(ctx context.Context, kind, key string) ([]store.Collateral, error) {
	out, err := queryAll(ctx, s.q, scanCollateral, `SELECT kind, key, der, not_after FROM collateral WHERE kind = ? AND key = ? ORDER BY not_after DESC`, kind, key)
	if err != nil {
		return nil, fmt.Errorf("look up collateral: %w", err)
	}
	return out, nil
}

func (s *Store) AllCollateral(ctx context.Context) ([]store.Collateral, error) {
	out, err := queryAll(ctx, s.q, scanCollateral, `SELECT kind, key, der, not_after FROM collateral ORDER BY kind, key, not_after, der`)
	if err != nil {
		return nil, fmt.Errorf("list collateral: %w", err)
	}
	return out, nil
}

// scanCollateral reads a row of (kind, key, der, not_after).
func scanCollateral(r scanner) (store.Collateral, error) {
	var c store.Collateral
	var na int64
	err := r.Scan(&c.Kind, &c.Key, &c.DER, &na)
	c.NotAfter = fromUnix(na)
	return c, err
}

func (s *Store) CollateralExpiry(ctx context.Context) (map[string]time.Time, error) {
	type row struct {
		kind string
		at   int64
	}
	rows, err := queryAll(ctx, s.q, func(r scanner) (x row, err error) { return x, r.Scan(&x.kind, &x.at) },
		`SELECT kind, MIN(newest) FROM (SELECT kind, MAX(not_after) AS newest FROM collateral GROUP BY kind, key) GROUP BY kind`)
	if err != nil {
		return nil, fmt.Errorf("collateral expiry: %w", err)
	}
	out := make(map[string]time.Time, len(rows))
	for _, r := range rows {
		out[r.kind] = fromUnix(r.at)
	}
	return out, nil
}

func (s *Store) UseNonce(ctx context.Context, nonce string, now, expires time.Time) error {
	if _, err := s.exec(ctx, `DELETE FROM used_nonces WHERE expires < ?`, unix(now)); err != nil {
		return err
	}
	res, err := s.exec(ctx, `INSERT INTO used_nonces (nonce, expires) VALUES (?, ?) ON CONFLICT DO NOTHING`, nonce, unix(expires))
	if err != nil {
		return fmt.Errorf("record nonce: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("nonce: %w", store.ErrConflict)
	}
	return nil
}
