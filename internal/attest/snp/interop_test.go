package snp

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"
)

// TestGoSevGuestInterop: reports and chains made by go-sev-guest's own test
// tooling (an independent implementation of the AMD formats) verify here once
// their root is pinned, and are refused against AMD's real roots.
func TestGoSevGuestInterop(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		product       string
		line          string
		family, model uint8
	}{
		{"Milan-B1", "Milan", 0x19, 0x01},
		{"Genoa-B1", "Genoa", 0x19, 0x11},
	} {
		t.Run(c.product, func(t *testing.T) {
			signer, err := sevtest.DefaultTestOnlyCertChain(c.product, now.Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			full := sevtest.CreateRawReport(&sevtest.TestReportOptions{
				ReportData: make([]byte, 64), Version: 3,
				FMS: abi.FmsToCpuid1Eax(c.family, c.model, 1),
			})
			raw := full[:ReportSize]
			r, s, err := signer.Sign(abi.SignedComponent(raw))
			if err != nil {
				t.Fatal(err)
			}
			if err := abi.SetSignature(r, s, raw); err != nil {
				t.Fatal(err)
			}
			rep, err := ParseReport(raw)
			if err != nil {
				t.Fatalf("parse go-sev-guest report: %v", err)
			}
			roots := &Roots{}
			if err := roots.Add(Root{ProductLine: c.line, Kind: VCEK, ARK: signer.Ark, Intermediate: signer.Ask}); err != nil {
				t.Fatal(err)
			}
			res, err := NewVerifier(roots, nil, nil).Verify(context.Background(), Evidence{Report: rep, Certs: []*x509.Certificate{signer.Vcek}}, now)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if res.ProductLine != c.line {
				t.Errorf("product line %q", res.ProductLine)
			}
			amd, _ := AMDRoots()
			_, err = NewVerifier(amd, nil, nil).Verify(context.Background(), Evidence{Report: rep, Certs: []*x509.Certificate{signer.Vcek}}, now)
			if err == nil || !strings.Contains(err.Error(), "not signed by any trusted ASK-"+c.line) {
				t.Errorf("test chain against AMD roots: %v", err)
			}
		})
	}
}
