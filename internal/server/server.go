// Package server assembles kura: storage, the sealed root, trust roots,
// verifiers, the token keyring and the HTTP surfaces, behind one HTTPS
// listener with request ids, structured logs, body limits and graceful
// shutdown.
package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/kura-project/kura/internal/api/identity"
	"github.com/kura-project/kura/internal/api/keyvault"
	apimaa "github.com/kura-project/kura/internal/api/maa"
	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/appraisal"
	"github.com/kura-project/kura/internal/attest/tees"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/auth"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/keyrelease"
	"github.com/kura-project/kura/internal/keys"
	"github.com/kura-project/kura/internal/oidc"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/sqlite"
	"github.com/kura-project/kura/internal/token"
)

// Server is an assembled kura instance.
type Server struct {
	mu       sync.Mutex // serialises unsealing
	op       *operator
	current  atomic.Pointer[http.Handler]
	unsealed atomic.Bool
	keys     *keys.Manager
	auth     *auth.Service
	cfg      config.Config
	reg      *attest.Registry
	log      *slog.Logger
	store    store.Store
	keyring  *token.Keyring
	handler  http.Handler
	tlsCert  *tls.Certificate
	adminH   [32]byte // SHA-256 of the admin token; zero: no admin
	now      func() time.Time
	root     rootSealer // set when unsealed; readiness exercises it
	probe    rootProbe
}

// rootProbe runs readiness's round trip through the root at most once a
// second, one at a time, so unauthenticated probes cannot queue HSM work
// behind (or ahead of) key operations.
type rootProbe struct {
	mu       sync.Mutex
	at       time.Time // monotonic: when err was measured; zero: never
	err      error
	inflight chan struct{}
}

const rootProbeEvery = time.Second

// check returns the latest result no older than rootProbeEvery, or starts a
// round trip and waits for it until ctx ends.
func (p *rootProbe) check(ctx context.Context, root rootSealer) error {
	p.mu.Lock()
	if !p.at.IsZero() && time.Since(p.at) < rootProbeEvery {
		err := p.err
		p.mu.Unlock()
		return err
	}
	done := p.inflight
	if done == nil {
		done = make(chan struct{})
		p.inflight = done
		go func() {
			aad := []byte("kura readiness")
			sealed, err := root.Seal([]byte{1}, aad)
			if err == nil {
				_, err = root.Open(sealed, aad)
			}
			p.mu.Lock()
			p.at, p.err, p.inflight = time.Now(), err, nil
			p.mu.Unlock()
			close(done)
		}()
	}
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-ctx.Done():
		return errors.New("the root of trust did not answer in time")
	}
}

// rootSealer is what readiness needs of the root: one seal and open.
type rootSealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Attestation is the verification half of kura, without signing keys: what
// `kura attest verify` needs to re-check evidence offline.
type Attestation struct {
	Store    store.Store
	Policies *appraisal.PolicyStore
	TEEs     map[string]attest.Built // by canonical type
}

// OpenStore opens (creating) the data directory and its database.
func OpenStore(cfg config.Config) (store.Store, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	return sqlite.Open(filepath.Join(cfg.DataDir, "kura.db"))
}

// teeDeps are the shared dependencies the TEE modules are built from.
func teeDeps(cfg config.Config, st attest.CollateralStore, now func() time.Time) attest.Deps {
	return attest.Deps{
		Collateral: st, Now: now, DataDir: cfg.DataDir, Simulator: cfg.Dev || cfg.TrustSimulator,
		TrustRoots: cfg.TrustRoots, Setting: func(k string) string { return cfg.TEE[k] },
	}
}

// OpenAttestation builds every registered TEE's verifier over st with the
// configured trust roots. sealer authenticates stored policies; with nil,
// only default policies can be served.
func OpenAttestation(cfg config.Config, reg *attest.Registry, st store.Store, sealer appraisal.Sealer, now func() time.Time) (*Attestation, error) {
	built, err := reg.Build(teeDeps(cfg, st, now))
	if err != nil {
		return nil, err
	}
	defaults := make(map[string]string, len(built))
	for t, b := range built {
		defaults[t] = b.DefaultPolicy
	}
	return &Attestation{Store: st, Policies: appraisal.NewPolicyStore(st, sealer, now, defaults), TEEs: built}, nil
}

// Import stores a collateral file with the first TEE whose vendor it is.
func (a *Attestation) Import(ctx context.Context, data []byte) (int, error) {
	var errs []error
	for _, t := range slices.Sorted(maps.Keys(a.TEEs)) {
		imp := a.TEEs[t].Import
		if imp == nil {
			continue
		}
		n, err := imp(ctx, data)
		if !errors.Is(err, attest.ErrNotMine) {
			return n, err
		}
		errs = append(errs, fmt.Errorf("%s: %w", t, err))
	}
	if len(errs) == 0 {
		return 0, errors.New("no attestation type of this kura imports collateral")
	}
	return 0, fmt.Errorf("no attestation type takes this file: %w", errors.Join(errs...))
}

// New assembles a server from cfg. now is the clock (time.Now in
// production). When the root cannot be opened yet (software root without an
// unseal key file), the server starts sealed: it answers 503 until operators
// unseal it with their key shares (`kura operator unseal`).
func New(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time) (*Server, error) {
	return NewWithRegistry(ctx, cfg, tees.Registry(), log, now)
}

// NewWithRegistry is New with the TEE modules of reg instead of kura's own
// (tests register fakes).
func NewWithRegistry(ctx context.Context, cfg config.Config, reg *attest.Registry, log *slog.Logger, now func() time.Time) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := OpenStore(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, reg: reg, log: log, store: st, now: now}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if err := s.loadAdmin(cfg); err != nil {
		return nil, err
	}
	if !cfg.Dev {
		c, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		s.tlsCert = &c
	}
	warnLooseSecretFiles(log, cfg.UnsealKeyFile, cfg.AdminTokenFile, cfg.PKCS11PINFile, cfg.TLSKey)
	// Configuration read only when unsealing is checked now, so a sealed
	// server does not wait for its custodians to report a typo.
	if err := preflight(cfg, reg, st, now); err != nil {
		return nil, err
	}
	s.op = newOperator(cfg, log)
	// Token signing keys are made at the first unseal, so their presence
	// means a root has sealed data here before.
	signing, err := st.SigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the store: %w", err)
	}
	s.op.existing = len(signing) > 0
	sealer, err := s.op.open(cfg)
	if err != nil {
		return nil, err
	}
	s.handler = s.middleware(http.HandlerFunc(s.dispatch))
	sealed := s.sealedMux()
	s.current.Store(&sealed)
	if sealer != nil {
		if err := s.finish(ctx, sealer); err != nil {
			return nil, err
		}
	} else {
		log.Warn("kura is sealed: run `kura operator init` (first start) or `kura operator unseal` with the key shares", "initialized", s.op.initialized())
	}
	ok = true
	return s, nil
}

// dispatch serves with the current handler: the sealed one until unsealed.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	(*s.current.Load()).ServeHTTP(w, r)
}

// Unsealed reports whether the root is open.
func (s *Server) Unsealed() bool { return s.unsealed.Load() }

// finish assembles everything that needs the root, then serves it.
func (s *Server) finish(ctx context.Context, sealer *seal.Sealer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unsealed.Load() {
		return nil
	}
	cfg, now, log := s.cfg, s.now, s.log
	s.root = sealer
	at, err := OpenAttestation(cfg, s.reg, s.store, sealer, now)
	if err != nil {
		return err
	}
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = "https://" + cfg.Addr
	}
	alg, err := token.ParseAlg(cfg.TokenAlg)
	if err != nil {
		return err
	}
	if s.keyring, err = token.Open(ctx, token.Config{Issuer: strings.TrimRight(issuer, "/"), Alg: alg, Now: now}, s.store, sealer); err != nil {
		return fmt.Errorf("token keyring: %w", err)
	}
	if cfg.Dev {
		if s.tlsCert, err = devTLS(cfg.DataDir, sealer, now()); err != nil {
			return fmt.Errorf("dev TLS: %w", err)
		}
	}
	signers, err := loadSigners(cfg.PolicySigners)
	if err != nil {
		return err
	}
	s.keys = keys.New(s.store, sealer, keys.Config{Now: now, RecoverableDays: cfg.RecoverableDays})
	ext, err := externalIssuers(cfg)
	if err != nil {
		return err
	}
	s.auth = auth.New(s.store, auth.Config{Now: now, AdminTokenHash: s.adminH, External: ext, Audience: cfg.OIDCAudience})

	svc := appraisal.NewService(at.TEEs, at.Policies, s.keyring, now)
	mux := http.NewServeMux()
	s.common(mux)
	mux.HandleFunc("GET /readyz", s.ready)
	(&apimaa.Handler{
		Service: svc, Keys: s.keyring, Log: log,
		Policies:  &apimaa.PolicyStore{PolicyStore: at.Policies, Signers: signers},
		Authorize: s.isAdministrator,
	}).Register(mux)
	relKeys, err := token.Open(ctx, token.Config{Purpose: "release", Issuer: strings.TrimRight(issuer, "/"), Alg: token.RS256, Now: now}, s.store, sealer)
	if err != nil {
		return fmt.Errorf("release signing key: %w", err)
	}
	authorities, err := releaseAuthorities(cfg, s.keyring, now)
	if err != nil {
		return err
	}
	kv := &keyvault.Handler{Keys: s.keys, Auth: s.auth, Log: log, Resource: cfg.KeyVaultResource}
	kv.Release = kv.ReleaseHandler(&keyvault.Releaser{
		Service: &keyrelease.Service{Keys: s.keys, Verifier: authorities, Audit: audit.Store{St: s.store, Now: now}, Now: now},
		Signer:  relKeys,
	})
	kv.Register(mux)
	mux.HandleFunc("GET /kura/v1/release-keys", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": relKeys.JWKS()})
	})
	(&identity.Handler{Auth: s.auth, Log: log, Now: now}).Register(mux)
	// kura's own administration: rotate the token-signing key. The old key
	// stays published until its last token has expired.
	mux.HandleFunc("POST /kura/v1/token-keys:rotate", func(w http.ResponseWriter, r *http.Request) {
		if !s.isAdministrator(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kura"`)
			apimaa.Error(w, http.StatusUnauthorized, "Unauthorized", "rotating token keys requires an administrator (the admin token or the administrator role)")
			return
		}
		if err := s.keyring.Rotate(r.Context()); err != nil {
			s.log.ErrorContext(r.Context(), "rotate token key", "err", err)
			apimaa.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "rotation failed (request id "+w.Header().Get("x-ms-request-id")+")")
			return
		}
		s.log.InfoContext(r.Context(), "token signing key rotated", "alg", string(s.keyring.Alg()))
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": s.keyring.JWKS()})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apimaa.Error(w, http.StatusNotFound, "NotFound", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	var h http.Handler = mux
	s.current.Store(&h)
	s.unsealed.Store(true)
	log.Info("kura is unsealed", "seal", s.op.mode())
	return nil
}

// common registers the routes served sealed or not.
func (s *Server) common(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /kura/v1/operator/status", s.opStatus)
	mux.HandleFunc("POST /kura/v1/operator/init", s.opInit)
	mux.HandleFunc("POST /kura/v1/operator/unseal", s.opUnseal)
}

// sealedMux answers everything but health and the operator routes with 503.
func (s *Server) sealedMux() http.Handler {
	mux := http.NewServeMux()
	s.common(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		msg := "kura is sealed: an operator must unseal it with `kura operator unseal` and the key shares"
		if !s.op.initialized() {
			msg = "kura is not initialised: run `kura operator init` to create the root key and its unseal shares"
		}
		w.Header().Set("Retry-After", "10")
		apimaa.Error(w, http.StatusServiceUnavailable, "Sealed", msg)
	})
	return mux
}

// preflight loads, and throws away, everything unsealing will take from the
// configuration without the root: trust roots, policy signers, external
// issuers and release authorities, the OIDC CA file and the token algorithm.
func preflight(cfg config.Config, reg *attest.Registry, st store.Store, now func() time.Time) error {
	if _, err := token.ParseAlg(cfg.TokenAlg); err != nil {
		return err
	}
	if err := reg.Preflight(teeDeps(cfg, st, now)); err != nil {
		return err
	}
	if _, err := loadSigners(cfg.PolicySigners); err != nil {
		return err
	}
	if _, err := externalIssuers(cfg); err != nil {
		return err
	}
	if _, err := discovery(cfg); err != nil {
		return err
	}
	return checkAuthorities(cfg)
}

// checkAuthorities refuses release authorities that are not https URLs.
func checkAuthorities(cfg config.Config) error {
	for _, a := range cfg.ReleaseAuthorities {
		if !strings.HasPrefix(a, "https://") {
			return fmt.Errorf("release authority %q must be an https URL", a)
		}
	}
	return nil
}

// warnLooseSecretFiles warns about secret files that other users of the
// host may read. It does not refuse them: mounted secrets (Kubernetes
// volumes, for one) are often 0644 inside a private mount, and only the
// operator knows whether that is the case.
func warnLooseSecretFiles(log *slog.Logger, files ...string) {
	for _, f := range files {
		if f == "" {
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			continue // reading it reports the problem
		}
		if st.Mode().Perm()&0o077 != 0 {
			log.Warn("a secret file is readable or writable by group or others; chmod 600 it unless its mount is private",
				"file", f, "mode", fmt.Sprintf("%#o", st.Mode().Perm()))
		}
	}
}

// OpenSeal opens the software root of cfg.DataDir with the configured unseal
// key (dev mode: its own key file). With create false it never makes a new
// root or key: tools that only read use it.
func OpenSeal(cfg config.Config, create bool) (*seal.Sealer, error) {
	keyFile := cfg.UnsealKeyFile
	rootFile := filepath.Join(cfg.DataDir, "seal", "root.sealed")
	if cfg.Dev && keyFile == "" {
		keyFile = filepath.Join(cfg.DataDir, "dev", "unseal.key")
		if create {
			if _, err := seal.LoadOrCreateKeyFile(keyFile); err != nil {
				return nil, fmt.Errorf("dev unseal key: %w", err)
			}
		}
	}
	if keyFile == "" {
		return nil, errors.New("no unseal key configured")
	}
	if !create {
		if _, err := os.Stat(rootFile); err != nil {
			return nil, fmt.Errorf("sealed root: %w", err)
		}
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("unseal key: %w", err)
	}
	defer clear(key)
	root, err := seal.OpenSoftwareRoot(rootFile, key)
	if err != nil {
		return nil, err
	}
	return seal.New(root), nil
}

// loadAdmin sets up the administrator bearer token. Dev mode writes a fresh
// random token to DATA/dev/admin-token (mode 0600) if there is none; only its
// SHA-256 is kept in memory.
func (s *Server) loadAdmin(cfg config.Config) error {
	file := cfg.AdminTokenFile
	if cfg.Dev && file == "" {
		file = filepath.Join(cfg.DataDir, "dev", "admin-token")
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			var b [32]byte
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(file, []byte(base64.RawURLEncoding.EncodeToString(b[:])+"\n"), 0o600); err != nil {
				return fmt.Errorf("write admin token: %w", err)
			}
		}
	}
	if file == "" {
		s.log.Warn("no administrator token configured (--admin-token-file): policy management is disabled")
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return fmt.Errorf("admin token in %s is shorter than 16 characters", file)
	}
	s.adminH = sha256.Sum256([]byte(tok))
	return nil
}

// isAdministrator accepts the bootstrap admin token or any principal with
// the administrator role (auth.Authenticate compares in constant time).
// Only for routes served once unsealed, when principals can be read.
func (s *Server) isAdministrator(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || s.auth == nil {
		return false
	}
	p, err := s.auth.Authenticate(r.Context(), strings.TrimSpace(tok))
	return err == nil && p.Can(auth.Admin, "")
}

// isAdmin compares the bearer token's hash in constant time.
func (s *Server) isAdmin(r *http.Request) bool {
	if s.adminH == ([32]byte{}) {
		return false
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(h[:], s.adminH[:]) == 1
}

func loadSigners(files []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("policy signer: %w", err)
		}
		cs, err := attest.ParseCertificates(b, nil, 0, "")
		if err != nil {
			return nil, fmt.Errorf("policy signer %s: %w", f, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.ErrorContext(r.Context(), "readiness: store", "err", err)
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	// Every key operation needs the root (with PKCS#11, the HSM and its
	// session): a round trip through it tells a load balancer the truth.
	if err := s.probe.check(ctx, s.root); err != nil {
		s.log.ErrorContext(r.Context(), "readiness: root", "err", err)
		http.Error(w, "root of trust unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ready\n"))
}

// Handler returns the HTTP handler (for in-process tests and benchmarks).
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig returns the server's TLS configuration.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{*s.tlsCert}, MinVersion: tls.VersionTLS12}
}

// Keyring returns the token keyring.
func (s *Server) Keyring() *token.Keyring { return s.keyring }

// Close releases the store and the HSM session.
func (s *Server) Close() error {
	err := s.store.Close()
	if s.op != nil {
		s.op.mu.Lock()
		c := s.op.closer
		s.op.closer = nil
		s.op.mu.Unlock()
		if c != nil {
			err = errors.Join(err, c.Close())
		}
	}
	return err
}

// Serve listens on cfg.Addr until ctx is done, then shuts down gracefully,
// letting requests in flight finish for up to 10 seconds. ready, if not
// nil, receives the bound address once listening.
func (s *Server) Serve(ctx context.Context, ready func(addr net.Addr)) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if ready != nil {
		ready(ln.Addr())
	}
	s.log.Info("kura listening", "addr", ln.Addr().String(), "dev", s.cfg.Dev, "sealed", !s.unsealed.Load())
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	go s.every(ctx, time.Minute, s.refreshKeys)
	go s.every(ctx, time.Minute, s.maintain)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	return nil
}

// every runs f each interval until ctx ends, skipping while sealed.
func (s *Server) every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.unsealed.Load() {
				f(ctx)
			}
		}
	}
}

// refreshKeys reloads the token keys so that rotations made by other nodes
// on the same database reach this node's JWKS.
func (s *Server) refreshKeys(ctx context.Context) {
	if err := s.keyring.Refresh(ctx); err != nil {
		s.log.Error("reload token signing keys", "err", err)
	}
}

// maintain runs the key manager's background duties (purging keys past
// their retention, rotating keys by policy) and sweeps expired access tokens.
func (s *Server) maintain(ctx context.Context) {
	if err := s.keys.Maintain(ctx, s.log); err != nil {
		s.log.Error("key maintenance", "err", err)
	}
	if err := s.auth.Sweep(ctx); err != nil {
		s.log.Error("sweep access tokens", "err", err)
	}
}

// externalIssuers builds the verifier of bearer tokens from external OIDC
// issuers (Keycloak, Entra ID, ...), if any are configured.
func externalIssuers(cfg config.Config) (*oidc.Verifier, error) {
	if len(cfg.OIDCIssuers) == 0 {
		return nil, nil
	}
	disc, err := discovery(cfg)
	if err != nil {
		return nil, err
	}
	v := &oidc.Verifier{Sources: map[string]oidc.KeySource{}}
	for _, iss := range cfg.OIDCIssuers {
		if !strings.HasPrefix(iss, "https://") {
			return nil, fmt.Errorf("oidc issuer %q must be an https URL", iss)
		}
		v.Sources[oidc.NormalizeIssuer(iss)] = disc
	}
	return v, nil
}

// releaseAuthorities is the verifier of attestation tokens presented to
// secure key release: kura's own attestation service (its keys read
// directly, no HTTP round trip) and the configured external authorities
// (MAA instances, other kura deployments) through OIDC discovery.
func releaseAuthorities(cfg config.Config, own *token.Keyring, now func() time.Time) (*oidc.Verifier, error) {
	v := &oidc.Verifier{Sources: map[string]oidc.KeySource{}, Now: now}
	v.Sources[oidc.NormalizeIssuer(own.Issuer())] = &oidc.Loaded{Now: now, Load: func() *jose.JSONWebKeySet {
		b, _ := json.Marshal(map[string]any{"keys": own.JWKS()})
		var set jose.JSONWebKeySet
		json.Unmarshal(b, &set)
		return &set
	}}
	disc, err := discovery(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkAuthorities(cfg); err != nil {
		return nil, err
	}
	for _, a := range cfg.ReleaseAuthorities {
		v.Sources[oidc.NormalizeIssuer(a)] = disc
	}
	return v, nil
}

// discovery is the OIDC discovery client, trusting cfg.OIDCCAFile besides
// the system roots.
func discovery(cfg config.Config) (*oidc.Discovery, error) {
	d := &oidc.Discovery{}
	if cfg.OIDCCAFile == "" {
		return d, nil
	}
	b, err := os.ReadFile(cfg.OIDCCAFile)
	if err != nil {
		return nil, fmt.Errorf("oidc_ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("oidc_ca_file %s holds no PEM certificate", cfg.OIDCCAFile)
	}
	d.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return d, nil
}

// Keys returns the key manager.
func (s *Server) Keys() *keys.Manager { return s.keys }

// Auth returns the identity service.
func (s *Server) Auth() *auth.Service { return s.auth }

type ctxKey int

const requestIDKey ctxKey = 0

// statusWriter records the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// middleware adds a request id (echoed as x-ms-request-id), the body limit,
// panic containment and one access-log line per request. Only the method,
// path, status, size class and duration are logged: never bodies or headers,
// which carry evidence, tokens and keys.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var idb [8]byte
		rand.Read(idb[:])
		id := hex.EncodeToString(idb[:])
		w.Header().Set("x-ms-request-id", id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("handler panic", "request_id", id, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					apimaa.Error(sw, http.StatusInternalServerError, "InternalError", "internal error (request id "+id+")")
				}
			}
			s.log.Info("request", "request_id", id, "method", r.Method, "path", r.URL.Path,
				"status", sw.status, "duration_ms", float64(time.Since(start).Microseconds())/1000)
		}()
		next.ServeHTTP(sw, r)
	})
}
