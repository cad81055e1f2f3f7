package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	apimaa "github.com/kura-project/kura/internal/api/maa"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/seal"
)

// operator holds the unseal state of the software root: the share
// configuration written at init, and the shares submitted so far.
type operator struct {
	cfg config.Config
	log *slog.Logger

	mu       sync.Mutex
	shares   []seal.Share
	meta     *unsealMeta
	sealMode string
	closer   io.Closer // the HSM root, closed with the server
	// existing is set when the database already holds data sealed under a
	// root: a missing root is then lost, never replaced by a new one.
	existing bool
}

// errRootMissing refuses to make a new root over sealed data: the data would
// not open under it, and starting anyway would hide the loss.
var errRootMissing = errors.New("the database holds data sealed under a root, but seal/root.sealed is missing from the data directory: restore it (kura creates a root only for an empty database; a new installation whose first start failed can instead be started again from an empty data directory)")

// unsealMeta is written at init beside the sealed root: how many shares,
// the threshold, and a commitment that tells a correct reconstruction from a
// wrong one (the shares alone cannot).
type unsealMeta struct {
	Shares     int    `json:"shares"`
	Threshold  int    `json:"threshold"`
	Commitment []byte `json:"commitment"`
}

func newOperator(cfg config.Config, log *slog.Logger) *operator {
	return &operator{cfg: cfg, log: log}
}

func (o *operator) metaFile() string { return filepath.Join(o.cfg.DataDir, "seal", "unseal.json") }
func (o *operator) rootFile() string { return filepath.Join(o.cfg.DataDir, "seal", "root.sealed") }

func (o *operator) mode() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sealMode
}

// open returns the sealer when the configuration can open the root by itself
// (dev mode, an unseal key file, or an HSM); nil when operators must unseal.
func (o *operator) open(cfg config.Config) (*seal.Sealer, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case cfg.Seal == "pkcs11":
		o.sealMode = "pkcs11"
		pin := cfg.PKCS11PIN
		if cfg.PKCS11PINFile != "" {
			b, err := os.ReadFile(cfg.PKCS11PINFile)
			if err != nil {
				return nil, fmt.Errorf("pkcs11 PIN file: %w", err)
			}
			pin = strings.TrimSpace(string(b))
		}
		root, err := seal.OpenPKCS11Root(seal.PKCS11Config{Module: cfg.PKCS11Module, TokenLabel: cfg.PKCS11Token, PIN: pin, KeyLabel: cfg.PKCS11KeyLabel, NoCreate: o.existing})
		if err != nil {
			return nil, err
		}
		o.closer = root
		return seal.New(root), nil
	case cfg.Dev || cfg.UnsealKeyFile != "":
		o.sealMode = "software (unseal key file)"
		if _, err := os.Stat(o.rootFile()); errors.Is(err, os.ErrNotExist) && o.existing {
			return nil, errRootMissing
		}
		return OpenSeal(cfg, true)
	}
	o.sealMode = "software (Shamir shares)"
	b, err := os.ReadFile(o.metaFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // not initialised yet
	}
	if err != nil {
		return nil, fmt.Errorf("unseal metadata: %w", err)
	}
	var m unsealMeta
	if err := json.Unmarshal(b, &m); err != nil || m.Threshold < 2 || len(m.Commitment) == 0 {
		return nil, fmt.Errorf("unseal metadata %s is corrupt", o.metaFile())
	}
	o.meta = &m
	return nil, nil
}

func (o *operator) initialized() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.meta != nil || o.sealMode != "software (Shamir shares)"
}

type opStatus struct {
	Sealed      bool   `json:"sealed"`
	Initialized bool   `json:"initialized"`
	Seal        string `json:"seal"`
	Shares      int    `json:"shares,omitempty"`
	Threshold   int    `json:"threshold,omitempty"`
	Progress    int    `json:"progress"`
}

func (s *Server) status() opStatus {
	o := s.op
	st := opStatus{Sealed: !s.unsealed.Load(), Initialized: o.initialized(), Seal: o.mode()}
	o.mu.Lock()
	if o.meta != nil {
		st.Shares, st.Threshold, st.Progress = o.meta.Shares, o.meta.Threshold, len(o.shares)
	}
	o.mu.Unlock()
	return st
}

func (s *Server) opStatus(w http.ResponseWriter, r *http.Request) {
	writeJSONStatus(w, http.StatusOK, s.status())
}

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func readSmallJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	const limit = 64 << 10
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		apimaa.Error(w, http.StatusBadRequest, "BadParameter", "reading the body failed")
		return false
	}
	if len(b) > limit {
		apimaa.Error(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", fmt.Sprintf("request body exceeds the limit of %d bytes", limit))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		apimaa.Error(w, http.StatusBadRequest, "BadParameter", "invalid JSON body: "+err.Error())
		return false
	}
	if dec.More() {
		apimaa.Error(w, http.StatusBadRequest, "BadParameter", "invalid JSON body: trailing data after the object")
		return false
	}
	return true
}

// opInit creates the software root on first start: a fresh 256-bit unseal
// key splits into N shares with threshold M; the shares are returned once
// and never stored. The server is unsealed afterwards.
// requireAdmin answers 401 unless the request carries the administrator
// token: whoever reaches a fresh server first must not receive the shares,
// and strangers must not feed shares (resetting the custodians' progress).
func (s *Server) requireAdmin(w http.ResponseWriter, r *http.Request) bool {
	if s.isAdmin(r) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="kura"`)
	apimaa.Error(w, http.StatusUnauthorized, "Unauthorized", "operator init and unseal require the administrator bearer token (--admin-token-file)")
	return false
}

func (s *Server) opInit(w http.ResponseWriter, r *http.Request) {
	if !s.requireAdmin(w, r) {
		return
	}
	var in struct {
		Shares    int `json:"shares"`
		Threshold int `json:"threshold"`
	}
	if !readSmallJSON(w, r, &in) {
		return
	}
	o := s.op
	o.mu.Lock()
	if o.sealMode != "software (Shamir shares)" {
		o.mu.Unlock()
		apimaa.Error(w, http.StatusBadRequest, "BadParameter", "this instance's root is not unsealed with shares ("+o.sealMode+")")
		return
	}
	if o.meta != nil {
		o.mu.Unlock()
		apimaa.Error(w, http.StatusConflict, "AlreadyInitialized", "kura is already initialised; unseal it with `kura operator unseal`")
		return
	}
	if in.Threshold < 2 || in.Shares < in.Threshold || in.Shares > 255 {
		o.mu.Unlock()
		apimaa.Error(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("need 2 <= threshold <= shares <= 255, got threshold %d, shares %d", in.Threshold, in.Shares))
		return
	}
	if o.existing {
		o.mu.Unlock()
		apimaa.Error(w, http.StatusConflict, "AlreadyInitialized", "the database holds data sealed under an earlier root whose seal files are missing; restore seal/root.sealed and seal/unseal.json (kura creates a root only for an empty database; a new installation whose first start failed can instead be started again from an empty data directory)")
		return
	}
	if _, err := os.Stat(o.rootFile()); err == nil {
		o.mu.Unlock()
		apimaa.Error(w, http.StatusConflict, "AlreadyInitialized", "a sealed root already exists in the data directory but its unseal metadata is missing; restore seal/unseal.json")
		return
	}
	key := make([]byte, 32)
	rand.Read(key)
	defer clear(key)
	shares, err := seal.Split(key, in.Shares, in.Threshold)
	if err != nil {
		o.mu.Unlock()
		apimaa.Error(w, http.StatusBadRequest, "BadParameter", err.Error())
		return
	}
	root, err := seal.OpenSoftwareRoot(o.rootFile(), key)
	if err == nil {
		meta := unsealMeta{Shares: in.Shares, Threshold: in.Threshold, Commitment: seal.Commitment(key)}
		var b []byte
		b, err = json.Marshal(meta)
		if err == nil {
			err = seal.WriteNew(o.metaFile(), b)
		}
		if err == nil {
			o.meta = &meta
		} else {
			// Nothing is sealed under the new root yet: remove it so that
			// init can be retried, rather than leaving a root whose shares
			// were never handed out.
			os.Remove(o.metaFile())
			os.Remove(o.rootFile())
		}
	}
	o.mu.Unlock()
	if err != nil {
		s.log.Error("operator init", "err", err)
		apimaa.Error(w, http.StatusInternalServerError, "InternalError", "initialisation failed; see the server log")
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
	if err := s.finish(context.WithoutCancel(r.Context()), seal.New(root)); err != nil {
		s.log.Error("unseal after init", "err", err)
		out.Warning = "initialised, but starting the services failed (see the server log); keep these shares and unseal after fixing it"
	}
	s.log.Info("kura initialised", "shares", in.Shares, "threshold", in.Threshold)
	writeJSONStatus(w, http.StatusOK, out)
}

// opUnseal takes one share. When the threshold is reached the shares are
// combined and checked against the commitment: wrong shares are refused and
// forgotten, so operators start again.
func (s *Server) opUnseal(w http.ResponseWriter, r *http.Request) {
	if !s.requireAdmin(w, r) {
		return
	}
	var in struct {
		Share string `json:"share"`
	}
	if !readSmallJSON(w, r, &in) {
		return
	}
	if s.unsealed.Load() {
		writeJSONStatus(w, http.StatusOK, s.status())
		return
	}
	sh, err := seal.ParseShare(strings.TrimSpace(in.Share))
	if err != nil {
		apimaa.Error(w, http.StatusBadRequest, "BadParameter", "share: "+err.Error())
		return
	}
	o := s.op
	o.mu.Lock()
	if o.meta == nil {
		o.mu.Unlock()
		apimaa.Error(w, http.StatusBadRequest, "BadParameter", "kura is not initialised (or unseals without shares)")
		return
	}
	// Shares of one split all carry the 32-byte unseal key's length; a
	// share of something else is refused now rather than spoiling the set.
	if len(sh.Y) != 32 {
		o.mu.Unlock()
		apimaa.Error(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("share: holds %d bytes, not the 32 of an unseal key share", len(sh.Y)))
		return
	}
	for _, have := range o.shares {
		if have.X == sh.X {
			o.mu.Unlock()
			apimaa.Error(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("share %d was already given", sh.X))
			return
		}
	}
	o.shares = append(o.shares, sh)
	if len(o.shares) < o.meta.Threshold {
		o.mu.Unlock()
		writeJSONStatus(w, http.StatusOK, s.status())
		return
	}
	key, err := seal.Combine(o.shares)
	o.shares = nil
	meta := *o.meta
	o.mu.Unlock()
	if err != nil || !seal.CheckCommitment(key, meta.Commitment) {
		clear(key)
		s.log.Warn("unseal attempt with wrong shares")
		apimaa.Error(w, http.StatusBadRequest, "WrongShares", "the shares do not reconstruct the unseal key (a wrong or mistyped share?); progress is reset, start again")
		return
	}
	if _, err := os.Stat(s.op.rootFile()); err != nil {
		clear(key)
		s.log.Error("unseal: sealed root missing", "err", err)
		apimaa.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the shares are right but the sealed root file is missing from the data directory; restore seal/root.sealed")
		return
	}
	root, err := seal.OpenSoftwareRoot(s.op.rootFile(), key)
	clear(key)
	if err != nil {
		s.log.Error("unseal", "err", err)
		apimaa.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the unseal key is right but the sealed root does not open; see the server log")
		return
	}
	if err := s.finish(context.WithoutCancel(r.Context()), seal.New(root)); err != nil {
		s.log.Error("unseal", "err", err)
		apimaa.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "unsealed, but starting the services failed; see the server log")
		return
	}
	writeJSONStatus(w, http.StatusOK, s.status())
}
