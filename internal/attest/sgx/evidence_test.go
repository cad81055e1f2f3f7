package sgx

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/attest/intelsim"
	"github.com/kura-project/kura/internal/evidence"
)

func facts(v *Verified) map[string]any {
	q, r, h := v.Quote, v.Quote.Report, hex.EncodeToString
	misc := binary.LittleEndian.AppendUint32(nil, r.MiscSelect) // as the report holds it
	return map[string]any{
		"quote_version": float64(q.Version), "fmspc": h(v.PCK.FMSPC[:]), "pck_ca": v.CA, "pce_svn_pck": float64(v.PCK.PCESVN),
		"cpu_svn_pck": h(v.PCK.CPUSVN[:]), "qe_isv_svn": float64(q.Signature.QEISVSVN()), "mr_enclave": h(r.MREnclave[:]),
		"mr_signer": h(r.MRSigner[:]), "isv_prod_id": float64(r.ISVProdID), "isv_svn": float64(r.ISVSVN), "attributes": h(r.Attributes[:]),
		"misc_select": h(misc), "cpu_svn_report": h(r.CPUSVN[:]), "report_data": h(r.ReportData[:]),
		"pck_not_before": v.Leaf.NotBefore.UTC().Format(time.RFC3339), "pck_not_after": v.Leaf.NotAfter.UTC().Format(time.RFC3339),
	}
}

// TestEvidence: every real SGX quote of the evidence set verifies at its
// time to expected.json's values, and the one with collateral gets its
// TCB status, date, advisories and QE status.
func TestEvidence(t *testing.T) {
	n := 0
	for _, c := range evidence.Checks(t, "sgx") {
		n++
		t.Run(c.ID, func(t *testing.T) {
			q, err := Parse(evidence.Read(t, c.Files[0]))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			v, err := Verify(q, Options{Roots: intel.Roots(), Now: c.VerifyAt})
			if err != nil {
				t.Fatalf("verify: %v (%s)", err, c.Reason)
			}
			got := facts(v)
			if len(c.Files) > 1 {
				col, err := intel.ParseQVLBundle(evidence.Read(t, c.Files[1]))
				if err != nil {
					t.Fatal(err)
				}
				vc, err := col.Verify(intel.Roots(), c.VerifyAt)
				if err != nil {
					t.Fatalf("collateral: %v", err)
				}
				if err := vc.CheckRevoked(v.Chain); err != nil {
					t.Fatal(err)
				}
				tcb, err := vc.EvaluateSGX(v.PCK, q.Signature.QEReport)
				if err != nil {
					t.Fatal(err)
				}
				got["tcb_status"], got["qe_tcb_status"], got["tcb_date"] = tcb.Status, tcb.QEStatus, tcb.Date.UTC().Format(time.RFC3339)
				got["tcb_evaluation_data_number"] = float64(tcb.TCBEvaluationDataNumber)
				var ids []any
				for _, a := range tcb.AdvisoryIDs {
					ids = append(ids, a)
				}
				got["advisory_ids"] = ids
			}
			for k, want := range c.Claims {
				if g, ok := got[k]; !ok {
					t.Errorf("%s: not reported", k)
				} else if fmt.Sprint(g) != fmt.Sprint(want) {
					t.Errorf("%s = %v, want %v", k, g, want)
				}
			}
		})
	}
	if n < 6 {
		t.Errorf("%d SGX checks, the evidence set holds 6", n)
	}
}

// TestTampered: a changed report byte, signature or QE report is refused
// with its reason; structural defects too.
func TestTampered(t *testing.T) {
	raw := evidence.Read(t, "sgx/dcap-qvl/sgx_quote")
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sd := HeaderSize + BodySize + 4
	for _, c := range []struct {
		name string
		off  int
		want string
	}{
		{"MRENCLAVE", HeaderSize + 64, "quote signature does not verify"},
		{"report data", HeaderSize + 330, "quote signature does not verify"},
		{"quote signature", sd + 3, "quote signature does not verify"},
		{"QE report data", sd + 128 + 320, "does not bind the attestation key"},
		{"QE report signature", sd + 128 + 384 + 1, "QE report signature does not verify"},
	} {
		b := bytes.Clone(raw)
		b[c.off] ^= 1
		q, err := Parse(b)
		if err == nil {
			_, err = Verify(q, Options{Roots: intel.Roots(), Now: at})
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"short", raw[:100], "shorter than"},
		{"version 4", append([]byte{4, 0}, raw[2:]...), "version 4"},
		{"truncated signature", raw[:sd+200], "announced as"},
	} {
		if _, err := Parse(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// FuzzParse: never a panic; what parses carries its signed part.
func FuzzParse(f *testing.F) {
	f.Add(make([]byte, HeaderSize+BodySize+4))
	f.Add(append([]byte{3, 0, 2, 0}, make([]byte, HeaderSize+BodySize+200)...))
	a, err := intelsim.New(time.Now())
	if err != nil {
		f.Fatal(err)
	}
	raw, err := a.SGXQuote(intelsim.SGXOptions{ReportData: [64]byte{1, 2, 3}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := Parse(b)
		if err != nil {
			return
		}
		// What parsed is read from where the layout puts it.
		const sig = HeaderSize + BodySize + 4
		if len(q.Signed) != HeaderSize+BodySize || !bytes.Equal(q.Report.ReportData[:], b[HeaderSize+320:HeaderSize+384]) ||
			!bytes.Equal(q.Signature.AttestationKey[:], b[sig+64:sig+128]) || len(q.Signature.PCKChain) < 2 {
			t.Fatal("accepted a quote whose parts are not where the layout puts them")
		}
	})
}
