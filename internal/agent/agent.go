// Package agent is the guest side of secure key release. Inside the TEE it
// makes an ephemeral RSA key, binds the key's public half into fresh
// attestation evidence (report_data = SHA-256 of the runtime data that
// carries it), gets an attestation token from kura, asks kura to release the
// configured keys wrapped to that ephemeral key, unwraps them, and hands
// them to the workload: as files on a tmpfs path (mode 0600) or over a Unix
// socket. The ephemeral private key never leaves the process.
package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/kura-project/kura/internal/agent/evidence"
	"github.com/kura-project/kura/internal/skr"
)

// KeyRef names a key to release; an empty Version means the latest.
type KeyRef struct{ Name, Version string }

// ParseKeyRef parses NAME or NAME/VERSION.
func ParseKeyRef(s string) (KeyRef, error) {
	name, version, _ := strings.Cut(s, "/")
	if !nameRE.MatchString(name) || (version != "" && !versionRE.MatchString(version)) {
		return KeyRef{}, fmt.Errorf("key %q: want NAME or NAME/VERSION (letters, digits and dashes; a 32-hex version)", s)
	}
	return KeyRef{Name: name, Version: version}, nil
}

// Key names are also file names in the output directory: only Key Vault's
// name characters, so no path can escape it.
var (
	nameRE    = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// Config configures an Agent.
type Config struct {
	URL          string       // kura, e.g. https://kura.example:8443
	HTTP         *http.Client // trusts kura's TLS certificate
	ClientID     string       // a principal with the release-user role
	ClientSecret string
	Keys         []KeyRef
	Enc          string // release wrapping; default CKM_RSA_AES_KEY_WRAP
	Source       evidence.Source
	OutDir       string // files: one per key, mode 0600 (use a tmpfs)
	Socket       string // or/and: a Unix socket serving GET /keys/NAME
	Log          *slog.Logger
	// LedgerKey is the ledger's verifier key (note text form, what `kura
	// ledger key` prints), pinned; empty: fetched from kura over the TLS
	// channel the agent trusts, once per process.
	LedgerKey string
	// Now and Wait are the clock; Wait returns false when ctx ends first.
	// Defaults: time.Now and a timer.
	Now  func() time.Time
	Wait func(ctx context.Context, d time.Duration) bool
}

func waitTimer(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Released is one key handed to the workload.
type Released struct {
	Name, Version string
	Kty           string // RSA, EC or oct (family)
	Material      []byte // PKCS#8 DER for RSA/EC, raw bytes for oct
}

// Agent runs the release flow.
type Agent struct {
	cfg Config

	mu   sync.RWMutex
	keys map[string]*Released

	ledgerMu sync.Mutex
	ledger   note.Verifier // the ledger's key, once known
}

// New returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.URL == "" || cfg.Source == nil || len(cfg.Keys) == 0 {
		return nil, errors.New("agent needs a kura URL, an evidence source and at least one key")
	}
	if cfg.OutDir == "" && cfg.Socket == "" {
		return nil, errors.New("agent needs an output directory or a Unix socket for the workload")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Enc == "" {
		cfg.Enc = skr.DefaultEnc
	}
	if _, ok := skr.OAEPHash(cfg.Enc); !ok {
		return nil, fmt.Errorf("enc %q: want %s, %s or %s", cfg.Enc, skr.CKMRSAAESKeyWrap, skr.RSAAESKeyWrap256, skr.RSAAESKeyWrap384)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Wait == nil {
		cfg.Wait = waitTimer
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	ag := &Agent{cfg: cfg, keys: map[string]*Released{}}
	if cfg.LedgerKey != "" {
		v, err := note.NewVerifier(strings.TrimSpace(cfg.LedgerKey))
		if err != nil {
			return nil, fmt.Errorf("ledger key: %w", err)
		}
		ag.ledger = v
	}
	return ag, nil
}

// Run releases the keys; with once it returns after the first round (init
// containers), else it renews before the attestation token expires until ctx
// ends.
func (a *Agent) Run(ctx context.Context, once bool) error {
	if a.cfg.Socket != "" {
		stop, err := a.serveSocket()
		if err != nil {
			return err
		}
		defer stop()
	}
	backoff, released := retryMin, false
	for {
		exp, err := a.Round(ctx)
		if err != nil {
			// The first round fails loudly (a misconfigured agent should
			// not linger); later ones keep the keys already delivered and
			// retry, so a kura restart does not take the workload down.
			if once || !released || ctx.Err() != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			a.cfg.Log.Warn("renewal failed; keeping the released keys and retrying", "err", err, "in", backoff.String())
			if !a.cfg.Wait(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, retryMax)
			continue
		}
		released, backoff = true, retryMin
		if once {
			return nil
		}
		wait := RenewAfter(a.cfg.Now(), exp)
		a.cfg.Log.Info("keys released; renewing later", "in", wait.Round(time.Second).String())
		if !a.cfg.Wait(ctx, wait) {
			return nil
		}
	}
}

// Renewal retry bounds after a failed round.
const (
	retryMin = 5 * time.Second
	retryMax = 5 * time.Minute
)

// RenewAfter is how long to wait before the next round: when 80% of the
// token's remaining lifetime has passed, but not sooner than 30 s (a kura
// that issues very short tokens must not be hammered).
func RenewAfter(now, exp time.Time) time.Duration {
	wait := exp.Sub(now) * 4 / 5
	if wait < 30*time.Second {
		wait = 30 * time.Second
	}
	return wait
}

// Round runs one attest-and-release round and returns the token's expiry.
func (a *Agent) Round(ctx context.Context) (time.Time, error) {
	ephemeral, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return time.Time{}, err
	}
	kid := "kura-agent-" + randHex(8)
	runtime, err := RuntimeData(kid, &ephemeral.PublicKey)
	if err != nil {
		return time.Time{}, err
	}
	var rd [64]byte
	sum := sha256.Sum256(runtime)
	copy(rd[:], sum[:])
	ev, err := a.cfg.Source.Evidence(ctx, rd)
	if err != nil {
		return time.Time{}, fmt.Errorf("evidence: %w", err)
	}
	if ev == nil || ev.Type == "" || ev.Member == "" {
		return time.Time{}, errors.New("evidence: the source returned no evidence type or member")
	}
	nonce := randHex(16)
	token, exp, err := a.attest(ctx, ev, runtime, nonce)
	if err != nil {
		return time.Time{}, err
	}
	a.cfg.Log.Info("attested", "provider", ev.Provider, "token_expires", exp)
	access, err := a.accessToken(ctx)
	if err != nil {
		return time.Time{}, err
	}
	trusted, err := a.releaseCerts(ctx)
	if err != nil {
		return time.Time{}, err
	}
	for _, k := range a.cfg.Keys {
		rel, err := a.release(ctx, access, token, nonce, kid, k, ephemeral, trusted)
		if err != nil {
			return time.Time{}, fmt.Errorf("release %s: %w", k.Name, err)
		}
		if err := a.deliver(rel); err != nil {
			return time.Time{}, err
		}
		a.cfg.Log.Info("key released", "key", rel.Name, "version", rel.Version, "kty", rel.Kty)
	}
	return exp, nil
}

// RuntimeData is the JSON the agent binds into its evidence: a JWK set
// with the ephemeral key, marked for encryption, as MAA and Key Vault expect
// in x-ms-runtime.keys.
func RuntimeData(kid string, pub *rsa.PublicKey) ([]byte, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	return json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": kid, "use": "enc", "key_ops": []string{"encrypt"},
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (a *Agent) post(ctx context.Context, path, ctype, bearer string, body []byte) ([]byte, error) {
	b, _, err := a.send(ctx, http.MethodPost, path, ctype, bearer, body)
	return b, err
}

// send makes a request to kura and returns the body and headers of a 200.
func (a *Agent) send(ctx context.Context, method, path, ctype, bearer string, body []byte) ([]byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.cfg.URL+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Code, Message string
			} `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return nil, nil, &ServerError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
		}
		return nil, nil, &ServerError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	}
	return b, resp.Header, nil
}

// ServerError is an error answer from kura.
type ServerError struct {
	Status        int
	Code, Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("kura answered %d %s: %s", e.Status, e.Code, e.Message)
}

// AttestBody is the MAA attestation request for evidence and JSON runtime
// data: {ev.Member: ev.Body, "runtimeData": {...}, "nonce": nonce}, posted
// to /attest/{ev.Type}.
func AttestBody(ev *evidence.Evidence, runtime []byte, nonce string) ([]byte, error) {
	if ev.Member == "runtimeData" || ev.Member == "nonce" {
		return nil, fmt.Errorf("evidence member %q collides with the request's own members", ev.Member)
	}
	b64u := base64.RawURLEncoding.EncodeToString
	return json.Marshal(map[string]any{ev.Member: ev.Body, "runtimeData": map[string]string{"data": b64u(runtime), "dataType": "JSON"}, "nonce": nonce})
}

// SevSnpVmBody is the MAA SevSnpVm request for SNP evidence and JSON
// runtime data (AttestBody of ev.Evidence()).
func SevSnpVmBody(ev *evidence.SNP, runtime []byte, nonce string) ([]byte, error) {
	e, err := ev.Evidence()
	if err != nil {
		return nil, err
	}
	return AttestBody(e, runtime, nonce)
}

func (a *Agent) attest(ctx context.Context, ev *evidence.Evidence, runtime []byte, nonce string) (string, time.Time, error) {
	body, err := AttestBody(ev, runtime, nonce)
	if err != nil {
		return "", time.Time{}, err
	}
	resp, err := a.post(ctx, "/attest/"+url.PathEscape(ev.Type)+"?api-version=2025-06-01", "application/json", "", body)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("attest: %w", err)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(resp, &out); err != nil || out.Token == "" {
		return "", time.Time{}, errors.New("attest: no token in the answer")
	}
	parts := strings.Split(out.Token, ".")
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if len(parts) == 3 {
		if pb, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			json.Unmarshal(pb, &claims)
		}
	}
	return out.Token, time.Unix(claims.Exp, 0), nil
}

func (a *Agent) accessToken(ctx context.Context) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {a.cfg.ClientID}, "client_secret": {a.cfg.ClientSecret}}
	resp, err := a.post(ctx, "/oauth2/token", "application/x-www-form-urlencoded", "", []byte(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("access token: %w", err)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(resp, &out); err != nil || out.AccessToken == "" {
		return "", errors.New("access token: none in the answer")
	}
	return out.AccessToken, nil
}

// releaseCerts fetches the certificates kura signs release answers with,
// over the TLS channel the agent already trusts: an answer signed by anyone
// else (a man in the middle that wrapped its own material to the public TEE
// key) is refused.
func (a *Agent) releaseCerts(ctx context.Context) ([]*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.cfg.URL+"/kura/v1/release-keys", nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("release signing keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("release signing keys: %s", resp.Status)
	}
	return ParseReleaseCerts(body)
}

// ParseReleaseCerts reads the JWK set at /kura/v1/release-keys and returns
// the leaf certificate of each key.
func ParseReleaseCerts(body []byte) ([]*x509.Certificate, error) {
	var set struct {
		Keys []struct {
			X5C []string `json:"x5c"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("release signing keys: %w", err)
	}
	var out []*x509.Certificate
	for _, k := range set.Keys {
		if len(k.X5C) == 0 {
			continue
		}
		der, err := base64.StdEncoding.DecodeString(k.X5C[0])
		if err != nil {
			continue
		}
		if c, err := x509.ParseCertificate(der); err == nil {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("kura publishes no release signing certificate")
	}
	return out, nil
}

func (a *Agent) release(ctx context.Context, access, token, nonce, teeKid string, k KeyRef, priv *rsa.PrivateKey, trusted []*x509.Certificate) (*Released, error) {
	path := "/keys/" + url.PathEscape(k.Name)
	if k.Version != "" {
		path += "/" + url.PathEscape(k.Version)
	}
	body, _ := json.Marshal(map[string]string{"target": token, "nonce": nonce, "enc": a.cfg.Enc})
	resp, hdr, err := a.send(ctx, http.MethodPost, path+"/release?api-version=2025-07-01", "application/json", access, body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(resp, &out); err != nil || out.Value == "" {
		return nil, errors.New("no JWS in the release answer")
	}
	payload, err := VerifyReleaseJWS(out.Value, trusted)
	if err != nil {
		return nil, err
	}
	rel, err := Open(payload, priv, Expect{Name: k.Name, Version: k.Version, Nonce: nonce, TEEKeyID: teeKid, Enc: a.cfg.Enc})
	if err != nil {
		return nil, err
	}
	// Key-release transparency: the key goes to the workload only once
	// its release is proved on kura's ledger.
	id := hdr.Get("x-kura-ledger-transaction-id")
	if err := a.onRecord(ctx, access, id, Record{Name: rel.Name, Version: rel.Version, Token: token, Answer: out.Value, Nonce: nonce, TEEKeyID: teeKid}); err != nil {
		clear(rel.Material)
		return nil, err
	}
	return rel, nil
}

// VerifyReleaseJWS checks a release response's signature with the
// certificate in its x5c header, which must be one of trusted (the release
// certificates kura publishes), and returns the payload.
func VerifyReleaseJWS(compact string, trusted []*x509.Certificate) ([]byte, error) {
	sig, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.ES384})
	if err != nil {
		return nil, fmt.Errorf("release answer is not a JWS: %w", err)
	}
	var hdr struct {
		X5C []string `json:"x5c"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(strings.SplitN(compact, ".", 2)[0])
	if err != nil || json.Unmarshal(hb, &hdr) != nil || len(hdr.X5C) == 0 {
		return nil, errors.New("release answer has no x5c")
	}
	der, err := base64.StdEncoding.DecodeString(hdr.X5C[0])
	if err != nil {
		return nil, fmt.Errorf("release answer x5c: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("release answer x5c: %w", err)
	}
	// Pinned by public key, not by certificate: the certificate is issued
	// anew (at each start, on each node) for the same sealed key.
	pinned := false
	for _, c := range trusted {
		if p, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && p.Equal(cert.PublicKey) {
			pinned = true
		}
	}
	if !pinned {
		return nil, errors.New("release answer is signed by a certificate kura does not publish as a release key")
	}
	payload, err := sig.Verify(cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("release answer signature: %w", err)
	}
	return payload, nil
}

// Expect is what a release answer must be about: the key asked for, the
// nonce sent, the TEE key the material must be wrapped to.
type Expect struct {
	Name, Version string
	Nonce         string
	TEEKeyID      string
	Enc           string // the wrapping asked for; empty accepts any
}

// Open checks a verified release payload against what was asked and
// unwraps its key.
func Open(payload []byte, priv *rsa.PrivateKey, want Expect) (*Released, error) {
	name := want.Name
	var p skr.ReleasePayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("release payload: %w", err)
	}
	var bundle skr.KeyBundle
	if len(p.Response.Key) > 0 {
		if err := json.Unmarshal(p.Response.Key, &bundle); err != nil {
			return nil, fmt.Errorf("release payload: %w", err)
		}
	}
	kid := bundle.Key.Kid
	parts := strings.Split(kid, "/")
	if len(parts) < 2 || parts[len(parts)-2] != name || (want.Version != "" && parts[len(parts)-1] != want.Version) {
		return nil, fmt.Errorf("release answer is about %q, not the key %q asked for", kid, name)
	}
	if p.Request.Nonce != want.Nonce {
		return nil, errors.New("release answer carries another request's nonce")
	}
	if want.TEEKeyID != "" && p.Release.TEEKey != want.TEEKeyID {
		return nil, fmt.Errorf("release answer is wrapped to TEE key %q, not %q", p.Release.TEEKey, want.TEEKeyID)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(bundle.Key.KeyHSM, "="))
	if err != nil {
		return nil, fmt.Errorf("key_hsm: %w", err)
	}
	var hsm skr.KeyHSM
	if err := json.Unmarshal(raw, &hsm); err != nil {
		return nil, fmt.Errorf("key_hsm: %w", err)
	}
	if want.Enc != "" && (p.Request.Enc != want.Enc || hsm.Header.Enc != want.Enc) {
		return nil, fmt.Errorf("release answer is wrapped with %q, not the %q asked for", hsm.Header.Enc, want.Enc)
	}
	ct, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(hsm.Ciphertext, "="))
	if err != nil {
		return nil, fmt.Errorf("key_hsm.ciphertext: %w", err)
	}
	material, err := skr.Unwrap(priv, hsm.Header.Enc, ct)
	if err != nil {
		return nil, err
	}
	kty := strings.TrimSuffix(bundle.Key.Kty, "-HSM")
	version := kid[strings.LastIndex(kid, "/")+1:]
	return &Released{Name: name, Version: version, Kty: kty, Material: material}, nil
}

// deliver hands a key to the workload.
func (a *Agent) deliver(r *Released) error {
	a.mu.Lock()
	a.keys[r.Name] = r
	a.mu.Unlock()
	if a.cfg.OutDir == "" {
		return nil
	}
	if err := os.MkdirAll(a.cfg.OutDir, 0o700); err != nil {
		return err
	}
	// An existing directory is used only if it is already private: the
	// agent does not change the mode of a directory it did not make.
	st, err := os.Lstat(a.cfg.OutDir)
	if err != nil {
		return err
	}
	if !st.IsDir() || st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("output directory %s is not a private directory (mode %v); give a new path or one with mode 0700", a.cfg.OutDir, st.Mode())
	}
	data := r.Material
	if r.Kty != "oct" {
		data = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: r.Material})
	}
	// Write then rename, so the workload never reads half a key.
	tmp, err := os.CreateTemp(a.cfg.OutDir, "."+r.Name+".*")
	if err != nil {
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return errors.Join(werr, cerr)
	}
	return os.Rename(tmp.Name(), filepath.Join(a.cfg.OutDir, r.Name))
}

// serveSocket serves released keys on a Unix socket (mode 0600):
// GET /keys/NAME answers the material (PEM for RSA/EC, raw for oct).
func (a *Agent) serveSocket() (func(), error) {
	// Only a stale socket is removed, never a file that is something else.
	if st, err := os.Lstat(a.cfg.Socket); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("workload socket %s exists and is not a socket", a.cfg.Socket)
		}
		os.Remove(a.cfg.Socket)
	}
	// The socket is made in a private directory and moved into place, so it
	// is never reachable with looser permissions than 0600.
	tmpDir, err := os.MkdirTemp(filepath.Dir(a.cfg.Socket), ".kura-agent-")
	if err != nil {
		return nil, fmt.Errorf("workload socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("workload socket: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Rename(tmp, a.cfg.Socket); err != nil {
		ln.Close()
		return nil, fmt.Errorf("workload socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /keys/{name}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.RLock()
		k := a.keys[r.PathValue("name")]
		a.mu.RUnlock()
		if k == nil {
			http.Error(w, "no such key released", http.StatusNotFound)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if k.Kty == "oct" {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(k.Material)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k.Material}))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() { srv.Close(); os.Remove(a.cfg.Socket) }, nil
}

// Key returns a released key (for in-process workloads and tests).
func (a *Agent) Key(name string) (*Released, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	k, ok := a.keys[name]
	return k, ok
}

// PrivateKey parses released RSA/EC material.
func (r *Released) PrivateKey() (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(r.Material)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("released key is not a signer")
	}
	return s, nil
}
