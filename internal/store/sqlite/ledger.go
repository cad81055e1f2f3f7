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
	out := make([][32]byte, len(indexes))
	if len(indexes) == 0 {
		return out, nil
	}
	// One query for the lot (tlog asks for a few dozen at most).
	args := make([]any, len(indexes))
	for i, idx := range indexes {
		args[i] = idx
	}
	q := `SELECT idx, hash FROM ledger_hashes WHERE idx IN (?` + strings.Repeat(`,?`, len(indexes)-1) + `)`
	got, err := queryAll(ctx, s.q, func(r scanner) (row struct {
		idx  int64
		hash []byte
	}, err error) {
		return row, r.Scan(&row.idx, &row.hash)
	}, q, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger hashes: %w", err)
	}
	byIdx := make(map[int64][]byte, len(got))
	for _, g := range got {
		byIdx[g.idx] = g.hash
	}
	for i, idx := range indexes {
		h, ok := byIdx[idx]
		if !ok {
			return nil, fmt.Errorf("ledger hash %d: %w", idx, store.ErrNotFound)
		}
		if len(h) != 32 {
			return nil, fmt.Errorf("ledger hash %d: %d bytes stored", idx, len(h))
		}
		copy(out[i][:], h)
	}
	return out, nil
}

// AppendLedger is fenced by the size: the entry's seq must be the next,
// and its first hash's index the next one stored.
func (s *Store) AppendLedger(ctx context.Context, e store.LedgerEntry, hashes [][32]byte) error {
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
		if e.Seq != size {
			return fmt.Errorf("ledger entry %d appended to %d entries: %w", e.Seq, size, store.ErrConflict)
		}
		// The hashes go where tlog puts them: a stray row would shift
		// every later one.
		if want := tlog.StoredHashIndex(0, e.Seq); idx != want || int64(len(hashes)) != tlog.StoredHashIndex(0, e.Seq+1)-want {
			return fmt.Errorf("ledger entry %d: %d hashes at index %d, tlog stores %d at %d: %w",
				e.Seq, len(hashes), idx, tlog.StoredHashIndex(0, e.Seq+1)-want, want, store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_entries (seq, collection, leaf, contents, salt) VALUES (?, ?, ?, ?, ?)`,
			e.Seq, e.Collection, e.Leaf, e.Contents, e.Salt); err != nil {
			return fmt.Errorf("append ledger entry %d: %w", e.Seq, err)
		}
		for i, h := range hashes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_hashes (idx, hash) VALUES (?, ?)`, idx+int64(i), h[:]); err != nil {
				return fmt.Errorf("append ledger hash %d: %w", idx+int64(i), err)
			}
		}
		return nil
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
	return s.tx(ctx, func(tx querier) error {
		var old []byte
		err := tx.QueryRowContext(ctx, `SELECT signed FROM ledger_checkpoints WHERE size = ?`, size).Scan(&old)
		switch {
		case err == nil && bytes.Equal(old, signed):
			return nil
		case err == nil:
			return fmt.Errorf("ledger checkpoint %d: another is stored: %w", size, store.ErrConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO ledger_checkpoints (size, signed) VALUES (?, ?)`, size, signed)
		return err
	})
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
	var size int64
	var b []byte
	err := s.q.QueryRowContext(ctx, `SELECT size, signed FROM ledger_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&size, &b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("ledger checkpoint: %w", store.ErrNotFound)
	}
	return size, b, err
}
