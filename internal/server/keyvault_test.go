package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/keys/keyops"
)

// live is a kura server listening on loopback with HTTPS, reachable as
// https://kura.localhost:PORT (the dev certificate covers *.localhost).
type live struct {
	srv    *Server
	dir    string
	port   string
	http   *http.Client
	admin  string
	cancel context.CancelFunc
	done   chan error
}

func startLive(t *testing.T, opts ...rigOpt) *live {
	t.Helper()
	return startLiveAt(t, time.Now, opts...)
}

// startLiveAt is startLive with the server's clock now.
func startLiveAt(t *testing.T, now func() time.Time, opts ...rigOpt) *live {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Addr = dir, true, "127.0.0.1:0"
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &live{srv: srv, dir: dir, cancel: cancel, done: make(chan error, 1)}
	addrc := make(chan net.Addr, 1)
	go func() { l.done <- srv.Serve(ctx, func(a net.Addr) { addrc <- a }) }()
	addr := (<-addrc).String()
	_, l.port, _ = net.SplitHostPort(addr)
	caPEM, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	dialer := &net.Dialer{}
	l.http = &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		// *.localhost names all reach this server.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}}
	b, _ := os.ReadFile(filepath.Join(dir, "dev", "admin-token"))
	l.admin = strings.TrimSpace(string(b))
	t.Cleanup(func() {
		l.http.CloseIdleConnections()
		cancel()
		<-l.done
		srv.Close()
	})
	return l
}

func (l *live) url() string { return "https://kura.localhost:" + l.port }

// principal creates a principal with roles and returns its credential.
func (l *live) principal(t *testing.T, name string, roles ...string) *clientCred {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name})
	req, _ := http.NewRequest("POST", l.url()+"/kura/v1/principals", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+l.admin)
	resp, err := l.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ID           string `json:"id"`
		ClientSecret string `json:"client_secret"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 201 || out.ClientSecret == "" {
		t.Fatalf("create principal: %d", resp.StatusCode)
	}
	for _, role := range roles {
		rb, _ := json.Marshal(map[string]string{"role": role, "scope": "/"})
		req, _ := http.NewRequest("POST", l.url()+"/kura/v1/principals/"+out.ID+"/roles", bytes.NewReader(rb))
		req.Header.Set("Authorization", "Bearer "+l.admin)
		resp, err := l.http.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("add role %s: %v %v", role, err, resp.StatusCode)
		}
		resp.Body.Close()
	}
	return &clientCred{l: l, id: out.ID, secret: out.ClientSecret}
}

// clientCred is an azcore.TokenCredential that uses kura's token endpoint.
type clientCred struct {
	l          *live
	id, secret string
	scopes     []string
	tenant     string
}

func (c *clientCred) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.scopes, c.tenant = o.Scopes, o.TenantID
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.id}, "client_secret": {c.secret}, "scope": o.Scopes}
	resp, err := c.l.http.PostForm(c.l.url()+"/oauth2/token", form)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		return azcore.AccessToken{}, fmt.Errorf("token endpoint: %d %v", resp.StatusCode, err)
	}
	return azcore.AccessToken{Token: out.AccessToken, ExpiresOn: time.Now().Add(time.Duration(out.ExpiresIn) * time.Second)}, nil
}

func (l *live) client(t *testing.T, cred azcore.TokenCredential) *azkeys.Client {
	t.Helper()
	c, err := azkeys.NewClient(l.url(), cred, &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: l.http,
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func status(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func digest(h crypto.Hash, msg []byte) []byte {
	hh := h.New()
	hh.Write(msg)
	return hh.Sum(nil)
}

// TestAzkeysEndToEnd drives every operation of the keys API through the real
// azkeys v1.5.0 client and checks the results with Go's own crypto.
func TestAzkeysEndToEnd(t *testing.T) {
	l := startLive(t)
	cred := l.principal(t, "app", "crypto-officer", "crypto-user")
	c := l.client(t, cred)
	ctx := context.Background()

	// The challenge gave the client kura's tenant and a resource on the
	// parent domain (the client checks the vault host against it).
	if _, err := c.GetRandomBytes(ctx, azkeys.GetRandomBytesParameters{Count: to.Ptr[int32](16)}, nil); err != nil {
		t.Fatalf("random bytes: %v", err)
	}
	if cred.tenant != "kura" || len(cred.scopes) != 1 || cred.scopes[0] != "https://localhost:"+l.port+"/.default" {
		t.Errorf("token request: tenant %q scopes %v", cred.tenant, cred.scopes)
	}

	// --- create every key type ---
	type created struct {
		name string
		kty  azkeys.KeyType
		size int32
		crv  azkeys.CurveName
	}
	kinds := []created{
		{"rsa2048", azkeys.KeyTypeRSA, 2048, ""}, {"rsa3072", azkeys.KeyTypeRSAHSM, 3072, ""}, {"rsa4096", azkeys.KeyTypeRSA, 4096, ""},
		{"ecp256", azkeys.KeyTypeEC, 0, azkeys.CurveNameP256}, {"ecp384", azkeys.KeyTypeECHSM, 0, azkeys.CurveNameP384}, {"ecp521", azkeys.KeyTypeEC, 0, azkeys.CurveNameP521},
		{"aes128", azkeys.KeyTypeOctHSM, 128, ""}, {"aes192", azkeys.KeyTypeOctHSM, 192, ""}, {"aes256", azkeys.KeyTypeOctHSM, 256, ""},
	}
	pubs := map[string]*azkeys.JSONWebKey{}
	for _, k := range kinds {
		p := azkeys.CreateKeyParameters{Kty: to.Ptr(k.kty), Tags: map[string]*string{"env": to.Ptr("test")}}
		if k.size != 0 {
			p.KeySize = to.Ptr(k.size)
		}
		if k.crv != "" {
			p.Curve = to.Ptr(k.crv)
		}
		resp, err := c.CreateKey(ctx, k.name, p, nil)
		if err != nil {
			t.Fatalf("create %s: %v", k.name, err)
		}
		if resp.Key.KID.Name() != k.name || resp.Key.KID.Version() == "" || *resp.Key.Kty != k.kty || *resp.Tags["env"] != "test" {
			t.Errorf("create %s: %+v", k.name, resp.Key)
		}
		if resp.Key.D != nil || resp.Key.K != nil || resp.Key.P != nil {
			t.Fatalf("create %s returned private material", k.name)
		}
		if *resp.Attributes.Enabled != true || resp.Attributes.Created == nil || *resp.Attributes.RecoverableDays != 90 {
			t.Errorf("create %s attributes %+v", k.name, resp.Attributes)
		}
		pubs[k.name] = resp.Key
	}
	rsaPub := &rsa.PublicKey{N: new(big.Int).SetBytes(pubs["rsa2048"].N), E: int(new(big.Int).SetBytes(pubs["rsa2048"].E).Int64())}

	// --- RSA encryption both ways ---
	msg := []byte("kura secret 0123456789")
	for _, alg := range []struct {
		a azkeys.EncryptionAlgorithm
		h func() hash.Hash
	}{{azkeys.EncryptionAlgorithmRSAOAEP, sha1.New}, {azkeys.EncryptionAlgorithmRSAOAEP256, sha256.New}, {azkeys.EncryptionAlgorithmRSA15, nil}} {
		enc, err := c.Encrypt(ctx, "rsa2048", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg.a), Value: msg}, nil)
		if err != nil {
			t.Fatalf("encrypt %s: %v", alg.a, err)
		}
		// kura's ciphertext decrypts in kura (and only with the private key,
		// so a local decryption is not possible); a local ciphertext decrypts in kura.
		var local []byte
		if alg.h != nil {
			local, _ = rsa.EncryptOAEP(alg.h(), rand.Reader, rsaPub, msg, nil)
		} else {
			//lint:ignore SA1019 RSA1_5 is part of the Key Vault API kura is compatible with (documented as a padding oracle).
			local, _ = rsa.EncryptPKCS1v15(rand.Reader, rsaPub, msg)
		}
		for _, ct := range [][]byte{enc.Result, local} {
			dec, err := c.Decrypt(ctx, "rsa2048", enc.KID.Version(), azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg.a), Value: ct}, nil)
			if err != nil || !bytes.Equal(dec.Result, msg) {
				t.Fatalf("decrypt %s: %v", alg.a, err)
			}
		}
	}

	// --- AES modes on oct keys ---
	gcm, err := c.Encrypt(ctx, "aes256", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256GCM), Value: msg, AdditionalAuthenticatedData: []byte("aad")}, nil)
	if err != nil || len(gcm.IV) != 12 || len(gcm.AuthenticationTag) != 16 {
		t.Fatalf("A256GCM encrypt: %v", err)
	}
	if dec, err := c.Decrypt(ctx, "aes256", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256GCM), Value: gcm.Result,
		IV: gcm.IV, AuthenticationTag: gcm.AuthenticationTag, AdditionalAuthenticatedData: []byte("aad")}, nil); err != nil || !bytes.Equal(dec.Result, msg) {
		t.Fatalf("A256GCM decrypt: %v", err)
	}
	if _, err := c.Decrypt(ctx, "aes256", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256GCM), Value: gcm.Result,
		IV: gcm.IV, AuthenticationTag: gcm.AuthenticationTag, AdditionalAuthenticatedData: []byte("other")}, nil); status(err) != 400 {
		t.Errorf("A256GCM with the wrong AAD: %v", err)
	}
	for _, alg := range []azkeys.EncryptionAlgorithm{azkeys.EncryptionAlgorithmA128CBCPAD, azkeys.EncryptionAlgorithmA128GCM} {
		enc, err := c.Encrypt(ctx, "aes128", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: msg}, nil)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		dec, err := c.Decrypt(ctx, "aes128", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: enc.Result, IV: enc.IV, AuthenticationTag: enc.AuthenticationTag}, nil)
		if err != nil || !bytes.Equal(dec.Result, msg) {
			t.Fatalf("%s round trip: %v", alg, err)
		}
	}

	// --- wrap / unwrap ---
	cek := bytes.Repeat([]byte{7}, 32)
	w1, err := c.WrapKey(ctx, "rsa2048", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: cek}, nil)
	if err != nil {
		t.Fatal(err)
	}
	localWrapped, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, rsaPub, cek, nil)
	for _, wv := range [][]byte{w1.Result, localWrapped} {
		u, err := c.UnwrapKey(ctx, "rsa2048", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wv}, nil)
		if err != nil || !bytes.Equal(u.Result, cek) {
			t.Fatalf("unwrap RSA-OAEP-256: %v", err)
		}
	}
	kw, err := c.WrapKey(ctx, "aes256", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256KW), Value: cek}, nil)
	if err != nil || len(kw.Result) != 40 {
		t.Fatalf("A256KW wrap: %v", err)
	}
	if u, err := c.UnwrapKey(ctx, "aes256", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256KW), Value: kw.Result}, nil); err != nil || !bytes.Equal(u.Result, cek) {
		t.Fatalf("A256KW unwrap: %v", err)
	}

	// --- signatures both ways ---
	for _, s := range []struct {
		key string
		alg azkeys.SignatureAlgorithm
		h   crypto.Hash
	}{
		{"rsa2048", azkeys.SignatureAlgorithmRS256, crypto.SHA256}, {"rsa3072", azkeys.SignatureAlgorithmRS384, crypto.SHA384},
		{"rsa4096", azkeys.SignatureAlgorithmRS512, crypto.SHA512}, {"rsa2048", azkeys.SignatureAlgorithmPS256, crypto.SHA256},
		{"rsa2048", azkeys.SignatureAlgorithmPS512, crypto.SHA512}, {"ecp256", azkeys.SignatureAlgorithmES256, crypto.SHA256},
		{"ecp384", azkeys.SignatureAlgorithmES384, crypto.SHA384}, {"ecp521", azkeys.SignatureAlgorithmES512, crypto.SHA512},
	} {
		d := digest(s.h, msg)
		sig, err := c.Sign(ctx, s.key, "", azkeys.SignParameters{Algorithm: to.Ptr(s.alg), Value: d}, nil)
		if err != nil {
			t.Fatalf("sign %s %s: %v", s.key, s.alg, err)
		}
		if err := verifyLocally(pubs[s.key], s.alg, s.h, d, sig.Result); err != nil {
			t.Errorf("kura's %s signature does not verify locally: %v", s.alg, err)
		}
		v, err := c.Verify(ctx, s.key, "", azkeys.VerifyParameters{Algorithm: to.Ptr(s.alg), Digest: d, Signature: sig.Result}, nil)
		if err != nil || !*v.Value {
			t.Errorf("verify %s in kura: %v", s.alg, err)
		}
		bad := bytes.Clone(sig.Result)
		bad[len(bad)/2] ^= 1
		if v, err := c.Verify(ctx, s.key, "", azkeys.VerifyParameters{Algorithm: to.Ptr(s.alg), Digest: d, Signature: bad}, nil); err != nil || *v.Value {
			t.Errorf("verify of a tampered %s signature: %v %v", s.alg, err, v.Value)
		}
	}

	// --- import a locally made key; a local signature verifies in kura ---
	local, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwk := &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSA), N: local.N.Bytes(), E: big.NewInt(int64(local.E)).Bytes(), D: local.D.Bytes(),
		P: local.Primes[0].Bytes(), Q: local.Primes[1].Bytes(), DP: local.Precomputed.Dp.Bytes(), DQ: local.Precomputed.Dq.Bytes(), QI: local.Precomputed.Qinv.Bytes()}
	imp, err := c.ImportKey(ctx, "imported", azkeys.ImportKeyParameters{Key: jwk, HSM: to.Ptr(true)}, nil)
	if err != nil || *imp.Key.Kty != azkeys.KeyTypeRSAHSM || imp.Key.D != nil {
		t.Fatalf("import: %v", err)
	}
	d := digest(crypto.SHA256, msg)
	localSig, _ := rsa.SignPKCS1v15(rand.Reader, local, crypto.SHA256, d)
	if v, err := c.Verify(ctx, "imported", "", azkeys.VerifyParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Digest: d, Signature: localSig}, nil); err != nil || !*v.Value {
		t.Errorf("local signature in kura: %v", err)
	}
	ecLocal, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecBytes, _ := ecLocal.Bytes()
	ecPub, _ := ecLocal.PublicKey.Bytes()
	if _, err := c.ImportKey(ctx, "imported-ec", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeEC), Crv: to.Ptr(azkeys.CurveNameP256),
		D: ecBytes, X: ecPub[1:33], Y: ecPub[33:]}}, nil); err != nil {
		t.Errorf("import EC: %v", err)
	}
	// Malformed JWK: 400 naming the field; nothing is created.
	_, err = c.ImportKey(ctx, "broken", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSA), N: local.N.Bytes(), E: []byte{1, 0, 1}}}, nil)
	if status(err) != 400 || !strings.Contains(err.Error(), "key.d") {
		t.Errorf("import without d: %v", err)
	}
	if _, err := c.GetKey(ctx, "broken", "", nil); status(err) != 404 {
		t.Errorf("a refused import left a key: %v", err)
	}

	// --- versions, get, update, enforcement ---
	v1 := pubs["ecp256"].KID.Version()
	if _, err := c.CreateKey(ctx, "ecp256", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetKey(ctx, "ecp256", v1, nil)
	if err != nil || got.Key.KID.Version() != v1 {
		t.Fatalf("get version: %v", err)
	}
	if latest, _ := c.GetKey(ctx, "ecp256", "", nil); latest.Key.KID.Version() == v1 {
		t.Error("GetKey with an empty version did not return the latest")
	}
	var versions []string
	for pg := c.NewListKeyPropertiesVersionsPager("ecp256", nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Value {
			versions = append(versions, it.KID.Version())
		}
	}
	if len(versions) != 2 || versions[0] != v1 {
		t.Errorf("versions %v", versions)
	}
	if _, err := c.UpdateKey(ctx, "ecp256", v1, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}, Tags: map[string]*string{"x": to.Ptr("y")}}, nil); err != nil {
		t.Fatal(err)
	}
	sd := digest(crypto.SHA256, msg)
	if _, err := c.Sign(ctx, "ecp256", v1, azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: sd}, nil); status(err) != 403 || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("sign with a disabled version: %v", err)
	}
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	c.UpdateKey(ctx, "ecp384", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Expires: &past}}, nil)
	if _, err := c.Sign(ctx, "ecp384", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES384), Value: digest(crypto.SHA384, msg)}, nil); status(err) != 403 || !strings.Contains(err.Error(), "exp") {
		t.Errorf("sign after exp: %v", err)
	}
	c.UpdateKey(ctx, "ecp521", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{NotBefore: &future}}, nil)
	if _, err := c.Sign(ctx, "ecp521", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES512), Value: digest(crypto.SHA512, msg)}, nil); status(err) != 403 || !strings.Contains(err.Error(), "nbf") {
		t.Errorf("sign before nbf: %v", err)
	}
	c.UpdateKey(ctx, "rsa4096", "", azkeys.UpdateKeyParameters{KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign)}}, nil)
	if _, err := c.Encrypt(ctx, "rsa4096", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: msg}, nil); status(err) != 403 {
		t.Errorf("encrypt outside key_ops: %v", err)
	}
	// Algorithms that do not fit the key: 400.
	for _, tc := range []struct {
		key string
		alg azkeys.SignatureAlgorithm
	}{{"rsa2048", azkeys.SignatureAlgorithmES256}, {"ecp256", azkeys.SignatureAlgorithmES384}, {"ecp256", azkeys.SignatureAlgorithmRS256}} {
		if _, err := c.Sign(ctx, tc.key, "", azkeys.SignParameters{Algorithm: to.Ptr(tc.alg), Value: sd}, nil); status(err) != 400 {
			t.Errorf("%s with %s: %v", tc.alg, tc.key, err)
		}
	}
	if _, err := c.Encrypt(ctx, "aes128", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256GCM), Value: msg}, nil); status(err) != 400 {
		t.Errorf("A256GCM on a 128-bit key: %v", err)
	}
	if _, err := c.GetKey(ctx, "no-such-key", "", nil); status(err) != 404 {
		t.Errorf("unknown key: %v", err)
	}

	// --- list with paging (more than 25 keys) ---
	for i := range 20 {
		if _, err := c.CreateKey(ctx, fmt.Sprintf("page-%02d", i), azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	names := map[string]bool{}
	pages := 0
	for pg := c.NewListKeyPropertiesPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Value) > 25 {
			t.Errorf("page of %d keys", len(page.Value))
		}
		for _, it := range page.Value {
			names[it.KID.Name()] = true
		}
	}
	if len(names) != 31 || pages != 2 {
		t.Errorf("listed %d keys in %d pages, want 31 in 2", len(names), pages)
	}

	// --- delete, deleted keys, recover, purge ---
	del, err := c.DeleteKey(ctx, "aes192", nil)
	if err != nil || del.RecoveryID == nil || del.ScheduledPurgeDate == nil || del.ScheduledPurgeDate.Sub(*del.DeletedDate) != 90*24*time.Hour {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.GetKey(ctx, "aes192", "", nil); status(err) != 404 {
		t.Errorf("get of a deleted key: %v", err)
	}
	if _, err := c.CreateKey(ctx, "aes192", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr[int32](192)}, nil); status(err) != 409 {
		t.Errorf("create over a deleted key: %v", err)
	}
	if dk, err := c.GetDeletedKey(ctx, "aes192", nil); err != nil || dk.Key.KID.Name() != "aes192" {
		t.Errorf("get deleted: %v", err)
	}
	ndel := 0
	for pg := c.NewListDeletedKeyPropertiesPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ndel += len(page.Value)
	}
	if ndel != 1 {
		t.Errorf("%d deleted keys listed", ndel)
	}
	if _, err := c.RecoverDeletedKey(ctx, "aes192", nil); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if _, err := c.WrapKey(ctx, "aes192", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA192KW), Value: cek}, nil); err != nil {
		t.Errorf("use after recover: %v", err)
	}
	c.DeleteKey(ctx, "aes192", nil)
	if _, err := c.PurgeDeletedKey(ctx, "aes192", nil); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if _, err := c.GetDeletedKey(ctx, "aes192", nil); status(err) != 404 {
		t.Errorf("after purge: %v", err)
	}

	// --- backup and restore ---
	bk, err := c.BackupKey(ctx, "rsa2048", nil)
	if err != nil || len(bk.Value) < 100 {
		t.Fatalf("backup: %v", err)
	}
	if bytes.Contains(bk.Value, rsaPub.N.Bytes()[:32]) {
		t.Error("the backup blob is not encrypted")
	}
	if _, err := c.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: bk.Value}, nil); status(err) != 409 {
		t.Errorf("restore over an existing key: %v", err)
	}
	c.DeleteKey(ctx, "rsa2048", nil)
	c.PurgeDeletedKey(ctx, "rsa2048", nil)
	tampered := bytes.Clone(bk.Value)
	tampered[len(tampered)-5] ^= 1
	if _, err := c.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: tampered}, nil); status(err) != 400 {
		t.Errorf("restore of a tampered backup: %v", err)
	}
	rs, err := c.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: bk.Value}, nil)
	if err != nil || !bytes.Equal(rs.Key.N, rsaPub.N.Bytes()) {
		t.Fatalf("restore: %v", err)
	}
	if dec, err := c.Decrypt(ctx, "rsa2048", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256),
		Value: mustOAEP(t, rsaPub, msg)}, nil); err != nil || !bytes.Equal(dec.Result, msg) {
		t.Errorf("decrypt with the restored key: %v", err)
	}

	// --- rotation and rotation policy ---
	pol, err := c.GetKeyRotationPolicy(ctx, "rsa3072", nil)
	if err != nil || len(pol.LifetimeActions) != 1 || *pol.LifetimeActions[0].Action.Type != azkeys.KeyRotationPolicyActionNotify {
		t.Fatalf("default rotation policy: %v", err)
	}
	up, err := c.UpdateKeyRotationPolicy(ctx, "rsa3072", azkeys.KeyRotationPolicy{
		Attributes:      &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P90D")},
		LifetimeActions: []*azkeys.LifetimeAction{{Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}, Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P30D")}}},
	}, nil)
	if err != nil || *up.Attributes.ExpiryTime != "P90D" || up.ID == nil {
		t.Fatalf("update rotation policy: %v", err)
	}
	if _, err := c.UpdateKeyRotationPolicy(ctx, "rsa3072", azkeys.KeyRotationPolicy{Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P7D")}}, nil); status(err) != 400 {
		t.Errorf("expiryTime under 28 days: %v", err)
	}
	rot, err := c.RotateKey(ctx, "rsa3072", nil)
	if err != nil || len(rot.Key.N) != 384 || rot.Key.KID.Version() == pubs["rsa3072"].KID.Version() || rot.Attributes.Expires == nil {
		t.Fatalf("rotate: %v", err)
	}
}

func mustOAEP(t *testing.T, pub *rsa.PublicKey, msg []byte) []byte {
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func verifyLocally(jwk *azkeys.JSONWebKey, alg azkeys.SignatureAlgorithm, h crypto.Hash, d, sig []byte) error {
	switch {
	case strings.HasPrefix(string(alg), "RS"), strings.HasPrefix(string(alg), "PS"):
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(jwk.N), E: int(new(big.Int).SetBytes(jwk.E).Int64())}
		if strings.HasPrefix(string(alg), "RS") {
			return rsa.VerifyPKCS1v15(pub, h, d, sig)
		}
		return rsa.VerifyPSS(pub, h, d, sig, nil)
	default:
		curve := map[azkeys.CurveName]elliptic.Curve{azkeys.CurveNameP256: elliptic.P256(), azkeys.CurveNameP384: elliptic.P384(), azkeys.CurveNameP521: elliptic.P521()}[*jwk.Crv]
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, jwk.X...), jwk.Y...))
		if err != nil {
			return err
		}
		n := len(sig) / 2
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		if !ecdsa.Verify(pub, d, r, s) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	}
}

// TestKeyVaultAuth: authentication comes first (the 401 challenge), tokens
// must be valid and unexpired, and roles limit what a principal may do.
func TestKeyVaultAuth(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	officer := l.client(t, l.principal(t, "officer", "crypto-officer"))
	if _, err := officer.CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatal(err)
	}
	auditor := l.client(t, l.principal(t, "auditor", "auditor"))
	if _, err := auditor.GetKey(ctx, "k", "", nil); err != nil {
		t.Errorf("auditor get: %v", err)
	}
	for name, f := range map[string]func() error{
		"auditor signs": func() error {
			_, err := auditor.Sign(ctx, "k", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: make([]byte, 32)}, nil)
			return err
		},
		"auditor creates": func() error {
			_, err := auditor.CreateKey(ctx, "k2", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil)
			return err
		},
		"officer signs": func() error {
			_, err := officer.Sign(ctx, "k", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: make([]byte, 32)}, nil)
			return err
		},
		"auditor deletes": func() error { _, err := auditor.DeleteKey(ctx, "k", nil); return err },
	} {
		if err := f(); status(err) != 403 {
			t.Errorf("%s: %v, want 403", name, err)
		}
	}
	// A key-scoped crypto user may use only its key.
	scoped := l.principal(t, "scoped")
	rb, _ := json.Marshal(map[string]string{"role": "crypto-user", "scope": "/keys/k"})
	req, _ := http.NewRequest("POST", l.url()+"/kura/v1/principals/"+scoped.id+"/roles", bytes.NewReader(rb))
	req.Header.Set("Authorization", "Bearer "+l.admin)
	resp, _ := l.http.Do(req)
	resp.Body.Close()
	sc := l.client(t, scoped)
	if _, err := sc.Sign(ctx, "k", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: make([]byte, 32)}, nil); err != nil {
		t.Errorf("scoped sign on its key: %v", err)
	}
	officer.CreateKey(ctx, "other", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil)
	if _, err := sc.Sign(ctx, "other", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: make([]byte, 32)}, nil); status(err) != 403 {
		t.Errorf("scoped sign on another key: %v", err)
	}

	// Raw requests: no token, a bad token, an unknown key with no token
	// (authentication before anything else), and the challenge's shape.
	raw := func(method, path, token string, body []byte) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, l.url()+path, bytes.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := l.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	for _, c := range []struct{ method, path, token string }{
		{"POST", "/keys/nope/create?api-version=2025-07-01", ""},
		{"GET", "/keys/k/?api-version=2025-07-01", "kura_at_forged"},
		{"GET", "/keys?api-version=bogus", ""},
		{"GET", "/keys/k/?api-version=2025-07-01", "not.a.jwt"},
	} {
		resp, body := raw(c.method, c.path, c.token, []byte("{not json"))
		ch := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != 401 || !strings.Contains(ch, `authorization="https://kura.localhost:`+l.port+`/kura"`) || !strings.Contains(ch, `resource="https://localhost:`+l.port+`"`) {
			t.Errorf("%s %s: %d %q %s", c.method, c.path, resp.StatusCode, ch, body)
		}
	}
	// Expired token: issue one with a clock in the past.
	tok := l.token(t, "officer")
	resp, _ = raw("GET", "/keys/k/?api-version=2025-07-01", tok, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("fresh token: %d", resp.StatusCode)
	}
	// Wrong secret at the token endpoint.
	tr, _ := l.http.PostForm(l.url()+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"officer"}, "client_secret": {"wrong"}})
	if tr.StatusCode != 401 {
		t.Errorf("wrong secret: %d", tr.StatusCode)
	}
	tr.Body.Close()
	// Malformed input after authentication: 400, not 5xx.
	for _, body := range []string{"{not json", `{"kty":5}`, `{"kty":"RSA","key_size":1234}`, `{"kty":"EC","crv":"P-999"}`, `{"kty":"XYZ"}`, `{}`, `[]`, `"RSA"`, ``, `{"kty":"oct","key_size":128,"attributes":{"exp":0}}`, `{"kty":"oct","key_size":128,"attributes":{"nbf":253402300799}}`} {
		resp, b := raw("POST", "/keys/newkey/create?api-version=2025-07-01", l.admin, []byte(body))
		if resp.StatusCode != 400 || !strings.Contains(string(b), "BadParameter") {
			t.Errorf("create with %s: %d %s", body, resp.StatusCode, b)
		}
	}
	if resp, _ := raw("GET", "/keys/newkey/?api-version=2025-07-01", l.admin, nil); resp.StatusCode != 404 {
		t.Errorf("a refused create left a key: %d", resp.StatusCode)
	}
	// Bad base64url is a 400 naming the member that holds it.
	for _, c := range []struct{ path, body, field string }{
		{"/keys/k/sign?api-version=2025-07-01", `{"alg":"RS256","value":"not*base64"}`, "value"},
		{"/keys/k/encrypt?api-version=2025-07-01", `{"alg":"A256GCM","value":"AAAA","iv":"%%%","tag":"AAAA"}`, "iv"},
		{"/keys/k/verify?api-version=2025-07-01", `{"alg":"RS256","digest":"AAAA","value":7}`, "value"},
		// Two bad members: the first in the document is named.
		{"/keys/k/encrypt?api-version=2025-07-01", `{"alg":"A256GCM","value":"ab*cd","iv":"xyz!"}`, "value"},
	} {
		resp, b := raw("POST", c.path, l.admin, []byte(c.body))
		if resp.StatusCode != 400 || !strings.Contains(string(b), `"message":"`+c.field+`: `) {
			t.Errorf("%s %s: %d %s, want a 400 naming %q", c.path, c.body, resp.StatusCode, b, c.field)
		}
	}
	// Inside an object: the path to the member.
	if resp, b := raw("PUT", "/keys/imp?api-version=2025-07-01", l.admin, []byte(`{"key":{"kty":"RSA","n":"AQAB","e":"AQAB","d":"**"}}`)); resp.StatusCode != 400 || !strings.Contains(string(b), `"message":"key.d: `) {
		t.Errorf("import with bad base64 in key.d: %d %s", resp.StatusCode, b)
	}
	if resp, _ := raw("POST", "/keys/k/sign?api-version=2025-07-01", l.admin, bytes.Repeat([]byte("a"), 2<<20)); resp.StatusCode != 413 {
		t.Errorf("oversized body: %d", resp.StatusCode)
	}
}

// token gets an access token for a principal by name (secret reset).
func (l *live) token(t *testing.T, name string) string {
	req, _ := http.NewRequest("GET", l.url()+"/kura/v1/principals", nil)
	req.Header.Set("Authorization", "Bearer "+l.admin)
	resp, err := l.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Value []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"value"`
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	for _, p := range list.Value {
		if p.Name == name {
			req, _ := http.NewRequest("POST", l.url()+"/kura/v1/principals/"+p.ID+"/secret", nil)
			req.Header.Set("Authorization", "Bearer "+l.admin)
			resp, err := l.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				ClientSecret string `json:"client_secret"`
			}
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			c := &clientCred{l: l, id: p.ID, secret: out.ClientSecret}
			tok, err := c.GetToken(context.Background(), policy.TokenRequestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return tok.Token
		}
	}
	t.Fatalf("no principal %q", name)
	return ""
}

// TestNoPlaintextKeysInStore creates keys of every type, imports one, and
// scans the database files for the raw bytes of every private key: none may
// appear.
func TestNoPlaintextKeysInStore(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	c := l.client(t, l.principal(t, "app", "crypto-officer", "crypto-user"))
	policy := &azkeys.KeyReleasePolicy{EncodedPolicy: []byte(`{"version":"1.0.0","anyOf":[{"authority":"https://attest.example","allOf":[{"claim":"x","equals":"y"}]}]}`)}
	var secrets [][]byte
	for _, p := range []azkeys.CreateKeyParameters{
		{Kty: to.Ptr(azkeys.KeyTypeRSA)}, {Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP384)}, {Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr[int32](256)},
	} {
		p.KeyAttributes = &azkeys.KeyAttributes{Exportable: to.Ptr(true)}
		p.ReleasePolicy = policy
		resp, err := c.CreateKey(ctx, "k-"+strings.ToLower(string(*p.Kty)), p, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, mat, err := l.srv.Keys().ReleaseMaterial(ctx, resp.Key.KID.Name(), resp.Key.KID.Version())
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, privateParts(t, mat)...)
	}
	local, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := c.ImportKey(ctx, "imported", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSA),
		N: local.N.Bytes(), E: []byte{1, 0, 1}, D: local.D.Bytes(), P: local.Primes[0].Bytes(), Q: local.Primes[1].Bytes()}}, nil); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(local)
	secrets = append(secrets, local.D.Bytes(), local.Primes[0].Bytes(), local.Primes[1].Bytes(), der)

	// Let SQLite write everything (WAL included), then read every file.
	l.http.CloseIdleConnections()
	files, _ := filepath.Glob(filepath.Join(l.dir, "kura.db*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range secrets {
			if len(s) >= 16 && bytes.Contains(b, s) {
				t.Errorf("%s holds private key part %d in plaintext", filepath.Base(f), i)
			}
		}
	}
}

func privateParts(t *testing.T, m *keyops.Material) [][]byte {
	der, err := m.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	out := [][]byte{der}
	switch {
	case m.RSA != nil:
		out = append(out, m.RSA.D.Bytes(), m.RSA.Primes[0].Bytes(), m.RSA.Primes[1].Bytes())
	case m.EC != nil:
		b, _ := m.EC.Bytes()
		out = append(out, b)
	default:
		out = append(out, m.Oct)
	}
	return out
}

// TestAdministratorRole: a principal with the administrator role manages
// policies and token keys as the bootstrap token does; other roles do not.
func TestAdministratorRole(t *testing.T) {
	l := startLive(t)
	l.principal(t, "boss", "administrator")
	l.principal(t, "user", "crypto-user")
	for _, c := range []struct {
		name string
		want int
	}{{"boss", 200}, {"user", 403}} {
		tok := l.token(t, c.name)
		for _, path := range []string{"/policies/SevSnpVm?api-version=2022-08-01", "/kura/v1/token-keys:rotate"} {
			method := "GET"
			if strings.Contains(path, "rotate") {
				method = "POST"
			}
			req, _ := http.NewRequest(method, l.url()+path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := l.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("%s %s as %s: %d, want %d", method, path, c.name, resp.StatusCode, c.want)
			}
		}
	}
}
