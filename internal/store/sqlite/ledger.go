package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/store"
)

const ledgerSchema = `
CREATE TABLE IF NOT EXISTS ledger_entries (
	seq        INTEGER PRIMARY KEY,
	collection TEXT NOT NULL,
	leaf       BLOB NOT NULL,
	contents   BLOB NOT NULL,
	salt       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_entries_collection ON ledger_entries (collection, seq);
CREATE TABLE IF NOT EXISTS ledger_hashes (
	idx  INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
	size   INTEGER PRIMARY KEY,
	signed BLOB NOT NULL
);
`

func (s *Store) LedgerSize(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	if err := s.q.QueryRowContext(ctx, `SELECT MAX(seq) FROM ledger_entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("ledger size: %w", err)
	}
	if !n.Valid {
		return 0, nil
	}
	return n.Int64 + 1, nil
}

func (s *Store) LedgerHashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	return readHashes(ctx, s.q, "ledger_hashes", indexes)
}

// readHashes reads stored tree hashes by index from table, in one query
// per chunk (tlog asks for a few dozen; the integrator for more).
func readHashes(ctx context.Context, q querier, table string, indexes []int64) ([][32]byte, error) {
	out := make([][32]byte, len(indexes))
	const chunk = 500
	for lo := 0; lo < len(indexes); lo += chunk {
		part := indexes[lo:min(lo+chunk, len(indexes))]
		args := make([]any, len(part))
		for i, idx := range part {
			args[i] = idx
		}
		got, err := queryAll(ctx, q, func(r scanner) (row struct {
			idx  int64
			hash []byte
		}, err error) {
			return row, r.Scan(&row.idx, &row.hash)
		}, `SELECT idx, hash FROM `+table+` WHERE idx IN (?`+strings.Repeat(`,?`, len(part)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", table, err)
		}
		byIdx := make(map[int64][]byte, len(got))
		for _, g := range got {
			byIdx[g.idx] = g.hash
		}
		for i, idx := range part {
			h, ok := byIdx[idx]
			if !ok {
				return nil, fmt.Errorf("%s %d: %w", table, idx, store.ErrNotFound)
			}
			if len(h) != 32 {
				return nil, fmt.Errorf("%s %d: %d bytes stored", table, idx, len(h))
			}
			copy(out[lo+i][:], h)
		}
	}
	return out, nil
}

// AppendLedger is fenced by the size: the entries must be the next ones,
// in order, and their hashes start at the next index stored. Rows go in
// multi-row INSERTs: a batch of appends is a few statements, not a few a
// entry.
func (s *Store) AppendLedger(ctx context.Context, es []store.LedgerEntry, hashes [][32]byte) error {
	if len(es) == 0 {
		return fmt.Errorf("append no ledger entries: %w", store.ErrConflict)
	}
	return s.tx(ctx, func(tx querier) error {
		var next, nextIdx sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM ledger_entries`).Scan(&next); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT MAX(idx) FROM ledger_hashes`).Scan(&nextIdx); err != nil {
			return err
		}
		size, idx := int64(0), int64(0)
		if next.Valid {
			size = next.Int64 + 1
		}
		if nextIdx.Valid {
			idx = nextIdx.Int64 + 1
		}
		first, last := es[0].Seq, es[len(es)-1].Seq
		if first != size {
			return fmt.Errorf("ledger entry %d appended to %d entries: %w", first, size, store.ErrConflict)
		}
		for i, e := range es {
			if e.Seq != first+int64(i) {
				return fmt.Errorf("ledger entries from %d: entry %d in place of %d: %w", first, e.Seq, first+int64(i), store.ErrConflict)
			}
		}
		// The hashes go where tlog puts them: a stray row would shift
		// every later one.
		if want := tlog.StoredHashIndex(0, first); idx != want || int64(len(hashes)) != tlog.StoredHashIndex(0, last+1)-want {
			return fmt.Errorf("ledger entries %d to %d: %d hashes at index %d, tlog stores %d at %d: %w",
				first, last, len(hashes), idx, tlog.StoredHashIndex(0, last+1)-want, want, store.ErrConflict)
		}
		const entryRows = 150 // 5 variables a row
		for lo := 0; lo < len(es); lo += entryRows {
			part := es[lo:min(lo+entryRows, len(es))]
			args := make([]any, 0, 5*len(part))
			for _, e := range part {
				args = append(args, e.Seq, e.Collection, e.Leaf, e.Contents, e.Salt)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_entries (seq, collection, leaf, contents, salt) VALUES (?, ?, ?, ?, ?)`+
				strings.Repeat(`, (?, ?, ?, ?, ?)`, len(part)-1), args...); err != nil {
				return fmt.Errorf("append ledger entries from %d: %w", part[0].Seq, err)
			}
		}
		return insertHashes(ctx, tx, "ledger_hashes", idx, hashes)
	})
}

func (s *Store) GetLedgerEntry(ctx context.Context, seq int64) (store.LedgerEntry, error) {
	e := store.LedgerEntry{Seq: seq}
	err := s.q.QueryRowContext(ctx, `SELECT collection, leaf, contents, salt FROM ledger_entries WHERE seq = ?`, seq).
		Scan(&e.Collection, &e.Leaf, &e.Contents, &e.Salt)
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("ledger entry %d: %w", seq, store.ErrNotFound)
	}
	return e, err
}

func (s *Store) PutLedgerCheckpoint(ctx context.Context, size int64, signed []byte) error {
	return putOnce(ctx, s, "ledger_checkpoints", size, signed)
}

func (s *Store) GetLedgerCheckpoint(ctx context.Context, size int64) ([]byte, error) {
	var b []byte
	err := s.q.QueryRowContext(ctx, `SELECT signed FROM ledger_checkpoints WHERE size = ?`, size).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("ledger checkpoint %d: %w", size, store.ErrNotFound)
	}
	return b, err
}

func (s *Store) LatestLedgerCheckpoint(ctx context.Context) (int64, []byte, error) {
	return latestOnce(ctx, s, "ledger_checkpoints")
}

const ledgerCosignedSchema = `
CREATE TABLE IF NOT EXISTS ledger_cosigned (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	size   INTEGER NOT NULL,
	signed BLOB NOT NULL
);
`

func (s *Store) PutLedgerCosigned(ctx context.Context, size int64, signed []byte) error {
	_, err := s.q.ExecContext(ctx, `INSERT INTO ledger_cosigned (id, size, signed) VALUES (1, ?, ?)
ON CONFLICT (id) DO UPDATE SET size = excluded.size, signed = excluded.signed WHERE excluded.size >= ledger_cosigned.size`, size, signed)
	if err != nil {
		return fmt.Errorf("ledger cosigned checkpoint %d: %w", size, err)
	}
	return nil
}

func (s *Store) LatestLedgerCosigned(ctx context.Context) (int64, []byte, error) {
	var size int64
	var b []byte
	err := s.q.QueryRowContext(ctx, `SELECT size, signed FROM ledger_cosigned WHERE id = 1`).Scan(&size, &b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("ledger cosigned checkpoint: %w", store.ErrNotFound)
	}
	return size, b, err
}

const ledgerACLSchema = `
CREATE TABLE IF NOT EXISTS ledger_acl_hashes (
	idx  INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_acl_signatures (
	size   INTEGER PRIMARY KEY,
	signed BLOB NOT NULL
);
`

func (s *Store) LedgerACLSize(ctx context.Context) (int64, error) {
	return aclSize(ctx, s.q)
}

// aclSize is the leaf count of the ACL tree: the last stored hash is the
// top of the last leaf's stored column.
func aclSize(ctx context.Context, q querier) (int64, error) {
	var idx sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT MAX(idx) FROM ledger_acl_hashes`).Scan(&idx); err != nil {
		return 0, fmt.Errorf("ledger ACL size: %w", err)
	}
	if !idx.Valid {
		return 0, nil
	}
	level, n := tlog.SplitStoredHashIndex(idx.Int64)
	return (n + 1) << level, nil
}

func (s *Store) LedgerACLHashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	return readHashes(ctx, s.q, "ledger_acl_hashes", indexes)
}

func (s *Store) AppendLedgerACL(ctx context.Context, from, to int64, hashes [][32]byte) error {
	return s.tx(ctx, func(tx querier) error {
		n, err := aclSize(ctx, tx)
		if err != nil {
			return err
		}
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM ledger_entries`).Scan(&last); err != nil {
			return err
		}
		size := int64(0)
		if last.Valid {
			size = last.Int64 + 1
		}
		if from != n || to < from || to > size {
			return fmt.Errorf("ledger ACL leaves [%d, %d) appended to %d of %d entries: %w", from, to, n, size, store.ErrConflict)
		}
		start := tlog.StoredHashIndex(0, from)
		if int64(len(hashes)) != tlog.StoredHashIndex(0, to)-start {
			return fmt.Errorf("ledger ACL leaves [%d, %d): %d hashes, tlog stores %d: %w", from, to, len(hashes), tlog.StoredHashIndex(0, to)-start, store.ErrConflict)
		}
		return insertHashes(ctx, tx, "ledger_acl_hashes", start, hashes)
	})
}

// insertHashes stores hashes from index first in multi-row INSERTs.
func insertHashes(ctx context.Context, tx querier, table string, first int64, hashes [][32]byte) error {
	const rows = 400 // 2 variables a row
	for lo := 0; lo < len(hashes); lo += rows {
		part := hashes[lo:min(lo+rows, len(hashes))]
		args := make([]any, 0, 2*len(part))
		for i, h := range part {
			args = append(args, first+int64(lo+i), h[:])
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (idx, hash) VALUES (?, ?)`+strings.Repeat(`, (?, ?)`, len(part)-1), args...); err != nil {
			return fmt.Errorf("append %s from %d: %w", table, first+int64(lo), err)
		}
	}
	return nil
}

func (s *Store) PutLedgerACLSignature(ctx context.Context, size int64, signed []byte) error {
	return putOnce(ctx, s, "ledger_acl_signatures", size, signed)
}

func (s *Store) LatestLedgerACLSignature(ctx context.Context) (int64, []byte, error) {
	return latestOnce(ctx, s, "ledger_acl_signatures")
}

func (s *Store) ListLedgerEntries(ctx context.Context, collection string, from, to int64, limit int) ([]store.LedgerEntry, error) {
	q := `SELECT seq, collection, leaf, contents, salt FROM ledger_entries WHERE seq >= ? AND seq <= ?`
	args := []any{from, to}
	if collection != "" {
		q += ` AND collection = ?`
		args = append(args, collection)
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, limit)
	out, err := queryAll(ctx, s.q, scanLedgerEntry, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list ledger entries: %w", err)
	}
	return out, nil
}

func (s *Store) LastLedgerEntry(ctx context.Context, collection string) (store.LedgerEntry, error) {
	e, err := scanLedgerEntry(s.q.QueryRowContext(ctx, `SELECT seq, collection, leaf, contents, salt FROM ledger_entries WHERE collection = ? ORDER BY seq DESC LIMIT 1`, collection))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("ledger collection %q: %w", collection, store.ErrNotFound)
	}
	return e, err
}

func (s *Store) LedgerCollections(ctx context.Context) ([]string, error) {
	out, err := queryAll(ctx, s.q, func(r scanner) (c string, err error) { return c, r.Scan(&c) },
		`SELECT DISTINCT collection FROM ledger_entries ORDER BY collection`)
	if err != nil {
		return nil, fmt.Errorf("ledger collections: %w", err)
	}
	return out, nil
}

func scanLedgerEntry(r scanner) (e store.LedgerEntry, err error) {
	return e, r.Scan(&e.Seq, &e.Collection, &e.Leaf, &e.Contents, &e.Salt)
}

// latestOnce is the row of table (a putOnce table) with the largest size.
func latestOnce(ctx context.Context, s *Store, table string) (int64, []byte, error) {
	var size int64
	var b []byte
	err := s.q.QueryRowContext(ctx, `SELECT size, signed FROM `+table+` ORDER BY size DESC LIMIT 1`).Scan(&size, &b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("%s: %w", table, store.ErrNotFound)
	}
	return size, b, err
}

// putOnce inserts (key, value) into table unless it holds key: the same
// value again is a no-op, another ErrConflict.
func putOnce(ctx context.Context, s *Store, table string, size int64, signed []byte) error {
	return s.tx(ctx, func(tx querier) error {
		var old []byte
		err := tx.QueryRowContext(ctx, `SELECT signed FROM `+table+` WHERE size = ?`, size).Scan(&old)
		switch {
		case err == nil && bytes.Equal(old, signed):
			return nil
		case err == nil:
			return fmt.Errorf("%s %d: another is stored: %w", table, size, store.ErrConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO `+table+` (size, signed) VALUES (?, ?)`, size, signed)
		return err
	})
}
