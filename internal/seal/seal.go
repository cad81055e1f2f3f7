// Package seal is kura's root of trust. Every secret kura keeps in its store
// (token-signing keys, key versions, ledger keys) is sealed here: encrypted
// with AES-256-GCM under a fresh data key, and the data key wrapped by the
// root key, with the object's identity as associated data so a ciphertext
// cannot be moved to another object. The database is treated as untrusted.
//
// The root key itself never leaves its Root: the software root keeps it in a
// file encrypted under an unseal key; an HSM root (PKCS#11) keeps it inside
// the HSM.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// Root wraps and unwraps data keys. Implementations bind aad to the wrap.
type Root interface {
	Wrap(dek, aad []byte) ([]byte, error)
	Unwrap(wrapped, aad []byte) ([]byte, error)
}

// ErrNotAuthentic is wrapped by every error that says a sealed object is
// malformed or does not authenticate (tampered, truncated, another
// object's, another root's), as opposed to a root that cannot answer.
var ErrNotAuthentic = errors.New("not authentic")

// ErrSealed is returned while the root is not unsealed.
var ErrSealed = errors.New("kura is sealed: unseal it before use")

const envelopeVersion = 1

// Sealer seals secrets under a Root with envelope encryption.
type Sealer struct{ root Root }

// New returns a Sealer over root.
func New(root Root) *Sealer { return &Sealer{root: root} }

// Forget wipes a software root's key from memory, after the operations in
// flight; it reports false for a root it cannot wipe (an HSM's key never
// left the HSM).
func (s *Sealer) Forget() bool {
	if r, ok := s.root.(*SoftwareRoot); ok {
		r.Forget()
		return true
	}
	return false
}

// Seal encrypts plaintext for the object named by aad.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	defer clear(dek)
	wrapped, err := s.root.Wrap(dek, aad)
	if err != nil {
		return nil, fmt.Errorf("wrap data key: %w", err)
	}
	if len(wrapped) > 0xffff {
		return nil, errors.New("wrapped data key too long")
	}
	ct, err := gcmSeal(dek, plaintext, aad)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 3+len(wrapped)+len(ct))
	out = append(out, envelopeVersion, byte(len(wrapped)>>8), byte(len(wrapped)))
	out = append(out, wrapped...)
	return append(out, ct...), nil
}

// Open decrypts a sealed secret of the object named by aad. Any tampering,
// or a ciphertext of another object, fails without saying more.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 3 || sealed[0] != envelopeVersion {
		return nil, fmt.Errorf("sealed object: unknown format (%w)", ErrNotAuthentic)
	}
	n := int(sealed[1])<<8 | int(sealed[2])
	if len(sealed) < 3+n {
		return nil, fmt.Errorf("sealed object: truncated (%w)", ErrNotAuthentic)
	}
	dek, err := s.root.Unwrap(sealed[3:3+n], aad)
	if err != nil {
		return nil, fmt.Errorf("unwrap data key: %w", err)
	}
	defer clear(dek)
	return gcmOpen(dek, sealed[3+n:], aad)
}

func gcmSeal(key, plaintext, aad []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, plaintext, aad), nil
}

func gcmOpen(key, ct, aad []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(ct) < g.NonceSize()+g.Overhead() {
		return nil, fmt.Errorf("sealed object: truncated (%w)", ErrNotAuthentic)
	}
	pt, err := g.Open(nil, ct[:g.NonceSize()], ct[g.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("sealed object: authentication failed (%w)", ErrNotAuthentic)
	}
	return pt, nil
}

// SoftwareRoot is an AES-256 root key held in memory, loaded from a file in
// which it is encrypted under an unseal key.
type SoftwareRoot struct {
	mu  sync.RWMutex // Forget waits for wraps in flight
	key []byte
}

var rootAAD = []byte("kura root key v1")

// Wrap implements Root.
func (r *SoftwareRoot) Wrap(dek, aad []byte) ([]byte, error) {
	if r == nil {
		return nil, ErrSealed
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.key == nil {
		return nil, ErrSealed
	}
	return gcmSeal(r.key, dek, aad)
}

// Forget wipes the root key from memory: the root is sealed until it is
// opened again (operators unseal). Wraps in flight finish first.
func (r *SoftwareRoot) Forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.key)
	r.key = nil
}

// Unwrap implements Root.
func (r *SoftwareRoot) Unwrap(wrapped, aad []byte) ([]byte, error) {
	if r == nil {
		return nil, ErrSealed
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.key == nil {
		return nil, ErrSealed
	}
	return gcmOpen(r.key, wrapped, aad)
}

// OpenSoftwareRoot loads the root key sealed in file under unsealKey,
// creating and saving a new root key on first use.
func OpenSoftwareRoot(file string, unsealKey []byte) (*SoftwareRoot, error) {
	if len(unsealKey) != 32 {
		return nil, fmt.Errorf("unseal key must be 32 bytes, got %d", len(unsealKey))
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		ct, err := gcmSeal(unsealKey, key, rootAAD)
		if err != nil {
			return nil, err
		}
		if err := WriteNew(file, ct); err != nil {
			return nil, fmt.Errorf("save sealed root key: %w", err)
		}
		return &SoftwareRoot{key: key}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sealed root key: %w", err)
	}
	key, err := gcmOpen(unsealKey, b, rootAAD)
	if err != nil {
		return nil, errors.New("unseal: wrong unseal key or corrupted root key file")
	}
	return &SoftwareRoot{key: key}, nil
}

// WriteNew creates file (mode 0600, in a 0700 directory) with b, or fails
// if it exists. The bytes go to a synced temporary file that is then linked
// into place, and the directory is synced: nothing gets sealed under a root
// whose file a power loss could still take away. On file systems without
// hard links it creates the file exclusively and syncs it instead.
func WriteNew(file string, b []byte) error {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	// Temporary files a crash left behind are of no use to anyone.
	prefix := ".tmp-" + filepath.Base(file) + "-"
	if old, err := filepath.Glob(filepath.Join(dir, prefix+"*")); err == nil {
		for _, f := range old {
			os.Remove(f)
		}
	}
	tmp, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful link, the name is not needed
	if err := writeSync(tmp, b); err != nil {
		return err
	}
	// Link rather than rename: it refuses to replace a file another
	// process has created meanwhile.
	if err := os.Link(tmp.Name(), file); err != nil {
		if !noHardLinks(err) {
			return err
		}
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if err := writeSync(f, b); err != nil {
			os.Remove(file)
			return err
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return err // some file systems cannot sync a directory; the file itself is synced
	}
	return nil
}

func writeSync(f *os.File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// noHardLinks reports a link(2) failure that means the file system has no
// hard links (FAT, many FUSE and SMB mounts).
func noHardLinks(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || errors.Is(err, os.ErrPermission)
}

// LoadOrCreateKeyFile reads a 32-byte key from file, creating it (mode 0600)
// when absent. Dev mode keeps its unseal key this way: it unseals itself.
func LoadOrCreateKeyFile(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("%s: key file must hold 32 bytes, holds %d", file, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := WriteNew(file, k); err != nil {
		return nil, err
	}
	return k, nil
}
