package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/kura-project/kura/internal/keys/keyops"
)

// KeysRig is a running in-process kura with keys to drive.
type KeysRig struct {
	*AttestRig
	token string
	dir   string // the data directory, on the disk the database is on
}

// StartKeys starts kura (dev mode) and creates the benchmark keys through
// the API with an administrator principal's client-credentials token.
func StartKeys(ctx context.Context, dir string) (*KeysRig, error) {
	return startKeys(ctx, dir, "ES256")
}

func startKeys(ctx context.Context, dir, tokenAlg string) (*KeysRig, error) {
	a, err := StartAttest(ctx, dir, tokenAlg)
	if err != nil {
		return nil, err
	}
	r := &KeysRig{AttestRig: a, dir: dir}
	if r.token, err = r.clientToken(ctx, dir); err != nil {
		a.Close()
		return nil, err
	}
	for name, body := range map[string]string{
		"rsa": `{"kty":"RSA","key_size":2048}`, "ec": `{"kty":"EC","crv":"P-256"}`, "aes": `{"kty":"oct-HSM","key_size":256}`,
	} {
		if _, err := r.call(ctx, "/keys/"+name+"/create", body); err != nil {
			a.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *KeysRig) clientToken(ctx context.Context, dir string) (string, error) {
	admin, err := readAdmin(dir)
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", r.URL+"/kura/v1/principals", strings.NewReader(`{"name":"bench","role":"administrator"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := r.Client.Do(req)
	if err != nil {
		return "", err
	}
	var p struct {
		ID     string `json:"id"`
		Secret string `json:"client_secret"`
	}
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	form := "grant_type=client_credentials&client_id=" + p.ID + "&client_secret=" + p.Secret
	req, _ = http.NewRequestWithContext(ctx, "POST", r.URL+"/oauth2/token", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = r.Client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("token endpoint: %s %v", resp.Status, err)
	}
	return t.AccessToken, nil
}

func (r *KeysRig) call(ctx context.Context, path, body string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", r.URL+path+"?api-version=2025-07-01", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", path, resp.Status, b)
	}
	return b, nil
}

// KeyOp is one benchmarked key operation: its HTTPS call and the raw
// in-process crypto that is its floor.
type KeyOp struct {
	Name  string
	HTTPS func() error
	Floor func() error
}

// Ops prepares the benchmarked operations (inputs made once).
func (r *KeysRig) Ops(ctx context.Context) ([]KeyOp, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	d := sha256.Sum256([]byte("kura"))
	rsaMat, err := keyops.Generate("RSA", 2048, "", 0)
	if err != nil {
		return nil, err
	}
	ecMat, _ := keyops.Generate("EC", 0, "P-256", 0)
	aesMat, _ := keyops.Generate("oct", 256, "", 0)
	cek := bytes.Repeat([]byte{5}, 32)
	// Ciphertexts made by kura, for the decrypt/unwrap calls.
	var enc, kw struct {
		Value string `json:"value"`
	}
	b, err := r.call(ctx, "/keys/rsa/encrypt", `{"alg":"RSA-OAEP-256","value":"`+b64(cek)+`"}`)
	if err != nil {
		return nil, err
	}
	json.Unmarshal(b, &enc)
	if b, err = r.call(ctx, "/keys/aes/wrapkey", `{"alg":"A256KW","value":"`+b64(cek)+`"}`); err != nil {
		return nil, err
	}
	json.Unmarshal(b, &kw)
	localCT, _ := keyops.Encrypt(rsaMat, "RSA-OAEP-256", cek, nil, nil)
	localKW, _ := keyops.WrapKey(aesMat, "A256KW", cek)
	post := func(path, body string) func() error {
		return func() error { _, err := r.call(ctx, path, body); return err }
	}
	// The floor of a durable write: the key generation, and one small
	// write synced to the disk the database is on (what each commit of
	// SQLite with synchronous=FULL costs at the least).
	f, err := os.CreateTemp(r.dir, "fsync-floor-*")
	if err != nil {
		return nil, err
	}
	record := make([]byte, 512)
	durable := func() error {
		if _, err := keyops.Generate("EC", 0, "P-256", 0); err != nil {
			return err
		}
		if _, err := f.WriteAt(record, 0); err != nil {
			return err
		}
		return f.Sync()
	}
	return []KeyOp{
		{"create EC P-256 (fsync)", post("/keys/ecnew/create", `{"kty":"EC","crv":"P-256"}`), durable},
		{"sign RS256 (RSA-2048)", post("/keys/rsa/sign", `{"alg":"RS256","value":"`+b64(d[:])+`"}`),
			func() error { _, err := keyops.Sign(rsaMat, "RS256", d[:]); return err }},
		{"sign ES256 (P-256)", post("/keys/ec/sign", `{"alg":"ES256","value":"`+b64(d[:])+`"}`),
			func() error { _, err := keyops.Sign(ecMat, "ES256", d[:]); return err }},
		{"encrypt RSA-OAEP-256", post("/keys/rsa/encrypt", `{"alg":"RSA-OAEP-256","value":"`+b64(cek)+`"}`),
			func() error { _, err := keyops.Encrypt(rsaMat, "RSA-OAEP-256", cek, nil, nil); return err }},
		{"decrypt RSA-OAEP-256", post("/keys/rsa/decrypt", `{"alg":"RSA-OAEP-256","value":"`+enc.Value+`"}`),
			func() error {
				_, err := keyops.Decrypt(rsaMat, "RSA-OAEP-256", localCT.Value, nil, nil, nil)
				return err
			}},
		{"wrapkey A256KW", post("/keys/aes/wrapkey", `{"alg":"A256KW","value":"`+b64(cek)+`"}`),
			func() error { _, err := keyops.WrapKey(aesMat, "A256KW", cek); return err }},
		{"unwrapkey A256KW", post("/keys/aes/unwrapkey", `{"alg":"A256KW","value":"`+kw.Value+`"}`),
			func() error { _, err := keyops.UnwrapKey(aesMat, "A256KW", localKW); return err }},
	}, nil
}
