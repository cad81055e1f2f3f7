// Package oidc verifies JWTs from OpenID Connect issuers: the issuer's
// /.well-known/openid-configuration names its jwks_uri, the JWKS holds the
// key named by the token's kid. kura uses it for bearer tokens from external
// identity providers and for attestation tokens presented to secure key
// release.
//
// It fails closed: an unknown issuer, an algorithm outside the allow-list
// (never "none", never HMAC), an unknown kid after one refresh, a bad
// signature, or an expired token are all refusals. Network fetches have
// bounded timeouts and a JWKS refresh on an unknown kid happens at most once
// per RefreshInterval per issuer, so a client cannot make kura hammer an
// identity provider.
package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/fetch"
)

// Algorithms are the signature algorithms accepted.
var Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512}

// KeySource returns the JWKS of one issuer. refresh asks for fresh keys.
type KeySource interface {
	Keys(ctx context.Context, issuer string, refresh bool) (*jose.JSONWebKeySet, error)
}

// Error is a refused token; Reason says why (never the token itself).
type Error struct{ Reason string }

func (e *Error) Error() string { return "token refused: " + e.Reason }

func refuse(format string, args ...any) error { return &Error{Reason: fmt.Sprintf(format, args...)} }

// UnavailableError reports that an issuer's keys could not be fetched.
type UnavailableError struct {
	Issuer string
	Err    error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("keys of issuer %s unavailable: %v", e.Issuer, e.Err)
}
func (e *UnavailableError) Unwrap() error { return e.Err }

// Verifier verifies tokens of a set of trusted issuers.
type Verifier struct {
	// Sources maps an issuer (normalised: no trailing slash) to its keys.
	Sources map[string]KeySource
	Now     func() time.Time
	Skew    time.Duration // allowed clock skew for exp/nbf/iat; default 60 s
}

// NormalizeIssuer drops a trailing slash: Key Vault policies and MAA tokens
// disagree about it.
func NormalizeIssuer(iss string) string { return strings.TrimRight(iss, "/") }

// Claims are a verified token's claims; numbers are json.Number.
type Claims map[string]any

// Verify checks a compact JWS and returns its claims.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > 64<<10 {
		return nil, refuse("token longer than 64 KiB")
	}
	sig, err := jose.ParseSignedCompact(token, Algorithms)
	if err != nil {
		return nil, refuse("not a JWS with an accepted algorithm (%v): %v", algNames(), err)
	}
	if len(sig.Signatures) != 1 {
		return nil, refuse("JWS must have exactly one signature")
	}
	hdr := sig.Signatures[0].Header
	// The issuer is read before the signature is checked only to choose
	// whose keys to check it with; nothing else is trusted yet.
	unverified := sig.UnsafePayloadWithoutVerification()
	// A map, not a struct: encoding/json matches struct fields case-
	// insensitively, and "ISS" must not choose the keys while "iss" is
	// what the claims say.
	var top map[string]json.RawMessage
	var peek struct{ Iss string }
	if err := json.Unmarshal(unverified, &top); err != nil || json.Unmarshal(top["iss"], &peek.Iss) != nil || peek.Iss == "" {
		return nil, refuse("payload has no iss claim")
	}
	iss := NormalizeIssuer(peek.Iss)
	src, ok := v.Sources[iss]
	if !ok {
		return nil, refuse("issuer %q is not trusted", peek.Iss)
	}
	payload, err := v.verifyWith(ctx, src, iss, sig, hdr.KeyID)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	var claims Claims
	if err := dec.Decode(&claims); err != nil {
		return nil, refuse("payload is not a JSON object")
	}
	if got, _ := claims["iss"].(string); NormalizeIssuer(got) != iss {
		return nil, refuse("iss claim %q is not the issuer whose keys verified the token", got)
	}
	if err := v.checkTimes(claims); err != nil {
		return nil, err
	}
	return claims, nil
}

func algNames() string {
	var s []string
	for _, a := range Algorithms {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}

func (v *Verifier) verifyWith(ctx context.Context, src KeySource, iss string, sig *jose.JSONWebSignature, kid string) ([]byte, error) {
	for attempt := 0; attempt < 2; attempt++ {
		set, err := src.Keys(ctx, iss, attempt == 1)
		if err != nil {
			return nil, &UnavailableError{Issuer: iss, Err: err}
		}
		var candidates []jose.JSONWebKey
		if kid != "" {
			candidates = set.Key(kid)
		} else {
			candidates = set.Keys
		}
		for _, k := range candidates {
			if k.Use != "" && k.Use != "sig" {
				continue
			}
			if payload, err := sig.Verify(k.Key); err == nil {
				return payload, nil
			}
		}
		if len(candidates) > 0 {
			return nil, refuse("signature does not verify with issuer %s key %q", iss, kid)
		}
	}
	return nil, refuse("issuer %s publishes no key %q", iss, kid)
}

func (v *Verifier) checkTimes(c Claims) error {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	skew := v.Skew
	if skew == 0 {
		skew = 60 * time.Second
	}
	t := now()
	num := func(name string) (time.Time, bool, error) {
		raw, ok := c[name]
		if !ok {
			return time.Time{}, false, nil
		}
		n, ok := raw.(json.Number)
		if !ok {
			return time.Time{}, true, refuse("claim %s is not a number", name)
		}
		f, err := n.Float64()
		if err != nil {
			return time.Time{}, true, refuse("claim %s is not a number", name)
		}
		if f < -(1<<40) || f > 1<<40 { // ~35,000 years either way; int64(f) overflows far beyond
			return time.Time{}, true, refuse("claim %s is out of range", name)
		}
		return time.Unix(int64(f), 0), true, nil
	}
	exp, ok, err := num("exp")
	if err != nil {
		return err
	}
	if !ok {
		return refuse("token has no exp claim")
	}
	if t.After(exp.Add(skew)) {
		return refuse("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if nbf, ok, err := num("nbf"); err != nil {
		return err
	} else if ok && t.Add(skew).Before(nbf) {
		return refuse("token not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	return nil
}

// Discovery is a KeySource over OpenID Connect discovery: issuer +
// "/.well-known/openid-configuration" → jwks_uri → JWKS, cached.
type Discovery struct {
	Client          *http.Client
	Timeout         time.Duration // per fetch; default 5 s
	TTL             time.Duration // how long keys are reused; default 1 h
	RefreshInterval time.Duration // minimum time between forced refreshes; default 30 s

	mu    sync.Mutex
	cache map[string]cached      // replaced, never changed in place
	locks map[string]*sync.Mutex // one fetch at a time per issuer
}

type cached struct {
	set       *jose.JSONWebKeySet // nil until a fetch succeeded
	fetched   time.Time           // when set was fetched
	attempted time.Time           // the last fetch attempt, good or bad
	err       error               // the last attempt's failure
}

// Keys implements KeySource.
func (d *Discovery) Keys(ctx context.Context, issuer string, refresh bool) (*jose.JSONWebKeySet, error) {
	ttl, interval := d.TTL, d.RefreshInterval
	if ttl == 0 {
		ttl = time.Hour
	}
	if interval == 0 {
		interval = 30 * time.Second
	}
	now := time.Now()
	// answer serves from the cache when it may: fresh keys (unless a
	// refresh is asked and none was attempted within interval), or the
	// last failure when it is that recent. Every attempt is stamped before
	// it runs, so concurrent unknown kids, or an issuer that is down, cost
	// at most one outbound request per interval.
	answer := func(c cached) (*jose.JSONWebKeySet, bool, error) {
		fresh := c.set != nil && now.Sub(c.fetched) < ttl
		recent := now.Sub(c.attempted) < interval
		switch {
		case fresh && (!refresh || recent):
			return c.set, true, nil
		case !fresh && recent && c.err != nil:
			return nil, true, c.err
		}
		return nil, false, nil
	}
	d.mu.Lock()
	if d.cache == nil {
		d.cache, d.locks = map[string]cached{}, map[string]*sync.Mutex{}
	}
	c := d.cache[issuer]
	lk := d.locks[issuer]
	if lk == nil {
		lk = &sync.Mutex{}
		d.locks[issuer] = lk
	}
	d.mu.Unlock()
	if set, ok, err := answer(c); ok {
		return set, err
	}
	lk.Lock()
	defer lk.Unlock()
	d.mu.Lock()
	c = d.cache[issuer] // another request may have fetched meanwhile
	if set, ok, err := answer(c); ok {
		d.mu.Unlock()
		return set, err
	}
	c.attempted = now
	d.cache[issuer] = c
	d.mu.Unlock()
	set, err := d.fetch(ctx, issuer)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		c.err = err
		d.cache[issuer] = c
		if c.set != nil && now.Sub(c.fetched) < ttl {
			return c.set, nil // keep serving known keys through an outage
		}
		return nil, err
	}
	d.cache[issuer] = cached{set: set, fetched: now, attempted: now}
	return set, nil
}

func (d *Discovery) fetch(ctx context.Context, issuer string) (*jose.JSONWebKeySet, error) {
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := d.getJSON(ctx, issuer+"/.well-known/openid-configuration", &meta); err != nil {
		return nil, err
	}
	if meta.JWKSURI == "" {
		return nil, errors.New("openid-configuration has no jwks_uri")
	}
	if meta.Issuer != "" && NormalizeIssuer(meta.Issuer) != issuer {
		return nil, fmt.Errorf("openid-configuration names issuer %q, not %q", meta.Issuer, issuer)
	}
	if !strings.HasPrefix(meta.JWKSURI, "https://") {
		return nil, fmt.Errorf("jwks_uri %q is not https", meta.JWKSURI)
	}
	var set jose.JSONWebKeySet
	if err := d.getJSON(ctx, meta.JWKSURI, &set); err != nil {
		return nil, err
	}
	return &set, nil
}

func (d *Discovery) getJSON(ctx context.Context, url string, v any) error {
	if !strings.HasPrefix(url, "https://") {
		return fmt.Errorf("%s is not https", url)
	}
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	a, err := fetch.Get(ctx, d.Client, url, timeout, 1<<20)
	if err != nil {
		return err
	}
	if a.Status != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, a.Text)
	}
	if err := json.Unmarshal(a.Body, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// Static is a KeySource with fixed keys, e.g. kura's own token keys.
type Static func() *jose.JSONWebKeySet

// Keys implements KeySource.
func (s Static) Keys(context.Context, string, bool) (*jose.JSONWebKeySet, error) { return s(), nil }

// Loaded is a KeySource over keys held in process (kura's own token keys):
// Load runs on first use and again whenever a refresh is asked for (an
// unknown kid after a rotation), so the keys are not rebuilt per token.
type Loaded struct {
	Load func() *jose.JSONWebKeySet
	// TTL bounds how long a loaded set is reused, so a key that left the
	// issuer's set (a rotation after a compromise) stops verifying within
	// it even when nobody presents an unknown kid. Default 5 s.
	TTL time.Duration
	// MinRefresh bounds how often an unknown kid reloads the set, so a
	// stream of tokens with made-up kids cannot keep kura rebuilding it.
	// Default 1 s.
	MinRefresh time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	mu     sync.Mutex
	set    *jose.JSONWebKeySet
	loaded time.Time
}

// Keys implements KeySource.
func (l *Loaded) Keys(_ context.Context, _ string, refresh bool) (*jose.JSONWebKeySet, error) {
	ttl, minRefresh, now := l.TTL, l.MinRefresh, l.Now
	if ttl == 0 {
		ttl = 5 * time.Second
	}
	if minRefresh == 0 {
		minRefresh = time.Second
	}
	if now == nil {
		now = time.Now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := now()
	age := t.Sub(l.loaded)
	if l.set == nil || age > ttl || age < 0 || (refresh && age >= minRefresh) {
		l.set, l.loaded = l.Load(), t
	}
	return l.set, nil
}

// FaultKind places Error in the domain's error vocabulary.
func (*Error) FaultKind() fault.Kind { return fault.Denied }

// FaultKind places UnavailableError in the domain's error vocabulary.
func (*UnavailableError) FaultKind() fault.Kind { return fault.Unavailable }
