// Package token signs attestation results as JWTs and publishes the keys that
// verify them (JWKS with x5c, OpenID configuration), as MAA does.
//
// Signing keys are generated here, sealed (internal/seal) and stored; the
// private key exists in plaintext only in memory. After a rotation the
// retired key stays in the JWKS until the last token it signed has expired,
// so relying parties never meet a token they cannot verify.
package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/store"
)

// Alg is a JWS signing algorithm kura issues tokens with.
type Alg string

const (
	RS256 Alg = "RS256" // MAA's algorithm; the default
	ES256 Alg = "ES256"
	ES384 Alg = "ES384"
)

// ParseAlg validates an algorithm name.
func ParseAlg(s string) (Alg, error) {
	switch a := Alg(s); a {
	case RS256, ES256, ES384:
		return a, nil
	}
	return "", fmt.Errorf("token algorithm %q is not supported (RS256, ES256, ES384)", s)
}

// DefaultLifetime is MAA's fixed token lifetime.
const DefaultLifetime = 8 * time.Hour

// KeyStore is the part of the store the keyring needs.
type KeyStore interface {
	PutSigningKey(ctx context.Context, k store.SigningKey) error
	RetireSigningKey(ctx context.Context, id string, at time.Time) error
	SigningKeys(ctx context.Context) ([]store.SigningKey, error)
}

// Sealer seals private keys at rest.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Config configures a Keyring.
type Config struct {
	// Purpose separates keyrings sharing the store: "token" (default) signs
	// attestation tokens, "release" signs key-release responses.
	Purpose  string
	Issuer   string // token iss and the base of jku, e.g. https://kura.example:8443
	Alg      Alg
	Lifetime time.Duration
	Now      func() time.Time
	// Audit records every new key with the key itself (fail closed).
	// Default: the audit log of the store, when it is a whole store.
	Audit audit.Recorder
	// Certify, when set, issues the certificate chain (leaf first) that is
	// published and sent in x5c for a key, in place of the key's stored
	// self-signed certificate: release answers chain to the TLS CA and name
	// the vault's host, as Microsoft's SKR clients check. It is called at
	// load and again before the issued leaf expires.
	Certify Certifier
}

// Certifier issues a certificate chain, leaf first, for a public key.
type Certifier func(pub crypto.PublicKey, now time.Time) ([]*x509.Certificate, error)

// Keyring holds the active signing key and the retired keys still published.
type Keyring struct {
	cfg    Config
	store  KeyStore
	sealer Sealer

	mu     sync.RWMutex
	active *key
	keys   []*key // all published keys, oldest first
}

type key struct {
	id      string
	alg     Alg
	signer  crypto.Signer
	cert    *x509.Certificate   // the stored self-signed certificate: the key's identity
	chain   []*x509.Certificate // what is published and sent in x5c, leaf first
	created time.Time
	retired time.Time
	header  string // base64url of the JOSE header, computed once
}

// Open loads the keyring from st, creating the first key if there is none or
// if the active key's algorithm differs from cfg.Alg (a rotation).
func Open(ctx context.Context, cfg Config, st KeyStore, sealer Sealer) (*Keyring, error) {
	if cfg.Alg == "" {
		cfg.Alg = RS256
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Purpose == "" {
		cfg.Purpose = "token"
	}
	if full, ok := st.(store.Store); ok && cfg.Audit == nil {
		cfg.Audit = audit.Store{St: full, Now: cfg.Now}
	}
	k := &Keyring{cfg: cfg, store: st, sealer: sealer}
	if err := k.load(ctx); err != nil {
		return nil, err
	}
	if k.active == nil || k.active.alg != cfg.Alg || !fitsAlg(k.active.signer, cfg.Alg) {
		if err := k.Rotate(ctx); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (k *Keyring) load(ctx context.Context) error {
	rows, err := k.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	now := k.cfg.Now()
	k.mu.RLock()
	prev := make(map[string]*key, len(k.keys))
	for _, kk := range k.keys {
		prev[kk.id] = kk
	}
	k.mu.RUnlock()
	var keys []*key
	var active *key
	for _, r := range rows {
		if purposeOf(r) != k.cfg.Purpose {
			continue
		}
		if !r.Retired.IsZero() && now.After(r.Retired.Add(k.cfg.Lifetime)) {
			continue // every token it signed has expired
		}
		kk, err := k.restore(r)
		if err != nil {
			return err
		}
		if p := prev[kk.id]; p != nil {
			k.mu.RLock()
			kk.chain = p.chain // a reload keeps the issued chain: clients may hold it
			k.mu.RUnlock()
		} else if k.cfg.Certify != nil {
			if kk.chain, err = k.certify(kk.signer.Public()); err != nil {
				return fmt.Errorf("signing key %s: %w", kk.id, err)
			}
		}
		keys = append(keys, kk)
		if r.Retired.IsZero() {
			active = kk
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if active == nil && k.active != nil {
		// Another node's rotation can retire every key for a moment; signing
		// goes on with the current set rather than with none.
		return fmt.Errorf("load signing keys: the store holds no active %s key; keeping the current ones", k.cfg.Purpose)
	}
	k.keys, k.active = keys, active
	return nil
}

// restore opens a stored key. The database is untrusted: the id must be the
// certificate's hash, the algorithm is bound into the sealed key's associated
// data, and the certificate must hold the sealed key's public half, so no
// column can be swapped for an attacker's certificate or algorithm.
func (k *Keyring) restore(r store.SigningKey) (*key, error) {
	sum := sha256.Sum256(r.CertDER)
	if r.ID != base64.StdEncoding.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("signing key %s: certificate does not match the key id", r.ID)
	}
	alg, err := ParseAlg(r.Alg)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
	}
	der, err := k.sealer.Open(r.Sealed, aad(purposeOf(r), r.ID, alg))
	if err != nil {
		return nil, fmt.Errorf("open signing key %s: %w", r.ID, err)
	}
	defer clear(der)
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok || !fitsAlg(signer, alg) {
		return nil, fmt.Errorf("signing key %s: key type does not fit %s", r.ID, alg)
	}
	cert, err := x509.ParseCertificate(r.CertDER)
	if err != nil {
		return nil, fmt.Errorf("signing key %s certificate: %w", r.ID, err)
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("signing key %s: certificate does not hold the signing key", r.ID)
	}
	return k.newKey(r.ID, alg, signer, cert, r.Created, r.Retired)
}

func fitsAlg(s crypto.Signer, alg Alg) bool {
	switch pub := s.Public().(type) {
	case *rsa.PublicKey:
		return alg == RS256 && pub.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return (alg == ES256 && pub.Curve == elliptic.P256()) || (alg == ES384 && pub.Curve == elliptic.P384())
	}
	return false
}

func purposeOf(r store.SigningKey) string {
	if r.Purpose == "" {
		return "token"
	}
	return r.Purpose
}

func aad(purpose, id string, alg Alg) []byte {
	if purpose == "token" {
		return []byte("kura/token-signing-key/" + string(alg) + "/" + id)
	}
	return []byte("kura/" + purpose + "-signing-key/" + string(alg) + "/" + id)
}

func (k *Keyring) newKey(id string, alg Alg, signer crypto.Signer, cert *x509.Certificate, created, retired time.Time) (*key, error) {
	h, err := json.Marshal(map[string]string{"alg": string(alg), "jku": k.cfg.Issuer + "/certs", "kid": id, "typ": "JWT"})
	if err != nil {
		return nil, err
	}
	return &key{id: id, alg: alg, signer: signer, cert: cert, chain: []*x509.Certificate{cert}, created: created, retired: retired,
		header: base64.RawURLEncoding.EncodeToString(h)}, nil
}

func (k *Keyring) certify(pub crypto.PublicKey) ([]*x509.Certificate, error) {
	chain, err := k.cfg.Certify(pub, k.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("certify: %w", err)
	}
	if len(chain) == 0 {
		return nil, errors.New("certify: no certificate")
	}
	if p, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !p.Equal(pub) {
		return nil, errors.New("certify: the issued certificate does not hold the signing key")
	}
	return chain, nil
}

// reissueBefore is how long before its leaf expires a certified chain is
// issued anew, so a long-running server never sends an expired x5c.
const reissueBefore = 7 * 24 * time.Hour

// currentChain returns kk's chain, reissuing it when its leaf is near its end.
func (k *Keyring) currentChain(kk *key) ([]*x509.Certificate, error) {
	k.mu.RLock()
	chain := kk.chain
	k.mu.RUnlock()
	if k.cfg.Certify == nil || k.cfg.Now().Add(reissueBefore).Before(chain[0].NotAfter) {
		return chain, nil
	}
	// A leaf that already ends with its CA cannot be renewed by reissuing:
	// it is kept until it expires (and then refused), not remade per call.
	if len(chain) > 1 && !chain[0].NotAfter.Before(chain[1].NotAfter) {
		if k.cfg.Now().Before(chain[0].NotAfter) {
			return chain, nil
		}
		return nil, fmt.Errorf("signing key %s: its certificate and its CA expired on %s: renew the CA", kk.id, chain[0].NotAfter.UTC().Format(time.RFC3339))
	}
	fresh, err := k.certify(kk.signer.Public())
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	kk.chain = fresh
	k.mu.Unlock()
	return fresh, nil
}

// Rotate makes a new active key; the previous one is retired and stays
// published until every token it signed has expired.
func (k *Keyring) Rotate(ctx context.Context) error {
	now := k.cfg.Now()
	signer, err := generate(k.cfg.Alg)
	if err != nil {
		return err
	}
	cert, err := selfSign(signer, k.cfg.Issuer, now)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(cert.Raw)
	id := base64.StdEncoding.EncodeToString(sum[:]) // opaque, like MAA's kids
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return err
	}
	sealed, err := k.sealer.Seal(der, aad(k.cfg.Purpose, id, k.cfg.Alg))
	clear(der)
	if err != nil {
		return fmt.Errorf("seal signing key: %w", err)
	}
	row := store.SigningKey{Purpose: k.cfg.Purpose, ID: id, Alg: string(k.cfg.Alg), CertDER: cert.Raw, Sealed: sealed, Created: now}
	ev := audit.Event{Action: k.cfg.Purpose + "-key.rotate", Object: "signing-keys/" + k.cfg.Purpose,
		Details: map[string]string{"kid": id, "alg": string(k.cfg.Alg), "cert_sha256": hex.EncodeToString(sum[:])}}
	err = audit.Apply(ctx, k.cfg.Audit, ev, func(tx store.Store) error {
		if err := tx.PutSigningKey(ctx, row); err != nil {
			return err
		}
		// Retire every other active key, including ones another kura node
		// on the same database made, so exactly one key signs from now on.
		rows, err := tx.SigningKeys(ctx)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.ID != id && r.Retired.IsZero() && purposeOf(r) == k.cfg.Purpose {
				if err := tx.RetireSigningKey(ctx, r.ID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return k.load(ctx)
}

// Refresh reloads the published keys from the store, picking up rotations
// made by other kura nodes sharing it.
func (k *Keyring) Refresh(ctx context.Context) error { return k.load(ctx) }

func generate(alg Alg) (crypto.Signer, error) {
	switch alg {
	case RS256:
		return rsa.GenerateKey(rand.Reader, 2048)
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ES384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	return nil, fmt.Errorf("unsupported algorithm %q", alg)
}

// selfSign makes the certificate published in x5c: MAA publishes a
// self-signed certificate whose subject names the instance.
func selfSign(signer crypto.Signer, issuer string, now time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: issuer},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("self-sign token certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// Issue signs claims as a JWT with the active key, adding iss, iat, nbf, exp
// and jti. Claims must not set those five.
func (k *Keyring) Issue(claims map[string]any) (string, error) {
	now := k.cfg.Now()
	for _, reserved := range []string{"iss", "iat", "nbf", "exp", "jti"} {
		if _, ok := claims[reserved]; ok {
			return "", fmt.Errorf("claim %q is set by the token issuer", reserved)
		}
	}
	var jti [32]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	body := make(map[string]any, len(claims)+5)
	for c, v := range claims {
		body[c] = v
	}
	body["iss"] = k.cfg.Issuer
	body["iat"] = now.Unix()
	body["nbf"] = now.Unix()
	body["exp"] = now.Add(k.cfg.Lifetime).Unix()
	body["jti"] = hex.EncodeToString(jti[:])
	payload, err := encodeClaims(body)
	if err != nil {
		return "", fmt.Errorf("encode token claims: %w", err)
	}
	k.mu.RLock()
	kk := k.active
	k.mu.RUnlock()
	if kk == nil {
		return "", errNoActive
	}
	return kk.sign(payload)
}

func (kk *key) sign(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	// One buffer for header.payload.signature, with room for signatures up
	// to 512 bytes (RSA-4096).
	b := make([]byte, 0, len(kk.header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(512))
	b = append(b, kk.header...)
	b = append(b, '.')
	b = enc.AppendEncode(b, payload)
	sig, err := signJWS(kk.signer, kk.alg, b)
	if err != nil {
		return "", err
	}
	b = append(b, '.')
	b = enc.AppendEncode(b, sig)
	return string(b), nil
}

// signJWS signs input for alg, producing JOSE's signature encoding (raw r||s
// for ECDSA, not ASN.1).
func signJWS(signer crypto.Signer, alg Alg, input []byte) ([]byte, error) {
	switch alg {
	case RS256:
		d := sha256.Sum256(input)
		return signer.Sign(rand.Reader, d[:], crypto.SHA256)
	case ES256, ES384:
		var h crypto.Hash = crypto.SHA256
		size := 32
		if alg == ES384 {
			h, size = crypto.SHA384, 48
		}
		hh := h.New()
		hh.Write(input)
		priv := signer.(*ecdsa.PrivateKey)
		r, s, err := ecdsa.Sign(rand.Reader, priv, hh.Sum(nil))
		if err != nil {
			return nil, err
		}
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	}
	return nil, fmt.Errorf("unsupported algorithm %q", alg)
}

// Published returns the keys currently published in the JWKS: the active
// key and retired keys whose tokens may still be valid.
func (k *Keyring) published() []*key {
	now := k.cfg.Now()
	k.mu.RLock()
	defer k.mu.RUnlock()
	var out []*key
	for _, kk := range k.keys {
		if !kk.retired.IsZero() && now.After(kk.retired.Add(k.cfg.Lifetime)) {
			continue
		}
		out = append(out, kk)
	}
	return out
}

// Published is one key the keyring publishes: what a verifier of its
// tokens needs. api/wire renders it as a JSON Web Key.
type Published struct {
	Kid   string
	Alg   Alg
	Cert  *x509.Certificate   // its public key is the signing key's: Chain[0]
	Chain []*x509.Certificate // leaf first: self-signed, or issued by Config.Certify
}

// Published returns the keys to publish: the active key and the retired
// keys whose tokens may still be valid, oldest first.
func (k *Keyring) Published() []Published {
	var out []Published
	for _, kk := range k.published() {
		chain, err := k.currentChain(kk)
		if err != nil {
			continue // not publishable now; SignX5C refuses it too
		}
		out = append(out, Published{Kid: kk.id, Alg: kk.alg, Cert: chain[0], Chain: chain})
	}
	return out
}

// ActiveNotAfter is when the active key's published certificate expires
// (zero without an active key).
func (k *Keyring) ActiveNotAfter() time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.active == nil {
		return time.Time{}
	}
	return k.active.chain[0].NotAfter
}

// Issuer returns the configured issuer URL.
func (k *Keyring) Issuer() string { return k.cfg.Issuer }

// Alg returns the active key's algorithm.
func (k *Keyring) Alg() Alg {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.active == nil {
		return k.cfg.Alg
	}
	return k.active.alg
}

var errNoActive = errors.New("no active signing key")

// encodeClaims writes claims as a JSON object with sorted keys, as
// json.Marshal would, but without reflection for the strings, integers and
// booleans that make up nearly every attestation claim: the token is built
// on every attestation, and this is a measurable part of its cost.
func encodeClaims(claims map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(claims))
	for k := range claims {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]byte, 0, 64*len(keys))
	out = append(out, '{')
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		var err error
		if out, err = appendJSON(out, k); err != nil {
			return nil, err
		}
		out = append(out, ':')
		if out, err = appendJSON(out, claims[k]); err != nil {
			return nil, fmt.Errorf("claim %q: %w", k, err)
		}
	}
	return append(out, '}'), nil
}

func appendJSON(out []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		if plainString(x) {
			out = append(out, '"')
			out = append(out, x...)
			return append(out, '"'), nil
		}
	case int64:
		return strconv.AppendInt(out, x, 10), nil
	case int:
		return strconv.AppendInt(out, int64(x), 10), nil
	case bool:
		return strconv.AppendBool(out, x), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(out, b...), nil
}

// plainString reports whether s needs no JSON escaping (printable ASCII
// other than the quote, backslash and the characters json.Marshal escapes
// for HTML safety).
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// SignX5C signs payload as a compact JWS whose header carries the signing
// certificate (x5c) and its SHA-256 thumbprint, as Key Vault signs release
// responses: a client verifies with x5c[0] without fetching a JWKS.
func (k *Keyring) SignX5C(payload []byte) (string, error) {
	k.mu.RLock()
	kk := k.active
	k.mu.RUnlock()
	if kk == nil {
		return "", errNoActive
	}
	chain, err := k.currentChain(kk)
	if err != nil {
		return "", err
	}
	x5c := make([]string, len(chain))
	for i, c := range chain {
		x5c[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	sum := sha256.Sum256(chain[0].Raw)
	h, err := json.Marshal(map[string]any{"alg": string(kk.alg), "kid": kk.id, "typ": "JWT",
		"x5c": x5c, "x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])})
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := signJWS(kk.signer, kk.alg, []byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
