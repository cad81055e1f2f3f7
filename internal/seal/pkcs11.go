//go:build cgo

package seal

// The PKCS#11 root keeps the root key inside an HSM as a non-extractable,
// sensitive AES-256 key: kura hands the HSM a data key and gets it back
// encrypted (AES-GCM, computed inside the HSM), and the reverse. Whoever
// controls the HSM and its user PIN controls the root; a copy of kura's
// database and of its host's disk is not enough.
//
// Threat notes:
//   - An attacker with the PIN and access to the HSM can unwrap data keys,
//     as kura can: the PIN is the unseal credential of this root, so it is
//     never logged and never appears in an error.
//   - The key is refused unless it is sensitive and not extractable, so a
//     key object someone planted under the label with CKA_EXTRACTABLE=true
//     (whose value could have been copied out) is never used as the root.
//   - GCM IVs are 96 random bits from the host's crypto/rand, the same
//     source kura's data keys come from. With random IVs one key may be used
//     for up to 2^32 wraps (NIST SP 800-38D §8.3); kura wraps one data key
//     per stored secret, far below that.
//
// PKCS#11 is process-global: C_Initialize and the login state belong to the
// process, not to a handle. A PKCS11Root therefore owns its module
// exclusively: opening a second root over a module that is already
// initialised in this process is refused rather than sharing a login it did
// not check and a C_Finalize it does not control.

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

const (
	gcmIVLen  = 12
	gcmTagLen = 16

	// defaultPKCS11Sessions bounds the sessions used for Wrap and Unwrap.
	// A PKCS#11 session runs one operation at a time, so concurrent callers
	// each need their own; see BenchmarkPKCS11Wrap for why 4 and not 1.
	defaultPKCS11Sessions = 4
)

// PKCS11Root is a Root whose key is an AES-256 key inside a PKCS#11 token.
// It is safe for concurrent use.
type PKCS11Root struct {
	ctx   *pkcs11.Ctx
	token string        // label, for errors
	slot  atomic.Uint64 // the token's slot; it may change on a re-login
	key   atomic.Uint64 // the root key's pkcs11.ObjectHandle

	// check is a value wrapped under the root key at open: a key found on
	// a re-login must unwrap it, so a key replaced under the same label
	// (or another HSM's) is never taken for the root.
	check []byte

	// Kept to log in again when the token loses the login (an HSM restart,
	// a network HSM's connection reset). The PIN never appears in errors.
	pin, keyLabel string
	loginMu       sync.Mutex    // serialises re-logins
	gen           atomic.Uint64 // re-logins so far
	lastTry       time.Time     // guarded by loginMu: the last re-login attempt
	lastErr       error         // and its error, nil if it succeeded
	loginOpen     bool          // guarded by loginMu (or life for Close): r.login is open

	// login is a session kept open for the root's lifetime: the login state
	// lasts only while the application has a session open on the token, and
	// pooled sessions come and go.
	login pkcs11.SessionHandle

	// life is held for reading by every operation and for writing by Close,
	// so Close waits for operations in flight before C_Finalize.
	life   sync.RWMutex
	closed bool // guarded by life

	// busy is a semaphore of the sessions in use; idle holds the open ones
	// not in use. A session is only ever used by the goroutine holding it.
	busy chan struct{}
	mu   sync.Mutex
	idle []pkcs11.SessionHandle // guarded by mu
}

var _ Root = (*PKCS11Root)(nil)

// OpenPKCS11Root logs into the token labelled cfg.TokenLabel and finds the
// root key by label, creating it on first use as a non-extractable,
// sensitive AES-256 token object usable only to encrypt and decrypt. The key
// never leaves the HSM.
//
// Creating on first use is meant for a single node's first start: if two
// nodes start against an empty token at once, both may create a key, and
// every later open refuses the ambiguous label until an operator removes
// the unused one.
func OpenPKCS11Root(cfg PKCS11Config) (*PKCS11Root, error) {
	return openPKCS11Root(cfg, defaultPKCS11Sessions)
}

func openPKCS11Root(cfg PKCS11Config, sessions int) (_ *PKCS11Root, err error) {
	sessions = max(sessions, 1)
	switch {
	case cfg.Module == "":
		return nil, errors.New("pkcs11: no module configured")
	case cfg.TokenLabel == "":
		return nil, errors.New("pkcs11: no token label configured")
	case cfg.PIN == "":
		return nil, errors.New("pkcs11: no user PIN configured")
	}
	if cfg.KeyLabel == "" {
		cfg.KeyLabel = DefaultPKCS11KeyLabel
	}
	// pkcs11.New only reports failure as nil; stat first so a wrong path
	// says so instead of "cannot load".
	if _, err := os.Stat(cfg.Module); err != nil {
		return nil, fmt.Errorf("pkcs11: module: %w", err)
	}
	ctx := pkcs11.New(cfg.Module)
	if ctx == nil {
		return nil, fmt.Errorf("pkcs11: cannot load %s as a PKCS#11 module (dlopen or C_GetFunctionList failed)", cfg.Module)
	}
	if err := ctx.Initialize(); err != nil {
		ctx.Destroy()
		if errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
			return nil, fmt.Errorf("%w (another PKCS11Root over this module is still open in this process)",
				p11Error("initialize "+cfg.Module, err))
		}
		return nil, p11Error("initialize "+cfg.Module, err)
	}
	r := &PKCS11Root{ctx: ctx, token: cfg.TokenLabel, pin: cfg.PIN, keyLabel: cfg.KeyLabel, busy: make(chan struct{}, sessions)}
	defer func() {
		if err != nil {
			r.ctx.Finalize()
			r.ctx.Destroy()
		}
	}()

	slot, err := findToken(ctx, cfg.TokenLabel)
	if err != nil {
		return nil, err
	}
	r.slot.Store(uint64(slot))
	// Check the mechanism before creating anything, so a token that cannot
	// do AES-GCM is refused without leaving a useless key behind.
	mi, err := ctx.GetMechanismInfo(slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, nil)})
	if err != nil {
		return nil, p11Error(fmt.Sprintf("token %q: CKM_AES_GCM", cfg.TokenLabel), err)
	}
	if mi.Flags&pkcs11.CKF_ENCRYPT == 0 || mi.Flags&pkcs11.CKF_DECRYPT == 0 {
		return nil, fmt.Errorf("pkcs11: token %q: CKM_AES_GCM does not support both encrypt and decrypt", cfg.TokenLabel)
	}

	// Read-write: creating the key on first use writes a token object.
	if r.login, err = ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
		return nil, p11Error("open session", err)
	}
	r.loginOpen = true
	// The PIN goes to the module and nowhere else.
	if err := ctx.Login(r.login, pkcs11.CKU_USER, cfg.PIN); err != nil {
		return nil, p11Error(fmt.Sprintf("log in to token %q", cfg.TokenLabel), err)
	}
	k, err := r.findOrCreateKey(cfg.KeyLabel, cfg.NoCreate)
	if err != nil {
		return nil, err
	}
	r.key.Store(uint64(k))
	check, iv := make([]byte, 32), make([]byte, gcmIVLen)
	rand.Read(check)
	rand.Read(iv)
	if r.check, err = r.wrapWith(r.login, k, iv, check, checkAAD); err != nil {
		return nil, err
	}
	return r, nil
}

var checkAAD = []byte("kura pkcs11 root identity check")

func (r *PKCS11Root) keyHandle() pkcs11.ObjectHandle { return pkcs11.ObjectHandle(r.key.Load()) }

// findToken returns the slot of the one token labelled label.
func findToken(ctx *pkcs11.Ctx, label string) (uint, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, p11Error("list slots", err)
	}
	var found []uint
	var labels []string
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			return 0, p11Error(fmt.Sprintf("get token info of slot %d", s), err)
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		labels = append(labels, fmt.Sprintf("%q", ti.Label))
		if ti.Label == label {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return 0, fmt.Errorf("pkcs11: no initialised token labelled %q (found: %s)", label, listOrNone(labels))
	default:
		return 0, fmt.Errorf("pkcs11: %d tokens are labelled %q (slots %v): refusing to guess which holds the root key", len(found), label, found)
	}
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func (r *PKCS11Root) findOrCreateKey(label string, noCreate bool) (pkcs11.ObjectHandle, error) {
	keys, err := r.findKeys(label)
	if err != nil {
		return 0, err
	}
	switch len(keys) {
	case 0:
		if noCreate {
			return 0, fmt.Errorf("pkcs11: no root key labelled %q on the token, but the database holds data sealed under a root: configure the token and label that hold it (kura creates a root only for an empty database)", label)
		}
		return r.createKey(label)
	case 1:
		if err := r.checkKey(keys[0], label); err != nil {
			return 0, err
		}
		return keys[0], nil
	default:
		return 0, fmt.Errorf("pkcs11: token %q holds %d secret keys labelled %q: refusing to guess which is the root key", r.token, len(keys), label)
	}
}

func (r *PKCS11Root) findKeys(label string) ([]pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	if err := r.ctx.FindObjectsInit(r.login, tmpl); err != nil {
		return nil, p11Error("find root key", err)
	}
	// Two are enough to tell "one" from "ambiguous".
	keys, _, err := r.ctx.FindObjects(r.login, 2)
	if ferr := r.ctx.FindObjectsFinal(r.login); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, p11Error("find root key", err)
	}
	return keys, nil
}

func (r *PKCS11Root) createKey(label string) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),   // survives restarts
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true), // invisible without login
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		// Nothing else: no wrapping other HSM keys out, no signing, and no
		// derivation, which on some tokens leaks key bits into derivable,
		// extractable keys.
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
	}
	k, err := r.ctx.GenerateKey(r.login, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, tmpl)
	if err != nil {
		return 0, p11Error(fmt.Sprintf("generate root key %q", label), err)
	}
	// Trust but verify: a token may silently ignore template attributes.
	if err := r.checkKey(k, label); err != nil {
		return 0, err
	}
	return k, nil
}

// checkKey refuses a key object that is not a sensitive, non-extractable
// AES-256 key allowed to encrypt and decrypt.
func (r *PKCS11Root) checkKey(k pkcs11.ObjectHandle, label string) error {
	// CKA_VALUE is deliberately not asked for: on a sensitive key the whole
	// call would fail with CKR_ATTRIBUTE_SENSITIVE.
	attrs, err := r.ctx.GetAttributeValue(r.login, k, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, nil),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, nil),
		pkcs11.NewAttribute(pkcs11.CKA_LOCAL, nil),
		pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ALWAYS_SENSITIVE, nil),
	})
	if err != nil {
		return p11Error(fmt.Sprintf("read attributes of root key %q", label), err)
	}
	bad := func(what string) error {
		return fmt.Errorf("pkcs11: key %q on token %q %s: refusing to use it as the root key", label, r.token, what)
	}
	if kt, ok := attrUlong(attrs[0]); !ok || kt != pkcs11.CKK_AES {
		return bad("is not an AES key")
	}
	if n, ok := attrUlong(attrs[1]); !ok || n != 32 {
		return bad(fmt.Sprintf("is not 256 bits long (CKA_VALUE_LEN %d)", n))
	}
	if !attrBool(attrs[2]) {
		return bad("is not sensitive (CKA_SENSITIVE false)")
	}
	if attrBool(attrs[3]) {
		return bad("is extractable (CKA_EXTRACTABLE true)")
	}
	if !attrBool(attrs[4]) || !attrBool(attrs[5]) {
		return bad("may not both encrypt and decrypt")
	}
	// A key imported with C_CreateObject can be sensitive and
	// non-extractable now while its value is known to whoever planted it:
	// only a key generated inside the token, never extractable and always
	// sensitive, is a root nobody has seen.
	if !attrBool(attrs[6]) || !attrBool(attrs[7]) || !attrBool(attrs[8]) {
		return bad("was not generated inside the token, or has been extractable or not sensitive (CKA_LOCAL, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE must all be true)")
	}
	return nil
}

func attrBool(a *pkcs11.Attribute) bool { return len(a.Value) == 1 && a.Value[0] != 0 }

// attrUlong decodes a CK_ULONG attribute, which the module returns in the
// host's byte order and C long width.
func attrUlong(a *pkcs11.Attribute) (uint, bool) {
	switch len(a.Value) {
	case 8:
		return uint(binary.NativeEndian.Uint64(a.Value)), true
	case 4:
		return uint(binary.NativeEndian.Uint32(a.Value)), true
	}
	return 0, false
}

// Wrap implements Root: AES-256-GCM inside the HSM under the root key, with
// a fresh random 96-bit IV and aad as associated data. The output is
// iv || ciphertext || 128-bit tag.
func (r *PKCS11Root) Wrap(dek, aad []byte) ([]byte, error) {
	if len(dek) == 0 {
		return nil, errors.New("pkcs11: wrap: data key is empty")
	}
	iv := make([]byte, gcmIVLen)
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("pkcs11: wrap: random IV: %w", err)
	}
	var out []byte
	err := r.withSession(func(sh pkcs11.SessionHandle) error {
		var err error
		out, err = r.wrapWith(sh, r.keyHandle(), iv, dek, aad)
		return err
	})
	return out, err
}

// wrapWith encrypts dek under key on session sh.
func (r *PKCS11Root) wrapWith(sh pkcs11.SessionHandle, key pkcs11.ObjectHandle, iv, dek, aad []byte) ([]byte, error) {
	params := pkcs11.NewGCMParams(iv, aad, gcmTagLen*8)
	defer params.Free()
	if err := r.ctx.EncryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, key); err != nil {
		return nil, p11Error("wrap: encrypt init", err)
	}
	ct, err := r.ctx.Encrypt(sh, dek)
	if err != nil {
		return nil, p11Error("wrap: encrypt", err)
	}
	// Some HSMs (in FIPS mode) ignore the caller's IV and write their
	// own into the parameters; store the one actually used.
	used := params.IV()
	if len(used) != gcmIVLen {
		return nil, fmt.Errorf("pkcs11: wrap: token used a %d-byte IV, want %d", len(used), gcmIVLen)
	}
	if len(ct) != len(dek)+gcmTagLen {
		return nil, fmt.Errorf("pkcs11: wrap: token returned %d bytes for a %d-byte key, want %d", len(ct), len(dek), len(dek)+gcmTagLen)
	}
	return append(used, ct...), nil
}

// errUnwrapAuth is the one answer to every ciphertext that does not
// authenticate: tampered, truncated, or wrapped for another object.
var errUnwrapAuth = fmt.Errorf("pkcs11: unwrap: authentication failed, wrong object or tampered (%w)", ErrNotAuthentic)

// Unwrap implements Root.
func (r *PKCS11Root) Unwrap(wrapped, aad []byte) ([]byte, error) {
	if len(wrapped) < gcmIVLen+gcmTagLen+1 {
		return nil, fmt.Errorf("pkcs11: unwrap: wrapped key is %d bytes, too short (%w)", len(wrapped), ErrNotAuthentic)
	}
	var dek []byte
	err := r.withSession(func(sh pkcs11.SessionHandle) error {
		var err error
		dek, err = r.unwrapWith(sh, r.keyHandle(), wrapped, aad)
		return err
	})
	return dek, err
}

// unwrapWith decrypts wrapped under key on session sh.
func (r *PKCS11Root) unwrapWith(sh pkcs11.SessionHandle, key pkcs11.ObjectHandle, wrapped, aad []byte) ([]byte, error) {
	params := pkcs11.NewGCMParams(wrapped[:gcmIVLen], aad, gcmTagLen*8)
	defer params.Free()
	if err := r.ctx.DecryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, key); err != nil {
		return nil, p11Error("unwrap: decrypt init", err)
	}
	pt, err := r.ctx.Decrypt(sh, wrapped[gcmIVLen:])
	if err != nil {
		if isBadCiphertext(err) {
			// The operation ended (C_Decrypt terminates on any error
			// but CKR_BUFFER_TOO_SMALL), so the session is still good.
			return nil, sessionOK{errUnwrapAuth}
		}
		if errors.Is(err, pkcs11.Error(pkcs11.CKR_GENERAL_ERROR)) {
			// SoftHSM2 2.6 answers a failed tag check with
			// CKR_GENERAL_ERROR instead of CKR_ENCRYPTED_DATA_INVALID,
			// so this code cannot be told from a token fault. Say
			// both, and drop the session in case it was a fault.
			return nil, &pkcs11OpError{op: "unwrap: decrypt", err: err, maybeNotAuthentic: true,
				hint: "authentication failed, or a token fault: SoftHSM2 2.6 reports a failed GCM tag check this way"}
		}
		return nil, p11Error("unwrap: decrypt", err)
	}
	return pt, nil
}

func isBadCiphertext(err error) bool {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e {
	case pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE:
		return true
	}
	return false
}

// sessionOK marks an error after which the session may be reused. Any other
// error discards the session: after an unexpected failure its state is
// unknown (an operation may still be active), and a fresh session is cheap.
type sessionOK struct{ error }

// withSession runs f on a session nobody else is using.
func (r *PKCS11Root) withSession(f func(pkcs11.SessionHandle) error) error {
	if r == nil || r.ctx == nil {
		// Not opened with OpenPKCS11Root.
		return ErrSealed
	}
	r.life.RLock()
	defer r.life.RUnlock()
	if r.closed {
		return fmt.Errorf("pkcs11: root is closed: %w", ErrSealed)
	}
	r.busy <- struct{}{}
	defer func() { <-r.busy }()

	gen := r.gen.Load()
	err := r.once(f)
	if !loginLost(err) {
		return err
	}
	// The token forgot the login or the sessions: log in again (once per
	// loss, whoever sees it first) and retry once.
	if rerr := r.relogin(gen); rerr != nil {
		return fmt.Errorf("%w; logging in again failed: %w", err, rerr)
	}
	return r.once(f)
}

// once runs f on a session once.
func (r *PKCS11Root) once(f func(pkcs11.SessionHandle) error) error {
	sh, err := r.getSession()
	if err != nil {
		return err
	}
	err = f(sh)
	var ok sessionOK
	switch {
	case err == nil:
		r.putSession(sh)
		return nil
	case errors.As(err, &ok):
		r.putSession(sh)
		return ok.error
	default:
		r.ctx.CloseSession(sh) // best effort: it is being dropped anyway
		return err
	}
}

// loginLost reports errors after which the token no longer knows our
// login, sessions or object handles, but logging in again may help.
func loginLost(err error) bool {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e {
	case pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_OBJECT_HANDLE_INVALID,
		pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_REMOVED:
		return true
	}
	return false
}

// reloginEvery bounds re-login attempts against a token that keeps failing.
const reloginEvery = time.Second

// relogin drops every session, finds the token again, logs in and finds
// the root key again (never creating one: the data is sealed under the old
// key). gen is the generation the caller saw fail; if another caller has
// logged in since, there is nothing to do.
func (r *PKCS11Root) relogin(gen uint64) error {
	r.loginMu.Lock()
	defer r.loginMu.Unlock()
	if r.gen.Load() != gen {
		return nil
	}
	if !r.lastTry.IsZero() && time.Since(r.lastTry) < reloginEvery {
		if r.lastErr != nil {
			return r.lastErr
		}
		return errors.New("pkcs11: the token lost the login again within a second of logging in")
	}
	err := r.loginAgain()
	r.lastErr, r.lastTry = err, time.Now()
	if err == nil {
		r.gen.Add(1)
	}
	return err
}

func (r *PKCS11Root) loginAgain() error {
	r.mu.Lock()
	idle := r.idle
	r.idle = nil
	r.mu.Unlock()
	for _, sh := range idle {
		r.ctx.CloseSession(sh) // best effort: they are dead or about to be
	}
	if r.loginOpen {
		r.ctx.CloseSession(r.login)
		r.loginOpen = false
	}
	slot, err := findToken(r.ctx, r.token)
	if err != nil {
		return err
	}
	login, err := r.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return p11Error("open session", err)
	}
	if err := r.ctx.Login(login, pkcs11.CKU_USER, r.pin); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		r.ctx.CloseSession(login)
		return p11Error(fmt.Sprintf("log in to token %q", r.token), err)
	}
	r.slot.Store(uint64(slot))
	r.login, r.loginOpen = login, true
	k, err := r.findOrCreateKey(r.keyLabel, true)
	if err != nil {
		return err
	}
	if _, err := r.unwrapWith(login, k, r.check, checkAAD); err != nil {
		return fmt.Errorf("pkcs11: the key labelled %q on token %q is not the root key this kura opened with (replaced, or another HSM's): refusing it: %w", r.keyLabel, r.token, err)
	}
	r.key.Store(uint64(k))
	return nil
}

func (r *PKCS11Root) getSession() (pkcs11.SessionHandle, error) {
	r.mu.Lock()
	if n := len(r.idle); n > 0 {
		sh := r.idle[n-1]
		r.idle = r.idle[:n-1]
		r.mu.Unlock()
		return sh, nil
	}
	r.mu.Unlock()
	// Read-only is enough to use a private object once logged in.
	sh, err := r.ctx.OpenSession(uint(r.slot.Load()), pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return 0, p11Error("open session", err)
	}
	return sh, nil
}

func (r *PKCS11Root) putSession(sh pkcs11.SessionHandle) {
	r.mu.Lock()
	r.idle = append(r.idle, sh)
	r.mu.Unlock()
}

// Close waits for operations in flight, logs out, closes the sessions and
// finalises the module. Wrap and Unwrap fail after Close. Closing twice is
// a no-op.
func (r *PKCS11Root) Close() error {
	r.life.Lock()
	defer r.life.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	r.mu.Lock()
	for _, sh := range r.idle {
		if err := r.ctx.CloseSession(sh); err != nil {
			errs = append(errs, p11Error("close session", err))
		}
	}
	r.idle = nil
	r.mu.Unlock()
	if r.loginOpen {
		if err := r.ctx.Logout(r.login); err != nil {
			errs = append(errs, p11Error("logout", err))
		}
		if err := r.ctx.CloseSession(r.login); err != nil {
			errs = append(errs, p11Error("close session", err))
		}
	}
	if err := r.ctx.Finalize(); err != nil {
		errs = append(errs, p11Error("finalize", err))
	}
	r.ctx.Destroy()
	return errors.Join(errs...)
}

// p11Error names the failed step and the CKR_ code, e.g.
// "pkcs11: open session: CKR_SESSION_COUNT", and unwraps to the pkcs11.Error
// so callers can test for a code with errors.Is.
func p11Error(op string, err error) error { return &pkcs11OpError{op: op, err: err} }

type pkcs11OpError struct {
	op   string
	err  error
	hint string // what the code likely means here, if not obvious
	// maybeNotAuthentic marks a code that may mean a failed tag check: it
	// is treated as ErrNotAuthentic so that tampered input stays a 4xx.
	maybeNotAuthentic bool
}

// Is makes an ambiguous tag-check failure match ErrNotAuthentic.
func (e *pkcs11OpError) Is(target error) bool {
	return e.maybeNotAuthentic && target == ErrNotAuthentic
}

func (e *pkcs11OpError) Error() string {
	msg := "pkcs11: " + e.op + ": " + ckrName(e.err)
	if e.hint != "" {
		msg += " (" + e.hint + ")"
	}
	return msg
}
func (e *pkcs11OpError) Unwrap() error { return e.err }

// ckrName returns "CKR_PIN_INCORRECT" for a pkcs11.Error, whose own message
// is "pkcs11: 0xA0: CKR_PIN_INCORRECT", and err's message otherwise.
func ckrName(err error) string {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	msg := e.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return fmt.Sprintf("CKR 0x%X", uint(e))
}
