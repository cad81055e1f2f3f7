package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/store"
)

// TileHeight is the height of the log's tiles: C2SP tlog-tiles fixes it at
// 8 (256 hashes or entries a tile), as x/mod/sumdb/tlog's tiles of height 8.
const TileHeight = 8

// maxTileLevel bounds the levels asked for: a level-8 tile would need a
// tree of 2^64 entries.
const maxTileLevel = 7

// Tile returns the data of hash tile t (t.L >= 0) or of entry bundle t
// (t.L == -1), once a signed tree holds every hash or entry in it; a tile past
// the end is a fault.NotFound. The data comes from the untrusted store as
// it is: a client checks tiles against a checkpoint (tlog.TileHashReader)
// and entries against the tiles, as C2SP tlog-tiles clients do.
func (l *Log) Tile(ctx context.Context, t tlog.Tile) ([]byte, error) {
	if t.H != TileHeight || t.L < -1 || t.L > maxTileLevel || t.N < 0 || t.N >= 1<<50 || t.W < 1 || t.W > 1<<TileHeight {
		return nil, fault.Bad("tile", "no tile %s in this log (height %d, levels -1 to %d)", t.Path(), TileHeight, maxTileLevel)
	}
	// Only trees signed are tiled: a tile is immutable once served (and
	// cached by whoever follows the log), and only a signed tree never
	// changes. The entries after the last checkpoint are tiled once one
	// covers them (Latest signs at least once a second).
	n, _, err := l.st.LatestLedgerCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		n, err = 0, nil
	}
	if err != nil {
		return nil, err
	}
	if size, err := l.st.LedgerSize(ctx); err != nil {
		return nil, err
	} else if size < n {
		return nil, fmt.Errorf("%w: the tree has %d entries, a checkpoint was signed at %d", ErrFork, size, n)
	}
	level := t.L
	if level < 0 {
		level = 0
	}
	// The tile's last hash (or entry) is number t.N*256+t.W-1 at level
	// 8*level; the tree holds it when that many fit in n at that level.
	if need := t.N<<TileHeight + int64(t.W); need > n>>(TileHeight*level) {
		return nil, fault.Missing("tile %s is past the end of the log (%d entries signed)", t.Path(), n)
	}
	if t.L >= 0 {
		return tlog.ReadTileData(t, l.reader(ctx))
	}
	return l.entryBundle(ctx, t.N<<TileHeight, t.W)
}

// entryBundle is C2SP tlog-tiles' entry bundle of w leaves from first:
// each leaf (what the tree hashes, Leaf.Marshal) after its length as a
// big-endian uint16.
func (l *Log) entryBundle(ctx context.Context, first int64, w int) ([]byte, error) {
	es, err := l.st.ListLedgerEntries(ctx, "", first, first+int64(w)-1, w)
	if err != nil {
		return nil, err
	}
	if len(es) != w {
		return nil, fmt.Errorf("ledger: entries %d to %d: the store has %d of them", first, first+int64(w)-1, len(es))
	}
	var out []byte
	for i, e := range es {
		if e.Seq != first+int64(i) {
			return nil, fmt.Errorf("ledger: entries from %d: the store answered entry %d in place of %d", first, e.Seq, first+int64(i))
		}
		if len(e.Leaf) > 0xffff {
			return nil, fmt.Errorf("ledger: the leaf of entry %d has %d bytes, more than an entry bundle holds", e.Seq, len(e.Leaf))
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(e.Leaf)))
		out = append(out, e.Leaf...)
	}
	return out, nil
}
