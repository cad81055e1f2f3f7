package keyops

import (
	"bytes"
	"errors"
	"testing"
)

const (
	kek128     = "000102030405060708090A0B0C0D0E0F"
	kek192     = "000102030405060708090A0B0C0D0E0F1011121314151617"
	kek256     = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
	rfc5649KEK = "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8"
)

// TestAESKeyWrapRFC3394 checks RFC 3394 §4.1–4.6.
func TestAESKeyWrapRFC3394(t *testing.T) {
	for _, c := range []struct{ name, kek, key, wrapped string }{
		{"4.1 128-bit data, 128-bit KEK", kek128, "00112233445566778899AABBCCDDEEFF",
			"1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
		{"4.2 128-bit data, 192-bit KEK", kek192, "00112233445566778899AABBCCDDEEFF",
			"96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"},
		{"4.3 128-bit data, 256-bit KEK", kek256, "00112233445566778899AABBCCDDEEFF",
			"64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"},
		{"4.4 192-bit data, 192-bit KEK", kek192, "00112233445566778899AABBCCDDEEFF0001020304050607",
			"031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"},
		{"4.5 192-bit data, 256-bit KEK", kek256, "00112233445566778899AABBCCDDEEFF0001020304050607",
			"A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1"},
		{"4.6 256-bit data, 256-bit KEK", kek256, "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
			"28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
	} {
		t.Run(c.name, func(t *testing.T) {
			kek, key, want := unhex(t, c.kek), unhex(t, c.key), unhex(t, c.wrapped)
			got, err := AESKeyWrap(kek, key)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("AESKeyWrap = %X, %v; want %X", got, err, want)
			}
			back, err := AESKeyUnwrap(kek, want)
			if err != nil || !bytes.Equal(back, key) {
				t.Fatalf("AESKeyUnwrap = %X, %v; want %X", back, err, key)
			}
			assertTamperDetected(t, func(w []byte) ([]byte, error) { return AESKeyUnwrap(kek, w) }, want)
			// The padded variant must not accept an RFC 3394 output.
			if _, err := AESKeyUnwrapPad(kek, want); !errors.As(err, new(*DecryptError)) {
				t.Fatalf("AESKeyUnwrapPad(RFC 3394 output) error = %v, want DecryptError", err)
			}
		})
	}
}

// TestAESKeyWrapPadRFC5649 checks the two examples of RFC 5649 §6.
func TestAESKeyWrapPadRFC5649(t *testing.T) {
	for _, c := range []struct{ name, key, wrapped string }{
		{"20 octets", "c37b7e6492584340 bed1220780894115 5068f738",
			"138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a"},
		{"7 octets", "466f7250617369", "afbeb0f07dfbf541 9200f2ccb50bb24f"},
	} {
		t.Run(c.name, func(t *testing.T) {
			kek, key, want := unhex(t, rfc5649KEK), unhex(t, c.key), unhex(t, c.wrapped)
			got, err := AESKeyWrapPad(kek, key)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("AESKeyWrapPad = %x, %v; want %x", got, err, want)
			}
			back, err := AESKeyUnwrapPad(kek, want)
			if err != nil || !bytes.Equal(back, key) {
				t.Fatalf("AESKeyUnwrapPad = %x, %v; want %x", back, err, key)
			}
			assertTamperDetected(t, func(w []byte) ([]byte, error) { return AESKeyUnwrapPad(kek, w) }, want)
			other := unhex(t, kek192)
			if _, err := AESKeyUnwrapPad(other, want); !errors.As(err, new(*DecryptError)) {
				t.Fatalf("unwrap under another KEK: error = %v, want DecryptError", err)
			}
		})
	}
}

// assertTamperDetected flips each bit position class (first, middle, last
// byte) and expects the one opaque DecryptError every time.
func assertTamperDetected(t *testing.T, unwrap func([]byte) ([]byte, error), wrapped []byte) {
	t.Helper()
	for _, i := range []int{0, len(wrapped) / 2, len(wrapped) - 1} {
		w := append([]byte(nil), wrapped...)
		w[i] ^= 0x01
		if p, err := unwrap(w); !errors.As(err, new(*DecryptError)) {
			t.Fatalf("tampered byte %d: unwrap = %x, %v; want DecryptError", i, p, err)
		}
	}
}

// TestAESKeyWrapPadLengths round-trips every length across the 8-byte
// boundaries, where padding and the single-block special case live.
func TestAESKeyWrapPadLengths(t *testing.T) {
	kek := unhex(t, kek256)
	for n := 1; n <= 41; n++ {
		key := bytes.Repeat([]byte{0xa5}, n)
		w, err := AESKeyWrapPad(kek, key)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if want := (n+7)/8*8 + 8; len(w) != want {
			t.Fatalf("%d bytes wrap to %d, want %d", n, len(w), want)
		}
		got, err := AESKeyUnwrapPad(kek, w)
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("%d bytes: unwrap = %x, %v", n, got, err)
		}
	}
}

// TestAESKeyUnwrapPadRejectsBadFraming builds wrapped values whose integrity
// block decrypts correctly but whose length indicator or padding is wrong;
// RFC 5649 §3 requires refusing each.
func TestAESKeyUnwrapPadRejectsBadFraming(t *testing.T) {
	kek := unhex(t, kek128)
	b, err := kekCipher(kek)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(mli uint64, padded []byte) []byte {
		aiv := uint64(kwpIV)<<32 | mli
		if len(padded) == 8 {
			out := make([]byte, 16)
			for i := 0; i < 8; i++ {
				out[i] = byte(aiv >> (56 - 8*i))
			}
			copy(out[8:], padded)
			b.Encrypt(out, out)
			return out
		}
		return wrapCore(b, aiv, padded)
	}
	for _, c := range []struct {
		name   string
		mli    uint64
		padded []byte
	}{
		{"length zero", 0, make([]byte, 8)},
		{"length beyond data", 9, make([]byte, 8)},
		{"length a block short", 8, make([]byte, 16)},
		{"nonzero padding", 7, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{"nonzero padding, multi-block", 17, append(make([]byte, 17), 0, 0, 0, 0, 0, 0, 9)},
	} {
		if _, err := AESKeyUnwrapPad(kek, frame(c.mli, c.padded)); !errors.As(err, new(*DecryptError)) {
			t.Errorf("%s: error = %v, want DecryptError", c.name, err)
		}
	}
	// Sanity: the same construction with good framing is accepted.
	if got, err := AESKeyUnwrapPad(kek, frame(17, make([]byte, 24))); err != nil || len(got) != 17 {
		t.Fatalf("good framing: %x, %v", got, err)
	}
}

func TestKeyWrapArguments(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func() error
		msg  string
	}{
		{"bad KEK length", func() error { _, err := AESKeyWrap(make([]byte, 20), make([]byte, 16)); return err },
			"keyops: AES key-encryption key must be 16, 24 or 32 bytes, got 20"},
		{"KWP of nothing", func() error { _, err := AESKeyWrapPad(make([]byte, 16), nil); return err },
			"value: AES key wrap with padding (RFC 5649) needs 1 to 2^32-1 bytes; got 0 bytes"},
		{"KW unwrap not multiple of 8", func() error { _, err := AESKeyUnwrap(make([]byte, 16), make([]byte, 25)); return err },
			"value: an RFC 3394 wrapped key is a multiple of 8 bytes, at least 24; got 25 bytes"},
	} {
		if err := c.run(); err == nil || err.Error() != c.msg {
			t.Errorf("%s: error = %v, want %q", c.name, err, c.msg)
		}
	}
}
