package evidence

import (
	"bytes"
	"cmp"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
)

// Certificate table layout (AMD GHCB specification, SNP extended guest
// request): entries of GUID(16) + offset(4, LE) + length(4, LE) terminated by
// an all-zero entry, followed by the certificate blobs the offsets point at.
// GUIDs are stored in RFC 4122 byte order (as libuuid's uuid_parse writes
// them), so the bytes read in the order of their text form.
const (
	certEntrySize = 24
	guidSize      = 16

	guidVCEK = "63da758d-e664-4564-adc5-f4b93be8accd"
	guidVLEK = "a8074bc2-a25a-483e-aae6-39c045a0b8a1"
	guidASK  = "4ab7b379-bbac-4fe4-a02f-05aef327c782" // also carries the ASVK in VLEK chains
	guidARK  = "c0b406a4-a803-4952-9743-3fb6014cd0ae"
)

// certKind is what a table entry holds, by GUID.
type certKind int

const (
	kindOther certKind = iota // unknown GUIDs (e.g. go-sev-guest's extra platform info) are ignored
	kindVCEK
	kindVLEK
	kindASK
	kindARK
)

func (k certKind) String() string {
	switch k {
	case kindVCEK:
		return "VCEK"
	case kindVLEK:
		return "VLEK"
	case kindASK:
		return "ASK/ASVK"
	case kindARK:
		return "ARK"
	}
	return "unknown"
}

// leafChoice says which endorsement key certificate leads the chain.
type leafChoice int

const (
	leafAuto leafChoice = iota // whichever of VCEK/VLEK is present; both is ambiguous
	leafVCEK
	leafVLEK
)

// certEntry is one parsed table entry.
type certEntry struct {
	index  int
	guid   string
	kind   certKind
	offset uint32
	length uint32
}

// name identifies an entry in errors: its position and what it holds.
func (e certEntry) name() string {
	if e.kind == kindOther {
		return fmt.Sprintf("certificate table entry %d (GUID %s)", e.index, e.guid)
	}
	return fmt.Sprintf("certificate table entry %d (%s)", e.index, e.kind)
}

// CertTablePEM converts an SNP extended-report certificate table (GUID
// table; VCEK GUID 63da758d-e664-4564-adc5-f4b93be8accd, VLEK
// a8074bc2-a25a-483e-aae6-39c045a0b8a1, ASK 4ab7b379-bbac-4fe4-a02f-05aef327c782,
// ARK c0b406a4-a803-4952-9743-3fb6014cd0ae; entries of 24 bytes
// GUID(16)+offset(4 LE)+length(4 LE), terminated by an all-zero entry) into
// PEM, leaf first: the VCEK or VLEK, then the ASK (or ASVK), then the ARK.
//
// The table comes from the untrusted host, so parsing is strict: every
// entry's range must lie inside the table and after the header, ranges must
// not overlap, known entries must be non-empty and unique, and each
// certificate must be one X.509 certificate (DER, or a single PEM block, as
// some host tools store them). Entries with unknown GUIDs are bounds-checked
// and otherwise ignored. An empty table, or one holding only unknown
// entries, yields nil: the host provided no chain. A table holding both a
// VCEK and a VLEK is refused because the leaf is ambiguous; the Sources
// resolve that from the report's SIGNER_INFO. Errors name the entry at
// fault. The certificates are not verified here.
func CertTablePEM(table []byte) ([]byte, error) {
	return certTablePEM(table, leafAuto)
}

func certTablePEM(table []byte, leaf leafChoice) ([]byte, error) {
	entries, err := parseCertTable(table)
	if err != nil {
		return nil, err
	}
	byKind := map[certKind]certEntry{}
	for _, e := range entries {
		if e.kind == kindOther {
			continue
		}
		if prev, dup := byKind[e.kind]; dup {
			return nil, fmt.Errorf("%s duplicates %s", e.name(), prev.name())
		}
		byKind[e.kind] = e
	}
	vcek, hasVCEK := byKind[kindVCEK]
	vlek, hasVLEK := byKind[kindVLEK]
	_, hasASK := byKind[kindASK]
	_, hasARK := byKind[kindARK]

	var chain []certEntry
	switch {
	case leaf == leafVCEK && hasVCEK, leaf == leafAuto && hasVCEK && !hasVLEK:
		chain = append(chain, vcek)
	case leaf == leafVLEK && hasVLEK, leaf == leafAuto && hasVLEK && !hasVCEK:
		chain = append(chain, vlek)
	case leaf == leafAuto && hasVCEK && hasVLEK:
		return nil, fmt.Errorf("certificate table holds both a VCEK (entry %d) and a VLEK (entry %d); the report's SIGNER_INFO must choose the leaf", vcek.index, vlek.index)
	case leaf == leafVCEK && hasVLEK:
		return nil, fmt.Errorf("report is signed by the VCEK but the certificate table has no VCEK entry (only a VLEK, entry %d)", vlek.index)
	case leaf == leafVLEK && hasVCEK:
		return nil, fmt.Errorf("report is signed by the VLEK but the certificate table has no VLEK entry (only a VCEK, entry %d)", vcek.index)
	case hasASK || hasARK:
		return nil, fmt.Errorf("certificate table has AMD ASK/ARK entries but neither a VCEK nor a VLEK")
	default:
		return nil, nil // no known certificates: the host provided no chain
	}
	for _, k := range []certKind{kindASK, kindARK} {
		if e, ok := byKind[k]; ok {
			chain = append(chain, e)
		}
	}

	var out bytes.Buffer
	for _, e := range chain {
		der, err := certDER(table[e.offset : e.offset+e.length])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.name(), err)
		}
		if err := pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: der}); err != nil {
			return nil, fmt.Errorf("%s: encode PEM: %w", e.name(), err)
		}
	}
	return out.Bytes(), nil
}

// parseCertTable reads the entries up to the terminator and checks every
// range. It never slices the table with an unchecked index, so malformed
// input produces an error and never a panic.
func parseCertTable(table []byte) ([]certEntry, error) {
	if len(table) == 0 {
		return nil, nil // no table at all: the host has no certificates configured
	}
	var entries []certEntry
	for i := 0; ; i++ {
		start := i * certEntrySize
		rest := len(table) - start // start <= len(table) holds: the previous entry fit
		if rest == 0 {
			return nil, fmt.Errorf("certificate table ends after %d entries without the terminating all-zero entry", i)
		}
		if rest < certEntrySize {
			return nil, fmt.Errorf("certificate table truncated inside entry %d (%d of %d bytes)", i, rest, certEntrySize)
		}
		raw := table[start : start+certEntrySize]
		if isZero(raw) {
			break
		}
		guid := guidString(raw[:guidSize])
		entries = append(entries, certEntry{
			index:  i,
			guid:   guid,
			kind:   kindOf(guid),
			offset: binary.LittleEndian.Uint32(raw[guidSize:]),
			length: binary.LittleEndian.Uint32(raw[guidSize+4:]),
		})
	}

	header := uint64(len(entries)+1) * certEntrySize
	for _, e := range entries {
		end := uint64(e.offset) + uint64(e.length) // 64-bit: offset+length cannot wrap
		switch {
		case e.length == 0 && e.kind != kindOther:
			return nil, fmt.Errorf("%s is empty (offset %d, length 0)", e.name(), e.offset)
		case e.length == 0:
			continue // an empty unknown entry holds nothing to check or overlap
		case uint64(e.offset) < header:
			return nil, fmt.Errorf("%s offset %d points into the %d-byte table header", e.name(), e.offset, header)
		case end > uint64(len(table)):
			return nil, fmt.Errorf("%s range [%d, %d) extends beyond the %d-byte table", e.name(), e.offset, end, len(table))
		}
	}

	// Overlapping blobs mean the table is not what it claims to be: refuse
	// rather than guess which entry owns the bytes.
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b certEntry) int { return cmp.Compare(a.offset, b.offset) })
	var furthest *certEntry // the non-empty entry seen so far that ends last
	for i := range sorted {
		e := &sorted[i]
		if e.length == 0 {
			continue
		}
		if furthest != nil && uint64(furthest.offset)+uint64(furthest.length) > uint64(e.offset) {
			return nil, fmt.Errorf("%s overlaps %s", e.name(), furthest.name())
		}
		if furthest == nil || uint64(e.offset)+uint64(e.length) > uint64(furthest.offset)+uint64(furthest.length) {
			furthest = e
		}
	}
	return entries, nil
}

// certDER returns the single X.509 certificate a blob holds. Hosts store the
// certificates as DER; some tools store PEM, which is accepted when it is
// exactly one CERTIFICATE block.
func certDER(blob []byte) ([]byte, error) {
	der := blob
	if bytes.HasPrefix(bytes.TrimLeft(blob, " \t\r\n"), []byte("-----BEGIN")) {
		block, rest := pem.Decode(blob)
		switch {
		case block == nil:
			return nil, fmt.Errorf("malformed PEM")
		case block.Type != "CERTIFICATE":
			return nil, fmt.Errorf("PEM block is %q, want CERTIFICATE", block.Type)
		case len(bytes.TrimSpace(rest)) != 0:
			return nil, fmt.Errorf("%d bytes after the PEM certificate", len(rest))
		}
		der = block.Bytes
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("not an X.509 certificate: %w", err)
	}
	return der, nil
}

// guidString formats 16 GUID bytes (RFC 4122 byte order) as text.
func guidString(b []byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

func kindOf(guid string) certKind {
	switch guid {
	case guidVCEK:
		return kindVCEK
	case guidVLEK:
		return kindVLEK
	case guidASK:
		return kindASK
	case guidARK:
		return kindARK
	}
	return kindOther
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
