package keys

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/keys/keyops"
	"github.com/kura-project/kura/internal/store"
)

// usable checks that a version may perform op now: it is enabled, inside its
// not-before/expiry window, and op is among its key_ops.
func (m *Manager) usable(v store.KeyVersion, op string) error {
	if err := m.active(v, op); err != nil {
		return err
	}
	ops := v.KeyOps
	if ops == nil {
		ops = defaultOps(v.Kty)
	}
	if !slices.Contains(ops, op) {
		return forbidden("operation %s is not permitted by the key's key_ops %v (%s/%s)", op, ops, v.Name, v.Version)
	}
	return nil
}

// active checks the enabled flag and the not-before/expiry window.
func (m *Manager) active(v store.KeyVersion, op string) error {
	now := m.now()
	if !v.Enabled {
		return forbidden("operation %s is not allowed on a disabled key (%s/%s)", op, v.Name, v.Version)
	}
	if !v.NotBefore.IsZero() && now.Before(v.NotBefore) {
		return forbidden("operation %s is not allowed before the key's nbf %s (%s/%s)", op, v.NotBefore.UTC().Format(time.RFC3339), v.Name, v.Version)
	}
	if !v.Expires.IsZero() && now.After(v.Expires) {
		return forbidden("operation %s is not allowed after the key's exp %s (%s/%s)", op, v.Expires.UTC().Format(time.RFC3339), v.Name, v.Version)
	}
	return nil
}

// material opens a version's sealed material, reusing an earlier opening.
// errCorruptMaterial marks material that opened under the root but does not
// parse: authentic, yet not a key.
var errCorruptMaterial = errors.New("corrupt key material")

func (m *Manager) material(v store.KeyVersion) (*keyops.Material, error) {
	sum := sha256.Sum256(v.Sealed)
	ck := v.Name + "/" + v.Version + "/" + string(sum[:])
	m.mu.Lock()
	mat := m.cache[ck]
	m.mu.Unlock()
	if mat != nil {
		return mat, nil
	}
	priv, err := m.sealer.Open(v.Sealed, materialAAD(v.Name, v.Version))
	if err != nil {
		return nil, &fault.Error{Kind: fault.Unavailable, Msg: fmt.Sprintf("key material of %s/%s cannot be opened (sealed store, or the root changed)", v.Name, v.Version), Err: err}
	}
	k, _ := kind(v.Kty)
	mat, err = keyops.UnmarshalPrivate(k, priv)
	clear(priv)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Unavailable, Msg: fmt.Sprintf("key material of %s/%s is corrupt", v.Name, v.Version), Err: fmt.Errorf("%w: %w", errCorruptMaterial, err)}
	}
	m.mu.Lock()
	if len(m.cache) >= 4096 {
		clear(m.cache)
	}
	m.cache[ck] = mat
	m.mu.Unlock()
	return mat, nil
}

// forget drops cached versions and material of a key.
func (m *Manager) forget(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	for k := range m.cache {
		if strings.HasPrefix(k, name+"/") {
			delete(m.cache, k)
		}
	}
	for k := range m.versions {
		if strings.HasPrefix(k, name+"/") {
			delete(m.versions, k)
		}
	}
}

// opErr maps keyops errors: misuse and malformed input are 400s; a failed
// decryption is a 400 with one fixed message (no padding oracle).
func opErr(err error) error {
	var ae *keyops.AlgorithmError
	var ie *keyops.InputError
	var de *keyops.DecryptError
	switch {
	case errors.As(err, &ae), errors.As(err, &ie):
		return bad("%v", err)
	case errors.As(err, &de):
		return bad("decryption failed")
	}
	return bad("%v", err)
}

func (m *Manager) prepare(ctx context.Context, name, version, op string) (store.KeyVersion, *keyops.Material, error) {
	v, err := m.version(ctx, name, version)
	if err != nil {
		return v, nil, err
	}
	if err := m.usable(v, op); err != nil {
		return v, nil, err
	}
	mat, err := m.material(v)
	return v, mat, err
}

// OpResult is the result of a key operation.
type OpResult struct {
	Kid     string // name/version the operation used
	Version string
	Value   []byte
	IV, Tag []byte
}

// Encrypt encrypts with a key version.
func (m *Manager) Encrypt(ctx context.Context, name, version, alg string, plaintext, iv, aad []byte) (*OpResult, error) {
	v, mat, err := m.prepare(ctx, name, version, "encrypt")
	if err != nil {
		return nil, err
	}
	r, err := keyops.Encrypt(mat, alg, plaintext, iv, aad)
	if err != nil {
		return nil, opErr(err)
	}
	return &OpResult{Version: v.Version, Value: r.Value, IV: r.IV, Tag: r.Tag}, nil
}

// Decrypt decrypts with a key version.
func (m *Manager) Decrypt(ctx context.Context, name, version, alg string, ciphertext, iv, aad, tag []byte) (*OpResult, error) {
	v, mat, err := m.prepare(ctx, name, version, "decrypt")
	if err != nil {
		return nil, err
	}
	pt, err := keyops.Decrypt(mat, alg, ciphertext, iv, aad, tag)
	if err != nil {
		return nil, opErr(err)
	}
	return &OpResult{Version: v.Version, Value: pt}, nil
}

// WrapKey wraps a key with a key version.
func (m *Manager) WrapKey(ctx context.Context, name, version, alg string, key []byte) (*OpResult, error) {
	v, mat, err := m.prepare(ctx, name, version, "wrapKey")
	if err != nil {
		return nil, err
	}
	out, err := keyops.WrapKey(mat, alg, key)
	if err != nil {
		return nil, opErr(err)
	}
	return &OpResult{Version: v.Version, Value: out}, nil
}

// UnwrapKey unwraps a key with a key version.
func (m *Manager) UnwrapKey(ctx context.Context, name, version, alg string, wrapped []byte) (*OpResult, error) {
	v, mat, err := m.prepare(ctx, name, version, "unwrapKey")
	if err != nil {
		return nil, err
	}
	out, err := keyops.UnwrapKey(mat, alg, wrapped)
	if err != nil {
		return nil, opErr(err)
	}
	return &OpResult{Version: v.Version, Value: out}, nil
}

// Sign signs a digest with a key version.
func (m *Manager) Sign(ctx context.Context, name, version, alg string, digest []byte) (*OpResult, error) {
	v, mat, err := m.prepare(ctx, name, version, "sign")
	if err != nil {
		return nil, err
	}
	sig, err := keyops.Sign(mat, alg, digest)
	if err != nil {
		return nil, opErr(err)
	}
	return &OpResult{Version: v.Version, Value: sig}, nil
}

// Verify checks a signature over a digest with a key version.
func (m *Manager) Verify(ctx context.Context, name, version, alg string, digest, signature []byte) (bool, error) {
	_, mat, err := m.prepare(ctx, name, version, "verify")
	if err != nil {
		return false, err
	}
	ok, err := keyops.Verify(mat, alg, digest, signature)
	if err != nil {
		return false, opErr(err)
	}
	return ok, nil
}

// ReleaseMaterial returns a version's private material for secure key
// release, after the same checks as any operation. The caller (the release
// path) is responsible for the release policy and for wrapping it.
func (m *Manager) ReleaseMaterial(ctx context.Context, name, version string) (*Key, *keyops.Material, error) {
	v, err := m.version(ctx, name, version)
	if err != nil {
		return nil, nil, err
	}
	k, err := m.present(v)
	if err != nil {
		return nil, nil, err
	}
	if !v.Exportable {
		return k, nil, forbidden("key %s/%s is not exportable", name, v.Version)
	}
	// Exportable keys are released whatever their key_ops say; the enabled
	// flag and the validity window apply.
	if err := m.active(v, "release"); err != nil {
		return k, nil, err
	}
	mat, err := m.material(v)
	return k, mat, err
}

// Forget drops every opened key material and cached version (kura is
// being sealed). The material is only let go, not wiped: an operation in
// flight may still hold it, and wiping it under that operation would have
// it encrypt with a zeroed key.
func (m *Manager) Forget() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	clear(m.cache)
	clear(m.versions)
}
