package keyops

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testKey is one fixture key. RSA and EC keys come from testdata (PKCS#8
// DER made with openssl) so tests do not spend seconds generating 4096-bit
// keys, and so that a second implementation produced them.
type testKey struct {
	name string
	m    *Material
}

func testKeys(t testing.TB) []testKey {
	t.Helper()
	var keys []testKey
	for _, f := range []struct{ name, kind, file string }{
		{"RSA-2048", KindRSA, "rsa2048.p8"},
		{"RSA-2048-e3", KindRSA, "rsa2048e3.p8"},
		{"RSA-3072", KindRSA, "rsa3072.p8"},
		{"RSA-4096", KindRSA, "rsa4096.p8"},
		{"EC-P-256", KindEC, "ec256.p8"},
		{"EC-P-384", KindEC, "ec384.p8"},
		{"EC-P-521", KindEC, "ec521.p8"},
	} {
		keys = append(keys, testKey{f.name, loadKey(t, f.kind, f.file)})
	}
	for _, n := range []int{16, 24, 32} {
		k := bytes.Repeat([]byte{byte(n)}, n)
		for i := range k {
			k[i] ^= byte(i * 7)
		}
		keys = append(keys, testKey{"oct-" + strconv.Itoa(n*8), &Material{Kind: KindOct, Oct: k}})
	}
	return keys
}

func loadKey(t testing.TB, kind, file string) *Material {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	m, err := UnmarshalPrivate(kind, b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return m
}

func keyNamed(t testing.TB, name string) *Material {
	t.Helper()
	for _, k := range testKeys(t) {
		if k.name == name {
			return k.m
		}
	}
	t.Fatalf("no test key %q", name)
	return nil
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantErr checks that err is of the type target points to and that its
// message is exactly msg.
func wantErr[E error](t *testing.T, err error, msg string) {
	t.Helper()
	var target E
	if !errors.As(err, &target) {
		t.Fatalf("error = %v (%T), want %T %q", err, err, target, msg)
	}
	if err.Error() != msg {
		t.Errorf("error message\n got: %s\nwant: %s", err.Error(), msg)
	}
}
