package snp

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/wirejson"
)

// Bundle is the evidence MAA's SevSnpVm API carries in its "report" field
// (after base64url decoding): the report, the VCEK/VLEK chain as base64 PEM,
// and optional endorsements.
type Bundle struct {
	SnpReport     string `json:"SnpReport"`
	VcekCertChain string `json:"VcekCertChain,omitempty"`
	Endorsements  string `json:"Endorsements,omitempty"`
}

// maxBundle bounds the decoded bundle; a report with a three-certificate
// chain and endorsements is well under it.
const maxBundle = 256 << 10

// DecodeBundle parses a report bundle strictly and returns the evidence.
func DecodeBundle(b []byte) (Evidence, error) { return decodeBundle(b, x509.ParseCertificate) }

func decodeBundle(b []byte, parse func([]byte) (*x509.Certificate, error)) (Evidence, error) {
	if len(b) > maxBundle {
		return Evidence{}, attest.Bad("report", "report bundle is %d bytes, limit %d", len(b), maxBundle)
	}
	bu, ok := bundleFast(b)
	if !ok {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&bu); err != nil {
			return Evidence{}, attest.BadWrap("report", err, "report is not the JSON bundle {SnpReport, VcekCertChain, Endorsements}")
		}
		if dec.More() {
			return Evidence{}, attest.Bad("report", "trailing data after the JSON bundle")
		}
	}
	if bu.SnpReport == "" {
		return Evidence{}, attest.Bad("report.SnpReport", "missing")
	}
	raw, err := attest.DecodeBase64(bu.SnpReport)
	if err != nil {
		return Evidence{}, attest.BadWrap("report.SnpReport", err, "not base64")
	}
	rep, err := ParseReport(raw)
	if err != nil {
		return Evidence{}, err
	}
	ev := Evidence{Report: rep}
	if bu.VcekCertChain != "" {
		pemBytes, err := attest.DecodeBase64(bu.VcekCertChain)
		if err != nil {
			return Evidence{}, attest.BadWrap("report.VcekCertChain", err, "not base64")
		}
		if ev.Certs, err = parseCertificatesMax(pemBytes, parse, 4); err != nil {
			return Evidence{}, attest.BadWrap("report.VcekCertChain", err, "certificates")
		}
	}
	if bu.Endorsements != "" {
		// UVM endorsements (Confidential ACI) are accepted for wire
		// compatibility but not evaluated: they must be well-formed JSON and
		// contribute no claim.
		e, err := attest.DecodeBase64(bu.Endorsements)
		if err != nil {
			return Evidence{}, attest.BadWrap("report.Endorsements", err, "not base64")
		}
		if !json.Valid(e) {
			return Evidence{}, attest.Bad("report.Endorsements", "not JSON")
		}
	}
	return ev, nil
}

// bundleFast decodes the common shape of a bundle without encoding/json's
// per-byte scan; anything else returns ok=false for encoding/json.
func bundleFast(b []byte) (Bundle, bool) {
	var bu Bundle
	ms, ok := wirejson.Members(b)
	if !ok {
		return bu, false
	}
	for _, m := range ms {
		if m.Kind != wirejson.String {
			return bu, false
		}
		switch strings.ToLower(m.Key) { // ASCII names: matches encoding/json's folding
		case "snpreport":
			bu.SnpReport = string(m.Value)
		case "vcekcertchain":
			bu.VcekCertChain = string(m.Value)
		case "endorsements":
			bu.Endorsements = string(m.Value)
		default:
			return bu, false
		}
	}
	return bu, true
}

// Attester adapts a Verifier to attest.Verifier for MAA's SevSnpVm type.
type Attester struct{ V *Verifier }

// Verify implements attest.Verifier.
func (a Attester) Verify(ctx context.Context, evidence []byte, now time.Time) (*attest.Verified, error) {
	ev, err := decodeBundle(evidence, a.V.parseCertificate)
	if err != nil {
		return nil, err
	}
	res, err := a.V.Verify(ctx, ev, now)
	if err != nil {
		return nil, err
	}
	return &attest.Verified{
		AttestationType: "sevsnpvm",
		Claims:          res.Claims(),
		ReportData:      res.Report.ReportData,
		InitData:        res.Report.HostData,
	}, nil
}
