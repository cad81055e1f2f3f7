package evidence

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/uuid"
)

// tableEntry is one certificate to place in a hand-built table.
type tableEntry struct {
	guid string
	blob []byte
}

// buildTable lays entries out the way hosts do: the header (entries plus the
// all-zero terminator), then the blobs back to back.
func buildTable(entries ...tableEntry) []byte {
	header := (len(entries) + 1) * certEntrySize
	table := make([]byte, header)
	for i, e := range entries {
		putEntry(table[i*certEntrySize:], e.guid, uint32(len(table)), uint32(len(e.blob)))
		table = append(table, e.blob...)
	}
	return table
}

// putEntry writes one header entry.
func putEntry(dst []byte, guid string, offset, length uint32) {
	g, err := hex.DecodeString(strings.ReplaceAll(guid, "-", ""))
	if err != nil || len(g) != guidSize {
		panic("bad test GUID " + guid)
	}
	copy(dst, g)
	binary.LittleEndian.PutUint32(dst[guidSize:], offset)
	binary.LittleEndian.PutUint32(dst[guidSize+4:], length)
}

// edit returns a copy of table with entry i's offset and length replaced.
func edit(table []byte, i int, offset, length uint32) []byte {
	out := bytes.Clone(table)
	binary.LittleEndian.PutUint32(out[i*certEntrySize+guidSize:], offset)
	binary.LittleEndian.PutUint32(out[i*certEntrySize+guidSize+4:], length)
	return out
}

func entryOffset(table []byte, i int) uint32 {
	return binary.LittleEndian.Uint32(table[i*certEntrySize+guidSize:])
}

func TestCertTablePEM(t *testing.T) {
	s := testSigner(t)
	vcek, vlek, ask, asvk, ark := s.Vcek.Raw, s.Vlek.Raw, s.Ask.Raw, s.Asvk.Raw, s.Ark.Raw
	const unknownGUID = "ecae0c0f-9502-43b1-afa2-0ae2e0d565b6" // go-sev-guest's extra platform info

	// AMD's order: ARK, ASK, VCEK; the output must still be leaf first.
	valid := buildTable(tableEntry{guidARK, ark}, tableEntry{guidASK, ask}, tableEntry{guidVCEK, vcek})
	// The same table built by go-sev-guest's own ABI encoder.
	abiTable := (&abi.CertTable{Entries: []abi.CertTableEntry{
		{GUID: uuid.MustParse(abi.VcekGUID), RawCert: vcek},
		{GUID: uuid.MustParse(abi.AskGUID), RawCert: ask},
		{GUID: uuid.MustParse(abi.ArkGUID), RawCert: ark},
	}}).Marshal()
	signerTable, err := s.CertTableBytes() // VCEK and VLEK together
	if err != nil {
		t.Fatal(err)
	}
	pemVCEK := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: vcek})
	noTerminator := make([]byte, certEntrySize)
	putEntry(noTerminator, guidVCEK, 48, 10)

	tests := []struct {
		name    string
		table   []byte
		leaf    leafChoice
		want    []*x509.Certificate // nil with wantErr == "" means no chain
		wantErr []string
	}{
		{name: "valid table, leaf first", table: valid, want: []*x509.Certificate{s.Vcek, s.Ask, s.Ark}},
		{name: "table from go-sev-guest's abi encoder", table: abiTable, want: []*x509.Certificate{s.Vcek, s.Ask, s.Ark}},
		{name: "VLEK instead of VCEK", table: buildTable(tableEntry{guidVLEK, vlek}, tableEntry{guidASK, asvk}, tableEntry{guidARK, ark}), want: []*x509.Certificate{s.Vlek, s.Asvk, s.Ark}},
		{name: "leaf only", table: buildTable(tableEntry{guidVCEK, vcek}), want: []*x509.Certificate{s.Vcek}},
		{name: "unknown GUIDs are ignored", table: buildTable(tableEntry{unknownGUID, []byte("platform info")}, tableEntry{guidVCEK, vcek}, tableEntry{"01234567-89ab-cdef-0123-456789abcdef", ark}), want: []*x509.Certificate{s.Vcek}},
		{name: "only unknown GUIDs: no chain", table: buildTable(tableEntry{unknownGUID, []byte("platform info")})},
		{name: "empty table: no chain", table: nil},
		{name: "terminator only: no chain", table: make([]byte, certEntrySize)},
		{name: "trailing bytes after the blobs are allowed", table: append(bytes.Clone(valid), make([]byte, 4096)...), want: []*x509.Certificate{s.Vcek, s.Ask, s.Ark}},
		{name: "PEM blob is accepted", table: buildTable(tableEntry{guidVCEK, pemVCEK}), want: []*x509.Certificate{s.Vcek}},
		{name: "both leaves, report chose VCEK", table: signerTable, leaf: leafVCEK, want: []*x509.Certificate{s.Vcek, s.Ask, s.Ark}},
		{name: "both leaves, report chose VLEK", table: signerTable, leaf: leafVLEK, want: []*x509.Certificate{s.Vlek, s.Ask, s.Ark}},
		{name: "both leaves without a choice is ambiguous", table: signerTable, wantErr: []string{"both a VCEK (entry 2) and a VLEK (entry 3)"}},
		{name: "report chose VLEK but table has only a VCEK", table: valid, leaf: leafVLEK, wantErr: []string{"signed by the VLEK", "no VLEK entry", "VCEK, entry 2"}},

		{name: "truncated inside the header", table: valid[:30], wantErr: []string{"truncated inside entry 1 (6 of 24 bytes)"}},
		{name: "truncated inside the first entry", table: valid[:5], wantErr: []string{"truncated inside entry 0 (5 of 24 bytes)"}},
		{name: "truncated blob", table: valid[:len(valid)-1], wantErr: []string{"entry 2 (VCEK)", "extends beyond", "table"}},
		{name: "missing terminator", table: noTerminator, wantErr: []string{"ends after 1 entries without the terminating all-zero entry"}},
		{name: "offset out of range", table: edit(valid, 1, 1<<20, uint32(len(ask))), wantErr: []string{"entry 1 (ASK/ASVK)", "range [1048576,", "beyond"}},
		{name: "offset+length wraps 32 bits", table: edit(valid, 0, 0xFFFFFFF0, 0x20), wantErr: []string{"entry 0 (ARK)", "range [4294967280, 4294967312)", "beyond"}},
		{name: "length out of range", table: edit(valid, 2, entryOffset(valid, 2), 0xFFFFFFFF), wantErr: []string{"entry 2 (VCEK)", "beyond"}},
		{name: "offset into the header", table: edit(valid, 2, 10, 20), wantErr: []string{"entry 2 (VCEK) offset 10 points into the 96-byte table header"}},
		{name: "zero-length entry", table: edit(valid, 1, entryOffset(valid, 1), 0), wantErr: []string{"entry 1 (ASK/ASVK) is empty"}},
		{name: "zero-length unknown entry is ignored", table: buildTable(tableEntry{guidVCEK, vcek}, tableEntry{unknownGUID, nil}), want: []*x509.Certificate{s.Vcek}},
		{name: "overlapping entries", table: edit(valid, 2, entryOffset(valid, 1)+10, uint32(len(vcek))), wantErr: []string{"entry 2 (VCEK) overlaps certificate table entry 1 (ASK/ASVK)"}},
		{name: "identical ranges overlap", table: edit(valid, 1, entryOffset(valid, 0), uint32(len(ark))), wantErr: []string{"overlaps"}},
		{name: "entry nested in another", table: edit(valid, 2, entryOffset(valid, 0)+1, 1), wantErr: []string{"entry 2 (VCEK) overlaps certificate table entry 0 (ARK)"}},
		{name: "unknown entry overlapping a certificate", table: edit(buildTable(tableEntry{guidVCEK, vcek}, tableEntry{unknownGUID, []byte("x")}), 1, 3*certEntrySize, 1), wantErr: []string{"GUID " + unknownGUID, "overlaps"}},
		{name: "duplicate VCEK", table: buildTable(tableEntry{guidVCEK, vcek}, tableEntry{guidVCEK, vcek}), wantErr: []string{"entry 1 (VCEK) duplicates certificate table entry 0 (VCEK)"}},
		{name: "ASK and ARK without a leaf", table: buildTable(tableEntry{guidASK, ask}, tableEntry{guidARK, ark}), wantErr: []string{"neither a VCEK nor a VLEK"}},
		{name: "blob that is not a certificate", table: buildTable(tableEntry{guidVCEK, []byte("definitely not DER")}), wantErr: []string{"entry 0 (VCEK): not an X.509 certificate"}},
		{name: "certificate with trailing garbage", table: buildTable(tableEntry{guidVCEK, append(bytes.Clone(vcek), 0)}), wantErr: []string{"entry 0 (VCEK): not an X.509 certificate"}},
		{name: "PEM of the wrong type", table: buildTable(tableEntry{guidVCEK, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})}), wantErr: []string{`entry 0 (VCEK): PEM block is "PRIVATE KEY"`}},
		{name: "two PEM certificates in one entry", table: buildTable(tableEntry{guidVCEK, append(bytes.Clone(pemVCEK), pemVCEK...)}), wantErr: []string{"entry 0 (VCEK)", "after the PEM certificate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			var err error
			if tc.leaf == leafAuto {
				got, err = CertTablePEM(tc.table)
			} else {
				got, err = certTablePEM(tc.table, tc.leaf)
			}
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("succeeded with %d bytes of PEM, want error %q", len(got), tc.wantErr)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("CertTablePEM: %v", err)
			}
			if tc.want == nil {
				if got != nil {
					t.Fatalf("got %q, want no chain", got)
				}
				return
			}
			assertChain(t, got, tc.want...)
		})
	}
}

// TestCertTableAgreesWithGoSevGuest cross-checks the parser against
// go-sev-guest's on a well-formed table: same certificates per GUID.
func TestCertTableAgreesWithGoSevGuest(t *testing.T) {
	s := testSigner(t)
	table := buildTable(tableEntry{guidARK, s.Ark.Raw}, tableEntry{guidASK, s.Ask.Raw}, tableEntry{guidVCEK, s.Vcek.Raw})
	var ct abi.CertTable
	if err := ct.Unmarshal(table); err != nil {
		t.Fatalf("go-sev-guest rejects the table: %v", err)
	}
	chain := ct.Proto()
	got, err := CertTablePEM(table)
	if err != nil {
		t.Fatal(err)
	}
	certs := pemChain(t, got)
	for i, want := range [][]byte{chain.GetVcekCert(), chain.GetAskCert(), chain.GetArkCert()} {
		if !bytes.Equal(certs[i].Raw, want) {
			t.Errorf("certificate %d differs from go-sev-guest's parse", i)
		}
	}
}
