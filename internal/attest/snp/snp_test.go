package snp

import (
	"bytes"
	"encoding/asn1"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/kura-project/kura/internal/evidence"
)

func validReport() []byte {
	raw := make([]byte, ReportSize)
	binary.LittleEndian.PutUint32(raw[0:], 3)
	binary.LittleEndian.PutUint64(raw[8:], 0x30000)
	binary.LittleEndian.PutUint32(raw[0x34:], 1)
	return raw
}

func TestParseReportRefusals(t *testing.T) {
	if _, err := ParseReport(validReport()); err != nil {
		t.Fatalf("valid report: %v", err)
	}
	set32 := func(off int, v uint32) []byte {
		r := validReport()
		binary.LittleEndian.PutUint32(r[off:], v)
		return r
	}
	set8 := func(off int, v byte) []byte {
		r := validReport()
		r[off] = v
		return r
	}
	for _, c := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"short", validReport()[:100], "report is 100 bytes, want 1184"},
		{"long", append(validReport(), 0), "want 1184"},
		{"version 1", set32(0, 1), "version 1 is not supported"},
		{"version 6", set32(0, 6), "version 6 is not supported"},
		{"policy reserved bit 17 clear", func() []byte { r := validReport(); r[10] = 0x01; return r }(), "reserved bit 17"},
		{"vmpl 4", set32(0x30, 4), "VMPL 4"},
		{"signature algorithm 2", set32(0x34, 2), "signature algorithm 2"},
		{"unsigned", set32(0x48, 7<<2), "unsigned"},
		{"reserved signing key", set32(0x48, 3<<2), "reserved"},
		{"signer info reserved bits", set32(0x48, 1<<5), "reserved bits"},
		{"reserved 0x4C", set8(0x4C, 1), "0x4c..0x4f"},
		{"reserved after CPUID", set8(0x18B, 1), "0x18b"},
		{"reserved 0x1EB", set8(0x1EB, 1), "0x1eb"},
		{"reserved before signature", set8(0x29F, 1), "0x29f"},
		{"signature padding", set8(0x49F, 1), "0x49f"},
	} {
		_, err := ParseReport(c.raw)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// Version 2 has no CPUID: bytes 0x188.. are reserved there.
	v2 := set32(0, 2)
	v2[0x188] = 0x19
	if _, err := ParseReport(v2); err == nil {
		t.Error("v2 report with CPUID bytes accepted")
	}
}

func TestHWIDEncodings(t *testing.T) {
	// The two encodings AMD has used, on real test certificates.
	for _, f := range []string{"snp/milan-trustee/test-vcek-invalid-legacy.der", "snp/milan-trustee/test-vcek-invalid-new.der"} {
		certs, err := ParseCertificates(evidence.Read(t, f))
		if err != nil {
			t.Fatal(err)
		}
		ext, err := ParseExtensions(certs[0])
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		want := make([]byte, 64)
		for i := range want {
			want[i] = byte(i)
		}
		if !bytes.Equal(ext.HWID, want) {
			t.Errorf("%s: hwID %x", f, ext.HWID)
		}
	}
	// A raw hwID that happens to begin like an OCTET STRING header stays raw.
	raw := make([]byte, 64)
	raw[0], raw[1] = 0x04, 0x3E
	if got, err := hwID(raw); err != nil || !bytes.Equal(got, raw) {
		t.Errorf("raw 64-byte hwID starting 04 3E: %x %v", got, err)
	}
	wrapped, _ := asn1.Marshal(raw[:8])
	if got, err := hwID(wrapped); err != nil || len(got) != 8 {
		t.Errorf("wrapped 8-byte hwID: %x %v", got, err)
	}
	if _, err := hwID([]byte{1, 2, 3}); err == nil {
		t.Error("3-byte hwID accepted")
	}
}

func TestProductLineFromCPUID(t *testing.T) {
	for _, c := range []struct {
		fam, model uint8
		want       string
	}{
		{0x19, 0x01, "Milan"}, {0x19, 0x11, "Genoa"}, {0x19, 0xA0, "Genoa"}, {0x1A, 0x02, "Turin"}, {0x1A, 0x11, "Turin"},
		{0x19, 0x50, ""}, {0x17, 0x31, ""}, {0x1B, 0x00, ""},
	} {
		got, ok := ProductLineFromCPUID(c.fam, c.model)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("family %02xh model %02xh: %q %v, want %q", c.fam, c.model, got, ok, c.want)
		}
	}
}

func TestKDSURL(t *testing.T) {
	chip := make([]byte, 64)
	chip[0], chip[63] = 0xab, 0xcd
	milan := KDSURL("https://kds.example/", "Milan", chip, 0x7308000000000003)
	if !strings.HasPrefix(milan, "https://kds.example/vcek/v1/Milan/ab") || !strings.HasSuffix(milan, "cd?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115") {
		t.Errorf("Milan URL %s", milan)
	}
}
