package ledger

import (
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestParseTilePath(t *testing.T) {
	for _, c := range []struct {
		path string
		want tlog.Tile
		ok   bool
	}{
		{"0/000", tlog.Tile{H: 8, L: 0, N: 0, W: 256}, true},
		{"0/x001/234", tlog.Tile{H: 8, L: 0, N: 1234, W: 256}, true},
		{"1/067.p/8", tlog.Tile{H: 8, L: 1, N: 67, W: 8}, true},
		{"entries/x001/234.p/255", tlog.Tile{H: 8, L: -1, N: 1234, W: 255}, true},
		{"entries/000", tlog.Tile{H: 8, L: -1, N: 0, W: 256}, true},
		{"data/000", tlog.Tile{}, false}, // x/mod's name, not C2SP's
		{"8/0/000", tlog.Tile{}, false},  // x/mod's path with the height
		{"0/1234", tlog.Tile{}, false},   // not in groups of three
		{"0/x1/234", tlog.Tile{}, false}, // not canonical
		{"0/001", tlog.Tile{H: 8, L: 0, N: 1, W: 256}, true},
		{"0/000.p/256", tlog.Tile{}, false}, // a full tile has no .p
		{"0/000.p/0", tlog.Tile{}, false},
		{"-1/000", tlog.Tile{}, false},
		{"0/" + strings.Repeat("x999/", 7) + "999", tlog.Tile{}, false},
		{"", tlog.Tile{}, false},
		{"0", tlog.Tile{}, false},
		{"0/000/", tlog.Tile{}, false},
	} {
		got, err := parseTilePath(c.path)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("%q: %+v, %v; want %+v ok=%v", c.path, got, err, c.want, c.ok)
		}
	}
}

// FuzzParseTilePath: a path either parses to a tile whose C2SP path is
// the input, or is refused; never a panic.
func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{"0/000", "0/x001/234.p/7", "entries/x001/234", "data/000", "1/x999/x999/999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tile, err := parseTilePath(s)
		if err != nil {
			return
		}
		p := strings.TrimPrefix(tile.Path(), "tile/8/")
		if tile.L == -1 {
			p = "entries/" + strings.TrimPrefix(p, "data/")
		}
		if p != s {
			t.Fatalf("%q parsed to %+v, whose path is %q", s, tile, p)
		}
	})
}
