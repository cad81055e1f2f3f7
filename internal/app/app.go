// Package app assembles kura from its configuration: the store, the root's
// custody, the TEE registry and, once the root is open, the domain services
// (attestation, token keys, keys, identities, secure key release). It
// speaks no HTTP: internal/server serves what it builds.
package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/appraisal"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/auth"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/keyrelease"
	"github.com/kura-project/kura/internal/keys"
	"github.com/kura-project/kura/internal/ledger"
	"github.com/kura-project/kura/internal/ledger/witness"
	"github.com/kura-project/kura/internal/metrics"
	"github.com/kura-project/kura/internal/oidc"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/open"
	"github.com/kura-project/kura/internal/token"
)

// App is kura before and after unsealing: what opens without the root, and
// how to build the rest once it is open.
type App struct {
	Cfg     config.Config
	Store   store.Store
	Custody *seal.Custody
	Reg     *attest.Registry
	Log     *slog.Logger
	Now     func() time.Time
	// ReleaseCertify issues the certificate chain of the release-signing
	// key (the server's TLS CA, for the TLS names); nil: self-signed.
	ReleaseCertify token.Certifier
	// Metrics, when set, is told what the services do (Start wires it).
	Metrics *metrics.Metrics

	adminH [32]byte // SHA-256 of the admin token; zero: no admin
}

// Services are the domain services that need the root.
type Services struct {
	Sealer      *seal.Sealer
	Attestation *Attestation
	Appraisal   *appraisal.Service
	Keyring     *token.Keyring // signs attestation tokens
	ReleaseKeys *token.Keyring // signs secure key release answers
	Ledger      *ledger.Log    // the confidential ledger: every audited change is on it
	LedgerKey   ledger.Key
	LedgerACL   *ledger.ACLKey // signs the ACL-shaped tree (Azure Confidential Ledger receipts)
	Keys        *keys.Manager
	Auth        *auth.Service
	Release     *keyrelease.Service
	Signers     []*x509.Certificate // configured policy signers: the initial policy management certificates (isolated mode)
}

// Open opens what needs no root: the store, the admin token, the custody of
// the root, and checks all configuration read at unsealing. It returns the
// root's Sealer when the root opens by itself (dev mode, an unseal key
// file, an HSM), or nil when operators must unseal it.
func Open(ctx context.Context, cfg config.Config, reg *attest.Registry, log *slog.Logger, now func() time.Time) (_ *App, _ *seal.Sealer, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	st, err := OpenStore(cfg)
	if err != nil {
		return nil, nil, err
	}
	a := &App{Cfg: cfg, Store: st, Reg: reg, Log: log, Now: now}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.adminH, err = adminHash(cfg, log); err != nil {
		return nil, nil, err
	}
	warnLooseSecretFiles(log, cfg.UnsealKeyFile, cfg.AdminTokenFile, cfg.PKCS11PINFile, cfg.TLSKey, cfg.ReleaseCAKey)
	// Configuration read only when unsealing is checked now, so a sealed
	// server does not wait for its custodians to report a typo.
	if err := preflight(cfg, reg, st, now); err != nil {
		return nil, nil, err
	}
	// Token signing keys are made at the first unseal, so their presence
	// means a root has sealed data here before.
	signing, err := st.SigningKeys(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the store: %w", err)
	}
	cc, err := custodyConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	cc.Existing = len(signing) > 0
	custody, sealer, err := seal.OpenCustody(cc)
	if err != nil {
		return nil, nil, err
	}
	a.Custody = custody
	return a, sealer, nil
}

// custodyConfig is the root's custody as cfg configures it.
func custodyConfig(cfg config.Config) (seal.CustodyConfig, error) {
	cc := seal.CustodyConfig{Dir: filepath.Join(cfg.DataDir, "seal")}
	switch {
	case cfg.Seal == "pkcs11":
		pin := cfg.PKCS11PIN
		if cfg.PKCS11PINFile != "" {
			b, err := os.ReadFile(cfg.PKCS11PINFile)
			if err != nil {
				return cc, fmt.Errorf("pkcs11 PIN file: %w", err)
			}
			pin = strings.TrimSpace(string(b))
		}
		cc.Mode = seal.ModePKCS11
		cc.PKCS11 = seal.PKCS11Config{Module: cfg.PKCS11Module, TokenLabel: cfg.PKCS11Token, PIN: pin, KeyLabel: cfg.PKCS11KeyLabel}
	case cfg.Dev || cfg.UnsealKeyFile != "":
		cc.Mode, cc.KeyFile = seal.ModeKeyFile, cfg.UnsealKeyFile
		if cc.KeyFile == "" {
			cc.KeyFile, cc.CreateKey = devKeyFile(cfg), true
		}
	default:
		cc.Mode = seal.ModeShares
	}
	return cc, nil
}

func devKeyFile(cfg config.Config) string { return filepath.Join(cfg.DataDir, "dev", "unseal.key") }

// OpenSeal opens the software root of cfg.DataDir with the configured unseal
// key (dev mode: its own key file). With create false it never makes a new
// root or key: tools that only read use it.
func OpenSeal(cfg config.Config, create bool) (*seal.Sealer, error) {
	keyFile, createKey := cfg.UnsealKeyFile, false
	if cfg.Dev && keyFile == "" {
		keyFile, createKey = devKeyFile(cfg), create
	}
	return seal.OpenKeyFile(filepath.Join(cfg.DataDir, "seal"), keyFile, create, createKey)
}

// OpenStore opens the configured store: cfg.Store's data source name, or
// the SQLite database in the data directory (created with the directory).
func OpenStore(cfg config.Config) (store.Store, error) {
	if cfg.Store != "" {
		return open.Open(cfg.Store)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	return open.Open("sqlite:" + filepath.Join(cfg.DataDir, "kura.db"))
}

// Start builds the services over the open root.
func (a *App) Start(ctx context.Context, sealer *seal.Sealer) (*Services, error) {
	cfg, now := a.Cfg, a.Now
	var coll attest.CollateralStore = a.Store
	if a.Metrics != nil {
		coll = countedCollateral{a.Store, a.Metrics}
	}
	at, err := openAttestation(cfg, a.Reg, a.Store, coll, sealer, now)
	if err != nil {
		return nil, err
	}
	alg, err := token.ParseAlg(cfg.TokenAlg)
	if err != nil {
		return nil, err
	}
	issuer := strings.TrimRight(a.Issuer(), "/")
	s := &Services{Sealer: sealer, Attestation: at}
	// The ledger first: every audited change below is appended to it in
	// the change's own transaction (fail closed).
	origin := a.Cfg.LedgerOrigin
	if origin == "" {
		// The log's identity is kept: a ledger made under another address
		// keeps its origin.
		stored, ok, err := ledger.StoredOrigin(ctx, a.Store)
		if err != nil {
			return nil, err
		}
		origin = a.LedgerOrigin()
		if ok {
			origin = stored
		}
	}
	if s.LedgerKey, err = ledger.OpenKey(ctx, a.Store, sealer, origin, now()); err != nil {
		return nil, err
	}
	// The ACL node key's certificate comes from the CA that issues the TLS
	// and release certificates, so ACL receipts chain to the certificate
	// ACL clients pin (the dev CA, or release_ca_cert); without it, it is
	// self-signed.
	var certify ledger.Certifier
	if rc := a.ReleaseCertify; rc != nil {
		certify = func(pub *ecdsa.PublicKey, now time.Time) ([]*x509.Certificate, error) { return rc(pub, now) }
	}
	if s.LedgerACL, err = ledger.OpenACLKey(ctx, a.Store, sealer, certify, now); err != nil {
		return nil, err
	}
	witnesses, err := ledgerWitnesses(cfg)
	if err != nil {
		return nil, err
	}
	if s.Ledger, err = ledger.New(a.Store, ledger.Config{Origin: origin, Signer: s.LedgerKey.Signer, Verifier: s.LedgerKey.Verifier, Now: now, ACL: s.LedgerACL,
		Witnesses: witnesses,
		Tx: func(ctx context.Context, f func(ledger.Store) error) error {
			return a.Store.WithTx(ctx, func(tx store.Store) error { return f(tx) })
		}}); err != nil {
		return nil, err
	}
	rec := audit.Store{St: a.Store, Now: now, Ledger: s.Ledger}
	at.Policies.WithAudit(rec)
	if s.Keyring, err = token.Open(ctx, token.Config{Issuer: issuer, Alg: alg, Now: now, Audit: rec}, a.Store, sealer); err != nil {
		return nil, fmt.Errorf("token keyring: %w", err)
	}
	if s.Signers, err = loadSigners(cfg.PolicySigners); err != nil {
		return nil, err
	}
	s.Keys = keys.New(a.Store, sealer, keys.Config{Now: now, RecoverableDays: cfg.RecoverableDays, Audit: rec, StrictInputs: cfg.KeyVaultStrictInputs})
	ext, err := externalIssuers(cfg)
	if err != nil {
		return nil, err
	}
	s.Auth = auth.New(a.Store, sealer, auth.Config{Now: now, AdminTokenHash: a.adminH, External: ext, Audience: cfg.OIDCAudience, Log: a.Log, Audit: rec})
	s.Appraisal = appraisal.NewService(at.TEEs, at.Policies, s.Keyring, now)
	if s.ReleaseKeys, err = token.Open(ctx, token.Config{Purpose: "release", Issuer: issuer, Alg: token.RS256, Now: now, Certify: a.ReleaseCertify, Audit: rec}, a.Store, sealer); err != nil {
		return nil, fmt.Errorf("release signing key: %w", err)
	}
	authorities, err := releaseAuthorities(cfg, s.Keyring, now)
	if err != nil {
		return nil, err
	}
	s.Release = &keyrelease.Service{Keys: s.Keys, Verifier: authorities, Signer: s.ReleaseKeys, Audit: rec, Now: now,
		StrictTypes: cfg.ReleasePolicyStrictTypes}
	if m := a.Metrics; m != nil {
		s.Appraisal.Observe = func(tee string, v appraisal.Verdict) { m.Attested(tee, string(v)) }
		s.Release.Observe = m.Released
		m.Bind(metrics.Sources{
			KeyCache:         s.Keys.CacheStats,
			TokenKeyExpiry:   s.Keyring.ActiveNotAfter,
			ReleaseKeyExpiry: s.ReleaseKeys.ActiveNotAfter,
			CollateralExpiry: func() (map[string]time.Time, error) { return a.Store.CollateralExpiry(context.Background()) },
		})
	}
	return s, nil
}

// countedCollateral counts collateral lookups for the metrics.
type countedCollateral struct {
	attest.CollateralStore
	m *metrics.Metrics
}

func (c countedCollateral) Collateral(ctx context.Context, kind, key string) ([]store.Collateral, error) {
	items, err := c.CollateralStore.Collateral(ctx, kind, key)
	if err == nil {
		c.m.CollateralLookup(kind, len(items) > 0)
	}
	return items, err
}

// LedgerOrigin is the origin a new ledger gets: the configured one, or
// the issuer's host and "/ledger" (C2SP origins carry no scheme). An
// existing ledger keeps the origin it was made with unless ledger_origin
// says otherwise (which its key then refuses).
func (a *App) LedgerOrigin() string {
	if a.Cfg.LedgerOrigin != "" {
		return a.Cfg.LedgerOrigin
	}
	host := strings.TrimRight(a.Issuer(), "/")
	if _, rest, ok := strings.Cut(host, "://"); ok {
		host = rest
	}
	return host + "/ledger"
}

// Issuer is the token issuer URL: the configured one or https://ADDR.
func (a *App) Issuer() string {
	if a.Cfg.Issuer != "" {
		return a.Cfg.Issuer
	}
	return "https://" + a.Cfg.Addr
}

// AdminToken reports, in constant time, whether tok is the bootstrap
// administrator token.
func (a *App) AdminToken(tok string) bool {
	if a.adminH == ([32]byte{}) {
		return false
	}
	h := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(h[:], a.adminH[:]) == 1
}

// Close releases the store and the HSM session.
func (a *App) Close() error {
	err := a.Store.Close()
	if a.Custody != nil {
		err = errors.Join(err, a.Custody.Close())
	}
	return err
}

// Maintain runs the background duties: purging keys past their retention,
// rotating keys by policy, sweeping expired access tokens.
func (s *Services) Maintain(ctx context.Context, log *slog.Logger) {
	if err := s.Keys.Maintain(ctx, log); err != nil {
		log.Error("key maintenance", "err", err)
	}
	if err := s.Auth.Sweep(ctx); err != nil {
		log.Error("sweep access tokens", "err", err)
	}
}

// Attestation is the verification half of kura, without signing keys: what
// `kura attest verify` needs to re-check evidence offline.
type Attestation struct {
	Store    store.Store
	Policies *appraisal.PolicyStore
	TEEs     map[string]attest.Built // by canonical type
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
	return openAttestation(cfg, reg, st, st, sealer, now)
}

func openAttestation(cfg config.Config, reg *attest.Registry, st store.Store, coll attest.CollateralStore, sealer appraisal.Sealer, now func() time.Time) (*Attestation, error) {
	built, err := reg.Build(teeDeps(cfg, coll, now))
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

// adminHash reads the administrator bearer token's hash. Dev mode writes a
// fresh random token to DATA/dev/admin-token (mode 0600) if there is none;
// only its SHA-256 is kept in memory.
func adminHash(cfg config.Config, log *slog.Logger) ([32]byte, error) {
	file := cfg.AdminTokenFile
	if cfg.Dev && file == "" {
		file = filepath.Join(cfg.DataDir, "dev", "admin-token")
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			var b [32]byte
			if _, err := rand.Read(b[:]); err != nil {
				return [32]byte{}, err
			}
			if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
				return [32]byte{}, err
			}
			if err := os.WriteFile(file, []byte(base64.RawURLEncoding.EncodeToString(b[:])+"\n"), 0o600); err != nil {
				return [32]byte{}, fmt.Errorf("write admin token: %w", err)
			}
		}
	}
	if file == "" {
		log.Warn("no administrator token configured (--admin-token-file): policy management is disabled")
		return [32]byte{}, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return [32]byte{}, fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return [32]byte{}, fmt.Errorf("admin token in %s is shorter than 16 characters", file)
	}
	return sha256.Sum256([]byte(tok)), nil
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
		var set jose.JSONWebKeySet
		for _, p := range own.Published() {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: p.Cert.PublicKey, KeyID: p.Kid, Algorithm: string(p.Alg), Use: "sig",
				Certificates: []*x509.Certificate{p.Cert}})
		}
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

// ledgerWitnesses is the ledger's witness policy from cfg (nil: none).
// Witnesses are asked over HTTPS trusting the system roots and
// oidc_ca_file, with a 10-second bound per request.
func ledgerWitnesses(cfg config.Config) (*ledger.Witnesses, error) {
	if len(cfg.LedgerWitnesses) == 0 {
		return nil, nil
	}
	d, err := discovery(cfg)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
	if d.Client != nil {
		if t, ok := d.Client.Transport.(*http.Transport); ok {
			tr.TLSClientConfig = t.TLSClientConfig
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	p := &ledger.Witnesses{Quorum: cfg.LedgerWitnessQuorum}
	for _, w := range cfg.LedgerWitnesses {
		u, v, err := witness.Parse(w)
		if err != nil {
			return nil, fmt.Errorf("ledger_witnesses: %w", err)
		}
		p.List = append(p.List, ledger.Witness{Verifier: v, Cosigner: &witness.Client{URL: u, HTTP: hc}})
	}
	if p.Quorum == 0 {
		p.Quorum = len(p.List)
	}
	return p, nil
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
