package server

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxverify "github.com/google/go-tdx-guest/verify"

	"github.com/kura-project/kura/internal/evidence"
)

// TestTdxVmOverHTTP: Intel collateral imported through the collateral
// route, then a real TDX quote attested at POST /attest/TdxVm: the token
// carries MAA's TDX claims and Intel's TCB status; a platform the
// collateral's TCB levels do not cover is a 400 saying so.
func TestTdxVmOverHTTP(t *testing.T) {
	r := newRig(t, time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC))
	if code, resp, _ := r.do("POST", "/kura/v1/collateral", evidence.Read(t, "tdx/dcap-qvl/tdx_quote_collateral.json"), r.admin_()...); code != 200 {
		t.Fatalf("import: %d %s", code, resp)
	}
	quote := evidence.Read(t, "tdx/dcap-qvl/tdx_quote")
	code, resp, h := r.do("POST", "/attest/TdxVm?api-version=2025-06-01", []byte(`{"quote":"`+b64u(quote)+`","nonce":"n-1"}`))
	if code != 200 {
		_, msg := errBody(t, resp, h)
		t.Fatalf("status %d: %s", code, msg)
	}
	c := claimsOf(t, resp)
	for k, want := range map[string]any{"x-ms-attestation-type": "tdxvm", "attester_tcb_status": "UpToDate", "nonce": "n-1",
		"tdx_mrtd": "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"} {
		if c[k] != want {
			t.Errorf("%s = %v, want %v", k, c[k], want)
		}
	}
	other := strings.TrimPrefix(strings.TrimSpace(string(evidence.Read(t, "tdx/dcap-qvl/tdx-quote.hex"))), "0x")
	code, resp, h = r.do("POST", "/attest/TdxVm?api-version=2025-06-01", []byte(`{"quote":"`+b64u(mustHex(t, other))+`"}`))
	if _, msg := errBody(t, resp, h); code != 400 || !strings.Contains(msg, "no TCB level") {
		t.Errorf("uncovered platform: %d %s", code, msg)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSgxEnclaveOverHTTP: Intel SGX collateral imported, then the real
// SGX quote attested at POST /attest/SgxEnclave with Intel's status.
func TestSgxEnclaveOverHTTP(t *testing.T) {
	r := newRig(t, time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC))
	if code, resp, _ := r.do("POST", "/kura/v1/collateral", evidence.Read(t, "sgx/dcap-qvl/sgx_quote_collateral.json"), r.admin_()...); code != 200 {
		t.Fatalf("import: %d %s", code, resp)
	}
	code, resp, h := r.do("POST", "/attest/SgxEnclave?api-version=2025-06-01", []byte(`{"quote":"`+b64u(evidence.Read(t, "sgx/dcap-qvl/sgx_quote"))+`"}`))
	if code != 200 {
		_, msg := errBody(t, resp, h)
		t.Fatalf("status %d: %s", code, msg)
	}
	c := claimsOf(t, resp)
	if c["x-ms-attestation-type"] != "sgx" || c["attester_tcb_status"] != "ConfigurationAndSWHardeningNeeded" || c["x-ms-sgx-mrenclave"] != "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" {
		t.Errorf("claims: %v %v %v", c["x-ms-attestation-type"], c["attester_tcb_status"], c["x-ms-sgx-mrenclave"])
	}
}

// TestBadIntelBundle: malformed Intel collateral bundles through the
// collateral route are 400s that say what is wrong, and store nothing.
func TestBadIntelBundle(t *testing.T) {
	r := newRig(t, time.Now())
	for _, c := range []struct{ body, want string }{
		{`{"tcb_info": 5}`, "cannot unmarshal number"},
		{`{"tcb_info":"{}","tcb_info_signature":"zz"}`, "tcb_info_signature is not hex"},
		{`{"tcb_info":"x"`, "unexpected end of JSON input"},
	} {
		code, resp, _ := r.do("POST", "/kura/v1/collateral", []byte(c.body), r.admin_()...)
		if code != 400 || !strings.Contains(string(resp), c.want) {
			t.Errorf("%s: %d %s, want 400 %q", c.body, code, resp, c.want)
		}
	}
	if exp, err := r.srv.app.Store.CollateralExpiry(context.Background()); err != nil || len(exp) != 0 {
		t.Errorf("refused bundles stored collateral: %v %v", exp, err)
	}
}

// pccsGetter is go-tdx-guest's collateral getter pointed at kura: the
// URLs of Intel's PCS (and the root CA's CRL distribution point) are
// served by kura's PCCS routes.
type pccsGetter struct {
	r    *rig
	urls []string
}

func (g *pccsGetter) Get(u string) (map[string][]string, []byte, error) {
	g.urls = append(g.urls, u)
	path := u
	for _, p := range []string{"https://api.trustedservices.intel.com", "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"} {
		if strings.HasPrefix(u, p) {
			path = strings.TrimPrefix(u, p)
			if path == "" {
				path = "/sgx/certification/v4/rootcacrl"
			}
		}
	}
	code, body, h := g.r.do("GET", path, nil)
	if code != 200 {
		return nil, nil, fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	// As a client reading the answer off the wire sees the header names.
	canon := http.Header{}
	for k, v := range h {
		canon[http.CanonicalHeaderKey(k)] = v
	}
	return canon, body, nil
}

// TestPCCSWithGoTdxGuest: Google's go-tdx-guest verifier, fetching its
// collateral (TCB info, QE identity, PCK CRL, root CA CRL) from kura's
// PCCS v4 routes instead of Intel's PCS, verifies a real TDX quote with
// revocation checks on, from what kura imported; with nothing imported
// it gets 404s and fails.
func TestPCCSWithGoTdxGuest(t *testing.T) {
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	r := newRig(t, at)
	quote, err := tdxabi.QuoteToProto(evidence.Read(t, "tdx/dcap-qvl/tdx_quote"))
	if err != nil {
		t.Fatal(err)
	}
	opts := func(g *pccsGetter) *tdxverify.Options {
		return &tdxverify.Options{GetCollateral: true, CheckRevocations: true, Getter: g,
			Now: &tdxverify.TimeSet{PckCertChain: at, TcbInfo: at, QeIdentity: at, PckCrl: at, RootCaCrl: at}}
	}
	empty := &pccsGetter{r: r}
	if err := tdxverify.TdxQuote(quote, opts(empty)); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("nothing imported: %v", err)
	}
	if code, resp, _ := r.do("POST", "/kura/v1/collateral", evidence.Read(t, "tdx/dcap-qvl/tdx_quote_collateral.json"), r.admin_()...); code != 200 {
		t.Fatalf("import: %d %s", code, resp)
	}
	g := &pccsGetter{r: r}
	if err := tdxverify.TdxQuote(quote, opts(g)); err != nil {
		t.Fatalf("go-tdx-guest over kura's PCCS routes: %v (fetched %v)", err, g.urls)
	}
	if len(g.urls) < 4 {
		t.Errorf("go-tdx-guest fetched %v, want TCB info, QE identity and both CRLs", g.urls)
	}
}
