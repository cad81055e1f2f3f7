package intel_test

import (
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/evidence"
)

// pcsFiles splits a real dcap-qvl bundle into the files Intel's PCS
// serves: the TCB info and QE identity answers, the TCB Signing and PCK CA
// certificates of the issuer-chain headers (PEM), the PCK CRL (DER) and
// the root CA CRL (PEM).
func pcsFiles(t *testing.T, bundle []byte) map[string][]byte {
	var b map[string]string
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	answer := func(member, doc, sig string) []byte {
		return []byte(`{"` + member + `":` + doc + `,"signature":"` + sig + `"}`)
	}
	first := func(chain string) []byte {
		blk, _ := pem.Decode([]byte(chain))
		return pem.EncodeToMemory(blk)
	}
	root, _ := hex.DecodeString(b["root_ca_crl"])
	pck, _ := hex.DecodeString(b["pck_crl"])
	return map[string][]byte{
		"tcb":      answer("tcbInfo", b["tcb_info"], b["tcb_info_signature"]),
		"qe":       answer("enclaveIdentity", b["qe_identity"], b["qe_identity_signature"]),
		"signer":   first(b["tcb_info_issuer_chain"]),
		"pckca":    first(b["pck_crl_issuer_chain"]),
		"pckcrl":   pck,
		"rootcrl":  pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: root}),
		"amd-vcek": evidence.Read(t, "snp/milan-gce-2022/vcek.der"),
	}
}

// TestAssemblePCS: Intel's PCS answers, saved as Intel serves them,
// assemble into a bundle that verifies as the original does, leaving
// another vendor's file alone; a missing part is named.
func TestAssemblePCS(t *testing.T) {
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	for _, src := range []string{"tdx/dcap-qvl/tdx_quote_collateral.json", "sgx/dcap-qvl/sgx_quote_collateral.json"} {
		files := pcsFiles(t, evidence.Read(t, src))
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range files {
				if !yield(k) {
					return
				}
			}
		})
		list := func(skip string) [][]byte {
			var out [][]byte
			for _, n := range names {
				if n != skip {
					out = append(out, files[n])
				}
			}
			return out
		}
		bundles, used, err := intel.AssemblePCS(list(""))
		if err != nil || len(bundles) != 1 {
			t.Fatalf("%s: %d bundles, %v", src, len(bundles), err)
		}
		var usedNames []string
		for _, i := range used {
			usedNames = append(usedNames, names[i])
		}
		if slices.Contains(usedNames, "amd-vcek") || len(used) != 6 {
			t.Errorf("%s: used %v", src, usedNames)
		}
		col, err := intel.ParseQVLBundle(bundles[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := col.Verify(intel.Roots(), at); err != nil {
			t.Errorf("%s: the assembled bundle does not verify: %v", src, err)
		}
		for _, c := range []struct{ skip, want string }{
			{"signer", "no Intel SGX TCB Signing certificate"},
			{"rootcrl", "no Intel SGX Root CA CRL"},
			{"pckcrl", "no PCK CRL"},
			{"pckca", "CA certificate among the files for its CRL"},
			{"qe", "identity (GET /"},
		} {
			if _, _, err := intel.AssemblePCS(list(c.skip)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s without %s: %v, want %q", src, c.skip, err, c.want)
			}
		}
		if b, u, err := intel.AssemblePCS([][]byte{files["amd-vcek"]}); err != nil || b != nil || u != nil {
			t.Errorf("an AMD file alone: %v %v %v", b, u, err)
		}
	}
}
