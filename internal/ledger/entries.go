package ledger

import (
	"context"
	"errors"

	"github.com/kura-project/kura/internal/store"
)

// Reading entries: each stored row is checked against its leaf (record),
// so contents the database changed are refused, not served.

// Get returns entry seq (store.ErrNotFound past the end).
func (l *Log) Get(ctx context.Context, seq int64) (Record, error) {
	e, err := l.st.GetLedgerEntry(ctx, seq)
	if err != nil {
		return Record{}, err
	}
	return record(e)
}

// List returns up to limit entries of collection ("" for all) with
// from <= seq <= to, in order.
func (l *Log) List(ctx context.Context, collection string, from, to int64, limit int) ([]Record, error) {
	es, err := l.st.ListLedgerEntries(ctx, collection, from, to, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(es))
	for _, e := range es {
		r, err := record(e)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Last is the newest entry of collection (store.ErrNotFound: none).
func (l *Log) Last(ctx context.Context, collection string) (Record, error) {
	e, err := l.st.LastLedgerEntry(ctx, collection)
	if err != nil {
		return Record{}, err
	}
	return record(e)
}

// Collections lists the collections that hold entries.
func (l *Log) Collections(ctx context.Context) ([]string, error) {
	return l.st.LedgerCollections(ctx)
}

// Committed reports whether entry seq is in a signed tree: in the last
// stored checkpoint, or in a recent one (Latest's cadence), so that
// polling a status makes at most one checkpoint a second.
func (l *Log) Committed(ctx context.Context, seq int64) (bool, error) {
	st, _, err := l.stored(ctx) // verified: the database cannot say a checkpoint holds it
	if err == nil && seq < st.N {
		return true, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	t, _, err := l.Latest(ctx)
	if err != nil {
		return false, err
	}
	return seq < t.N, nil
}
