package keyops

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math"
)

// AES key wrap per RFC 3394 and with padding per RFC 5649. The Go standard
// library has neither; Key Vault needs both (A*KW and CKM_AES_KEY_WRAP are
// RFC 3394, CKM_AES_KEY_WRAP_PAD and the tail of CKM_RSA_AES_KEY_WRAP in
// secure key release are RFC 5649).
//
// Integrity failures on unwrap return *DecryptError and nothing more, and
// the integrity value and padding are compared in constant time. Length
// errors are *InputError on field "value": lengths are public.

const (
	kwIV  = 0xA6A6A6A6A6A6A6A6 // RFC 3394 §2.2.3.1 default initial value
	kwpIV = 0xA65959A6         // RFC 5649 §3 alternative initial value, high half
)

func kekCipher(kek []byte) (cipher.Block, error) {
	switch len(kek) {
	case 16, 24, 32:
		return aes.NewCipher(kek)
	}
	return nil, fmt.Errorf("keyops: AES key-encryption key must be 16, 24 or 32 bytes, got %d", len(kek))
}

// AESKeyWrap wraps plaintext (a multiple of 8 bytes, at least 16) with kek
// per RFC 3394. The result is 8 bytes longer than plaintext.
func AESKeyWrap(kek, plaintext []byte) ([]byte, error) {
	b, err := kekCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(plaintext) < 16 || len(plaintext)%8 != 0 {
		return nil, inputErr("value", "AES key wrap (RFC 3394) needs a multiple of 8 bytes, at least 16; got %d bytes", len(plaintext))
	}
	return wrapCore(b, kwIV, plaintext), nil
}

// AESKeyUnwrap reverses AESKeyWrap and checks the integrity value.
func AESKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	b, err := kekCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, inputErr("value", "an RFC 3394 wrapped key is a multiple of 8 bytes, at least 24; got %d bytes", len(wrapped))
	}
	a, p := unwrapCore(b, wrapped)
	var want [8]byte
	binary.BigEndian.PutUint64(want[:], kwIV)
	if subtle.ConstantTimeCompare(a[:], want[:]) != 1 {
		clear(p)
		return nil, &DecryptError{}
	}
	return p, nil
}

// AESKeyWrapPad wraps plaintext of any length from 1 byte with kek per
// RFC 5649 (initial value A65959A6 || 32-bit message length).
func AESKeyWrapPad(kek, plaintext []byte) ([]byte, error) {
	b, err := kekCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(plaintext) == 0 || uint64(len(plaintext)) > math.MaxUint32 {
		return nil, inputErr("value", "AES key wrap with padding (RFC 5649) needs 1 to 2^32-1 bytes; got %d bytes", len(plaintext))
	}
	aiv := uint64(kwpIV)<<32 | uint64(len(plaintext))
	padded := make([]byte, (len(plaintext)+7)/8*8)
	copy(padded, plaintext)
	if len(padded) == 8 {
		// §4.1: a single block is one AES encryption of AIV || P.
		out := make([]byte, 16)
		binary.BigEndian.PutUint64(out, aiv)
		copy(out[8:], padded)
		b.Encrypt(out, out)
		clear(padded)
		return out, nil
	}
	out := wrapCore(b, aiv, padded)
	clear(padded)
	return out, nil
}

// AESKeyUnwrapPad reverses AESKeyWrapPad, checking the initial value, the
// message length indicator and that the padding is zero.
func AESKeyUnwrapPad(kek, wrapped []byte) ([]byte, error) {
	b, err := kekCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < 16 || len(wrapped)%8 != 0 {
		return nil, inputErr("value", "an RFC 5649 wrapped key is a multiple of 8 bytes, at least 16; got %d bytes", len(wrapped))
	}
	var a [8]byte
	var p []byte
	if len(wrapped) == 16 {
		var blk [16]byte
		b.Decrypt(blk[:], wrapped)
		copy(a[:], blk[:8])
		p = append([]byte(nil), blk[8:]...)
		clear(blk[:])
	} else {
		a, p = unwrapCore(b, wrapped)
	}
	var want [4]byte
	binary.BigEndian.PutUint32(want[:], kwpIV)
	ok := subtle.ConstantTimeCompare(a[:4], want[:])
	// The length indicator is checked with ordinary comparisons: it only
	// tells the size of the key, which a successful unwrap reveals anyway.
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if mli <= len(p)-8 || mli > len(p) {
		ok = 0
	} else {
		var nonzero byte
		for _, c := range p[mli:] {
			nonzero |= c
		}
		ok &= subtle.ConstantTimeByteEq(nonzero, 0)
	}
	if ok != 1 {
		clear(p)
		return nil, &DecryptError{}
	}
	return p[:mli:mli], nil
}

// wrapCore is the RFC 3394 §2.2.1 wrapping process (index-based form) with
// initial value iv over p, whose length is a multiple of 8 and at least 16.
func wrapCore(b cipher.Block, iv uint64, p []byte) []byte {
	n := len(p) / 8
	out := make([]byte, 8+len(p))
	copy(out[8:], p)
	var blk [16]byte
	a := iv
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			r := out[8*i : 8*i+8]
			binary.BigEndian.PutUint64(blk[:8], a)
			copy(blk[8:], r)
			b.Encrypt(blk[:], blk[:])
			a = binary.BigEndian.Uint64(blk[:8]) ^ uint64(n*j+i)
			copy(r, blk[8:])
		}
	}
	binary.BigEndian.PutUint64(out[:8], a)
	clear(blk[:])
	return out
}

// unwrapCore is the RFC 3394 §2.2.2 unwrapping process; it returns the
// recovered integrity value and the plaintext for the caller to check.
func unwrapCore(b cipher.Block, c []byte) (a [8]byte, p []byte) {
	n := len(c)/8 - 1
	p = append([]byte(nil), c[8:]...)
	av := binary.BigEndian.Uint64(c[:8])
	var blk [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			r := p[8*(i-1) : 8*i]
			binary.BigEndian.PutUint64(blk[:8], av^uint64(n*j+i))
			copy(blk[8:], r)
			b.Decrypt(blk[:], blk[:])
			av = binary.BigEndian.Uint64(blk[:8])
			copy(r, blk[8:])
		}
	}
	binary.BigEndian.PutUint64(a[:], av)
	clear(blk[:])
	return a, p
}
