package attest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Verifier verifies one TEE's evidence. Evidence is the TEE-specific payload
// of an attestation request (for SevSnpVm, the decoded report bundle).
type Verifier interface {
	Verify(ctx context.Context, evidence []byte, now time.Time) (*Verified, error)
}

// Verified is evidence that passed its TEE's verification.
type Verified struct {
	AttestationType string // x-ms-attestation-type, e.g. "sevsnpvm"
	Claims          Claims
	// ReportData is the evidence's user-data field; its first 32 bytes
	// must be SHA-256 of the runtime data when runtime data is sent.
	ReportData []byte
	// InitData is the launch-time field bound to init-time data (SNP HOST_DATA).
	InitData []byte
}

// DecodeBase64 accepts standard and URL-safe base64, padded or not: MAA's
// own clients and examples use all four.
func DecodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("invalid base64 at byte %d", int64(ce))
		}
		return nil, err
	}
	return b, nil
}
