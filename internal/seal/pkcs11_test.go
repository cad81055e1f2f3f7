//go:build cgo

package seal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kura-project/kura/internal/seal/sealtest"
)

// softHSM makes a fresh SoftHSM2 token (see sealtest.SoftHSM).
func softHSM(t testing.TB) PKCS11Config {
	t.Helper()
	module, token, pin := sealtest.SoftHSM(t)
	return PKCS11Config{Module: module, TokenLabel: token, PIN: pin}
}

func openTestRoot(t testing.TB, cfg PKCS11Config, sessions int) *PKCS11Root {
	t.Helper()
	r, err := openPKCS11Root(cfg, sessions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestPKCS11Root(t *testing.T) {
	cfg := softHSM(t)
	r := openTestRoot(t, cfg, defaultPKCS11Sessions)
	s := New(r)

	secret := []byte("token-signing key, private part")
	sealed, err := s.Seal(secret, []byte("tokens/signing/1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed object contains the plaintext")
	}
	pt, err := s.Open(sealed, []byte("tokens/signing/1"))
	if err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("open: %q, %v", pt, err)
	}
	// Another object's identity, or a flipped byte in the wrapped data key
	// (bytes 3..63 of the envelope), fails inside the HSM.
	if _, err := s.Open(sealed, []byte("tokens/signing/2")); err == nil {
		t.Fatal("opened under another object's identity")
	} else if !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("aad mismatch: %v, want an authentication failure", err)
	}
	for _, i := range []int{3, 3 + gcmIVLen, 3 + 59} {
		c := bytes.Clone(sealed)
		c[i] ^= 1
		if _, err := s.Open(c, []byte("tokens/signing/1")); err == nil {
			t.Errorf("opened with byte %d of the wrapped key flipped", i)
		}
	}

	// Wrap output is iv || ciphertext || tag with a fresh IV each time.
	dek := bytes.Repeat([]byte{0xd5}, 32)
	w1, err := r.Wrap(dek, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	w2, err := r.Wrap(dek, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if len(w1) != gcmIVLen+32+gcmTagLen {
		t.Errorf("wrapped key is %d bytes, want %d", len(w1), gcmIVLen+32+gcmTagLen)
	}
	if bytes.Equal(w1[:gcmIVLen], w2[:gcmIVLen]) || bytes.Equal(w1, w2) {
		t.Error("two wraps reused an IV")
	}
	for _, w := range [][]byte{nil, w1[:gcmIVLen+gcmTagLen]} {
		if _, err := r.Unwrap(w, []byte("a")); err == nil || !strings.Contains(err.Error(), "too short") {
			t.Errorf("Unwrap of %d bytes: %v", len(w), err)
		}
	}
	if _, err := r.Wrap(nil, []byte("a")); err == nil {
		t.Error("wrapped an empty data key")
	}
	var zero *PKCS11Root
	if _, err := zero.Wrap(dek, nil); !errors.Is(err, ErrSealed) {
		t.Errorf("Wrap on a nil root: %v, want ErrSealed", err)
	}
	if _, err := new(PKCS11Root).Unwrap(w1, nil); !errors.Is(err, ErrSealed) {
		t.Errorf("Unwrap on an unopened root: %v, want ErrSealed", err)
	}

	// A restart: a new root over the same token finds the same key and
	// opens what the old one sealed.
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Wrap(dek, nil); !errors.Is(err, ErrSealed) {
		t.Errorf("Wrap after Close: %v, want ErrSealed", err)
	}
	r2 := openTestRoot(t, cfg, defaultPKCS11Sessions)
	pt, err = New(r2).Open(sealed, []byte("tokens/signing/1"))
	if err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("open after restart: %q, %v", pt, err)
	}
	got, err := r2.Unwrap(w1, []byte("a"))
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("unwrap after restart: %x, %v", got, err)
	}

	// The key object: one AES-256 token key, sensitive, never extractable,
	// and its value cannot be read.
	keys, err := r2.findKeys(DefaultPKCS11KeyLabel)
	if err != nil || len(keys) != 1 || keys[0] != r2.keyHandle() {
		t.Fatalf("find root key: %v, %v (root uses %v)", keys, err, r2.keyHandle())
	}
	attrs, err := r2.ctx.GetAttributeValue(r2.login, r2.keyHandle(), []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ALWAYS_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, nil),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		want bool
	}{
		{"CKA_EXTRACTABLE", false}, {"CKA_SENSITIVE", true}, {"CKA_NEVER_EXTRACTABLE", true},
		{"CKA_ALWAYS_SENSITIVE", true}, {"CKA_TOKEN", true}, {"CKA_PRIVATE", true},
		{"CKA_WRAP", false}, {"CKA_DERIVE", false},
	}
	for i, w := range want {
		if got := attrBool(attrs[i]); got != w.want {
			t.Errorf("%s = %v, want %v", w.name, got, w.want)
		}
	}
	if n, _ := attrUlong(attrs[len(want)]); n != 32 {
		t.Errorf("CKA_VALUE_LEN = %d, want 32", n)
	}
	_, err = r2.ctx.GetAttributeValue(r2.login, r2.keyHandle(), []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
		t.Errorf("reading CKA_VALUE: %v, want CKR_ATTRIBUTE_SENSITIVE", err)
	}
}

func TestPKCS11WrongPIN(t *testing.T) {
	cfg := softHSM(t)
	wrong := cfg
	wrong.PIN = "97531" // distinctive, to search the error for it
	_, err := OpenPKCS11Root(wrong)
	if err == nil {
		t.Fatal("wrong PIN accepted")
	}
	if strings.Contains(err.Error(), wrong.PIN) || strings.Contains(err.Error(), cfg.PIN) {
		t.Fatalf("error %q contains a PIN", err)
	}
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)) {
		t.Errorf("error %q does not unwrap to CKR_PIN_INCORRECT", err)
	}
	if want := `pkcs11: log in to token "kura-test": CKR_PIN_INCORRECT`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	// The failed open released the module: the right PIN works next.
	r := openTestRoot(t, cfg, 1)
	if _, err := r.Wrap(make([]byte, 32), nil); err != nil {
		t.Fatal(err)
	}
	// Neither form of printing the config shows the PIN.
	for _, s := range []string{fmt.Sprint(wrong), fmt.Sprintf("%+v", wrong), fmt.Sprintf("%#v", wrong)} {
		if strings.Contains(s, wrong.PIN) {
			t.Errorf("printed config %q contains the PIN", s)
		}
	}
}

func TestPKCS11Refuses(t *testing.T) {
	cfg := softHSM(t)
	notModule := filepath.Join(t.TempDir(), "libnot-pkcs11.so")
	if err := os.WriteFile(notModule, []byte("not a shared object"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		mod  func(*PKCS11Config)
		want string
	}{
		"no module":     {func(c *PKCS11Config) { c.Module = "" }, "no module"},
		"no PIN":        {func(c *PKCS11Config) { c.PIN = "" }, "no user PIN"},
		"no token":      {func(c *PKCS11Config) { c.TokenLabel = "" }, "no token label"},
		"missing file":  {func(c *PKCS11Config) { c.Module = "/nonexistent/libp11.so" }, "no such file"},
		"not a module":  {func(c *PKCS11Config) { c.Module = notModule }, "cannot load"},
		"unknown token": {func(c *PKCS11Config) { c.TokenLabel = "other" }, `no initialised token labelled "other" (found: "kura-test")`},
	} {
		bad := cfg
		c.mod(&bad)
		if _, err := OpenPKCS11Root(bad); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want error containing %q", name, err, c.want)
		}
	}

	r := openTestRoot(t, cfg, 1)
	// The module belongs to the open root: a second one is refused
	// instead of riding on its login.
	if _, err := OpenPKCS11Root(cfg); !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		t.Errorf("second open while the first is open: %v", err)
	}

	// Plant keys no root should use, then try each as the root key.
	gen := func(label string, extractable, sensitive bool, size int) {
		t.Helper()
		_, err := r.ctx.GenerateKey(r.login, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, size),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, sensitive),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, extractable),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		})
		if err != nil {
			t.Fatalf("plant %s: %v", label, err)
		}
	}
	gen("extractable", true, true, 32)
	gen("not-sensitive", false, false, 32)
	gen("aes128", false, true, 16)
	gen("twice", false, true, 32)
	gen("twice", false, true, 32)
	// A key imported with a value someone knows, marked sensitive and
	// non-extractable afterwards: not generated in the token.
	if _, err := r.ctx.CreateObject(r.login, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, bytes.Repeat([]byte{0x42}, 32)),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "planted"),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
	}); err != nil {
		t.Fatalf("plant imported key: %v", err)
	}

	// Unwrap failures leave the only session usable.
	w, err := r.Wrap(make([]byte, 32), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := r.Unwrap(w, []byte("y")); err == nil {
			t.Fatal("unwrapped with the wrong aad")
		}
	}
	if _, err := r.Unwrap(w, []byte("x")); err != nil {
		t.Fatalf("unwrap after failed unwraps on the same session: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	for label, want := range map[string]string{
		"extractable":   "is extractable",
		"not-sensitive": "is not sensitive",
		"aes128":        "is not 256 bits long",
		"twice":         `holds 2 secret keys labelled "twice"`,
		"planted":       "was not generated inside the token",
	} {
		c := cfg
		c.KeyLabel = label
		r, err := OpenPKCS11Root(c)
		if err == nil {
			r.Close()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("key %q: %v, want error containing %q", label, err, want)
		}
	}
}

func TestPKCS11Concurrent(t *testing.T) {
	cfg := softHSM(t)
	// One session (serialised) and the default pool must both be correct.
	for _, sessions := range []int{1, defaultPKCS11Sessions} {
		t.Run(fmt.Sprintf("sessions=%d", sessions), func(t *testing.T) {
			r := openTestRoot(t, cfg, sessions)
			const goroutines, rounds = 8, 100
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			for g := range goroutines {
				wg.Go(func() {
					for i := range rounds {
						dek := bytes.Repeat([]byte{byte(g), byte(i)}, 16)
						aad := fmt.Appendf(nil, "obj/%d/%d", g, i)
						w, err := r.Wrap(dek, aad)
						if err != nil {
							errs <- err
							return
						}
						got, err := r.Unwrap(w, aad)
						if err != nil || !bytes.Equal(got, dek) {
							errs <- fmt.Errorf("goroutine %d round %d: unwrap %x, %v", g, i, got, err)
							return
						}
						// Failures interleaved with successes.
						if _, err := r.Unwrap(w, []byte("other")); err == nil {
							errs <- fmt.Errorf("goroutine %d: unwrapped with the wrong aad", g)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			r.mu.Lock()
			idle := len(r.idle)
			r.mu.Unlock()
			if idle > sessions {
				t.Errorf("%d idle sessions, more than the limit %d", idle, sessions)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Close while Wrap runs in other goroutines waits for the operations in
// flight (C_Finalize under a running C_Encrypt would be undefined), and every
// later call fails with ErrSealed.
func TestPKCS11CloseWhileBusy(t *testing.T) {
	cfg := softHSM(t)
	r := openTestRoot(t, cfg, 2)
	var wg sync.WaitGroup
	started := make(chan struct{}, 8)
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := r.Wrap(make([]byte, 32), nil)
				if i == 0 {
					started <- struct{}{}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 8 {
		<-started
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrSealed) {
			t.Errorf("Wrap during Close: %v, want ErrSealed", err)
		}
	}
}

// BenchmarkPKCS11Wrap measures one Wrap (a 32-byte data key, AES-GCM in
// SoftHSM2) serially and from 8 goroutines over one session (which is what
// a mutex around one session would give) and over the default pool.
func BenchmarkPKCS11Wrap(b *testing.B) {
	cfg := softHSM(b)
	dek := make([]byte, 32)
	aad := []byte("keys/k/versions/0123456789abcdef")
	b.Run("serial", func(b *testing.B) {
		r := openTestRoot(b, cfg, defaultPKCS11Sessions)
		defer r.Close()
		for b.Loop() {
			if _, err := r.Wrap(dek, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, sessions := range []int{1, 2, defaultPKCS11Sessions, 8} {
		b.Run(fmt.Sprintf("parallel8/sessions=%d", sessions), func(b *testing.B) {
			r := openTestRoot(b, cfg, sessions)
			defer r.Close()
			b.SetParallelism(8) // 8 × GOMAXPROCS goroutines, at least 8
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := r.Wrap(dek, aad); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	b.Run("unwrap", func(b *testing.B) {
		r := openTestRoot(b, cfg, defaultPKCS11Sessions)
		defer r.Close()
		w, err := r.Wrap(dek, aad)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := r.Unwrap(w, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPKCS11RecoversLostLogin: when the token forgets every session and the
// login (what an HSM restart does; here C_CloseAllSessions), the next
// operation logs in again, finds the same key and succeeds; data wrapped
// before still unwraps.
func TestPKCS11RecoversLostLogin(t *testing.T) {
	r := openTestRoot(t, softHSM(t), 2)
	aad := []byte("obj/1")
	dek := bytes.Repeat([]byte{7}, 32)
	before, err := r.Wrap(dek, aad)
	if err != nil {
		t.Fatal(err)
	}
	key := r.keyHandle()
	for round := 1; round <= 2; round++ {
		if err := r.ctx.CloseAllSessions(uint(r.slot.Load())); err != nil {
			t.Fatal(err)
		}
		got, err := r.Unwrap(before, aad)
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("round %d: unwrap after the login was lost: %v", round, err)
		}
		if r.gen.Load() != uint64(round) {
			t.Errorf("round %d: %d re-logins", round, r.gen.Load())
		}
		if _, err := r.Wrap(dek, aad); err != nil {
			t.Fatalf("round %d: wrap: %v", round, err)
		}
		r.loginMu.Lock()
		r.lastTry = r.lastTry.Add(-reloginEvery) // next round is not rate limited
		r.loginMu.Unlock()
	}
	if r.keyHandle() != key {
		t.Logf("key handle changed %v → %v (allowed: handles may change after a re-login)", key, r.keyHandle())
	}
}

// TestPKCS11ReloginFailsClosed: if logging in again fails, the operation
// fails with both errors, never with the PIN, and attempts are limited to
// one per reloginEvery.
func TestPKCS11ReloginFailsClosed(t *testing.T) {
	cfg := softHSM(t)
	r := openTestRoot(t, cfg, 2)
	aad := []byte("obj/1")
	ct, err := r.Wrap(bytes.Repeat([]byte{1}, 32), aad)
	if err != nil {
		t.Fatal(err)
	}
	r.pin = "wrong-pin-0000"
	r.ctx.CloseAllSessions(uint(r.slot.Load()))
	_, err = r.Unwrap(ct, aad)
	if err == nil || !strings.Contains(err.Error(), "logging in again failed") || !strings.Contains(err.Error(), "CKR_PIN_INCORRECT") {
		t.Fatalf("unwrap with a failing re-login: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-pin-0000") || strings.Contains(err.Error(), cfg.PIN) {
		t.Fatal("the PIN is in the error")
	}
	first := r.lastTry
	if _, err := r.Wrap(bytes.Repeat([]byte{1}, 32), aad); err == nil {
		t.Fatal("wrap succeeded without a login")
	}
	if !r.lastTry.Equal(first) {
		t.Error("a second re-login was tried within reloginEvery")
	}
	// The right PIN again, after the limit: recovered.
	r.pin = cfg.PIN
	r.loginMu.Lock()
	r.lastTry = r.lastTry.Add(-reloginEvery)
	r.loginMu.Unlock()
	if _, err := r.Unwrap(ct, aad); err != nil {
		t.Fatalf("after the PIN is right again: %v", err)
	}
	// A token that loses the login again right after a successful
	// re-login is not logged into again within the second: fail closed.
	r.ctx.CloseAllSessions(uint(r.slot.Load()))
	gen := r.gen.Load()
	if _, err := r.Unwrap(ct, aad); err == nil || !strings.Contains(err.Error(), "within a second") {
		t.Errorf("second loss within reloginEvery: %v", err)
	}
	if r.gen.Load() != gen {
		t.Error("re-logged in twice within reloginEvery")
	}
	// Close after all this reports no stale-handle errors.
	r.loginMu.Lock()
	r.lastTry = r.lastTry.Add(-reloginEvery)
	r.loginMu.Unlock()
	if _, err := r.Unwrap(ct, aad); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// TestPKCS11ReloginRefusesAReplacedKey: a key found under the root's label
// after a lost login must be the same key; one put there meanwhile (a
// replaced key, another HSM's) is refused, and nothing gets wrapped under it.
func TestPKCS11ReloginRefusesAReplacedKey(t *testing.T) {
	cfg := softHSM(t)
	r := openTestRoot(t, cfg, 2)
	aad := []byte("obj/1")
	if _, err := r.Wrap(bytes.Repeat([]byte{1}, 32), aad); err != nil {
		t.Fatal(err)
	}
	// Replace the key under the same label with a proper new one.
	if err := r.ctx.DestroyObject(r.login, r.keyHandle()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.createKey(r.keyLabel); err != nil {
		t.Fatal(err)
	}
	r.ctx.CloseAllSessions(uint(r.slot.Load()))
	_, err := r.Wrap(bytes.Repeat([]byte{1}, 32), aad)
	if err == nil || !strings.Contains(err.Error(), "is not the root key this kura opened with") {
		t.Fatalf("wrap after the key was replaced: %v", err)
	}
}

// TestNotAuthenticIsTold: a tampered or truncated sealed object is
// ErrNotAuthentic with either root (with SoftHSM2's ambiguous
// CKR_GENERAL_ERROR too), so callers answer 4xx; a root that cannot answer
// is not.
func TestNotAuthenticIsTold(t *testing.T) {
	sw, err := OpenSoftwareRoot(filepath.Join(t.TempDir(), "root.sealed"), bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	hsm := openTestRoot(t, softHSM(t), 2)
	for name, root := range map[string]Root{"software": sw, "pkcs11": hsm} {
		s := New(root)
		ct, err := s.Seal([]byte("secret"), []byte("a"))
		if err != nil {
			t.Fatal(err)
		}
		flipped := bytes.Clone(ct)
		flipped[5] ^= 1 // inside the wrapped data key
		for what, c := range map[string][]byte{"flipped": flipped, "other aad": ct, "truncated": ct[:2], "unknown format": append([]byte{9}, ct[1:]...)} {
			aad := []byte("a")
			if what == "other aad" {
				aad = []byte("b")
			}
			if _, err := s.Open(c, aad); !errors.Is(err, ErrNotAuthentic) {
				t.Errorf("%s, %s: %v, want ErrNotAuthentic", name, what, err)
			}
		}
	}
	good, err := New(hsm).Seal([]byte("secret"), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	hsm.Close()
	if _, err := New(hsm).Open(good, []byte("a")); err == nil || errors.Is(err, ErrNotAuthentic) {
		t.Errorf("a closed root's error: %v, want one that is not ErrNotAuthentic", err)
	}
}
