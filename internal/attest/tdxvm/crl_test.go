package tdxvm

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/attesttest"
	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/attest/tdx"
	"github.com/kura-project/kura/internal/evidence"
)

// TestCRLOfAnotherIssuer: a bundle whose "PCK CRL" is the root CA's CRL
// (signed by the root, so it verifies as a CRL), with the quote's unsigned
// PEM chain reordered (PCK, root, CA), is refused: revocation is judged
// against the chain as verified and a CRL the PCK's own CA signed.
func TestCRLOfAnotherIssuer(t *testing.T) {
	ctx := context.Background()
	tee, _ := build(attest.Deps{Collateral: &attesttest.Collateral{}, Now: time.Now})
	var m map[string]any
	json.Unmarshal(evidence.Read(t, "tdx/dcap-qvl/tdx_quote_collateral.json"), &m)
	m["pck_crl"] = m["root_ca_crl"]
	m["pck_crl_issuer_chain"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: intel.RootCert().Raw}))
	crafted, _ := json.Marshal(m)
	if n, err := tee.Import(ctx, crafted); err != nil || n != 1 {
		t.Fatalf("import: %v", err)
	}
	raw := evidence.Read(t, "tdx/dcap-qvl/tdx_quote")
	q, _ := tdx.Parse(raw)
	ch := q.Signature.PCKChain
	var a, b []byte
	for _, c := range ch {
		a = append(a, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	for _, i := range []int{0, 2, 1} { // PCK, Root, Platform CA: the chain is unsigned
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ch[i].Raw})...)
	}
	quote := bytes.Clone(raw)
	copy(quote[bytes.Index(raw, a):], b)
	_, err := tee.Verifier.Verify(ctx, quote, time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC))
	if err == nil || !strings.Contains(err.Error(), "not signed by the PCK's CA") {
		t.Fatalf("a CRL of another issuer: %v", err)
	}
}
