package seal

// Shamir secret sharing of the unseal key.
//
// `kura operator init` splits the unseal key into n shares of which any m
// recombine it; `kura operator unseal` combines m shares typed in by their
// custodians. Fewer than m shares reveal nothing about the secret: each byte
// of the secret is the constant term of its own random polynomial of degree
// m-1 over GF(2^8), and a share is that polynomial evaluated at the share's x.
//
// Combining cannot tell a wrong share from a right one: any m shares of equal
// length interpolate to some value. Commitment and CheckCommitment close that
// gap: the check value is stored next to the sealed root, and a recombined
// secret is accepted only if it matches.
//
// Secret-dependent data (share y values, the secret) only ever goes through
// the bitwise gfMul, never through lookup tables or branches, so combining
// shares does not leak them through timing.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

const (
	// SharePrefix starts the text form of every share; the version lets a
	// later format be told apart from this one.
	SharePrefix = "kura-share-v1:"

	// MaxSecretLen bounds what Split accepts. The unseal key is 32 bytes;
	// the limit leaves room without letting a share grow unwieldy to type.
	MaxSecretLen = 64

	shareChecksumLen = 4
)

// Share is one custodian's part of a split secret: the value of the sharing
// polynomials at X. Y is secret: anyone holding m shares holds the secret.
type Share struct {
	X byte
	Y []byte
}

// String returns the text form of the share that an operator can copy:
// "kura-share-v1:" followed by base64url (no padding) of
// x || y || CRC-32 (IEEE, big-endian) of x || y. The checksum catches typos
// before they become a wrong secret; it is not an integrity protection
// against someone forging shares (Commitment is).
//
// The result contains the secret share: never log it.
func (s Share) String() string {
	raw := make([]byte, 0, 1+len(s.Y)+shareChecksumLen)
	raw = append(raw, s.X)
	raw = append(raw, s.Y...)
	raw = binary.BigEndian.AppendUint32(raw, crc32.ChecksumIEEE(raw))
	out := SharePrefix + base64.RawURLEncoding.EncodeToString(raw)
	clear(raw)
	return out
}

// base64url alphabet, checked explicitly because encoding/base64 silently
// skips '\r' and '\n', and a strict parser must not accept two spellings of
// one share.
func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// ParseShare parses the text form written by Share.String. It is strict: no
// surrounding whitespace, no padding, no characters outside base64url, and
// the checksum must match. Errors say what is wrong but never echo the input,
// which is secret.
func ParseShare(s string) (Share, error) {
	body, ok := strings.CutPrefix(s, SharePrefix)
	if !ok {
		return Share{}, fmt.Errorf("share: does not start with %q", SharePrefix)
	}
	for i := 0; i < len(body); i++ {
		if !isBase64URL(body[i]) {
			return Share{}, fmt.Errorf("share: invalid character at position %d (expected base64url: A-Z a-z 0-9 - _)", len(SharePrefix)+i)
		}
	}
	// Bounds on the encoded length first, so the error is about length
	// rather than an encoding detail.
	minRaw, maxRaw := 1+1+shareChecksumLen, 1+MaxSecretLen+shareChecksumLen
	if n := base64.RawURLEncoding.DecodedLen(len(body)); n < minRaw || n > maxRaw {
		return Share{}, fmt.Errorf("share: %d characters after the prefix, want %d to %d (truncated or extra characters?)",
			len(body), base64.RawURLEncoding.EncodedLen(minRaw), base64.RawURLEncoding.EncodedLen(maxRaw))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil {
		// Only a length of 4k+1 characters or non-zero trailing bits get
		// here; both mean the text was mistyped or cut.
		return Share{}, errors.New("share: malformed base64url (wrong length or last character mistyped)")
	}
	defer clear(raw)
	n := len(raw) - shareChecksumLen
	if binary.BigEndian.Uint32(raw[n:]) != crc32.ChecksumIEEE(raw[:n]) {
		return Share{}, errors.New("share: checksum mismatch: the share was mistyped or is incomplete")
	}
	if raw[0] == 0 {
		// x = 0 would be the secret itself; Split never produces it.
		return Share{}, errors.New("share: x coordinate is 0, which no valid share has")
	}
	return Share{X: raw[0], Y: append([]byte(nil), raw[1:n]...)}, nil
}

// Split splits secret into n shares, any m of which recombine it with
// Combine. 2 ≤ m ≤ n ≤ 255 and the secret is 1 to MaxSecretLen bytes. Share
// i (from 1) has X = i, so custodians can be told "share 3 of 5".
func Split(secret []byte, n, m int) ([]Share, error) {
	switch {
	case m < 2:
		return nil, fmt.Errorf("shamir: threshold %d: must be at least 2 (a threshold of 1 would make every share the secret)", m)
	case n > 255:
		return nil, fmt.Errorf("shamir: %d shares: at most 255 (x coordinates are non-zero bytes)", n)
	case m > n:
		return nil, fmt.Errorf("shamir: threshold %d is larger than the number of shares %d", m, n)
	case len(secret) == 0:
		return nil, errors.New("shamir: secret is empty")
	case len(secret) > MaxSecretLen:
		return nil, fmt.Errorf("shamir: secret is %d bytes, at most %d", len(secret), MaxSecretLen)
	}

	// coeffs[b*m : (b+1)*m] is the polynomial for secret byte b, lowest
	// degree first. All non-constant coefficients are uniform, including the
	// leading one: forcing it non-zero would rule out one secret value given
	// m-1 shares, which is a (small) leak.
	coeffs := make([]byte, len(secret)*m)
	defer clear(coeffs)
	if _, err := rand.Read(coeffs); err != nil {
		return nil, fmt.Errorf("shamir: random coefficients: %w", err)
	}
	for b, s := range secret {
		coeffs[b*m] = s
	}

	shares := make([]Share, n)
	for i := range shares {
		x := byte(i + 1)
		y := make([]byte, len(secret))
		for b := range y {
			// Horner's rule, highest degree first.
			p := coeffs[b*m : (b+1)*m]
			var acc byte
			for k := m - 1; k >= 0; k-- {
				acc = gfMul(acc, x) ^ p[k]
			}
			y[b] = acc
		}
		shares[i] = Share{X: x, Y: y}
	}
	return shares, nil
}

// Combine recombines a secret from shares by Lagrange interpolation at 0. It
// needs at least two shares of equal length with distinct, non-zero X. Given
// fewer shares than the threshold, or a wrong share, it returns a wrong
// value without error: check the result with CheckCommitment.
func Combine(shares []Share) ([]byte, error) {
	if len(shares) < 2 {
		return nil, fmt.Errorf("shamir: %d share(s) given, at least 2 are needed", len(shares))
	}
	l := len(shares[0].Y)
	if l == 0 || l > MaxSecretLen {
		return nil, fmt.Errorf("shamir: share 1 has %d bytes, want 1 to %d", l, MaxSecretLen)
	}
	var seen [256]bool
	for i, s := range shares {
		if len(s.Y) != l {
			return nil, fmt.Errorf("shamir: share %d has %d bytes but share 1 has %d: shares from different splits?", i+1, len(s.Y), l)
		}
		if s.X == 0 {
			return nil, fmt.Errorf("shamir: share %d has x coordinate 0", i+1)
		}
		if seen[s.X] {
			return nil, fmt.Errorf("shamir: share %d repeats x coordinate %d: the same share was given twice", i+1, s.X)
		}
		seen[s.X] = true
	}

	secret := make([]byte, l)
	for i, si := range shares {
		// Lagrange basis polynomial for share i evaluated at 0:
		// Π_{j≠i} x_j / (x_j - x_i), and subtraction is XOR in GF(2^8).
		// The x coordinates are public, so computing it is not secret.
		num, den := byte(1), byte(1)
		for j, sj := range shares {
			if j == i {
				continue
			}
			num = gfMul(num, sj.X)
			den = gfMul(den, sj.X^si.X)
		}
		basis := gfMul(num, gfInv(den))
		for b := range secret {
			secret[b] ^= gfMul(si.Y[b], basis)
		}
	}
	return secret, nil
}

// gfMul multiplies in GF(2^8) modulo the AES polynomial x^8+x^4+x^3+x+1
// (0x11b). It is branch-free and table-free so its timing does not depend on
// its operands.
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)       // add a if the low bit of b is set
		a = a<<1 ^ 0x1b&-(a>>7) // multiply a by x, reducing if it overflowed
		b >>= 1
	}
	return p
}

// gfInv returns a^-1 = a^254 in GF(2^8) (and 0 for 0), in constant time.
func gfInv(a byte) byte {
	// a^254 = a^(2+4+8+16+32+64+128).
	r := byte(1)
	sq := a
	for range 7 {
		sq = gfMul(sq, sq)
		r = gfMul(r, sq)
	}
	return r
}

// commitmentLabel is the message MACed under the secret. It names its
// purpose so the check value cannot be confused with any other MAC kura
// computes with the same key.
var commitmentLabel = []byte("kura unseal key commitment v1")

// Commitment returns a check value for secret, to store next to the sealed
// root: HMAC-SHA256 of a fixed label keyed with the secret. It reveals
// nothing useful about a high-entropy secret (the unseal key is 32 random
// bytes) but lets `kura operator unseal` tell "these shares recombine the
// unseal key" from "some share is wrong or missing".
func Commitment(secret []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(commitmentLabel)
	return mac.Sum(nil)
}

// CheckCommitment reports whether secret matches a value returned by
// Commitment, comparing in constant time.
func CheckCommitment(secret, commitment []byte) bool {
	return hmac.Equal(Commitment(secret), commitment)
}
