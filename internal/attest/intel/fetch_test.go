package intel_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest/attesttest"
	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/attest/tdx"
	"github.com/kura-project/kura/internal/evidence"
)

// fakePCS serves a real dcap-qvl bundle's parts as Intel's PCS v4 does
// (answers, issuer-chain headers, DER CRLs), counting requests; down makes
// every answer a 503.
func fakePCS(t *testing.T, bundle []byte, down *atomic.Bool, hits *atomic.Int32) *httptest.Server {
	var b map[string]string
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	var ti struct{ FMSPC string }
	json.Unmarshal([]byte(b["tcb_info"]), &ti)
	chain := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	der := func(h string) []byte { d, _ := hex.DecodeString(h); return d }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tdx/certification/v4/tcb", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.URL.Query().Get("fmspc"), ti.FMSPC) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("TCB-Info-Issuer-Chain", chain(b["tcb_info_issuer_chain"]))
		w.Write([]byte(`{"tcbInfo":` + b["tcb_info"] + `,"signature":"` + b["tcb_info_signature"] + `"}`))
	})
	mux.HandleFunc("GET /tdx/certification/v4/qe/identity", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("SGX-Enclave-Identity-Issuer-Chain", chain(b["qe_identity_issuer_chain"]))
		w.Write([]byte(`{"enclaveIdentity":` + b["qe_identity"] + `,"signature":"` + b["qe_identity_signature"] + `"}`))
	})
	mux.HandleFunc("GET /sgx/certification/v4/pckcrl", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ca") != "platform" || r.URL.Query().Get("encoding") != "der" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("SGX-PCK-CRL-Issuer-Chain", chain(b["pck_crl_issuer_chain"]))
		w.Write(der(b["pck_crl"]))
	})
	mux.HandleFunc("GET /IntelSGXRootCA.der", func(w http.ResponseWriter, r *http.Request) { w.Write(der(b["root_ca_crl"])) })
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestFetchFromPCS: with fetching allowed, a platform with no collateral
// on file gets it from (a stand-in for) Intel's PCS, verified and stored
// like an import, and its real quote verifies; later quotes use the
// store. A PCS that fails is named in the refusal and not asked again for
// a while.
func TestFetchFromPCS(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	var down atomic.Bool
	var hits atomic.Int32
	srv := fakePCS(t, evidence.Read(t, "tdx/dcap-qvl/tdx_quote_collateral.json"), &down, &hits)
	q, err := tdx.Parse(evidence.Read(t, "tdx/dcap-qvl/tdx_quote"))
	if err != nil {
		t.Fatal(err)
	}
	vq, err := tdx.Verify(q, tdx.Options{Roots: intel.Roots(), Now: at})
	if err != nil {
		t.Fatal(err)
	}
	appraiser := func() (*intel.Appraiser, *attesttest.Collateral) {
		st := &attesttest.Collateral{}
		return &intel.Appraiser{TEE: "TDX", Roots: intel.Roots(), Store: st, Now: func() time.Time { return at },
			Fetch: &intel.PCS{Base: srv.URL, RootCRLURL: srv.URL + "/IntelSGXRootCA.der", Client: srv.Client()}}, st
	}
	appraise := func(a *intel.Appraiser) (intel.TCB, error) {
		return a.Appraise(ctx, vq.PCK, vq.Chain, at, func(c *intel.Verified) (intel.TCB, error) { return c.EvaluateTDX(tdx.TDXInputOf(vq)) })
	}
	a, st := appraiser()
	tcb, err := appraise(a)
	if err != nil || tcb.Status != "UpToDate" {
		t.Fatalf("fetched: %+v %v", tcb, err)
	}
	if items, _ := st.Collateral(ctx, intel.Kind, "tdx/B0C06F000000"); len(items) != 1 {
		t.Errorf("the fetched bundle is not on file: %d items", len(items))
	}
	n := hits.Load()
	if _, err := appraise(a); err != nil || hits.Load() != n {
		t.Errorf("second quote: %v, %d more requests", err, hits.Load()-n)
	}
	down.Store(true)
	b, _ := appraiser()
	if _, err := appraise(b); err == nil || !strings.Contains(err.Error(), "fetching it from Intel's PCS failed") || !strings.Contains(err.Error(), "503") {
		t.Errorf("PCS down: %v", err)
	}
	n = hits.Load()
	if _, err := appraise(b); err == nil || hits.Load() != n {
		t.Errorf("PCS asked again at once after a failure: %v, %d requests", err, hits.Load()-n)
	}
}

// TestPCSFromSettings: fetching is off unless set; its settings are
// checked.
func TestPCSFromSettings(t *testing.T) {
	for _, c := range []struct {
		set  map[string]string
		on   bool
		want string
	}{
		{set: map[string]string{}},
		{set: map[string]string{"intel_pcs_fetch": "false"}},
		{set: map[string]string{"intel_pcs_fetch": "true"}, on: true},
		{set: map[string]string{"intel_pcs_fetch": "yes please"}, want: "not a boolean"},
		{set: map[string]string{"intel_pcs_fetch": "true", "intel_pcs_url": "http://pccs.example"}, want: "want an https URL"},
		{set: map[string]string{"intel_pcs_fetch": "true", "intel_pcs_timeout": "-1s"}, want: "positive duration"},
	} {
		p, err := intel.PCSFromSettings(func(k string) string { return c.set[k] })
		switch {
		case c.want != "":
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v: %v, want %q", c.set, err, c.want)
			}
		case err != nil || (p != nil) != c.on:
			t.Errorf("%v: %v %v", c.set, p, err)
		}
	}
}
