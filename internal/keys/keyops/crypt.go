package keyops

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"fmt"
)

// Result is the output of Encrypt. IV and Tag are set only by the AES
// modes: the IV actually used (the caller's, or one generated here) and,
// for GCM, the 16-byte authentication tag, which Key Vault returns
// separately from the ciphertext.
type Result struct {
	Value, IV, Tag []byte
}

const (
	gcmIVSize  = 12
	gcmTagSize = 16
)

// Encrypt encrypts plaintext with alg: RSA1_5, RSA-OAEP (SHA-1),
// RSA-OAEP-256 on RSA keys; A*GCM, A*CBC, A*CBCPAD on oct keys of the
// matching size. iv is optional for the AES modes (a random one is
// generated and returned when absent) and refused elsewhere; aad is only
// for GCM.
func Encrypt(m *Material, alg string, plaintext, iv, aad []byte) (Result, error) {
	a, err := resolve(m, alg, opEncrypt)
	if err != nil {
		return Result{}, err
	}
	switch a.scheme {
	case rsaPKCS1, rsaOAEP:
		if err := unused(a, iv, aad, nil); err != nil {
			return Result{}, err
		}
		ct, err := rsaEncrypt(m.RSA, a, plaintext)
		return Result{Value: ct}, err
	case aesGCM:
		return gcmSeal(m.Oct, a, plaintext, iv, aad)
	default: // aesCBC, aesCBCPad
		return cbcEncrypt(m.Oct, a, plaintext, iv, aad)
	}
}

// Decrypt reverses Encrypt. For GCM, iv and the separate tag are required;
// for CBC, iv is required. Authentication and padding failures are
// *DecryptError.
func Decrypt(m *Material, alg string, ciphertext, iv, aad, tag []byte) ([]byte, error) {
	a, err := resolve(m, alg, opEncrypt)
	if err != nil {
		return nil, err
	}
	switch a.scheme {
	case rsaPKCS1, rsaOAEP:
		if err := unused(a, iv, aad, tag); err != nil {
			return nil, err
		}
		return rsaDecrypt(m.RSA, a, ciphertext)
	case aesGCM:
		return gcmOpen(m.Oct, a, ciphertext, iv, aad, tag)
	default:
		if len(tag) != 0 {
			return nil, inputErr("tag", "not used by %s", a.name)
		}
		return cbcDecrypt(m.Oct, a, ciphertext, iv, aad)
	}
}

// WrapKey wraps key with alg: the RSA encryption algorithms on RSA keys,
// A*KW (RFC 3394, key size must match), CKM_AES_KEY_WRAP (RFC 3394) and
// CKM_AES_KEY_WRAP_PAD (RFC 5649) on oct keys.
func WrapKey(m *Material, alg string, key []byte) ([]byte, error) {
	a, err := resolve(m, alg, opWrap)
	if err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, inputErr("value", "empty: there is no key to wrap")
	}
	switch a.scheme {
	case rsaPKCS1, rsaOAEP:
		return rsaEncrypt(m.RSA, a, key)
	case aesKW:
		return AESKeyWrap(m.Oct, key)
	default: // aesKWP
		return AESKeyWrapPad(m.Oct, key)
	}
}

// UnwrapKey reverses WrapKey. Integrity failures are *DecryptError.
func UnwrapKey(m *Material, alg string, wrapped []byte) ([]byte, error) {
	a, err := resolve(m, alg, opWrap)
	if err != nil {
		return nil, err
	}
	switch a.scheme {
	case rsaPKCS1, rsaOAEP:
		return rsaDecrypt(m.RSA, a, wrapped)
	case aesKW:
		return AESKeyUnwrap(m.Oct, wrapped)
	default:
		return AESKeyUnwrapPad(m.Oct, wrapped)
	}
}

// unused refuses parameters the algorithm has no use for: silently
// ignoring an IV or AAD would let a caller believe it was bound to the
// ciphertext.
func unused(a algorithm, iv, aad, tag []byte) error {
	for _, f := range []struct {
		name string
		v    []byte
	}{{"iv", iv}, {"aad", aad}, {"tag", tag}} {
		if len(f.v) != 0 {
			return inputErr(f.name, "not used by %s", a.name)
		}
	}
	return nil
}

func rsaEncrypt(k *rsa.PrivateKey, a algorithm, msg []byte) ([]byte, error) {
	limit := k.Size() - 11 // PKCS#1 v1.5: at least 8 bytes of padding plus 3 framing bytes
	if a.scheme == rsaOAEP {
		limit = k.Size() - 2*a.hash.Size() - 2
	}
	if len(msg) > limit {
		return nil, inputErr("value", "%d bytes is too long for %s with a %d-bit key (at most %d)",
			len(msg), a.name, k.N.BitLen(), limit)
	}
	var ct []byte
	var err error
	if a.scheme == rsaOAEP {
		ct, err = rsa.EncryptOAEP(a.hash.New(), rand.Reader, &k.PublicKey, msg, nil)
	} else {
		//lint:ignore SA1019 RSA1_5 is part of the Key Vault API kura is compatible with (documented as a padding oracle).
		ct, err = rsa.EncryptPKCS1v15(rand.Reader, &k.PublicKey, msg)
	}
	if err != nil {
		return nil, fmt.Errorf("keyops: %s encryption: %w", a.name, err)
	}
	return ct, nil
}

func rsaDecrypt(k *rsa.PrivateKey, a algorithm, ct []byte) ([]byte, error) {
	if len(ct) != k.Size() {
		return nil, inputErr("value", "%s ciphertext for a %d-bit key is %d bytes; got %d",
			a.name, k.N.BitLen(), k.Size(), len(ct))
	}
	var pt []byte
	var err error
	if a.scheme == rsaOAEP {
		pt, err = rsa.DecryptOAEP(a.hash.New(), nil, k, ct, nil)
	} else {
		// Key Vault offers RSA1_5, so kura does too; see the package
		// comment on why success itself is an oracle here.
		//lint:ignore SA1019 RSA1_5 is part of the Key Vault API kura is compatible with (documented as a padding oracle).
		pt, err = rsa.DecryptPKCS1v15(nil, k, ct)
	}
	if err != nil {
		return nil, &DecryptError{}
	}
	return pt, nil
}

func gcmSeal(key []byte, a algorithm, pt, iv, aad []byte) (Result, error) {
	if len(iv) != 0 {
		// A caller-chosen nonce would let anyone allowed to encrypt reuse
		// the nonce of someone else's ciphertext and read the keystream,
		// i.e. decrypt without the decrypt permission.
		return Result{}, inputErr("iv", "%s encryption generates its own iv; do not send one", a.name)
	}
	// A fresh random 96-bit nonce, safe for 2^32 messages per key.
	iv = make([]byte, gcmIVSize)
	if _, err := rand.Read(iv); err != nil {
		return Result{}, fmt.Errorf("keyops: generating GCM iv: %w", err)
	}
	g, err := newGCM(key)
	if err != nil {
		return Result{}, err
	}
	out := g.Seal(nil, iv, pt, aad)
	n := len(out) - gcmTagSize
	return Result{Value: out[:n:n], IV: iv, Tag: out[n:]}, nil
}

func gcmOpen(key []byte, a algorithm, ct, iv, aad, tag []byte) ([]byte, error) {
	switch {
	case len(iv) == 0:
		return nil, inputErr("iv", "missing: %s decryption needs the %d-byte iv returned by encrypt", a.name, gcmIVSize)
	case len(iv) != gcmIVSize:
		return nil, inputErr("iv", "%s needs a %d-byte iv; got %d bytes", a.name, gcmIVSize, len(iv))
	case len(tag) == 0:
		return nil, inputErr("tag", "missing: %s decryption needs the %d-byte authentication tag returned by encrypt", a.name, gcmTagSize)
	case len(tag) != gcmTagSize:
		return nil, inputErr("tag", "%s needs a %d-byte authentication tag; got %d bytes", a.name, gcmTagSize, len(tag))
	}
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	sealed := make([]byte, 0, len(ct)+gcmTagSize)
	sealed = append(append(sealed, ct...), tag...)
	pt, err := g.Open(sealed[:0], iv, sealed, aad)
	if err != nil {
		return nil, &DecryptError{}
	}
	return pt, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyops: AES key: %w", err)
	}
	return cipher.NewGCM(b)
}

func cbcEncrypt(key []byte, a algorithm, pt, iv, aad []byte) (Result, error) {
	if len(aad) != 0 {
		return Result{}, inputErr("aad", "not used by %s", a.name)
	}
	if len(iv) == 0 {
		iv = make([]byte, aes.BlockSize)
		if _, err := rand.Read(iv); err != nil {
			return Result{}, fmt.Errorf("keyops: generating CBC iv: %w", err)
		}
	} else if len(iv) != aes.BlockSize {
		return Result{}, inputErr("iv", "%s needs a %d-byte iv; got %d bytes", a.name, aes.BlockSize, len(iv))
	}
	var buf []byte
	if a.scheme == aesCBCPad {
		pad := aes.BlockSize - len(pt)%aes.BlockSize
		buf = make([]byte, len(pt)+pad)
		copy(buf, pt)
		for i := len(pt); i < len(buf); i++ {
			buf[i] = byte(pad)
		}
	} else {
		if len(pt)%aes.BlockSize != 0 {
			return Result{}, inputErr("value", "%s (no padding) needs a multiple of %d bytes; got %d bytes (use %sPAD to pad)",
				a.name, aes.BlockSize, len(pt), a.name)
		}
		buf = append([]byte(nil), pt...)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return Result{}, fmt.Errorf("keyops: AES key: %w", err)
	}
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(buf, buf)
	return Result{Value: buf, IV: iv}, nil
}

func cbcDecrypt(key []byte, a algorithm, ct, iv, aad []byte) ([]byte, error) {
	switch {
	case len(aad) != 0:
		return nil, inputErr("aad", "not used by %s", a.name)
	case len(iv) == 0:
		return nil, inputErr("iv", "missing: %s decryption needs the %d-byte iv used to encrypt", a.name, aes.BlockSize)
	case len(iv) != aes.BlockSize:
		return nil, inputErr("iv", "%s needs a %d-byte iv; got %d bytes", a.name, aes.BlockSize, len(iv))
	case len(ct)%aes.BlockSize != 0:
		return nil, inputErr("value", "%s ciphertext is a multiple of %d bytes; got %d bytes", a.name, aes.BlockSize, len(ct))
	case a.scheme == aesCBCPad && len(ct) == 0:
		return nil, inputErr("value", "empty: %s ciphertext is at least one %d-byte block", a.name, aes.BlockSize)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyops: AES key: %w", err)
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(pt, ct)
	if a.scheme != aesCBCPad {
		return pt, nil
	}
	n, ok := unpadPKCS7(pt)
	if !ok {
		clear(pt)
		return nil, &DecryptError{}
	}
	return pt[:n:n], nil
}

// unpadPKCS7 checks PKCS#7 padding on a whole number of AES blocks in
// constant time (the time does not depend on the padding bytes), because
// an observable difference is exactly what a padding oracle exploits.
func unpadPKCS7(b []byte) (n int, ok bool) {
	last := b[len(b)-aes.BlockSize:]
	pad := last[aes.BlockSize-1]
	good := subtle.ConstantTimeLessOrEq(1, int(pad)) & subtle.ConstantTimeLessOrEq(int(pad), aes.BlockSize)
	for i := 0; i < aes.BlockSize; i++ {
		// Byte i of the last block (counting from the end) is padding
		// when i < pad; each such byte must equal pad.
		inPad := subtle.ConstantTimeLessOrEq(i+1, int(pad))
		eq := subtle.ConstantTimeByteEq(last[aes.BlockSize-1-i], pad)
		good &= subtle.ConstantTimeSelect(inPad, eq, 1)
	}
	return len(b) - int(pad), good == 1
}
