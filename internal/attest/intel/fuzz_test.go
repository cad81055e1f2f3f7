package intel

import (
	"testing"
	"time"
)

// FuzzParseCollateral: the collateral parsers (dcap-qvl bundle, PCS
// answers and their assembly, and the TCB info and QE identity JSON
// behind a signature check) never panic, and nothing verifies without Intel's signature.
func FuzzParseCollateral(f *testing.F) {
	f.Add([]byte(`{"tcb_info":"{}","tcb_info_signature":"00","tcb_info_issuer_chain":"","qe_identity":"{}","qe_identity_signature":"00","qe_identity_issuer_chain":"","pck_crl":"00","pck_crl_issuer_chain":"","root_ca_crl":"00"}`))
	f.Add([]byte(`{"tcbInfo":{"id":"TDX","version":3},"signature":"0011"}`))
	f.Add([]byte(`{"enclaveIdentity":{"id":"TD_QE"},"signature":"zz"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseQVLBundle(b); err == nil {
			if _, err := c.Verify(Roots(), time.Unix(1.8e9, 0)); err == nil {
				t.Fatal("fuzzed collateral verified")
			}
		}
		for _, m := range []string{"tcbInfo", "enclaveIdentity"} {
			doc, _, err := ParsePCSSigned(b, m)
			if err != nil {
				continue
			}
			var ti TCBInfo
			var qe QEIdentity
			_ = strictJSON(doc, &ti)
			_ = strictJSON(doc, &qe)
		}
		// As one of several files to assemble: never a panic, and a file
		// is used at most once.
		_, used, _ := AssemblePCS([][]byte{b, b[:len(b)/2]})
		if len(used) > 2 {
			t.Fatalf("used %v of 2 files", used)
		}
	})
}
