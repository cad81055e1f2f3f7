package keyvault

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/kura-project/kura/internal/keys/keyops"
)

func TestB64(t *testing.T) {
	want := []byte{0xfb, 0xff, 0xbf, 0x01} // exercises both alphabet-specific characters
	for _, c := range []struct {
		name, in string
		err      string // "" = decodes to want
	}{
		{"base64url unpadded", `"-_-_AQ"`, ""},
		{"base64url padded", `"-_-_AQ=="`, ""},
		{"standard padded", `"+/+/AQ=="`, ""},
		{"standard unpadded", `"+/+/AQ"`, ""},
		{"mixed alphabets", `"-/+_AQ"`, "bad base64: mixes the base64url ('-', '_') and standard ('+', '/') alphabets"},
		{"padding inside", `"-_=_AQ"`, "bad base64: padding '=' inside the data at offset 2"},
		{"illegal character", `"-_-$AQ"`, "bad base64: illegal character '$' at offset 3"},
		{"space", `"-_-_ AQ"`, "bad base64: illegal character ' ' at offset 4"},
		{"one dangling character", `"-_-_A"`, "bad base64: 5 characters cannot be a base64 encoding (truncated?)"},
		{"too much padding", `"-_-_AQ="`, "bad base64: 1 padding characters do not fit 6 data characters"},
		{"three padding characters", `"-_-_AQ==="`, "bad base64: 3 padding characters do not fit 6 data characters"},
		{"number", `12`, "not a base64url string"},
		{"object", `{}`, "not a base64url string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b B64
			err := json.Unmarshal([]byte(c.in), &b)
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("error = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !bytes.Equal(b, want) {
				t.Fatalf("decoded %x, %v; want %x", []byte(b), err, want)
			}
		})
	}
	out, err := json.Marshal(B64(want))
	if err != nil || string(out) != `"-_-_AQ"` {
		t.Fatalf("Marshal = %s, %v; want unpadded base64url", out, err)
	}
	// null leaves the value absent, as for any JSON member.
	var b B64
	if err := json.Unmarshal([]byte(`null`), &b); err != nil || b != nil {
		t.Fatalf("null: %x, %v", []byte(b), err)
	}
	// The empty string is an empty value (FromJWK then calls it missing).
	if err := json.Unmarshal([]byte(`""`), &b); err != nil || len(b) != 0 {
		t.Fatalf(`"": %x, %v`, []byte(b), err)
	}
}

// TestJWKWireCompat decodes JSON in azkeys's exact wire form and encodes
// it back identically.
func TestJWKWireCompat(t *testing.T) {
	in := `{"kid":"https://v.vault.azure.net/keys/k/0123","kty":"RSA","key_ops":["sign","verify"],"n":"2HJA","e":"AQAB"}`
	var j JWK
	if err := json.Unmarshal([]byte(in), &j); err != nil {
		t.Fatal(err)
	}
	if j.Kty != "RSA" || !slices.Equal(j.KeyOps, []string{"sign", "verify"}) || !bytes.Equal(j.E, []byte{1, 0, 1}) {
		t.Fatalf("decoded %+v", j)
	}
	out, err := json.Marshal(j)
	if err != nil || string(out) != in {
		t.Fatalf("re-encoded\n got %s\nwant %s", out, in)
	}
	// null leaves a JWK untouched, as encoding/json does for other types.
	kept := JWK{Kty: "oct"}
	if err := json.Unmarshal([]byte(`null`), &kept); err != nil || kept.Kty != "oct" {
		t.Fatalf("null: %+v, %v", kept, err)
	}
	// key_hsm is the wire name of T.
	if err := json.Unmarshal([]byte(`{"kty":"RSA-HSM","key_hsm":"AQ"}`), &j); err != nil || !bytes.Equal(j.T, []byte{1}) {
		t.Fatalf("key_hsm: %x, %v", []byte(j.T), err)
	}
}

func TestJWKUnmarshalNamesField(t *testing.T) {
	for _, c := range []struct{ in, msg string }{
		{`{"kty":"RSA","n":"ab$c"}`, `key.n: bad base64: illegal character '$' at offset 2`},
		{`{"kty":"EC","crv":"P-256","x":"AAAA","y":"A"}`, `key.y: bad base64: 1 characters cannot be a base64 encoding (truncated?)`},
		{`{"kty":"oct","k":7}`, `key.k: not a base64url string`},
		{`{"kty":"RSA-HSM","key_hsm":"-+"}`, `key.key_hsm: bad base64: mixes the base64url ('-', '_') and standard ('+', '/') alphabets`},
	} {
		var j JWK
		err := json.Unmarshal([]byte(c.in), &j)
		var ie *keyops.InputError
		if !errors.As(err, &ie) || err.Error() != c.msg {
			t.Errorf("%s: %v, want an InputError %q", c.in, err, c.msg)
		}
	}
	// Syntax and type errors of the other members stay encoding/json's.
	var j JWK
	if err := json.Unmarshal([]byte(`{"kty":5}`), &j); err == nil {
		t.Fatal("kty of type number accepted")
	}
}

// TestJWKDomainRoundTrip: every member survives wire → domain → wire.
func TestJWKDomainRoundTrip(t *testing.T) {
	in := JWK{Kid: "k", Kty: "RSA", KeyOps: []string{"sign"}, N: B64{1}, E: B64{2}, D: B64{3}, DP: B64{4}, DQ: B64{5},
		QI: B64{6}, P: B64{7}, Q: B64{8}, K: B64{9}, Crv: "c", X: B64{10}, Y: B64{11}, T: B64{12}}
	a, _ := json.Marshal(in)
	b, _ := json.Marshal(wireJWK(in.domain()))
	if string(a) != string(b) {
		t.Errorf("round trip\n got %s\nwant %s", b, a)
	}
}
