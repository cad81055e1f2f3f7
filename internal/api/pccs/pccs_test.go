package pccs_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/api/pccs"
	"github.com/kura-project/kura/internal/attest/attesttest"
	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/attest/intelsim"
)

var now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func serve(t *testing.T, clock *time.Time) (*http.ServeMux, *intelsim.Authority) {
	t.Helper()
	a, err := intelsim.New(now)
	if err != nil {
		t.Fatal(err)
	}
	h := &pccs.Handler{Sources: map[string]pccs.Source{}, Now: func() time.Time { return *clock }}
	for _, tee := range []string{"TDX", "SGX"} {
		ap := &intel.Appraiser{TEE: tee, Roots: a.Roots(), Store: &attesttest.Collateral{}}
		// Intel's PCS issues one bundle per PCK CA: the Platform CA's and,
		// for SGX here, the Processor CA's.
		issuers := []string{""}
		if tee == "SGX" {
			issuers = append(issuers, "processor")
		}
		for _, issuer := range issuers {
			b, err := a.Collateral(intelsim.CollateralOptions{TEE: tee, PCKCRLIssuer: issuer}, now)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ap.Import(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		h.Sources[strings.ToLower(tee)] = ap
	}
	mux := http.NewServeMux()
	h.Register(mux)
	return mux, a
}

func get(mux *http.ServeMux, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w
}

// chainOf reads an issuer chain header as Intel's clients do, by its
// exact name.
func chainOf(t *testing.T, hdr http.Header, name string) []*x509.Certificate {
	t.Helper()
	v := hdr[name]
	if len(v) != 1 {
		t.Fatalf("header %s (exact spelling): %v", name, v)
	}
	h := v[0]
	s, err := url.QueryUnescape(h)
	if err != nil {
		t.Fatal(err)
	}
	c, err := intel.ParseChain([]byte(s))
	if err != nil {
		t.Fatalf("issuer chain header %q: %v", h, err)
	}
	return c
}

// TestRoutes: each PCCS v4 route serves the cached document exactly as
// signed (its signature verifies with the issuer chain of its header) or
// the CRL in the encoding asked for; bad parameters are 400s naming them;
// unknown platforms and collateral that no longer verifies are 404s.
func TestRoutes(t *testing.T) {
	clock := now
	mux, a := serve(t, &clock)
	for _, c := range []struct {
		path, member, header, id string
	}{
		{"/tdx/certification/v4/tcb?fmspc=" + strings.ToLower(intelsim.FMSPC), "tcbInfo", "TCB-Info-Issuer-Chain", `"id":"TDX"`},
		{"/sgx/certification/v4/tcb?fmspc=" + intelsim.FMSPC, "tcbInfo", "TCB-Info-Issuer-Chain", `"id":"SGX"`},
		{"/tdx/certification/v4/qe/identity", "enclaveIdentity", "SGX-Enclave-Identity-Issuer-Chain", `"id":"TD_QE"`},
		{"/sgx/certification/v4/qe/identity", "enclaveIdentity", "SGX-Enclave-Identity-Issuer-Chain", `"id":"QE"`},
	} {
		w := get(mux, c.path)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", c.path, w.Code, w.Body)
		}
		doc, _, err := intel.ParsePCSSigned(w.Body.Bytes(), c.member)
		if err != nil || !bytes.Contains(doc, []byte(c.id)) {
			t.Fatalf("%s: %v %s", c.path, err, doc)
		}
		chain := chainOf(t, w.Header(), c.header)
		if !chain[0].Equal(a.TCBSigner) || !chain[1].Equal(a.Root) {
			t.Errorf("%s: issuer chain %s, %s", c.path, chain[0].Subject, chain[1].Subject)
		}
	}
	// What is served reassembles into collateral that verifies: the
	// documents are byte for byte what Intel (here: the simulator) signed.
	part := func(path, member, header string) ([]byte, []byte, []*x509.Certificate) {
		w := get(mux, path)
		doc, sig, err := intel.ParsePCSSigned(w.Body.Bytes(), member)
		if err != nil {
			t.Fatal(err)
		}
		return doc, sig, chainOf(t, w.Header(), header)
	}
	var col intel.Collateral
	col.TCBInfo, col.TCBInfoSig, col.TCBInfoChain = part("/tdx/certification/v4/tcb?fmspc="+intelsim.FMSPC, "tcbInfo", "TCB-Info-Issuer-Chain")
	col.QEIdentity, col.QEIdentitySig, col.QEIdentityChain = part("/tdx/certification/v4/qe/identity", "enclaveIdentity", "SGX-Enclave-Identity-Issuer-Chain")
	crlW := get(mux, "/sgx/certification/v4/pckcrl?ca=platform&encoding=der")
	col.PCKCRL, col.PCKCRLChain = crlW.Body.Bytes(), chainOf(t, crlW.Header(), "SGX-PCK-CRL-Issuer-Chain")
	col.RootCRL = get(mux, "/sgx/certification/v4/rootcacrl").Body.Bytes()
	if _, err := col.Verify(a.Roots(), now); err != nil {
		t.Errorf("the served collateral does not verify: %v", err)
	}
	w := get(mux, "/sgx/certification/v4/pckcrl?ca=platform&encoding=der")
	l, err := x509.ParseRevocationList(w.Body.Bytes())
	if w.Code != 200 || err != nil || l.CheckSignatureFrom(a.PCKCA) != nil {
		t.Errorf("pckcrl der: %d %v", w.Code, err)
	}
	if ch := chainOf(t, w.Header(), "SGX-PCK-CRL-Issuer-Chain"); !ch[0].Equal(a.PCKCA) {
		t.Errorf("pckcrl issuer chain %s", ch[0].Subject)
	}
	w = get(mux, "/sgx/certification/v4/pckcrl?ca=processor&encoding=der")
	if l, err := x509.ParseRevocationList(w.Body.Bytes()); w.Code != 200 || err != nil || l.Issuer.CommonName != "Intel SGX PCK Processor CA" {
		t.Errorf("pckcrl processor: %d %v", w.Code, err)
	} else if ch := chainOf(t, w.Header(), "SGX-PCK-CRL-Issuer-Chain"); ch[0].Subject.CommonName != "Intel SGX PCK Processor CA" || l.CheckSignatureFrom(ch[0]) != nil {
		t.Errorf("pckcrl processor issuer chain %s", ch[0].Subject)
	}
	w = get(mux, "/sgx/certification/v4/pckcrl?ca=platform")
	if blk, _ := pem.Decode(w.Body.Bytes()); w.Code != 200 || blk == nil || blk.Type != "X509 CRL" {
		t.Errorf("pckcrl pem: %d %s", w.Code, w.Body)
	}
	w = get(mux, "/sgx/certification/v4/rootcacrl")
	if l, err := x509.ParseRevocationList(w.Body.Bytes()); w.Code != 200 || err != nil || l.CheckSignatureFrom(a.Root) != nil {
		t.Errorf("rootcacrl: %d %v", w.Code, err)
	}
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/tdx/certification/v4/tcb?fmspc=00906ED50000", 404, "no Intel TDX collateral for 00906ED50000"},
		{"/tdx/certification/v4/tcb?fmspc=zz", 400, "fmspc: want 12 hex digits"},
		{"/tdx/certification/v4/tcb", 400, "fmspc"},
		{"/sgx/certification/v4/pckcrl?ca=root", 400, "ca: want platform or processor"},
		{"/sgx/certification/v4/pckcrl?ca=platform&encoding=base64", 400, "encoding"},
		{"/sgx/certification/v4/pckcert?qeid=00", 404, "PCK chain"},
	} {
		if w := get(mux, c.path); w.Code != c.code || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%s: %d %s, want %d %q", c.path, w.Code, w.Body, c.code, c.want)
		}
	}
	clock = now.AddDate(0, 2, 0) // past every part's next update
	if w := get(mux, "/tdx/certification/v4/qe/identity"); w.Code != 404 || !strings.Contains(w.Body.String(), "verifies at") {
		t.Errorf("expired collateral: %d %s", w.Code, w.Body)
	}
	if w := get(mux, "/sgx/certification/v4/rootcacrl"); w.Code != 404 {
		t.Errorf("expired root CRL: %d", w.Code)
	}
}
