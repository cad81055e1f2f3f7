package snp

import (
	"context"
	"encoding/binary"
	"testing"
	"time"
)

// FuzzParseReport: arbitrary bytes never panic the report parser, and a
// report that parses has the exact size and a supported version.
func FuzzParseReport(f *testing.F) {
	valid := make([]byte, ReportSize)
	binary.LittleEndian.PutUint32(valid[0:], 3)
	binary.LittleEndian.PutUint64(valid[8:], 0x30000)
	binary.LittleEndian.PutUint32(valid[0x34:], 1)
	f.Add(valid)
	f.Add(valid[:100])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b)
		if err != nil {
			return
		}
		if len(r.Raw) != ReportSize || r.Version < minVersion || r.Version > maxVersion {
			t.Fatalf("accepted a report of %d bytes, version %d", len(r.Raw), r.Version)
		}
		_ = DecodeTCB(r.ReportedTCB, "Turin")
	})
}

// FuzzDecodeBundle: arbitrary report bundles never panic decoding or
// verification, and nothing verifies against an empty trust store.
func FuzzDecodeBundle(f *testing.F) {
	f.Add([]byte(`{"SnpReport":"AAAA","VcekCertChain":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="}`))
	f.Add([]byte(`{"SnpReport":""}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	v := NewVerifier(&Roots{}, nil, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeBundle(b, v.parseCertificate)
		if err != nil {
			return
		}
		if _, err := v.Verify(context.Background(), ev, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil {
			t.Fatal("evidence verified against an empty trust store")
		}
	})
}
