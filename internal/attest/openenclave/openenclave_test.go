package openenclave

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/attesttest"
	"github.com/kura-project/kura/internal/attest/sgxenclave"
	"github.com/kura-project/kura/internal/evidence"
)

func wrap(q []byte, version, typ uint32, size uint64) []byte {
	h := binary.LittleEndian.AppendUint32(nil, version)
	h = binary.LittleEndian.AppendUint32(h, typ)
	h = binary.LittleEndian.AppendUint64(h, size)
	return append(h, q...)
}

// TestOpenEnclave: the real SGX quote inside an Open Enclave report
// header verifies with the SGX collateral (SgxEnclave's import) to the SGX
// claims; a header of another version, type or size is refused naming
// the member "report".
func TestOpenEnclave(t *testing.T) {
	ctx := context.Background()
	st := &attesttest.Collateral{}
	d := attest.Deps{Collateral: st, Now: time.Now}
	sgxTEE, _ := sgxenclave.Module().New(d)
	if _, err := sgxTEE.Import(ctx, evidence.Read(t, "sgx/dcap-qvl/sgx_quote_collateral.json")); err != nil {
		t.Fatal(err)
	}
	tee, err := Module().New(d)
	if err != nil {
		t.Fatal(err)
	}
	q := evidence.Read(t, "sgx/dcap-qvl/sgx_quote")
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	v, err := tee.Verifier.Verify(ctx, wrap(q, 1, 2, uint64(len(q))), at)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := v.Claims.Get("attester_tcb_status"); s != "ConfigurationAndSWHardeningNeeded" || v.AttestationType != "sgx" {
		t.Errorf("claims: %v %s", s, v.AttestationType)
	}
	for _, c := range []struct {
		b    []byte
		want string
	}{
		{wrap(q, 2, 2, uint64(len(q))), "version 2"},
		{wrap(q, 1, 1, uint64(len(q))), "report type 1"},
		{wrap(q, 1, 2, uint64(len(q))+1), "announces"},
		{q[:10], "shorter than"},
		{wrap(bytes.Repeat([]byte{0}, 600), 1, 2, 600), "not an SGX quote"},
	} {
		if _, err := tee.Verifier.Verify(ctx, c.b, at); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "report:") {
			t.Errorf("%v, want a report error with %q", err, c.want)
		}
	}
}

// FuzzUnwrap: the report header never panics, and what it accepts is the
// header it announces and the bytes after it.
func FuzzUnwrap(f *testing.F) {
	f.Add(wrap([]byte("quote"), 1, 2, 5))
	f.Add(wrap(nil, 1, 2, 0))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := Unwrap(b)
		if err == nil && (len(q) != len(b)-headerSize || binary.LittleEndian.Uint64(b[8:]) != uint64(len(q))) {
			t.Fatalf("accepted %x as %x", b, q)
		}
	})
}
