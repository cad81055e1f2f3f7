// Package keys is kura's key manager: key objects and their versions, the
// cryptographic operations on them, soft delete, backup, rotation, and the
// material secure key release hands out.
//
// Security model: private key material exists in plaintext only in memory.
// In the store it is sealed (internal/seal) under the root with the key's
// name and version as associated data, so a sealed blob cannot be moved to
// another key. Every operation checks the version's enabled flag, its
// not-before and expiry times, and its permitted operations before touching
// the material. Errors never carry key material.
package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/keys/keyops"
	"github.com/kura-project/kura/internal/policy/release"
	"github.com/kura-project/kura/internal/store"
)

// Errors are fault.Errors: the api packages map their kinds to each
// surface's status and code (Key Vault's KeyNotFound for NotFound, ...).

func bad(format string, args ...any) error {
	return &fault.Error{Kind: fault.BadInput, Msg: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &fault.Error{Kind: fault.Denied, Msg: fmt.Sprintf(format, args...)}
}

// rootUnavailable is a root of trust that could not answer (an HSM fault),
// as opposed to input that does not authenticate under it.
func rootUnavailable(err error) error {
	return &fault.Error{Kind: fault.Unavailable, Msg: "the root of trust is unavailable", Err: err}
}

// storeErr turns store errors into domain errors.
func storeErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return &fault.Error{Kind: fault.NotFound, Msg: what + " was not found"}
	case errors.Is(err, store.ErrConflict):
		return &fault.Error{Kind: fault.Conflict, Msg: what + " already exists or is deleted but recoverable (purge or recover it first)"}
	}
	return &fault.Error{Kind: fault.Unavailable, Msg: "key store unavailable", Err: err}
}

// Sealer seals key material at rest.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Config configures a Manager.
type Config struct {
	Now func() time.Time
	// Audit records every key change with the change itself (fail
	// closed). Default: the audit log of st, when st is a whole store.
	Audit           audit.Recorder
	RecoverableDays int // soft-delete retention; default 90 (Key Vault allows 7..90)
	// StrictInputs refuses what Key Vault's contract does not forbid but
	// is surely a mistake: key_ops listed twice (RFC 7517 §4.3) and exp
	// before nbf (keyvault_strict_inputs). Off: accepted, as Key Vault is
	// not documented to refuse them.
	StrictInputs bool
}

// Manager manages keys. Safe for concurrent use.
type Manager struct {
	st     store.Keys
	audit  audit.Recorder
	sealer Sealer
	now    func() time.Time
	days   int
	strict bool

	mu       sync.Mutex
	cache    map[string]*keyops.Material // opened material by name/version/sealed-hash
	versions map[string]cachedVersion    // recently read versions by name/version ("name/" = latest)
	gen      uint64                      // bumped by forget: a read that overlapped a change is not cached

	hits, misses atomic.Uint64 // version cache lookups, for metrics
}

// CacheStats reports how many version lookups the in-memory cache answered
// and how many went to the store.
func (m *Manager) CacheStats() (hits, misses uint64) { return m.hits.Load(), m.misses.Load() }

// versionTTL bounds how long a version read from the store is reused. A
// change made through this Manager applies at once (its cache entries are
// dropped); one made by another kura node sharing the database applies here
// within versionTTL.
const versionTTL = time.Second

type cachedVersion struct {
	v       store.KeyVersion
	fetched time.Time
}

// New returns a Manager over st.
func New(st store.Keys, sealer Sealer, cfg Config) *Manager {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RecoverableDays == 0 {
		cfg.RecoverableDays = 90
	}
	if full, ok := st.(store.Store); ok && cfg.Audit == nil {
		cfg.Audit = audit.Store{St: full, Now: cfg.Now}
	}
	return &Manager{st: st, audit: cfg.Audit, sealer: sealer, now: cfg.Now, days: cfg.RecoverableDays, strict: cfg.StrictInputs, cache: map[string]*keyops.Material{}, versions: map[string]cachedVersion{}}
}

// RecoverableDays is the soft-delete retention.
func (m *Manager) RecoverableDays() int { return m.days }

var nameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

// CheckName validates a key name as Key Vault does (^[0-9a-zA-Z-]+$).
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return bad("key name %q is invalid: use 1 to 127 letters, digits and dashes", name)
	}
	return nil
}

var versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func checkVersion(v string) error {
	if v != "" && !versionRE.MatchString(v) {
		return &fault.Error{Kind: fault.NotFound, Msg: fmt.Sprintf("key version %q was not found", v)}
	}
	return nil
}

func newVersion() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ReleasePolicy is a key's secure-key-release policy as Key Vault carries it.
type ReleasePolicy struct {
	ContentType string `json:"contentType,omitempty"`
	Data        []byte `json:"data,omitempty"` // the policy JSON itself
	Immutable   bool   `json:"immutable,omitempty"`
}

// Attributes are the writable attributes of a key version; nil fields keep
// their current (or default) value.
type Attributes struct {
	Enabled    *bool
	NotBefore  *time.Time
	Expires    *time.Time
	Exportable *bool
}

// Key is one version of a key as the API presents it.
type Key struct {
	Name, Version string
	Kty           string
	KeyOps        []string
	Public        keyops.JWK
	Enabled       bool
	NotBefore     time.Time
	Expires       time.Time
	Exportable    bool
	Created       time.Time
	Updated       time.Time
	Tags          map[string]string
	ReleasePolicy *ReleasePolicy
	// RecoverableDays is the retention after deletion.
	RecoverableDays int
}

// DeletedKey is a soft-deleted key.
type DeletedKey struct {
	Key
	DeletedAt, PurgeAt time.Time
}

func (m *Manager) present(v store.KeyVersion) (*Key, error) {
	k := &Key{Name: v.Name, Version: v.Version, Kty: v.Kty, KeyOps: v.KeyOps, Enabled: v.Enabled, NotBefore: v.NotBefore,
		Expires: v.Expires, Exportable: v.Exportable, Created: v.Created, Updated: v.Updated, Tags: v.Tags, RecoverableDays: m.days}
	pub, err := decodeJWK(v.PublicJWK)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Unavailable, Msg: "stored public key is corrupt", Err: err}
	}
	k.Public = pub
	if k.KeyOps == nil {
		k.KeyOps = defaultOps(v.Kty)
	}
	k.Public.KeyOps = k.KeyOps
	if v.ReleasePolicy != nil {
		k.ReleasePolicy = &ReleasePolicy{}
		if err := json.Unmarshal(v.ReleasePolicy, k.ReleasePolicy); err != nil {
			return nil, &fault.Error{Kind: fault.Unavailable, Msg: "stored release policy is corrupt", Err: err}
		}
	}
	return k, nil
}

// kind maps a Key Vault kty to a key family.
func kind(kty string) (string, error) {
	switch kty {
	case "RSA", "RSA-HSM":
		return "RSA", nil
	case "EC", "EC-HSM":
		return "EC", nil
	case "oct", "oct-HSM":
		return "oct", nil
	}
	return "", bad("kty %q is not supported (RSA, RSA-HSM, EC, EC-HSM, oct, oct-HSM)", kty)
}

// Operations a key may allow.
var allOps = []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export"}

func defaultOps(kty string) []string {
	switch k, _ := kind(kty); k {
	case "RSA":
		return []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
	case "EC":
		return []string{"sign", "verify"}
	case "oct":
		return []string{"encrypt", "decrypt", "wrapKey", "unwrapKey"}
	}
	return nil
}

func checkOps(kty string, ops []string, strict bool) error {
	if ops == nil {
		return nil
	}
	allowed := defaultOps(kty)
	for i, op := range ops {
		if strict && slices.Contains(ops[:i], op) {
			// RFC 7517 §4.3: duplicate key operation values MUST NOT be present.
			return bad("key_ops: %q is listed twice", op)
		}
		if !slices.Contains(allOps, op) {
			return bad("key_ops: %q is not an operation (%v)", op, allOps)
		}
		if !slices.Contains(allowed, op) && op != "import" && op != "export" {
			return bad("key_ops: %q is not possible with a %s key", op, kty)
		}
	}
	return nil
}

func checkTags(tags map[string]string) error {
	if len(tags) > 15 {
		return bad("tags: %d tags, at most 15", len(tags))
	}
	for k, v := range tags {
		if len(k) == 0 || len(k) > 256 || len(v) > 256 {
			return bad("tags: names must be 1 to 256 characters and values at most 256")
		}
	}
	return nil
}

// CreateParams are the inputs of Create.
type CreateParams struct {
	Kty            string
	Size           int
	PublicExponent int
	Curve          string
	KeyOps         []string
	Attributes     Attributes
	Tags           map[string]string
	ReleasePolicy  *ReleasePolicy
}

// ImportParams are the inputs of Import.
type ImportParams struct {
	HSM           bool
	JWK           keyops.JWK
	KeyOps        []string
	Attributes    Attributes
	Tags          map[string]string
	ReleasePolicy *ReleasePolicy
}

// Create makes a new key, or a new version of an existing one.
func (m *Manager) Create(ctx context.Context, name string, p CreateParams) (*Key, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if _, err := kind(p.Kty); err != nil {
		return nil, err
	}
	mat, err := keyops.Generate(p.Kty, p.Size, p.Curve, p.PublicExponent)
	if err != nil {
		var ie *keyops.InputError
		if errors.As(err, &ie) {
			return nil, bad("%v", err)
		}
		// Not the caller's fault (the system's randomness failed).
		return nil, &fault.Error{Kind: fault.Unavailable, Msg: "key generation failed", Err: err}
	}
	return m.store(ctx, "key.create", name, p.Kty, mat, p.KeyOps, p.Attributes, p.Tags, p.ReleasePolicy)
}

// Import stores caller-provided key material as a new key or version.
func (m *Manager) Import(ctx context.Context, name string, p ImportParams) (*Key, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	mat, err := keyops.FromJWK(p.JWK)
	if err != nil {
		return nil, bad("%v", err)
	}
	kty := mat.Kind
	if p.HSM {
		kty += "-HSM"
	}
	ops := p.KeyOps
	if ops == nil {
		ops = p.JWK.KeyOps
	}
	return m.store(ctx, "key.import", name, kty, mat, ops, p.Attributes, p.Tags, p.ReleasePolicy)
}

func (m *Manager) store(ctx context.Context, action, name, kty string, mat *keyops.Material, ops []string, a Attributes, tags map[string]string, rp *ReleasePolicy) (*Key, error) {
	if err := checkOps(kty, ops, m.strict); err != nil {
		return nil, err
	}
	if err := checkTags(tags); err != nil {
		return nil, err
	}
	now := m.now()
	if err := checkAttributes(a); err != nil {
		return nil, err
	}
	v := store.KeyVersion{Name: name, Version: newVersion(), Kty: kty, KeyOps: ops, Enabled: true, Created: now, Updated: now, Tags: tags}
	applyAttributes(&v, a)
	if err := m.checkWindow(v); err != nil {
		return nil, err
	}
	if err := checkRelease(v.Exportable, rp, nil); err != nil {
		return nil, err
	}
	if rp != nil {
		b, err := json.Marshal(normalizeRelease(*rp))
		if err != nil {
			return nil, err
		}
		v.ReleasePolicy = b
	}
	pub, err := encodeJWK(mat.PublicJWK())
	if err != nil {
		return nil, err
	}
	v.PublicJWK = pub
	priv, err := mat.MarshalPrivate()
	if err != nil {
		return nil, err
	}
	v.Sealed, err = m.sealer.Seal(priv, materialAAD(name, v.Version))
	clear(priv)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Unavailable, Msg: "sealing key material failed", Err: err}
	}
	if err := m.authenticate(&v); err != nil {
		return nil, err
	}
	defer m.forget(name)
	if err := m.write(ctx, action, name, v.Version, func(st store.Keys) error { return st.CreateKeyVersion(ctx, v, true) }); err != nil {
		if ke := (*fault.Error)(nil); errors.As(err, &ke) {
			return nil, err
		}
		if errors.Is(err, store.ErrConflict) {
			return nil, &fault.Error{Kind: fault.Conflict, Msg: fmt.Sprintf("key %q is deleted but recoverable; recover or purge it first", name)}
		}
		return nil, storeErr(err, fmt.Sprintf("key %q", name))
	}
	return m.present(v)
}

func normalizeRelease(rp ReleasePolicy) ReleasePolicy {
	if rp.ContentType == "" {
		rp.ContentType = "application/json; charset=utf-8"
	}
	return rp
}

// checkRelease applies Key Vault's secure-key-release rules: exportable keys
// need a release policy and only exportable keys may have one (AKV.SKR.1004,
// AKV.SKR.1005); an immutable policy never changes (AKV.SKR.1020). The
// policy's grammar is checked by the release engine.
func checkRelease(exportable bool, rp, current *ReleasePolicy) error {
	if exportable && rp == nil {
		return bad("AKV.SKR.1004: Exportable keys must have release policy.")
	}
	if !exportable && rp != nil {
		return bad("AKV.SKR.1005: Non-exportable keys must not have release policy.")
	}
	if rp != nil && len(rp.Data) == 0 {
		return bad("release_policy.data: the policy document is empty")
	}
	if rp != nil {
		if _, err := release.Parse(rp.Data); err != nil {
			return bad("release_policy.data: %v", err)
		}
	}
	if current != nil && current.Immutable && rp != nil && (string(rp.Data) != string(current.Data) || !rp.Immutable) {
		return bad("AKV.SKR.1020: Immutable Key Release Policy cannot be modified.")
	}
	return nil
}

// Times the store keeps exactly (Unix nanoseconds in an int64, and 0 meaning
// unset): from 1970-01-01T00:00:01Z to 2262-04-11.
var (
	minAttrTime = time.Unix(1, 0)
	maxAttrTime = time.Unix(0, math.MaxInt64).Truncate(time.Second)
)

func checkAttributes(a Attributes) error {
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"attributes.nbf", a.NotBefore}, {"attributes.exp", a.Expires}} {
		if f.t != nil && (f.t.Before(minAttrTime) || f.t.After(maxAttrTime)) {
			return bad("%s: %d is outside %d..%d (Unix seconds)", f.name, f.t.Unix(), minAttrTime.Unix(), maxAttrTime.Unix())
		}
	}
	return nil
}

// checkWindow refuses, with StrictInputs, a version whose validity window
// is empty: expiring before it becomes valid, it could never encrypt,
// sign or wrap. Key Vault's documentation sets no rule here.
func (m *Manager) checkWindow(v store.KeyVersion) error {
	if m.strict && !v.NotBefore.IsZero() && !v.Expires.IsZero() && v.Expires.Before(v.NotBefore) {
		return bad("attributes.exp: %d is before attributes.nbf %d: the key would never be valid", v.Expires.Unix(), v.NotBefore.Unix())
	}
	return nil
}

func applyAttributes(v *store.KeyVersion, a Attributes) {
	if a.Enabled != nil {
		v.Enabled = *a.Enabled
	}
	if a.NotBefore != nil {
		v.NotBefore = *a.NotBefore
	}
	if a.Expires != nil {
		v.Expires = *a.Expires
	}
	if a.Exportable != nil {
		v.Exportable = *a.Exportable
	}
}

func materialAAD(name, version string) []byte { return []byte("kura/key/" + name + "/" + version) }

// versionAAD binds every field of a version that decides what it may do:
// the database is untrusted, and a row edited to, say, exportable with a
// permissive release policy must not release anything.
func versionAAD(v store.KeyVersion) []byte {
	h := sha256.New()
	ops, _ := json.Marshal(v.KeyOps)
	tags, _ := json.Marshal(v.Tags) // map keys marshal sorted: deterministic
	sealed := sha256.Sum256(v.Sealed)
	flags := fmt.Sprintf("%t/%t/%d/%d/%d/%d", v.Enabled, v.Exportable, v.NotBefore.UnixNano(), v.Expires.UnixNano(), v.Created.UnixNano(), v.Updated.UnixNano())
	for _, part := range [][]byte{[]byte("kura/key-version/v1"), []byte(v.Name), []byte(v.Version), []byte(v.Kty), ops, []byte(flags),
		tags, v.ReleasePolicy, v.PublicJWK, sealed[:]} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return h.Sum(nil)
}

// authenticate sets v.MAC for its current fields.
func (m *Manager) authenticate(v *store.KeyVersion) error {
	mac, err := m.sealer.Seal(nil, versionAAD(*v))
	if err != nil {
		return &fault.Error{Kind: fault.Unavailable, Msg: "authenticating the key version failed", Err: err}
	}
	v.MAC = mac
	return nil
}

// checkMAC refuses a version whose stored fields were altered.
func (m *Manager) checkMAC(v store.KeyVersion) error {
	if _, err := m.sealer.Open(v.MAC, versionAAD(v)); err != nil {
		return &fault.Error{Kind: fault.Unavailable, Msg: fmt.Sprintf("key %s/%s failed its integrity check (the store was edited outside kura?)", v.Name, v.Version), Err: err}
	}
	return nil
}

// Get returns a version (the latest when version is empty).
func (m *Manager) Get(ctx context.Context, name, version string) (*Key, error) {
	v, err := m.version(ctx, name, version)
	if err != nil {
		return nil, err
	}
	return m.present(v)
}

func (m *Manager) version(ctx context.Context, name, version string) (store.KeyVersion, error) {
	if err := checkVersion(version); err != nil {
		return store.KeyVersion{}, err
	}
	ck := name + "/" + version
	wall := m.now()
	m.mu.Lock()
	c, ok := m.versions[ck]
	gen := m.gen
	m.mu.Unlock()
	if ok && wall.Sub(c.fetched) < versionTTL && wall.Sub(c.fetched) >= 0 {
		m.hits.Add(1)
		return c.v, nil
	}
	m.misses.Add(1)
	v, err := m.fresh(ctx, name, version)
	if err != nil {
		return v, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen {
		return v, nil // a change landed while this read was in flight
	}
	if len(m.versions) >= 4096 {
		clear(m.versions)
	}
	m.versions[ck] = cachedVersion{v: v, fetched: wall}
	return v, nil
}

// fresh reads a version from the store, bypassing the cache, and checks its
// integrity.
func (m *Manager) fresh(ctx context.Context, name, version string) (store.KeyVersion, error) {
	if err := checkVersion(version); err != nil {
		return store.KeyVersion{}, err
	}
	v, err := m.st.GetKeyVersion(ctx, name, version)
	if err != nil {
		what := fmt.Sprintf("a key with name %q", name)
		if version != "" {
			what = fmt.Sprintf("key %q version %q", name, version)
		}
		return v, storeErr(err, what)
	}
	if err := m.checkMAC(v); err != nil {
		return v, err
	}
	return v, nil
}

// UpdateParams are the inputs of Update; nil fields are unchanged.
type UpdateParams struct {
	KeyOps        *[]string
	Attributes    Attributes
	Tags          *map[string]string
	ReleasePolicy *ReleasePolicy
}

// Update changes a version's attributes, tags, operations or release policy.
func (m *Manager) Update(ctx context.Context, name, version string, p UpdateParams) (*Key, error) {
	// Read-modify-write from the store, not the cache, and only if nobody
	// wrote in between: a stale copy must never undo a disable or a
	// tightened policy.
	v, err := m.fresh(ctx, name, version)
	if err != nil {
		return nil, err
	}
	prevUpdated := v.Updated
	cur, err := m.present(v)
	if err != nil {
		return nil, err
	}
	if p.Attributes.Exportable != nil && *p.Attributes.Exportable != v.Exportable {
		return nil, bad("AKV.SKR.1003: the exportable attribute of an existing key cannot be changed")
	}
	if p.KeyOps != nil {
		if err := checkOps(v.Kty, *p.KeyOps, m.strict); err != nil {
			return nil, err
		}
		v.KeyOps = *p.KeyOps
	}
	if p.Tags != nil {
		if err := checkTags(*p.Tags); err != nil {
			return nil, err
		}
		v.Tags = *p.Tags
	}
	if err := checkAttributes(p.Attributes); err != nil {
		return nil, err
	}
	applyAttributes(&v, p.Attributes)
	// Only a request that sets the window is held to it: a version stored
	// with an empty window still takes other updates (enabled, tags).
	if p.Attributes.NotBefore != nil || p.Attributes.Expires != nil {
		if err := m.checkWindow(v); err != nil {
			return nil, err
		}
	}
	if p.ReleasePolicy != nil {
		if err := checkRelease(v.Exportable, p.ReleasePolicy, cur.ReleasePolicy); err != nil {
			return nil, err
		}
		b, err := json.Marshal(normalizeRelease(*p.ReleasePolicy))
		if err != nil {
			return nil, err
		}
		v.ReleasePolicy = b
	}
	v.Updated = m.now()
	if !v.Updated.After(prevUpdated) {
		v.Updated = prevUpdated.Add(time.Nanosecond) // keeps the concurrency check meaningful
	}
	if err := m.authenticate(&v); err != nil {
		return nil, err
	}
	defer m.forget(name)
	if err := m.write(ctx, "key.update", name, v.Version, func(st store.Keys) error { return st.UpdateKeyVersion(ctx, v, prevUpdated) }); err != nil {
		if ke := (*fault.Error)(nil); errors.As(err, &ke) {
			return nil, err
		}
		if errors.Is(err, store.ErrConflict) {
			return nil, &fault.Error{Kind: fault.Conflict, Msg: fmt.Sprintf("key %q was changed by another request meanwhile; read it again and retry", name)}
		}
		return nil, storeErr(err, fmt.Sprintf("key %q", name))
	}
	return m.present(v)
}

// Page is one page of a listing; Next is the cursor of the following page
// ("" when there is none).
type Page[T any] struct {
	Items []T
	Next  string
}

// PageSize is Key Vault's maximum page size.
const PageSize = 25

// List returns the latest version of each key, by name.
func (m *Manager) List(ctx context.Context, after string) (Page[*Key], error) {
	vs, err := m.st.ListKeys(ctx, after, PageSize+1)
	if err != nil {
		return Page[*Key]{}, storeErr(err, "keys")
	}
	return m.page(vs, func(v store.KeyVersion) string { return v.Name })
}

// ListVersions returns the versions of a key in creation order.
func (m *Manager) ListVersions(ctx context.Context, name, after string) (Page[*Key], error) {
	vs, err := m.st.ListKeyVersions(ctx, name, after, PageSize+1)
	if err != nil {
		return Page[*Key]{}, storeErr(err, fmt.Sprintf("a key with name %q", name))
	}
	return m.page(vs, func(v store.KeyVersion) string { return v.Version })
}

func (m *Manager) page(vs []store.KeyVersion, cursor func(store.KeyVersion) string) (Page[*Key], error) {
	var p Page[*Key]
	if len(vs) > PageSize {
		vs = vs[:PageSize]
		p.Next = cursor(vs[len(vs)-1])
	}
	for _, v := range vs {
		k, err := m.present(v)
		if err != nil {
			return p, err
		}
		p.Items = append(p.Items, k)
	}
	return p, nil
}

// Delete soft-deletes a key with all its versions.
func (m *Manager) Delete(ctx context.Context, name string) (*DeletedKey, error) {
	now := m.now()
	var d store.DeletedKey
	err := m.write(ctx, "key.delete", name, "", func(st store.Keys) (err error) {
		d, err = st.DeleteKey(ctx, name, now, now.AddDate(0, 0, m.days))
		return err
	})
	if ke := (*fault.Error)(nil); errors.As(err, &ke) {
		return nil, err
	}
	if err != nil {
		return nil, storeErr(err, fmt.Sprintf("a key with name %q", name))
	}
	m.forget(name)
	return m.presentDeleted(d)
}

func (m *Manager) presentDeleted(d store.DeletedKey) (*DeletedKey, error) {
	k, err := m.present(d.Latest)
	if err != nil {
		return nil, err
	}
	return &DeletedKey{Key: *k, DeletedAt: d.DeletedAt, PurgeAt: d.PurgeAt}, nil
}

// GetDeleted returns a deleted key.
func (m *Manager) GetDeleted(ctx context.Context, name string) (*DeletedKey, error) {
	d, err := m.st.GetDeletedKey(ctx, name)
	if err != nil {
		return nil, storeErr(err, fmt.Sprintf("a deleted key with name %q", name))
	}
	return m.presentDeleted(d)
}

// ListDeleted lists deleted keys by name.
func (m *Manager) ListDeleted(ctx context.Context, after string) (Page[*DeletedKey], error) {
	ds, err := m.st.ListDeletedKeys(ctx, after, PageSize+1)
	if err != nil {
		return Page[*DeletedKey]{}, storeErr(err, "deleted keys")
	}
	var p Page[*DeletedKey]
	if len(ds) > PageSize {
		ds = ds[:PageSize]
		p.Next = ds[len(ds)-1].Latest.Name
	}
	for _, d := range ds {
		dk, err := m.presentDeleted(d)
		if err != nil {
			return p, err
		}
		p.Items = append(p.Items, dk)
	}
	return p, nil
}

// Recover undoes a soft delete.
func (m *Manager) Recover(ctx context.Context, name string) (*Key, error) {
	defer m.forget(name)
	if err := m.write(ctx, "key.recover", name, "", func(st store.Keys) error { return st.RecoverKey(ctx, name) }); err != nil {
		if ke := (*fault.Error)(nil); errors.As(err, &ke) {
			return nil, err
		}
		return nil, storeErr(err, fmt.Sprintf("a deleted key with name %q", name))
	}
	return m.Get(ctx, name, "")
}

// Purge removes a deleted key and its sealed material for good.
func (m *Manager) Purge(ctx context.Context, name string) error {
	if err := m.write(ctx, "key.purge", name, "", func(st store.Keys) error { return st.PurgeKey(ctx, name) }); err != nil {
		if ke := (*fault.Error)(nil); errors.As(err, &ke) {
			return err
		}
		return storeErr(err, fmt.Sprintf("a deleted key with name %q", name))
	}
	m.forget(name)
	return nil
}

// RandomBytes returns n (1..128) bytes from the system's CSPRNG.
func RandomBytes(n int) ([]byte, error) {
	if n < 1 || n > 128 {
		return nil, bad("count must be between 1 and 128, got %d", n)
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// write applies a change to the store through the audit recorder, so the
// change and its record commit together; without a recorder nothing is
// written (fail closed). A record that cannot be written is a fault
// Unavailable error (audit.Apply); store errors of the change come back as
// they are.
func (m *Manager) write(ctx context.Context, action, name, version string, change func(st store.Keys) error) error {
	object := "keys/" + name
	if version != "" {
		object += "/" + version
	}
	return audit.Apply(ctx, m.audit, audit.Event{Action: action, Object: object}, func(tx store.Store) error { return change(tx) })
}
