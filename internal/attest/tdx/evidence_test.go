package tdx

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/evidence"
)

// decodeQuote reads a quote file of the evidence set in any of its
// encodings (MANIFEST "Text encodings"): raw, ASCII hex (optionally
// 0x-prefixed), base64 text, or teekit's {"tdx": {"quote": base64}}.
func decodeQuote(t *testing.T, b []byte) []byte {
	t.Helper()
	s := strings.TrimSpace(string(b))
	switch {
	case len(b) > 2 && (b[0] == 4 || b[0] == 5) && b[1] == 0:
		return b
	case strings.HasPrefix(s, "{"):
		var j struct {
			TDX struct {
				Quote string `json:"quote"`
			} `json:"tdx"`
		}
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatal(err)
		}
		q, err := base64.StdEncoding.DecodeString(j.TDX.Quote)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	if q, err := hex.DecodeString(strings.TrimPrefix(s, "0x")); err == nil {
		return q
	}
	q, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("not a quote in a known encoding: %v", err)
	}
	return q
}

// facts are the evidence's values as expected.json names them.
func facts(v *Verified) map[string]any {
	q, b := v.Quote, v.Quote.Body
	h := hex.EncodeToString
	m := map[string]any{
		"quote_version": float64(q.Header.Version), "body_type": "td10",
		"fmspc": h(v.PCK.FMSPC[:]), "pck_ca": v.CA, "pce_svn_pck": float64(v.PCK.PCESVN), "cpu_svn_pck": h(v.PCK.CPUSVN[:]),
		"qe_isv_svn": float64(q.Signature.QEISVSVN()), "tee_tcb_svn": h(b.TEETCBSVN[:]), "mr_seam": h(b.MRSeam[:]),
		"td_attributes": h(b.TDAttributes[:]), "xfam": h(b.XFAM[:]), "mr_td": h(b.MRTD[:]), "mr_config_id": h(b.MRConfigID[:]),
		"mr_owner": h(b.MROwner[:]), "mr_owner_config": h(b.MROwnerConfig[:]), "report_data": h(b.ReportData[:]),
		"pck_not_before": v.Leaf.NotBefore.UTC().Format(time.RFC3339), "pck_not_after": v.Leaf.NotAfter.UTC().Format(time.RFC3339),
	}
	for i, r := range b.RTMR {
		m[fmt.Sprint("rtmr", i)] = h(r[:])
	}
	if b.V15 {
		m["body_type"], m["tee_tcb_svn2"], m["mr_servicetd"] = "td15", h(b.TEETCBSVN2[:]), h(b.MRServiceTD[:])
	}
	return m
}

// TestEvidence: every real TDX quote of the evidence set (v4 and v5)
// verifies at its pinned time without collateral, to exactly the values
// expected.json lists.
func TestEvidence(t *testing.T) {
	n := 0
	for _, c := range evidence.Checks(t, "tdx") {
		if len(c.Files) != 1 {
			continue // with collateral or an event log: checked where those are
		}
		t.Run(c.ID, func(t *testing.T) {
			n++
			q, err := Parse(decodeQuote(t, evidence.Read(t, c.Files[0])))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			v, err := Verify(q, Options{Roots: intel.Roots(), Now: c.VerifyAt})
			if (err == nil) != (c.Expect == "ok") {
				t.Fatalf("verify: %v, expected %s (%s)", err, c.Expect, c.Reason)
			}
			if err != nil {
				return
			}
			got := facts(v)
			for k, want := range c.Claims {
				if g, ok := got[k]; !ok {
					t.Errorf("%s: not reported", k)
				} else if g != want {
					t.Errorf("%s = %v, want %v", k, g, want)
				}
			}
		})
	}
	if n < 10 {
		t.Errorf("%d TDX quotes checked, the evidence set holds 11", n)
	}
}

// TestTampered: changing any signed byte, a signature, the attestation
// key, the QE report, the QE authentication data or the PCK chain is
// refused with the reason; a time outside the PCK's validity too.
func TestTampered(t *testing.T) {
	raw := decodeQuote(t, evidence.Read(t, "tdx/dcap-qvl/tdx_quote"))
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q0, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	sigOff := len(q0.Signed) + 4 // the signature data
	qe := sigOff + 128 + 6       // the QE report certification data
	authLen := int(raw[qe+384+64]) | int(raw[qe+384+65])<<8
	for _, c := range []struct {
		name string
		off  int
		want string
	}{
		{"header", 10, "quote signature does not verify"},
		{"MRTD", HeaderSize + 136, "quote signature does not verify"},
		{"report data", HeaderSize + 520, "quote signature does not verify"},
		{"quote signature", sigOff + 5, "quote signature does not verify"},
		{"attestation key", sigOff + 64 + 5, "attestation key"},
		{"QE report", qe + 10, "QE report signature does not verify"},
		{"QE report data", qe + 320, "does not bind the attestation key"},
		{"QE report signature", qe + 384 + 3, "QE report signature does not verify"},
		{"QE authentication data", qe + 384 + 66 + authLen - 1, "does not bind the attestation key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(raw)
			b[c.off] ^= 0x01
			q, err := Parse(b)
			if err == nil {
				_, err = Verify(q, Options{Roots: intel.Roots(), Now: at})
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v, want %q", err, c.want)
			}
		})
	}
	// The PCK chain: expired at a later time, not yet valid at an earlier,
	// and without the pinned root.
	for _, c := range []struct {
		name  string
		o     Options
		wants string
	}{
		{"after the PCK's validity", Options{Roots: intel.Roots(), Now: time.Date(2033, 1, 1, 0, 0, 0, 0, time.UTC)}, "does not chain"},
		{"before the PCK's validity", Options{Roots: intel.Roots(), Now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, "does not chain"},
		{"another root", Options{Roots: x509PoolOf(t), Now: at}, "does not chain"},
	} {
		if _, err := Verify(q0, c.o); err == nil || !strings.Contains(err.Error(), c.wants) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
