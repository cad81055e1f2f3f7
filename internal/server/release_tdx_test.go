package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kura-project/kura/internal/agent"
	"github.com/kura-project/kura/internal/attest/intelsim"
)

// tdxToken attests a simulated TD (quote v5 when v5) carrying g's key in
// its runtime data through POST /attest/TdxVm, and returns the token.
func (g *tee) tdxToken(t *testing.T, r *rig, o intelsim.TDXOptions) string {
	t.Helper()
	runtime, err := agent.RuntimeData(g.kid, &g.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	a, err := intelsim.Load(filepath.Join(r.dir, "sim"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(runtime)
	copy(o.ReportData[:], sum[:])
	quote, err := a.TDXQuote(o)
	if err != nil {
		t.Fatal(err)
	}
	body, err := intelsim.Body(quote, runtime, "JSON", "")
	if err != nil {
		t.Fatal(err)
	}
	code, resp, _ := r.do("POST", "/attest/TdxVm?api-version=2025-06-01", body)
	if code != 200 {
		t.Fatalf("attest TdxVm: %d %s", code, resp)
	}
	var out struct{ Token string }
	json.Unmarshal(resp, &out)
	return out.Token
}

// TestTdxReleaseWithAzkeys: a TDX release end to end — simulated TDX
// evidence (quote v4 and v5) → MAA token → the real azkeys client's
// ReleaseKey under a tdxvm release policy (attestation type, TCB status,
// not debuggable) → the agent opens the imported key; a debuggable TD is
// refused, naming the rule, and gets no key.
func TestTdxReleaseWithAzkeys(t *testing.T) {
	l := startLive(t, issuerOpt)
	ctx := context.Background()
	officer := l.client(t, l.principal(t, "officer", "crypto-officer"))
	releaser := l.client(t, l.principal(t, "releaser", "release-user"))
	local, _ := rsa.GenerateKey(rand.Reader, 2048)
	policy := releasePolicy(kuraIssuer, nil,
		cond("x-ms-attestation-type", "equals", "tdxvm"),
		cond("attester_tcb_status", "equals", "UpToDate"),
		cond("tdx_td_attributes_debug", "equals", false))
	if _, err := officer.ImportKey(ctx, "td-key", azkeys.ImportKeyParameters{
		Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSA), N: local.N.Bytes(), E: []byte{1, 0, 1}, D: local.D.Bytes(),
			P: local.Primes[0].Bytes(), Q: local.Primes[1].Bytes()},
		KeyAttributes: &azkeys.KeyAttributes{Exportable: to.Ptr(true)},
		ReleasePolicy: &azkeys.KeyReleasePolicy{EncodedPolicy: policy},
	}, nil); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, srv: l.srv, dir: l.dir, admin: l.admin}
	want, _ := x509.MarshalPKCS8PrivateKey(local)
	for _, v5 := range []bool{false, true} {
		g := newTEE(t)
		tok := g.tdxToken(t, r, intelsim.TDXOptions{V5: v5})
		resp, err := releaser.Release(ctx, "td-key", "", azkeys.ReleaseParameters{TargetAttestationToken: &tok,
			Algorithm: to.Ptr(azkeys.KeyEncryptionAlgorithmRSAAESKEYWRAP256)}, nil)
		if err != nil {
			t.Fatalf("v5 %v: ReleaseKey: %v", v5, err)
		}
		payload, err := agent.VerifyReleaseJWS(*resp.Value, r.releaseCerts(t))
		if err != nil {
			t.Fatal(err)
		}
		rel, err := agent.Open(payload, g.priv, agent.Expect{Name: "td-key", TEEKeyID: g.kid})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rel.Material, want) {
			t.Fatalf("v5 %v: the released key is not the imported key", v5)
		}
	}
	g := newTEE(t)
	tok := g.tdxToken(t, r, intelsim.TDXOptions{Debug: true})
	_, err := releaser.Release(ctx, "td-key", "", azkeys.ReleaseParameters{TargetAttestationToken: &tok}, nil)
	if status(err) != 403 || !strings.Contains(err.Error(), "tdx_td_attributes_debug equals false, actual true") {
		t.Errorf("debuggable TD: %v", err)
	}
}
