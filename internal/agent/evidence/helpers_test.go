package evidence

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"
)

// testSigner is go-sev-guest's fake AMD key hierarchy (ARK, ASK, ASVK,
// VCEK, VLEK with fixed test keys).
func testSigner(t *testing.T) *sevtest.AmdSigner {
	t.Helper()
	s, err := sevtest.DefaultTestOnlyCertChain("Milan-B1", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatalf("fake AMD signer: %v", err)
	}
	return s
}

// signedReport builds a 1184-byte report over reportData at vmpl, signed by
// the fake VCEK or VLEK as key says.
func signedReport(t *testing.T, s *sevtest.AmdSigner, reportData [64]byte, vmpl uint32, key abi.ReportSigner) []byte {
	t.Helper()
	raw := sevtest.CreateRawReport(&sevtest.TestReportOptions{
		ReportData: reportData[:],
		SignerInfo: abi.SignerInfo{SigningKey: key},
	})
	report := bytes.Clone(raw[:abi.ReportSize])
	binary.LittleEndian.PutUint32(report[reportVMPLOffset:], vmpl)
	r, sig, err := s.Sign(abi.SignedComponent(report))
	if err != nil {
		t.Fatalf("sign fake report: %v", err)
	}
	if err := abi.SetSignature(r, sig, report); err != nil {
		t.Fatalf("set fake signature: %v", err)
	}
	return report
}

// pemChain decodes PEM output into certificates, failing the test on any
// block that is not a parseable certificate.
func pemChain(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := data; len(bytes.TrimSpace(rest)) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			t.Fatalf("output is not PEM: %q", rest)
		}
		if block.Type != "CERTIFICATE" {
			t.Fatalf("PEM block type %q, want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("PEM certificate does not parse: %v", err)
		}
		certs = append(certs, c)
	}
	return certs
}

// assertChain checks that PEM output holds exactly the given certificates
// in order.
func assertChain(t *testing.T, got []byte, want ...*x509.Certificate) {
	t.Helper()
	certs := pemChain(t, got)
	if len(certs) != len(want) {
		t.Fatalf("chain has %d certificates, want %d", len(certs), len(want))
	}
	for i := range want {
		if !certs[i].Equal(want[i]) {
			t.Errorf("chain[%d] = %q, want %q", i, certs[i].Subject.CommonName, want[i].Subject.CommonName)
		}
	}
}

func data64(b ...byte) [64]byte {
	var d [64]byte
	copy(d[:], b)
	return d
}

// fastRetry keeps retry tests quick while exercising the same loop and the
// default number of attempts.
func fastRetry() retryPolicy { return retryPolicy{backoff: time.Millisecond} }
