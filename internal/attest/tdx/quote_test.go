package tdx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/evidence"
)

// x509PoolOf is a pool of a self-signed root that signed nothing of Intel's.
func x509PoolOf(t *testing.T) *x509.CertPool {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Intel SGX Root CA"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Now().AddDate(50, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

// TestRoot: the embedded root is the Intel SGX Root CA the evidence set
// names (by SHA-256 fingerprint).
func TestRoot(t *testing.T) {
	c := intel.RootCert()
	if fp := sha256.Sum256(c.Raw); hex.EncodeToString(fp[:]) != "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3" || c.Subject.CommonName != "Intel SGX Root CA" {
		t.Errorf("embedded root %q, fingerprint %x", c.Subject.CommonName, sha256.Sum256(c.Raw))
	}
}

// TestParseRefuses: each structural defect is refused with its reason.
func TestParseRefuses(t *testing.T) {
	raw := decodeQuote(t, evidence.Read(t, "tdx/dcap-qvl/tdx_quote"))
	v5 := decodeQuote(t, evidence.Read(t, "tdx/dcap-qvl/tdx_quote_outdated"))
	set16 := func(b []byte, off int, v uint16) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint16(b[off:], v)
		return b
	}
	set32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	sigLenOff := HeaderSize + Body10Size
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "shorter than its 48-byte header"},
		{"header only", raw[:HeaderSize], "too short for a 584-byte body"},
		{"version 3", set16(raw, 0, 3), "version 3, want 4 or 5"},
		{"SGX TEE type", set32(raw, 4, 0), "not TDX"},
		{"EPID key type", set16(raw, 2, 0), "attestation key type 0"},
		{"signature size too large", set32(raw, sigLenOff, 1<<20), "announced as"},
		{"truncated", raw[:sigLenOff+4+1000], "announced as"},
		{"v5 body type 4", set16(v5, HeaderSize, 4), "body type 4"},
		{"v5 body size off", set32(v5, HeaderSize+2, 600), "of 600 bytes"},
		{"outer certification type", set16(raw, sigLenOff+4+128, 5), "want 6"},
		{"oversized", make([]byte, maxQuote+1), "more than"},
	} {
		if _, err := Parse(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := Parse(raw); err != nil {
		t.Fatalf("the genuine quote: %v", err)
	}
	// Bytes after the signature data are no part of the quote: ignored.
	if q, err := Parse(append(bytes.Clone(raw), "trailing"...)); err != nil || len(q.Signed) != HeaderSize+Body10Size {
		t.Errorf("trailing bytes: %v", err)
	}
}

// synthQuote builds a well-formed quote (v4, or v5 with a TD 1.5 body)
// under a throwaway root: PCK CA, PCK (with an SGX extension), QE report
// binding a fresh attestation key, every signature real.
func synthQuote(t testing.TB, v5 bool) ([]byte, *x509.CertPool) {
	t.Helper()
	key := func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }
	rootK, caK, pckK, ak := key(), key(), key(), key()
	mk := func(cn string, serial int64, pub *ecdsa.PublicKey, parent *x509.Certificate, signer *ecdsa.PrivateKey, ca bool, ext []pkix.Extension) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Unix(1e9, 0), NotAfter: time.Unix(3e9, 0),
			IsCA: ca, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtraExtensions: ext}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	root := mk("Test SGX Root CA", 1, &rootK.PublicKey, nil, rootK, true, nil)
	ca := mk("Test SGX PCK Platform CA", 2, &caK.PublicKey, root, rootK, true, nil)
	pck := mk("Test SGX PCK Certificate", 3, &pckK.PublicKey, ca, caK, false, []pkix.Extension{{Id: []int{1, 2, 840, 113741, 1, 13, 1}, Value: sgxExtension(t)}})
	h := make([]byte, HeaderSize)
	binary.LittleEndian.PutUint16(h[0:], 4)
	binary.LittleEndian.PutUint16(h[2:], attKeyECDSA)
	binary.LittleEndian.PutUint32(h[4:], teeTypeTDX)
	body := make([]byte, Body10Size)
	if v5 {
		binary.LittleEndian.PutUint16(h[0:], 5)
		body = make([]byte, Body15Size)
		h = append(h, 3, 0, 0, 0, 0, 0)
		binary.LittleEndian.PutUint32(h[HeaderSize+2:], Body15Size)
	}
	for i := range body {
		body[i] = byte(i)
	}
	signed := append(h, body...)
	rs := func(k *ecdsa.PrivateKey, msg []byte) []byte {
		d := sha256.Sum256(msg)
		r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
		if err != nil {
			t.Fatal(err)
		}
		return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	}
	akXY, _ := ak.PublicKey.Bytes()
	akXY = akXY[1:]
	auth := []byte("qe authentication data")
	qeReport := make([]byte, intel.ReportSize)
	binary.LittleEndian.PutUint16(qeReport[258:], 7)
	bind := sha256.Sum256(append(bytes.Clone(akXY), auth...))
	copy(qeReport[320:], bind[:])
	var chain []byte
	for _, c := range []*x509.Certificate{pck, ca, root} {
		chain = append(chain, pemOf(c)...)
	}
	inner := binary.LittleEndian.AppendUint16(nil, 5)
	inner = binary.LittleEndian.AppendUint32(inner, uint32(len(chain)))
	inner = append(inner, chain...)
	qerc := append(bytes.Clone(qeReport), rs(pckK, qeReport)...)
	qerc = binary.LittleEndian.AppendUint16(qerc, uint16(len(auth)))
	qerc = append(qerc, auth...)
	qerc = append(qerc, inner...)
	sd := append(rs(ak, signed), akXY...)
	sd = binary.LittleEndian.AppendUint16(sd, 6)
	sd = binary.LittleEndian.AppendUint32(sd, uint32(len(qerc)))
	sd = append(sd, qerc...)
	q := binary.LittleEndian.AppendUint32(bytes.Clone(signed), uint32(len(sd)))
	q = append(q, sd...)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return q, pool
}

// sgxExtension is a PCK certificate's SGX extension: FMSPC, PCE-ID and a
// TCB of 16 components, PCESVN 13 and the CPUSVN.
func sgxExtension(t testing.TB) []byte {
	type kv struct {
		ID    asn1.ObjectIdentifier
		Value any
	}
	base := asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	sub := func(o asn1.ObjectIdentifier, n ...int) asn1.ObjectIdentifier {
		return append(append(asn1.ObjectIdentifier{}, o...), n...)
	}
	var tcb []kv
	cpusvn := make([]byte, 16)
	for i := 1; i <= 16; i++ {
		tcb = append(tcb, kv{sub(base, 2, i), i})
		cpusvn[i-1] = byte(i)
	}
	tcb = append(tcb, kv{sub(base, 2, 17), 13}, kv{sub(base, 2, 18), cpusvn})
	b, err := asn1.Marshal([]kv{{sub(base, 1), make([]byte, 16)}, {sub(base, 2), tcb}, {sub(base, 3), []byte{0, 0}}, {sub(base, 4), []byte{0x90, 0xc0, 0x6f, 0, 0, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// TestSynthetic: a quote built here under a throwaway root verifies under
// that root (v4 and v5), reports its PCK's TCB, and is refused under
// Intel's.
func TestSynthetic(t *testing.T) {
	for _, v5 := range []bool{false, true} {
		raw, pool := synthQuote(t, v5)
		q, err := Parse(raw)
		if err != nil {
			t.Fatalf("v5 %v: parse: %v", v5, err)
		}
		v, err := Verify(q, Options{Roots: pool, Now: time.Unix(2e9, 0)})
		if err != nil {
			t.Fatalf("v5 %v: verify: %v", v5, err)
		}
		if v.PCK.PCESVN != 13 || v.PCK.CPUSVN[15] != 16 || hex.EncodeToString(v.PCK.FMSPC[:]) != "90c06f000000" || v.Quote.Signature.QEISVSVN() != 7 ||
			v.CA != "Test SGX PCK Platform CA" || q.Body.V15 != v5 || q.Body.ReportData[0] != byte(520%256) {
			t.Errorf("v5 %v: %+v", v5, v.PCK)
		}
		if _, err := Verify(q, Options{Roots: intel.Roots(), Now: time.Unix(2e9, 0)}); err == nil || !strings.Contains(err.Error(), "does not chain") {
			t.Errorf("v5 %v: under Intel's root: %v", v5, err)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts has its signed part,
// report data and attestation key where the layout puts them.
func FuzzParse(f *testing.F) {
	for _, v5 := range []bool{false, true} {
		raw, _ := synthQuote(f, v5)
		f.Add(raw)
	}
	f.Add(make([]byte, HeaderSize+Body10Size+4))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := Parse(b)
		if err != nil {
			return
		}
		// What parsed is read from where the layout puts it.
		off, size := HeaderSize, Body10Size
		if q.Header.Version == 5 {
			off += 6
		}
		if q.Body.V15 {
			size = Body15Size
		}
		if len(q.Signed) != off+size || !bytes.Equal(q.Body.ReportData[:], b[off+520:off+584]) ||
			!bytes.Equal(q.Signature.AttestationKey[:], b[off+size+4+64:off+size+4+128]) || len(q.Signature.PCKChain) < 2 {
			t.Fatalf("accepted a quote whose parts are not where the layout puts them")
		}
	})
}
