// Package openenclave is the OpenEnclave attestation module: an Open
// Enclave SDK report (oe_get_report's remote report: a header around an
// SGX DCAP quote) verified as SgxEnclave verifies the quote inside.
package openenclave

import (
	"encoding/binary"
	"fmt"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/attest/sgxenclave"
)

// Type is the MAA attestation type.
const Type = "OpenEnclave"

// The Open Enclave report header (oe_report_header_t): version 1, type 2
// (a remote SGX report), the size of the quote that follows.
const (
	headerSize      = 16
	headerVersion   = 1
	typeSGXRemote   = 2
	maxReportLength = 1 << 17
)

// Module returns the OpenEnclave registration.
func Module() attest.Module {
	return attest.Module{
		Type:               Type,
		Member:             "report",
		ReportDataField:    "x-ms-sgx-report-data[0:32]",
		InitDataField:      "x-ms-sgx-config-id[0:32]",
		BinaryRuntimeClaim: "x-ms-sgx-ehd",
		DefaultPolicy:      sgxenclave.DefaultPolicy,
		Collateral:         []string{intel.Kind},
		New: func(d attest.Deps) (*attest.TEE, error) {
			v, err := sgxenclave.NewVerifier(d)
			if err != nil {
				return nil, err
			}
			v.Unwrap, v.Field = Unwrap, "report"
			// SGX collateral is imported once, by SgxEnclave's importer.
			return &attest.TEE{Verifier: v}, nil
		},
		Preflight: func(attest.Deps) error { return nil },
	}
}

// Unwrap returns the SGX quote inside an Open Enclave remote report.
func Unwrap(b []byte) ([]byte, error) {
	if len(b) < headerSize {
		return nil, fmt.Errorf("%d bytes, shorter than the %d-byte report header", len(b), headerSize)
	}
	v, typ, n := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint64(b[8:])
	switch {
	case v != headerVersion:
		return nil, fmt.Errorf("report header version %d, want %d", v, headerVersion)
	case typ != typeSGXRemote:
		return nil, fmt.Errorf("report type %d, want %d (a remote SGX report)", typ, typeSGXRemote)
	case n > maxReportLength || n != uint64(len(b)-headerSize):
		return nil, fmt.Errorf("the report header announces %d bytes, %d follow", n, len(b)-headerSize)
	}
	return b[headerSize:], nil
}
