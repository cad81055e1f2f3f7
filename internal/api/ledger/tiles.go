package ledger

import (
	"errors"
	"net/http"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/api/wire"
	"github.com/kura-project/kura/internal/fault"
)

// The log's C2SP tlog-tiles surface, under the prefix /kura/v1/ledger/:
// checkpoint (checkpoint in Handler), tile/<L>/<N>[.p/<W>] and
// tile/entries/<N>[.p/<W>]. Hash tiles are public, as the checkpoint is:
// they hold hashes only. Entry bundles hold the leaves (sequence, time,
// collection, commitment; never contents), so, as entries, they are for
// auditors and administrators.

// parseTilePath reads the part of a tile's path after "tile/": C2SP's
// paths are x/mod/sumdb/tlog's without the height, and "entries" for its
// "data". Only canonical paths are accepted (tlog.ParseTilePath
// rebuilds the path and compares).
func parseTilePath(rest string) (tlog.Tile, error) {
	// More than six groups of three digits could overflow the index.
	if strings.Count(rest, "/") > 8 {
		return tlog.Tile{}, errors.New("malformed tile path")
	}
	p := "tile/8/" + rest
	if after, ok := strings.CutPrefix(rest, "entries/"); ok {
		p = "tile/8/data/" + after
	} else if strings.HasPrefix(rest, "data/") {
		return tlog.Tile{}, errors.New("malformed tile path")
	}
	t, err := tlog.ParseTilePath(p)
	if err != nil {
		return tlog.Tile{}, errors.New("malformed tile path")
	}
	return t, nil
}

func (h *Handler) tile(w http.ResponseWriter, r *http.Request) {
	t, err := parseTilePath(r.PathValue("path"))
	if err != nil {
		wire.Error(w, http.StatusNotFound, "NotFound", "tile/"+r.PathValue("path")+": not a tile path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>], C2SP tlog-tiles)")
		return
	}
	if t.L < 0 && !h.authorized(w, r) {
		return
	}
	data, err := h.Log.Tile(r.Context(), t)
	if e, ok := fault.As(err); ok && (e.Kind == fault.NotFound || e.Kind == fault.BadInput) {
		wire.Error(w, http.StatusNotFound, "NotFound", e.Public())
		return
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.L >= 0 {
		// A tile of a given width never changes (a partial one is a
		// prefix of the full one, which has its own path).
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	}
	w.Write(data)
}
