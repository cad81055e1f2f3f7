package keys

import (
	"bytes"
	"testing"

	"github.com/kura-project/kura/internal/keys/keyops"
)

// TestStoredJWKForm: the stored public key is byte for byte the form kura
// has always written (MAC'd rows and backups hold it), and reads back.
func TestStoredJWKForm(t *testing.T) {
	j := keyops.JWK{Kty: "EC", Crv: "P-256", X: []byte{0xfb, 0xff}, Y: []byte{1}, KeyOps: []string{"sign"}}
	b, err := encodeJWK(j)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"kty":"EC","key_ops":["sign"],"crv":"P-256","x":"-_8","y":"AQ"}`; string(b) != want {
		t.Errorf("stored form\n got %s\nwant %s", b, want)
	}
	back, err := decodeJWK(b)
	if err != nil || !bytes.Equal(back.X, j.X) || back.Crv != "P-256" || back.KeyOps[0] != "sign" {
		t.Errorf("read back %+v, %v", back, err)
	}
	if _, err := decodeJWK([]byte(`{"kty":"EC","x":"+/8="}`)); err == nil {
		t.Error("a stored key in another base64 spelling was read (stored rows are only ever unpadded base64url)")
	}
}
