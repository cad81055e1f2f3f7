// Package operator is the HTTP surface of the root's custody: status, the
// first-start init that hands out unseal shares, unsealing with them,
// sealing again, and rekeying to new shares (`kura operator
// status|init|unseal|seal|rekey` call it). It is served sealed or not.
package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/kura-project/kura/internal/api/wire"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/seal"
)

// Custody is what the surface needs of the root's custody (*seal.Custody).
type Custody interface {
	Status() seal.Status
	Init(shares, threshold int) ([]seal.Share, *seal.Sealer, error)
	Unseal(seal.Share) (*seal.Sealer, error)
	RekeyInit(shares, threshold int) (*seal.Rekey, error)
	RekeyShare(seal.Share) ([]seal.Share, bool, error)
	RekeyCancel() error
}

// Handler serves /kura/v1/operator/*.
type Handler struct {
	Custody Custody
	// Sealed reports whether the services still wait for the root.
	Sealed func() bool
	// Admin reports whether the request carries the bootstrap administrator
	// token: whoever reaches a fresh server first must not receive the
	// shares, and strangers must not feed shares (resetting the
	// custodians' progress).
	Admin func(*http.Request) bool
	// Start starts the services once the root is open.
	Start func(context.Context, *seal.Sealer) error
	// Seal stops the services and wipes the root key from memory.
	Seal func() error
	Log  *slog.Logger
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /kura/v1/operator/status", h.status)
	mux.HandleFunc("POST /kura/v1/operator/init", h.init)
	mux.HandleFunc("POST /kura/v1/operator/unseal", h.unseal)
	mux.HandleFunc("POST /kura/v1/operator/seal", h.seal)
	mux.HandleFunc("POST /kura/v1/operator/rekey/init", h.rekeyInit)
	mux.HandleFunc("POST /kura/v1/operator/rekey", h.rekeyShare)
	mux.HandleFunc("DELETE /kura/v1/operator/rekey", h.rekeyCancel)
}

// Status is the body of GET /kura/v1/operator/status and of unseal's
// answers.
type Status struct {
	Sealed      bool   `json:"sealed"`
	Initialized bool   `json:"initialized"`
	Seal        string `json:"seal"`
	Shares      int    `json:"shares,omitempty"`
	Threshold   int    `json:"threshold,omitempty"`
	Progress    int    `json:"progress"`
	Rekey       *Rekey `json:"rekey,omitempty"`
}

// Rekey is a rekey in progress: the new split, and the shares given toward
// the current step (step 1: current shares; step 2, verifying: new ones).
type Rekey struct {
	Shares    int  `json:"shares"`
	Threshold int  `json:"threshold"`
	Progress  int  `json:"progress"`
	Verifying bool `json:"verifying"`
}

func (h *Handler) state() Status {
	st := h.Custody.Status()
	out := Status{Sealed: h.Sealed(), Initialized: st.Initialized, Seal: st.Mode.String(),
		Shares: st.Shares, Threshold: st.Threshold, Progress: st.Progress}
	if r := st.Rekey; r != nil {
		out.Rekey = &Rekey{Shares: r.Shares, Threshold: r.Threshold, Progress: r.Progress, Verifying: r.Verifying}
	}
	return out
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) { answer(w, h.state()) }

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Cache-Control", "no-store")
	wire.JSON(w, http.StatusOK, v)
}

func (h *Handler) requireAdmin(w http.ResponseWriter, r *http.Request) bool {
	if h.Admin(r) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="kura"`)
	wire.Error(w, http.StatusUnauthorized, "Unauthorized", "operator init, unseal, seal and rekey require the administrator bearer token (--admin-token-file)")
	return false
}

// fail answers a custody error; causes go to the log only.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	e, ok := fault.As(err)
	if !ok || e.Kind == fault.Internal {
		h.Log.ErrorContext(r.Context(), what, "err", err)
		wire.Error(w, http.StatusInternalServerError, "InternalError", what+" failed; see the server log (request id "+wire.RequestID(w)+")")
		return
	}
	if e.Kind == fault.Unavailable {
		h.Log.ErrorContext(r.Context(), what, "err", err)
	}
	code := e.Code
	if code == "" {
		code = map[fault.Kind]string{fault.BadInput: "BadParameter", fault.Conflict: "Conflict", fault.Unavailable: "ServiceUnavailable"}[e.Kind]
	}
	wire.Error(w, wire.Status(e.Kind), code, e.Public())
}

// init creates the software root on first start and answers its shares;
// the services start afterwards.
func (h *Handler) init(w http.ResponseWriter, r *http.Request) {
	if !h.requireAdmin(w, r) {
		return
	}
	var in struct {
		Shares    int `json:"shares"`
		Threshold int `json:"threshold"`
	}
	if !readSmallJSON(w, r, &in) {
		return
	}
	shares, sealer, err := h.Custody.Init(in.Shares, in.Threshold)
	if err != nil {
		h.fail(w, r, "initialisation", err)
		return
	}
	// The root exists now: the shares are the only way back into it, so
	// they are answered whatever happens next, and starting the services
	// does not depend on the client staying connected.
	out := struct {
		Shares    []string `json:"shares"`
		Threshold int      `json:"threshold"`
		Warning   string   `json:"warning,omitempty"`
	}{Threshold: in.Threshold}
	for _, sh := range shares {
		out.Shares = append(out.Shares, sh.String())
	}
	if err := h.Start(context.WithoutCancel(r.Context()), sealer); err != nil {
		h.Log.Error("unseal after init", "err", err)
		out.Warning = "initialised, but starting the services failed (see the server log); keep these shares and unseal after fixing it"
	}
	h.Log.Info("kura initialised", "shares", in.Shares, "threshold", in.Threshold)
	answer(w, out)
}

// unseal takes one share; at the threshold the root opens and the services
// start.
func (h *Handler) unseal(w http.ResponseWriter, r *http.Request) {
	if !h.requireAdmin(w, r) {
		return
	}
	sh, ok := readShare(w, r)
	if !ok {
		return
	}
	if !h.Sealed() {
		answer(w, h.state())
		return
	}
	sealer, err := h.Custody.Unseal(sh)
	if err != nil {
		h.failShare(w, r, "unseal", err)
		return
	}
	if sealer != nil {
		if err := h.Start(context.WithoutCancel(r.Context()), sealer); err != nil {
			h.Log.Error("unseal", "err", err)
			wire.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "unsealed, but starting the services failed; see the server log")
			return
		}
	}
	answer(w, h.state())
}

// readShare reads the body {"share": "..."} of unseal and rekey.
func readShare(w http.ResponseWriter, r *http.Request) (seal.Share, bool) {
	var in struct {
		Share string `json:"share"`
	}
	if !readSmallJSON(w, r, &in) {
		return seal.Share{}, false
	}
	sh, err := seal.ParseShare(strings.TrimSpace(in.Share))
	if err != nil {
		wire.Error(w, http.StatusBadRequest, "BadParameter", "share: "+err.Error())
		return seal.Share{}, false
	}
	return sh, true
}

// failShare answers a custody error of a share, logging wrong shares.
func (h *Handler) failShare(w http.ResponseWriter, r *http.Request, what string, err error) {
	if e, ok := fault.As(err); ok && e.Code == "WrongShares" {
		h.Log.Warn(what + " attempt with wrong shares")
	}
	h.fail(w, r, what, err)
}

// readSmallJSON decodes a small, strict JSON object: these bodies are
// kura's own, so unknown members are typos and refused.
func readSmallJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	const limit = 64 << 10
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		wire.Error(w, http.StatusBadRequest, "BadParameter", "reading the body failed")
		return false
	}
	if len(b) > limit {
		wire.Error(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", fmt.Sprintf("request body exceeds the limit of %d bytes", limit))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		wire.Error(w, http.StatusBadRequest, "BadParameter", "invalid JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		wire.Error(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("invalid JSON body: trailing data after the object (at byte %d)", dec.InputOffset()))
		return false
	}
	return true
}

// seal stops the services and wipes the root key from memory: kura answers
// 503 until operators unseal it again.
func (h *Handler) seal(w http.ResponseWriter, r *http.Request) {
	if !h.requireAdmin(w, r) {
		return
	}
	if err := h.Seal(); err != nil {
		h.fail(w, r, "seal", err)
		return
	}
	h.Log.Warn("kura sealed by an operator")
	answer(w, h.state())
}

// rekeyInit begins a rekey to a new split of a new unseal key.
func (h *Handler) rekeyInit(w http.ResponseWriter, r *http.Request) {
	if !h.requireAdmin(w, r) {
		return
	}
	var in struct {
		Shares    int `json:"shares"`
		Threshold int `json:"threshold"`
	}
	if !readSmallJSON(w, r, &in) {
		return
	}
	if _, err := h.Custody.RekeyInit(in.Shares, in.Threshold); err != nil {
		h.fail(w, r, "rekey", err)
		return
	}
	h.Log.Info("rekey started", "shares", in.Shares, "threshold", in.Threshold)
	answer(w, h.state())
}

// rekeyShare takes one share of the current step. When the current shares
// reach their threshold the answer carries the new shares, once; when the
// new shares reach theirs, the old ones stop working.
func (h *Handler) rekeyShare(w http.ResponseWriter, r *http.Request) {
	if !h.requireAdmin(w, r) {
		return
	}
	sh, ok := readShare(w, r)
	if !ok {
		return
	}
	fresh, done, err := h.Custody.RekeyShare(sh)
	if err != nil {
		h.failShare(w, r, "rekey", err)
		return
	}
	out := struct {
		Status
		NewShares []string `json:"new_shares,omitempty"`
		Done      bool     `json:"done"`
	}{Status: h.state(), Done: done}
	for _, s := range fresh {
		out.NewShares = append(out.NewShares, s.String())
	}
	switch {
	case len(fresh) > 0:
		h.Log.Info("rekey: new shares issued; awaiting their verification")
	case done:
		h.Log.Warn("rekey done: the previous unseal shares no longer open the root")
	}
	answer(w, out)
}

func (h *Handler) rekeyCancel(w http.ResponseWriter, r *http.Request) {
	if !h.requireAdmin(w, r) {
		return
	}
	if err := h.Custody.RekeyCancel(); err != nil {
		h.fail(w, r, "rekey cancel", err)
		return
	}
	h.Log.Info("rekey cancelled")
	answer(w, h.state())
}
