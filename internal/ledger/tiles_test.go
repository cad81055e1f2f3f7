package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/ledger/receipt"
)

// tileReader is x/mod/sumdb/tlog's client view of the log's tiles.
type tileReader struct {
	ctx context.Context
	l   *Log
}

func (r tileReader) Height() int { return TileHeight }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		d, err := r.l.Tile(r.ctx, t)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// TestTiles: a client that knows nothing but a signed checkpoint reads
// every hash it needs from the log's tiles, checked by x/mod's
// TileHashReader, for trees that end inside, at the end of and past a
// tile at both levels; every entry bundle's leaves hash to those hashes;
// tiles past the end are a NotFound.
func TestTiles(t *testing.T) {
	l, _, v := newLog(t)
	ctx := context.Background()
	appended := 0
	for _, size := range []int{1, 255, 256, 257, 600, 256*256 + 3} {
		for ; appended < size; appended++ {
			if _, err := l.Append(ctx, fmt.Sprint("c", appended%3), []byte(fmt.Sprint("entry ", appended))); err != nil {
				t.Fatal(err)
			}
		}
		// Not signed yet: the new entries are not tiled (a tile served is
		// immutable; only a signed tree is).
		last := tlog.Tile{H: TileHeight, L: 0, N: int64(size-1) / 256, W: (size-1)%256 + 1}
		if _, err := l.Tile(ctx, last); fault.Of(err) != fault.NotFound {
			t.Errorf("size %d: the tile %s of entries not yet signed: %v", size, last.Path(), err)
		}
		_, signed, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tree, err := receipt.OpenCheckpoint(signed, origin, v)
		if err != nil {
			t.Fatal(err)
		}
		hr := tlog.TileHashReader(tree, tileReader{ctx, l})
		// Every leaf hash, and the root from them, through the tiles.
		idx := make([]int64, 0, size)
		for i := range int64(size) {
			idx = append(idx, tlog.StoredHashIndex(0, i))
		}
		leaves, err := hr.ReadHashes(idx)
		if err != nil {
			t.Fatalf("size %d: leaf hashes from the tiles: %v", size, err)
		}
		if root, err := tlog.TreeHash(tree.N, hr); err != nil || root != tree.Hash {
			t.Fatalf("size %d: root from the tiles: %v", size, err)
		}
		// Entry bundles: their leaves hash to the tiles' leaf hashes.
		for n := int64(0); n*256 < int64(size); n++ {
			w := min(256, size-int(n*256))
			b, err := l.Tile(ctx, tlog.Tile{H: TileHeight, L: -1, N: n, W: w})
			if err != nil {
				t.Fatalf("size %d: entry bundle %d.p/%d: %v", size, n, w, err)
			}
			for i := range w {
				if len(b) < 2 {
					t.Fatalf("size %d: bundle %d ends at entry %d", size, n, i)
				}
				k := int(binary.BigEndian.Uint16(b))
				leaf := b[2 : 2+k]
				b = b[2+k:]
				if tlog.RecordHash(leaf) != leaves[n*256+int64(i)] {
					t.Fatalf("size %d: entry %d of the bundle is not the tree's leaf", size, n*256+int64(i))
				}
				if lf, err := receipt.ParseLeaf(leaf); err != nil || lf.Seq != uint64(n*256)+uint64(i) {
					t.Fatalf("size %d: entry %d: %v", size, n*256+int64(i), err)
				}
			}
			if len(b) != 0 {
				t.Fatalf("size %d: bundle %d has %d bytes more", size, n, len(b))
			}
		}
		// Past the end.
		for _, past := range []tlog.Tile{
			{H: 8, L: 0, N: int64(size) / 256, W: size%256 + 1},
			{H: 8, L: -1, N: int64(size)/256 + 1, W: 1},
			{H: 8, L: 1, N: 0, W: size/256 + 1},
			{H: 8, L: 2, N: 0, W: size>>16 + 1},
			{H: 8, L: 7, N: 1 << 49, W: 256},
		} {
			if past.W > 256 {
				continue
			}
			if _, err := l.Tile(ctx, past); fault.Of(err) != fault.NotFound {
				t.Errorf("size %d: tile %s past the end: %v", size, past.Path(), err)
			}
		}
	}
	for _, bad := range []tlog.Tile{{H: 4, L: 0, N: 0, W: 1}, {H: 8, L: 8, N: 0, W: 1}, {H: 8, L: -2, N: 0, W: 1}, {H: 8, L: 0, N: -1, W: 1}, {H: 8, L: 0, N: 0, W: 0}, {H: 8, L: 0, N: 0, W: 257}, {H: 8, L: 0, N: 1 << 55, W: 1}} {
		if _, err := l.Tile(ctx, bad); fault.Of(err) != fault.BadInput {
			t.Errorf("tile %+v: %v", bad, err)
		}
	}
	// A full tile is the partial ones extended.
	full, _ := l.Tile(ctx, tlog.Tile{H: 8, L: 0, N: 0, W: 256})
	part, _ := l.Tile(ctx, tlog.Tile{H: 8, L: 0, N: 0, W: 17})
	if !bytes.HasPrefix(full, part) || len(part) != 17*32 {
		t.Error("a partial tile is not a prefix of the full one")
	}
}
