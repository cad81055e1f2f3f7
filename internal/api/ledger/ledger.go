// Package ledger is the HTTP surface of kura's confidential ledger
// (internal/ledger): the current signed checkpoint and the log's verifier
// key, which anyone may fetch to verify offline, and, for auditors, each
// entry with its receipt and consistency proofs between checkpoints; the
// log's C2SP tlog-tiles (tiles.go); and the Azure Confidential Ledger API
// (acl.go).
package ledger

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/api/wire"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/ledger"
	"github.com/kura-project/kura/internal/store"
)

// Handler serves /kura/v1/ledger/*.
type Handler struct {
	Log         *ledger.Log
	Origin      string
	VerifierKey string
	// Authorize admits an auditor or an administrator; an error of kind
	// Denied is a 403, any other a 401.
	Authorize func(r *http.Request) error
	// Principal is the id of the authenticated principal of any role: it
	// may read the entries of its own key releases (ownRelease), so that
	// the agent can check that its release is on record. Ids, not names:
	// a name deleted and given to a new principal reads nothing of the
	// old one's.
	Principal func(r *http.Request) (string, error)
	Logger    *slog.Logger
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /kura/v1/ledger/checkpoint", h.checkpoint)
	mux.HandleFunc("GET /kura/v1/ledger/key", h.key)
	mux.HandleFunc("GET /kura/v1/ledger/entries/{seq}", h.entry)
	mux.HandleFunc("GET /kura/v1/ledger/consistency", h.consistency)
	mux.HandleFunc("GET /kura/v1/ledger/tile/{path...}", h.tile)
}

// Entry is the JSON of one entry with its receipt: all a verifier needs
// besides the log's origin and verifier key.
type Entry struct {
	Seq        int64  `json:"seq"`
	Collection string `json:"collection"`
	Time       string `json:"time"`     // RFC 3339, milliseconds
	Contents   string `json:"contents"` // base64
	Salt       string `json:"salt"`     // hex
	Receipt    string `json:"receipt"`  // c2sp.org/tlog-proof@v1
	Origin     string `json:"origin"`
}

func (h *Handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	// Public: at most one new checkpoint a second; with witnesses, the
	// latest they cosigned.
	_, signed, err := h.Log.Published(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(signed)
}

func (h *Handler) key(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, h.VerifierKey)
}

func (h *Handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	err := h.Authorize(r)
	if err == nil {
		return true
	}
	refuse(w, err, "")
	return false
}

// refuse answers an Authorize error: 403 for a principal without the
// role (note added), 401 otherwise.
func refuse(w http.ResponseWriter, err error, note string) {
	if fault.Of(err) == fault.Denied {
		wire.Error(w, http.StatusForbidden, "Forbidden", err.Error()+"; ledger entries require the auditor or administrator role"+note)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="kura"`)
	wire.Error(w, http.StatusUnauthorized, "Unauthorized", "ledger entries require a bearer token of the auditor or administrator role")
}

func (h *Handler) entry(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 0 {
		if h.authorized(w, r) {
			wire.Error(w, http.StatusBadRequest, "BadParameter", "seq: a non-negative integer")
		}
		return
	}
	if err := h.Authorize(r); err != nil {
		if fault.Of(err) != fault.Denied || h.Principal == nil {
			refuse(w, err, ownNote)
			return
		}
		own, oerr := h.ownRelease(r, seq)
		if oerr != nil {
			h.fail(w, oerr) // the store, not the caller
			return
		}
		if !own {
			refuse(w, err, ownNote)
			return
		}
	}
	rec, receipt, err := h.Log.Receipt(r.Context(), seq)
	if errors.Is(err, store.ErrNotFound) {
		wire.Error(w, http.StatusNotFound, "NotFound", fmt.Sprintf("the ledger has no entry %d", seq))
		return
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	wire.JSON(w, http.StatusOK, Entry{Seq: seq, Collection: rec.Leaf.Collection, Time: rec.Leaf.Time.UTC().Format(time.RFC3339Nano),
		Contents: base64.StdEncoding.EncodeToString(rec.Contents), Salt: hex.EncodeToString(rec.Salt[:]), Receipt: string(receipt), Origin: h.Origin})
}

// ownRelease reports whether entry seq is the audit record of a key
// release by the request's principal. Audit records name digests and
// identifiers only; a principal sees no one else's.
func (h *Handler) ownRelease(r *http.Request, seq int64) (bool, error) {
	id, err := h.Principal(r)
	if err != nil || id == "" {
		return false, nil
	}
	rec, err := h.Log.Entry(r.Context(), seq)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // as for an entry not its own: 403
	}
	if err != nil {
		return false, err
	}
	if rec.Leaf.Collection != audit.LedgerCollection {
		return false, nil
	}
	var e struct {
		Action  string `json:"action"`
		ActorID string `json:"actor_id"`
	}
	return json.Unmarshal(rec.Contents, &e) == nil && e.Action == "key.release" && e.ActorID == id, nil
}

// ownNote is what the entry route's 403 adds.
const ownNote = " (a principal may read the records of its own key releases)"

// consistency answers ?from=N&to=M with the RFC 6962 consistency proof, a
// base64 hash a line.
func (h *Handler) consistency(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r) {
		return
	}
	from, err1 := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
	to, err2 := strconv.ParseInt(r.URL.Query().Get("to"), 10, 64)
	if err1 != nil || err2 != nil {
		wire.Error(w, http.StatusBadRequest, "BadParameter", "from and to: tree sizes, integers")
		return
	}
	p, err := h.Log.Consistency(r.Context(), from, to)
	if e, ok := fault.As(err); ok && e.Kind == fault.BadInput {
		wire.Error(w, http.StatusBadRequest, "BadParameter", e.Public())
		return
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	var b strings.Builder
	for _, hh := range p {
		b.WriteString(base64.StdEncoding.EncodeToString(hh[:]) + "\n")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(b.String()))
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	if h.Logger != nil {
		h.Logger.Error("ledger", "err", err)
	}
	if errors.Is(err, ledger.ErrFork) {
		wire.Error(w, http.StatusServiceUnavailable, "LedgerInconsistent", "the stored ledger does not extend its last signed checkpoint; nothing is signed (see the server log)")
		return
	}
	wire.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the ledger is unavailable; retry")
}
