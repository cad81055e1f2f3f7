package seal

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"math/bits"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

func randomSecret(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// gfMulRef is the textbook shift-and-reduce multiplication with branches,
// kept only to cross-check the branch-free gfMul.
func gfMulRef(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0x1b
		}
		b >>= 1
	}
	return p
}

func TestGF256(t *testing.T) {
	// FIPS-197 §4.2 worked examples.
	if got := gfMul(0x57, 0x83); got != 0xc1 {
		t.Errorf("0x57·0x83 = %#x, want 0xc1", got)
	}
	if got := gfMul(0x57, 0x13); got != 0xfe {
		t.Errorf("0x57·0x13 = %#x, want 0xfe", got)
	}
	for a := range 256 {
		for b := range 256 {
			if got, want := gfMul(byte(a), byte(b)), gfMulRef(byte(a), byte(b)); got != want {
				t.Fatalf("gfMul(%#x, %#x) = %#x, want %#x", a, b, got, want)
			}
		}
		if a != 0 {
			if p := gfMul(byte(a), gfInv(byte(a))); p != 1 {
				t.Fatalf("%#x · inv(%#x) = %#x, want 1", a, a, p)
			}
		}
	}
	if gfInv(0) != 0 {
		t.Error("inv(0) should be 0")
	}
}

func TestSplitCombine(t *testing.T) {
	cases := []struct{ n, m int }{
		{2, 2}, {3, 2}, {3, 3}, {5, 3}, {7, 4}, {10, 10}, {16, 5},
		{255, 2}, {255, 128}, {255, 255},
	}
	for _, c := range cases {
		for _, l := range []int{1, 32, MaxSecretLen} {
			t.Run(fmt.Sprintf("n=%d/m=%d/len=%d", c.n, c.m, l), func(t *testing.T) {
				secret := randomSecret(t, l)
				shares, err := Split(secret, c.n, c.m)
				if err != nil {
					t.Fatal(err)
				}
				if len(shares) != c.n {
					t.Fatalf("got %d shares, want %d", len(shares), c.n)
				}
				var xs [256]bool
				for _, s := range shares {
					if s.X == 0 || xs[s.X] {
						t.Fatalf("x coordinate %d is zero or repeated", s.X)
					}
					xs[s.X] = true
					if len(s.Y) != l {
						t.Fatalf("share has %d bytes, want %d", len(s.Y), l)
					}
				}
				// All shares, the first m, the last m, and random m-subsets.
				subsets := [][]Share{shares, shares[:c.m], shares[c.n-c.m:]}
				rng := mrand.New(mrand.NewPCG(uint64(c.n), uint64(c.m)))
				for range 5 {
					p := rng.Perm(c.n)[:c.m]
					sub := make([]Share, c.m)
					for i, k := range p {
						sub[i] = shares[k]
					}
					subsets = append(subsets, sub)
				}
				for _, sub := range subsets {
					got, err := Combine(sub)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, secret) {
						t.Fatalf("%d shares recombined %x, want %x", len(sub), got, secret)
					}
				}
			})
		}
	}
}

// Every subset of at least m shares recombines the secret; every smaller one
// (of two or more) gives another value.
func TestCombineEverySubset(t *testing.T) {
	for _, c := range []struct{ n, m int }{{5, 3}, {7, 4}, {8, 2}, {8, 8}} {
		secret := randomSecret(t, 32)
		shares, err := Split(secret, c.n, c.m)
		if err != nil {
			t.Fatal(err)
		}
		for mask := uint(0); mask < 1<<c.n; mask++ {
			k := bits.OnesCount(mask)
			if k < 2 {
				continue
			}
			var sub []Share
			for i := range c.n {
				if mask&(1<<i) != 0 {
					sub = append(sub, shares[i])
				}
			}
			got, err := Combine(sub)
			if err != nil {
				t.Fatal(err)
			}
			// Below the threshold a 32-byte value matches with
			// probability 2^-256: a match means the split is broken.
			if eq := bytes.Equal(got, secret); eq != (k >= c.m) {
				t.Fatalf("n=%d m=%d subset %0*b (%d shares): recombined == secret is %v", c.n, c.m, c.n, mask, k, eq)
			}
		}
	}
}

func TestSplitRefuses(t *testing.T) {
	secret := randomSecret(t, 32)
	for _, c := range []struct {
		secret []byte
		n, m   int
		want   string
	}{
		{secret, 3, 1, "at least 2"},
		{secret, 3, 0, "at least 2"},
		{secret, 2, 3, "larger than"},
		{secret, 256, 2, "at most 255"},
		{nil, 3, 2, "empty"},
		{make([]byte, MaxSecretLen+1), 3, 2, "at most 64"},
	} {
		if _, err := Split(c.secret, c.n, c.m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Split(len %d, n=%d, m=%d) = %v, want error containing %q", len(c.secret), c.n, c.m, err, c.want)
		}
	}
}

func TestCombineRefuses(t *testing.T) {
	shares, err := Split(randomSecret(t, 32), 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	short := Share{X: 9, Y: make([]byte, 31)}
	for name, c := range map[string]struct {
		shares []Share
		want   string
	}{
		"none":         {nil, "at least 2"},
		"single":       {shares[:1], "at least 2"},
		"duplicate x":  {[]Share{shares[0], shares[1], shares[0]}, "repeats x coordinate 1"},
		"same x twice": {[]Share{shares[2], {X: shares[2].X, Y: shares[3].Y}}, "repeats x coordinate 3"},
		"mixed length": {[]Share{shares[0], short}, "share 2 has 31 bytes but share 1 has 32"},
		"zero x":       {[]Share{shares[0], {X: 0, Y: shares[1].Y}}, "x coordinate 0"},
		"empty y":      {[]Share{{X: 1}, {X: 2}}, "share 1 has 0 bytes"},
	} {
		if _, err := Combine(c.shares); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Combine = %v, want error containing %q", name, err, c.want)
		}
	}
}

func TestShareText(t *testing.T) {
	secret := randomSecret(t, 32)
	shares, err := Split(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	var parsed []Share
	for _, s := range shares {
		text := s.String()
		if !strings.HasPrefix(text, "kura-share-v1:") {
			t.Fatalf("text form %q lacks the prefix", text)
		}
		p, err := ParseShare(text)
		if err != nil {
			t.Fatalf("ParseShare(String()): %v", err)
		}
		if p.X != s.X || !bytes.Equal(p.Y, s.Y) {
			t.Fatalf("round trip changed the share")
		}
		parsed = append(parsed, p)
	}
	got, err := Combine(parsed[1:4])
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("parsed shares recombined %x, %v", got, err)
	}

	// One character changed anywhere after the prefix, to any other
	// base64url character, is refused: a typo never becomes a wrong share.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	text := shares[0].String()
	for i := len(SharePrefix); i < len(text); i++ {
		for _, c := range []byte(alphabet) {
			if c == text[i] {
				continue
			}
			typo := text[:i] + string(c) + text[i+1:]
			if _, err := ParseShare(typo); err == nil {
				t.Fatalf("typo at %d (%c→%c) accepted", i, text[i], c)
			}
		}
	}
	// Two adjacent characters swapped, the commonest transcription error.
	for i := len(SharePrefix); i+1 < len(text); i++ {
		if text[i] == text[i+1] {
			continue
		}
		swapped := text[:i] + string(text[i+1]) + string(text[i]) + text[i+2:]
		if _, err := ParseShare(swapped); err == nil {
			t.Fatalf("swap at %d accepted", i)
		}
	}

	body := text[len(SharePrefix):]
	typo := []byte(text)
	if typo[len(SharePrefix)+3] == 'A' {
		typo[len(SharePrefix)+3] = 'B'
	} else {
		typo[len(SharePrefix)+3] = 'A'
	}
	for name, c := range map[string]struct{ in, want string }{
		"empty":         {"", "does not start with"},
		"no prefix":     {body, "does not start with"},
		"old prefix":    {"kura-share-v0:" + body, "does not start with"},
		"upper prefix":  {"KURA-SHARE-V1:" + body, "does not start with"},
		"typo":          {string(typo), "checksum mismatch"},
		"truncated":     {text[:len(text)-1], "malformed base64url"},
		"cut short":     {text[:len(SharePrefix)+5], "characters after the prefix"},
		"prefix only":   {SharePrefix, "characters after the prefix"},
		"too long":      {SharePrefix + strings.Repeat("A", 200), "characters after the prefix"},
		"padding":       {text + "=", "invalid character"},
		"std base64":    {SharePrefix + "ab+/" + body[4:], "invalid character"},
		"newline":       {text[:30] + "\n" + text[30:], "invalid character at position 30"},
		"space":         {text + " ", "invalid character"},
		"bad last char": {text[:len(text)-1] + "=", "invalid character"},
		"extra chars":   {text + "AA", "checksum mismatch"},
	} {
		_, err := ParseShare(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ParseShare = %v, want error containing %q", name, err, c.want)
			continue
		}
		// The share is secret: errors never repeat it.
		if len(body) > 8 && strings.Contains(err.Error(), body[:8]) {
			t.Errorf("%s: error %q echoes the share", name, err)
		}
	}

	// Fixed vectors pin the format: shares written down by custodians must
	// parse with every later version of kura. (Computed independently with
	// Python's base64 and zlib.crc32.)
	for text, want := range map[string]Share{
		"kura-share-v1:_0JKL88x": {X: 255, Y: []byte{0x42}},
		"kura-share-v1:AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fxKKBWQ": {X: 1, Y: []byte{
			0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
			16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}},
	} {
		got, err := ParseShare(text)
		if err != nil || got.X != want.X || !bytes.Equal(got.Y, want.Y) {
			t.Errorf("ParseShare(%q) = %d %x, %v; want %d %x", text, got.X, got.Y, err, want.X, want.Y)
		}
		if got.String() != text {
			t.Errorf("String() = %q, want %q", got.String(), text)
		}
	}

	// x = 0 with a valid checksum is refused for what it is.
	zero := Share{X: 0, Y: shares[0].Y}.String()
	if _, err := ParseShare(zero); err == nil || !strings.Contains(err.Error(), "x coordinate is 0") {
		t.Errorf("x=0 share: %v", err)
	}
}

func TestCommitment(t *testing.T) {
	secret := randomSecret(t, 32)
	c := Commitment(secret)
	if len(c) != 32 {
		t.Fatalf("commitment is %d bytes, want 32", len(c))
	}
	if !CheckCommitment(secret, c) {
		t.Fatal("commitment of the secret does not check")
	}
	shares, err := Split(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := Combine(shares[:3])
	if !CheckCommitment(good, c) {
		t.Fatal("recombined secret does not check")
	}
	// The failures Combine cannot see: too few shares, a corrupted share,
	// a share from another split.
	tooFew, _ := Combine(shares[:2])
	corrupt := []Share{shares[0], shares[1], {X: shares[2].X, Y: bytes.Clone(shares[2].Y)}}
	corrupt[2].Y[0] ^= 1
	bad, _ := Combine(corrupt)
	other, _ := Split(randomSecret(t, 32), 5, 3)
	mixed, _ := Combine([]Share{shares[0], shares[1], other[2]})
	for name, s := range map[string][]byte{"too few": tooFew, "corrupt share": bad, "mixed splits": mixed} {
		if CheckCommitment(s, c) {
			t.Errorf("%s: wrong secret passes the commitment check", name)
		}
	}
	flipped := bytes.Clone(c)
	flipped[31] ^= 1
	for name, cc := range map[string][]byte{"flipped": flipped, "truncated": c[:16], "empty": nil} {
		if CheckCommitment(secret, cc) {
			t.Errorf("%s commitment accepted", name)
		}
	}
	if bytes.Equal(Commitment(secret), Commitment(good[:31])) {
		t.Error("commitments of different secrets are equal")
	}
}

// FuzzParseShare checks that ParseShare never panics, that anything it
// accepts is in canonical form (String gives back the same text, so there
// are no two spellings of one share), and that accepted shares are usable.
func FuzzParseShare(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		sh, err := ParseShare(s)
		if err != nil {
			return
		}
		if got := sh.String(); got != s {
			t.Fatalf("ParseShare accepted a non-canonical form: %q re-encodes as %q", s, got)
		}
		if sh.X == 0 || len(sh.Y) == 0 || len(sh.Y) > MaxSecretLen {
			t.Fatalf("ParseShare accepted x=%d with %d bytes", sh.X, len(sh.Y))
		}
		other := Share{X: sh.X ^ 1, Y: make([]byte, len(sh.Y))}
		if other.X == 0 {
			other.X = 2
		}
		if _, err := Combine([]Share{sh, other}); err != nil {
			t.Fatalf("Combine of a parsed share: %v", err)
		}
	})
}

func BenchmarkCombine(b *testing.B) {
	shares, err := Split(make([]byte, 32), 5, 3)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Combine(shares[:3]); err != nil {
			b.Fatal(err)
		}
	}
}
