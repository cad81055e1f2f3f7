// Package server serves kura: one HTTPS listener with request ids,
// structured logs, body limits and graceful shutdown; the routes of each
// surface; readiness; and the switch from sealed to unsealed. internal/app
// builds what it serves.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kura-project/kura/internal/api/identity"
	"github.com/kura-project/kura/internal/api/keyvault"
	apiledger "github.com/kura-project/kura/internal/api/ledger"
	apimaa "github.com/kura-project/kura/internal/api/maa"
	"github.com/kura-project/kura/internal/api/operator"
	"github.com/kura-project/kura/internal/api/pccs"
	"github.com/kura-project/kura/internal/api/wire"
	"github.com/kura-project/kura/internal/app"
	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/attest/tees"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/auth"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/keys"
	"github.com/kura-project/kura/internal/ledger"
	"github.com/kura-project/kura/internal/metrics"
	"github.com/kura-project/kura/internal/ratelimit"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/token"
)

// Server is a served kura instance.
type Server struct {
	mu       sync.Mutex // serialises unsealing
	app      *app.App
	svc      atomic.Pointer[app.Services] // set once unsealed
	current  atomic.Pointer[http.Handler]
	unsealed atomic.Bool
	cfg      config.Config
	log      *slog.Logger
	handler  http.Handler
	tlsCert  *tls.Certificate
	now      func() time.Time
	probe    rootProbe
	metrics  *metrics.Metrics
	// limits bound the unauthenticated, costly routes; nil: not limited.
	attestLimit, tokenLimit *ratelimit.Limiter
	// metricsAddr is the --metrics-addr listener's address once serving.
	metricsAddr atomic.Value
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
	a, sealer, err := app.Open(ctx, cfg, reg, log, now)
	if err != nil {
		return nil, err
	}
	s := &Server{app: a, cfg: cfg, log: log, now: now, metrics: metrics.New()}
	a.Metrics = s.metrics
	if o, ok := a.Store.(interface {
		Observe(func(op string, d time.Duration, err error))
	}); ok {
		o.Observe(s.metrics.StoreOp)
	}
	s.metrics.Sealed(func() bool { return !s.unsealed.Load() })
	if cfg.RateLimited() {
		s.attestLimit = ratelimit.New(cfg.AttestRate.PerClient, cfg.AttestRate.Global, now)
		s.tokenLimit = ratelimit.New(cfg.TokenRate.PerClient, cfg.TokenRate.Global, now)
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if !cfg.Dev {
		c, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		s.tlsCert = &c
		if cfg.ReleaseCACert != "" {
			iss, err := releaseIssuer(cfg.ReleaseCACert, cfg.ReleaseCAKey, &c)
			if err != nil {
				return nil, err
			}
			a.ReleaseCertify = iss.certify
		} else {
			log.Warn("release answers are signed with a self-signed certificate: SKR clients that check its chain and host name refuse it; and ledger receipts verify only against their own node certificate; set release_ca_cert and release_ca_key")
		}
	}
	s.handler = s.middleware(http.HandlerFunc(s.dispatch))
	sealed := s.sealedMux()
	s.current.Store(&sealed)
	if sealer != nil {
		if err := s.finish(ctx, sealer); err != nil {
			return nil, err
		}
	} else {
		log.Warn("kura is sealed: run `kura operator init` (first start) or `kura operator unseal` with the key shares", "initialized", a.Custody.Status().Initialized)
	}
	ok = true
	return s, nil
}

// dispatch serves with the current handler: the sealed one until unsealed.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	(*s.current.Load()).ServeHTTP(w, r)
}

// MetricsAddr is the address of the --metrics-addr listener once Serve
// has opened it ("" otherwise).
func (s *Server) MetricsAddr() string {
	a, _ := s.metricsAddr.Load().(string)
	return a
}

// Unsealed reports whether the root is open.
func (s *Server) Unsealed() bool { return s.unsealed.Load() }

// seal stops serving the services and wipes the root key from memory;
// requests in flight finish first (or fail with the root sealed). Only a
// root unsealed with shares can be sealed: one that opens itself (a key
// file, an HSM) would be open again at the next start.
func (s *Server) seal() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.unsealed.Load() {
		return nil
	}
	if m := s.app.Custody.Mode(); m != seal.ModeShares {
		return fault.Bad("", "this root unseals itself (%s); sealing it would last only until the next start: stop kura instead", m)
	}
	sealed := s.sealedMux()
	s.current.Store(&sealed)
	s.unsealed.Store(false)
	svc := s.svc.Swap(nil)
	if svc != nil {
		// Nothing the sealed services opened stays reachable from here:
		// the gauges let go of them, the key manager's opened material is
		// dropped, and the root key is wiped.
		s.metrics.Bind(metrics.Sources{})
		svc.Sealer.Forget() // first: nothing can be opened and cached again after the cache is dropped
		svc.Keys.Forget()
	}
	return nil
}

// finish builds the services over the open root, then serves them.
func (s *Server) finish(ctx context.Context, sealer *seal.Sealer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unsealed.Load() {
		return nil
	}
	if s.cfg.Dev {
		cert, iss, err := devTLS(s.cfg.DataDir, sealer, s.now())
		if err != nil {
			return fmt.Errorf("dev TLS: %w", err)
		}
		s.tlsCert, s.app.ReleaseCertify = cert, iss.certify
		// A certificate of the operator's own serves TLS in dev mode too
		// (release answers stay certified by the dev CA).
		if s.cfg.TLSCert != "" {
			c, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
			if err != nil {
				return fmt.Errorf("TLS: %w", err)
			}
			s.tlsCert = &c
			s.log.Warn("dev mode serves TLS with the configured certificate: it trusts the simulated TEEs and is still no production server", "tls_cert", s.cfg.TLSCert)
		}
	}
	svc, err := s.app.Start(ctx, sealer)
	if err != nil {
		return err
	}
	log := s.log
	mux := http.NewServeMux()
	s.common(mux)
	mux.HandleFunc("GET /readyz", s.ready)
	// Intel collateral for guests, over the PCCS v4 shape, from whichever
	// TEE modules hold it (the first of each TEE, in type order).
	// A module that imports its TEE's collateral comes first: its
	// appraiser's memory is the one an import refreshes at once.
	pc := &pccs.Handler{Sources: map[string]pccs.Source{}, Now: s.now}
	importer := map[string]bool{}
	for _, t := range slices.Sorted(maps.Keys(svc.Attestation.TEEs)) {
		b := svc.Attestation.TEEs[t]
		if src, ok := b.Verifier.(intel.CollateralSource); ok {
			tee, a := src.IntelCollateral()
			if pc.Sources[tee] == nil || b.Import != nil && !importer[tee] {
				pc.Sources[tee], importer[tee] = a, b.Import != nil
			}
		}
	}
	pc.Register(mux)
	(&apimaa.Handler{
		Service: svc.Appraisal, Keys: svc.Keyring, Log: log, Now: s.now,
		Policies:  &apimaa.PolicyStore{PolicyStore: svc.Attestation.Policies, Signers: svc.Signers},
		Authorize: s.administrator,
	}).Register(mux)
	kv := &keyvault.Handler{Keys: svc.Keys, Auth: svc.Auth, Log: log, Resource: s.cfg.KeyVaultResource}
	kv.Release = kv.ReleaseHandler(&keyvault.Releaser{Service: svc.Release})
	kv.Register(mux)
	mux.HandleFunc("GET /kura/v1/release-keys", func(w http.ResponseWriter, r *http.Request) {
		wire.JSON(w, http.StatusOK, wire.JWKS(svc.ReleaseKeys.Published()))
	})
	(&identity.Handler{Auth: svc.Auth, Log: log, Now: s.now}).Register(mux)
	(&apiledger.Handler{Log: svc.Ledger, Origin: svc.LedgerKey.Verifier.Name(), VerifierKey: svc.LedgerKey.VerifierKey,
		Authorize: s.auditor, Principal: s.principal, Logger: log}).Register(mux)
	(&apiledger.ACL{Log: svc.Ledger, Auth: svc.Auth, Logger: log, Identity: s.ledgerIdentity(svc.LedgerACL)}).Register(mux)
	// kura's own administration: rotate the token-signing key. The old key
	// stays published until its last token has expired.
	mux.HandleFunc("POST /kura/v1/token-keys:rotate", func(w http.ResponseWriter, r *http.Request) {
		actor, err := s.administrator(r)
		if err != nil {
			refuseAdmin(w, err, "rotating token keys")
			return
		}
		if err := svc.Keyring.Rotate(audit.WithActor(r.Context(), actor)); err != nil {
			s.log.ErrorContext(r.Context(), "rotate token key", "err", err)
			msg := "rotation failed"
			if e, ok := fault.As(err); ok {
				msg = e.Public()
			}
			wire.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", msg+" (request id "+wire.RequestID(w)+")")
			return
		}
		s.log.InfoContext(r.Context(), "token signing key rotated", "alg", string(svc.Keyring.Alg()))
		wire.JSON(w, http.StatusOK, wire.JWKS(svc.Keyring.Published()))
	})
	// Collateral import through the API (administrator): the files an
	// operator would give `kura collateral import` offline, one per request.
	mux.HandleFunc("POST /kura/v1/collateral", func(w http.ResponseWriter, r *http.Request) {
		actor, err := s.administrator(r)
		if err != nil {
			refuseAdmin(w, err, "importing collateral")
			return
		}
		data, err := io.ReadAll(r.Body)
		if err != nil {
			wire.Error(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", "reading the body failed (over max_body_bytes?)")
			return
		}
		if len(data) == 0 {
			wire.Error(w, http.StatusBadRequest, "BadParameter", "the body is empty: send one collateral file (PEM or DER)")
			return
		}
		n, err := svc.Attestation.Import(r.Context(), data)
		if err != nil {
			if fault.Of(err) == fault.Unavailable {
				s.log.ErrorContext(r.Context(), "collateral import", "err", err)
				wire.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "storing the collateral failed (request id "+wire.RequestID(w)+")")
				return
			}
			wire.Error(w, http.StatusBadRequest, "BadParameter", err.Error())
			return
		}
		s.log.InfoContext(r.Context(), "collateral imported", "principal", actor, "items", n)
		wire.JSON(w, http.StatusOK, map[string]int{"imported": n})
	})
	mux.HandleFunc("/", notFound)
	var h http.Handler = mux
	s.svc.Store(svc)
	s.current.Store(&h)
	s.unsealed.Store(true)
	log.Info("kura is unsealed", "seal", s.app.Custody.Mode().String())
	return nil
}

// common registers the routes served sealed or not.
func (s *Server) common(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	(&operator.Handler{
		Custody: s.app.Custody,
		Sealed:  func() bool { return !s.unsealed.Load() },
		Admin: func(r *http.Request) bool {
			tok, ok := wire.Bearer(r)
			if ok && s.app.AdminToken(tok) {
				wire.NotePrincipal(r.Context(), "admin")
				return true
			}
			return false
		},
		Start: s.finish,
		Seal:  s.seal,
		Log:   s.log,
	}).Register(mux)
}

// sealedMux answers everything but health and the operator routes with 503,
// in the error shape of the surface asked.
func (s *Server) sealedMux() http.Handler {
	mux := http.NewServeMux()
	s.common(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		msg := "kura is sealed: an operator must unseal it with `kura operator unseal` and the key shares"
		if !s.app.Custody.Status().Initialized {
			msg = "kura is not initialised: run `kura operator init` to create the root key and its unseal shares"
		}
		w.Header().Set("Retry-After", "10")
		if keyvault.IsPath(r.URL.Path) {
			keyvault.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", msg)
			return
		}
		apimaa.Error(w, http.StatusServiceUnavailable, "Sealed", msg)
	})
	return mux
}

// notFound answers a route kura does not serve, in the error shape of the
// surface the path belongs to.
func notFound(w http.ResponseWriter, r *http.Request) {
	msg := fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)
	if keyvault.IsPath(r.URL.Path) {
		keyvault.Error(w, http.StatusNotFound, "NotFound", msg)
		return
	}
	apimaa.Error(w, http.StatusNotFound, "NotFound", msg)
}

// administrator accepts the bootstrap admin token or any principal with
// the administrator role (auth.Authenticate compares in constant time) and
// names the administrator for the audit log. A valid token of a principal
// without the role is a fault.Denied error (403); anything else is
// unauthenticated (401). Only for routes served once unsealed.
func (s *Server) administrator(r *http.Request) (string, error) {
	p, err := s.authenticate(r)
	if err != nil {
		return "", err
	}
	if !p.Can(auth.Admin, "") {
		return "", fault.Deny(fmt.Sprintf("principal %q is not an administrator", p.Name))
	}
	return p.Name, nil
}

// ledgerIdentity is the certificate ACL clients pin as the ledger's TLS
// CA: the end of the ACL node certificate's chain when kura holds the CA
// (--dev, release_ca_cert), else the last certificate of the TLS chain
// (receipts then verify against their own node certificate only).
func (s *Server) ledgerIdentity(k *ledger.ACLKey) func() (string, error) {
	return func() (string, error) {
		var der []byte
		if s.app.ReleaseCertify != nil {
			chain, err := k.Chain()
			if err != nil {
				return "", err
			}
			der = chain[len(chain)-1].Raw
		} else {
			c := s.tlsCert
			if c == nil || len(c.Certificate) == 0 {
				return "", errors.New("no TLS certificate")
			}
			der = c.Certificate[len(c.Certificate)-1]
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
	}
}

// serveMetrics serves the Prometheus metrics on the main listener to the
// admin token or a principal with the auditor or administrator role over
// all keys (--metrics-addr serves them without authentication).
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	tok, ok := wire.Bearer(r)
	svc := s.svc.Load()
	switch {
	case ok && s.app.AdminToken(tok):
		wire.NotePrincipal(r.Context(), "admin")
	case ok && svc != nil:
		p, err := svc.Auth.Authenticate(r.Context(), tok)
		if err != nil {
			refuseMetrics(w, err)
			return
		}
		wire.NotePrincipal(r.Context(), p.Name)
		if !p.Can(auth.Admin, "") && !hasRole(p, auth.Auditor) {
			wire.Error(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("principal %q may not read metrics: the auditor or administrator role over \"/\" is required", p.Name))
			return
		}
	case ok:
		// Sealed: no principal can be authenticated without the root.
		w.Header().Set("Retry-After", "10")
		wire.Error(w, http.StatusServiceUnavailable, "Sealed", "kura is sealed: while sealed, metrics are served to the admin token, and on --metrics-addr")
		return
	default:
		refuseMetrics(w, auth.ErrUnauthenticated)
		return
	}
	s.metrics.Handler().ServeHTTP(w, r)
}

// auditor admits the admin token or a principal with the auditor or
// administrator role over "/" (fault.Denied for other principals).
func (s *Server) auditor(r *http.Request) error {
	tok, ok := wire.Bearer(r)
	if ok && s.app.AdminToken(tok) {
		wire.NotePrincipal(r.Context(), "admin")
		return nil
	}
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	if !p.Can(auth.Admin, "") && !hasRole(p, auth.Auditor) {
		return fault.Deny(fmt.Sprintf("principal %q is neither an auditor nor an administrator", p.Name))
	}
	return nil
}

// principal names the principal the request's bearer token
// authenticates, whatever its roles.
func (s *Server) principal(r *http.Request) (string, error) {
	p, err := s.authenticate(r)
	if err != nil {
		return "", err
	}
	return p.ID, nil
}

// authenticate is the principal of the request's bearer token (noted for
// the access log), or auth.ErrUnauthenticated.
func (s *Server) authenticate(r *http.Request) (*auth.Principal, error) {
	tok, ok := wire.Bearer(r)
	svc := s.svc.Load()
	if !ok || svc == nil {
		return nil, auth.ErrUnauthenticated
	}
	p, err := svc.Auth.Authenticate(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	wire.NotePrincipal(r.Context(), p.Name)
	return p, nil
}

func hasRole(p *auth.Principal, role string) bool {
	for _, a := range p.Roles {
		if a.Role == role && a.Scope == "/" {
			return true
		}
	}
	return false
}

func refuseMetrics(w http.ResponseWriter, err error) {
	if !errors.Is(err, auth.ErrUnauthenticated) {
		w.Header().Set("Retry-After", "5")
		wire.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "authenticating the caller failed; retry")
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="kura"`)
	wire.Error(w, http.StatusUnauthorized, "Unauthorized", "metrics require a bearer token of the auditor or administrator role (or the admin token); or serve them on --metrics-addr")
}

// refuseAdmin answers an administrator check that failed.
func refuseAdmin(w http.ResponseWriter, err error, what string) {
	if fault.Of(err) == fault.Denied {
		wire.Error(w, http.StatusForbidden, "Forbidden", err.Error()+"; "+what+" requires the administrator role")
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="kura"`)
	wire.Error(w, http.StatusUnauthorized, "Unauthorized", what+" requires an administrator (the admin token or the administrator role)")
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.app.Store.Ping(ctx); err != nil {
		s.log.ErrorContext(r.Context(), "readiness: store", "err", err)
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	// Every key operation needs the root (with PKCS#11, the HSM and its
	// session): a round trip through it tells a load balancer the truth.
	svc := s.svc.Load()
	if svc == nil {
		http.Error(w, "sealed", http.StatusServiceUnavailable)
		return
	}
	if err := s.probe.check(ctx, svc.Sealer); err != nil {
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

// Keyring returns the token keyring (nil while sealed).
func (s *Server) Keyring() *token.Keyring {
	svc := s.svc.Load()
	if svc == nil {
		return nil
	}
	return svc.Keyring
}

// Close releases the store and the HSM session.
func (s *Server) Close() error { return s.app.Close() }

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
	errc := make(chan error, 2)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	if s.cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", s.cfg.MetricsAddr)
		if err != nil {
			srv.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metrics.Handler())
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
		s.log.Info("metrics listening (plain HTTP, no authentication)", "addr", mln.Addr().String())
		if host, _, _ := net.SplitHostPort(s.cfg.MetricsAddr); host == "" || net.ParseIP(host).IsUnspecified() {
			s.log.Warn("metrics are served without authentication on every interface; bind --metrics-addr to a private address", "addr", s.cfg.MetricsAddr)
		}
		go func() { errc <- msrv.Serve(mln) }()
		defer msrv.Close()
		s.metricsAddr.Store(mln.Addr().String())
	}
	go s.every(ctx, time.Minute, s.refreshKeys)
	go s.every(ctx, time.Minute, s.maintain)
	if len(s.cfg.LedgerWitnesses) > 0 {
		go s.every(ctx, time.Duration(s.cfg.LedgerWitnessInterval), s.witness)
	}
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
	svc := s.svc.Load() // nil if sealed since every() looked
	if svc == nil {
		return
	}
	if err := svc.Keyring.Refresh(ctx); err != nil {
		s.log.Error("reload token signing keys", "err", err)
	}
}

// witness runs a round of the ledger's witnessing: the latest checkpoint
// to the witnesses, published once enough cosigned.
func (s *Server) witness(ctx context.Context) {
	svc := s.svc.Load()
	if svc == nil {
		return
	}
	if _, err := svc.Ledger.Witness(ctx); err != nil {
		s.log.Error("ledger witnesses", "err", err)
	}
}

// maintain runs the services' background duties.
func (s *Server) maintain(ctx context.Context) {
	if svc := s.svc.Load(); svc != nil {
		svc.Maintain(ctx, s.log)
	}
}

// Keys returns the key manager (nil while sealed).
func (s *Server) Keys() *keys.Manager {
	svc := s.svc.Load()
	if svc == nil {
		return nil
	}
	return svc.Keys
}

// Auth returns the identity service (nil while sealed).
func (s *Server) Auth() *auth.Service {
	svc := s.svc.Load()
	if svc == nil {
		return nil
	}
	return svc.Auth
}

// App returns what the server serves.
func (s *Server) App() *app.App { return s.app }

type ctxKey int

const requestIDKey ctxKey = 0

// statusWriter records the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// code is the status sent: 200 when the handler wrote nothing.
func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
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
		ctx, principal := wire.WithPrincipalSlot(context.WithValue(r.Context(), requestIDKey, id))
		r = r.WithContext(ctx)
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("handler panic", "request_id", id, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					wire.Error(sw, http.StatusInternalServerError, "InternalError", "internal error (request id "+id+")")
				}
			}
			who := *principal
			if who == "" {
				who = "anonymous"
			}
			d := time.Since(start)
			s.log.Info("request", "request_id", id, "method", r.Method, "path", r.URL.Path,
				"status", sw.status, "principal", who, "duration_ms", float64(d.Microseconds())/1000)
			// The mux set r.Pattern on this request: a bounded label.
			s.metrics.Request(r.Pattern, sw.code(), d)
		}()
		if s.limited(sw, r) {
			return
		}
		next.ServeHTTP(sw, r)
	})
}

// clientKey is the rate limits' client: its IPv4 address, or its IPv6
// /64 (one host usually holds a whole /64, and could otherwise take a
// fresh bucket per address).
func clientKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// limited applies the rate limits of POST /attest/* and /oauth2/token by
// client address: a refusal is a 429 with Retry-After in the surface's
// error shape, before any work is done.
func (s *Server) limited(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	var l *ratelimit.Limiter
	var pattern string
	switch {
	case strings.HasPrefix(r.URL.Path, "/attest/"):
		l, pattern = s.attestLimit, "POST /attest/{type}"
	case r.URL.Path == "/oauth2/token":
		l, pattern = s.tokenLimit, "POST /oauth2/token"
	}
	if l == nil {
		return false
	}
	client := clientKey(r.RemoteAddr)
	ok, wait := l.Allow(client)
	if ok {
		return false
	}
	r.Pattern = pattern // for the metrics: the route it was refused on
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	msg := fmt.Sprintf("too many requests from %s or in all; retry after %d s", client, secs)
	if pattern == "POST /oauth2/token" {
		w.Header().Set("Cache-Control", "no-store")
		wire.JSON(w, http.StatusTooManyRequests, map[string]string{"error": "temporarily_unavailable", "error_description": msg})
		return true
	}
	apimaa.Error(w, http.StatusTooManyRequests, "TooManyRequests", msg)
	return true
}
