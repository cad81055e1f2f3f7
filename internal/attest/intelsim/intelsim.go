// Package intelsim is kura's simulated Intel TEE: a test-only Intel SGX
// root, PCK Platform CA, one platform's PCK certificate, the TCB Signing
// certificate, a quoting enclave's attestation key, and quotes (TDX v4 and
// v5, SGX v3) and collateral (TCB info, QE identity, CRLs, as a dcap-qvl
// bundle) signed with them in Intel's exact layouts. It lets the TDX and
// SGX paths run end to end without Intel hardware, and lets tests shape
// collateral (TCB levels, statuses, revocations) that Intel never serves.
//
// As with the SEV-SNP simulator, nothing here is trusted by default: only
// a server started with --dev (or trust_simulator) pins this root, and
// evidence chaining to it carries x-kura-simulated=true. Its certificates
// carry Intel's common names, which kura's checks require, under the
// simulator's organization; every key is kept in plain files because it
// protects nothing real.
package intelsim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/kura-project/kura/internal/attest/sim"
)

// The simulated platform.
const (
	FMSPC  = "4B5552410000" // "KURA\0\0": no Intel platform's
	PCEID  = "0000"
	PCESVN = 13
	// QESVN is the quoting enclave's ISV SVN.
	QESVN = 8
	// ModuleVersion and ModuleSVN are the simulated TDX module's (TDX 1.5
	// style: its identity is TDX_01).
	ModuleVersion = 1
	ModuleSVN     = 3
)

// SGXComponents are the simulated platform's 16 SGX TCB components (the
// PCK's); TDXComponents the TD's TEE_TCB_SVN (index 0 and 1 are the TDX
// module's SVN and version).
func SGXComponents() [16]byte { return [16]byte{3, 3, 2, 2, 2, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0} }

// TDXComponents: see SGXComponents.
func TDXComponents() [16]byte {
	return [16]byte{ModuleSVN, ModuleVersion, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
}

// Authority is a simulated Intel root with one platform.
type Authority struct {
	Root, PCKCA, PCK, TCBSigner *x509.Certificate
	rootKey, caKey, pckKey      *ecdsa.PrivateKey
	tcbKey, akKey               *ecdsa.PrivateKey
}

// qeSigner is the quoting enclaves' MRSIGNER (the QE and the TD_QE share
// it).
func qeSigner() [32]byte { return sha256.Sum256([]byte("kura simulated quoting enclave signer")) }

const (
	qeProdSGX = 1
	qeProdTDX = 2
	// qeAttributes is what the QE identity requires of ATTRIBUTES under
	// qeAttributesMask (INIT, PROVISIONKEY, not DEBUG); the report has
	// more set (MODE64BIT, XFRM), as Intel's QEs do, so the masks matter.
	qeAttributes     = "11000000000000000000000000000000"
	qeAttributesMask = "FBFFFFFFFFFFFFFF0000000000000000"
	qeReportAttrs    = "1500000000000000e700000000000000"
)

var oidSGX = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}

// New makes a fresh authority valid from now-1h for ten years.
func New(now time.Time) (*Authority, error) {
	var keys [5]*ecdsa.PrivateKey
	for i := range keys {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	a := &Authority{rootKey: keys[0], caKey: keys[1], pckKey: keys[2], tcbKey: keys[3], akKey: keys[4]}
	nb, na := now.Add(-time.Hour), now.AddDate(10, 0, 0)
	mk := func(cn string, serial int64, pub *ecdsa.PublicKey, parent *x509.Certificate, signer *ecdsa.PrivateKey, ca bool, exts []pkix.Extension) (*x509.Certificate, error) {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{sim.Organization}},
			NotBefore: nb, NotAfter: na, IsCA: ca, BasicConstraintsValid: true, ExtraExtensions: exts,
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		if ca {
			tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			return nil, fmt.Errorf("simulated %s: %w", cn, err)
		}
		return x509.ParseCertificate(der)
	}
	var err error
	if a.Root, err = mk("Intel SGX Root CA", 1, &a.rootKey.PublicKey, nil, a.rootKey, true, nil); err != nil {
		return nil, err
	}
	if a.PCKCA, err = mk("Intel SGX PCK Platform CA", 2, &a.caKey.PublicKey, a.Root, a.rootKey, true, nil); err != nil {
		return nil, err
	}
	if a.TCBSigner, err = mk("Intel SGX TCB Signing", 3, &a.tcbKey.PublicKey, a.Root, a.rootKey, false, nil); err != nil {
		return nil, err
	}
	ext, err := pckExtension()
	if err != nil {
		return nil, err
	}
	if a.PCK, err = mk("Intel SGX PCK Certificate", 4, &a.pckKey.PublicKey, a.PCKCA, a.caKey, false, []pkix.Extension{{Id: oidSGX, Value: ext}}); err != nil {
		return nil, err
	}
	return a, nil
}

// pckExtension is the PCK certificate's SGX extension: PPID, TCB (16
// components, PCESVN, CPUSVN), PCE-ID and FMSPC.
func pckExtension() ([]byte, error) {
	type kv struct {
		ID    asn1.ObjectIdentifier
		Value any
	}
	sub := func(n ...int) asn1.ObjectIdentifier { return append(append(asn1.ObjectIdentifier{}, oidSGX...), n...) }
	var tcb []kv
	comps := SGXComponents()
	for i, c := range comps {
		tcb = append(tcb, kv{sub(2, i+1), int(c)})
	}
	tcb = append(tcb, kv{sub(2, 17), PCESVN}, kv{sub(2, 18), comps[:]})
	fmspc, _ := hex.DecodeString(FMSPC)
	pceid, _ := hex.DecodeString(PCEID)
	ppid := sha256.Sum256([]byte("kura simulated platform"))
	return asn1.Marshal([]kv{{sub(1), ppid[:16]}, {sub(2), tcb}, {sub(3), pceid}, {sub(4), fmspc}})
}

// IsSimulated reports whether c was made by a simulated root.
func IsSimulated(c *x509.Certificate) bool { return sim.IsSimulated(c) }

// Roots returns a pool holding the simulated root.
func (a *Authority) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.Root)
	return p
}

// chainPEM is the quote's certification data: PCK, PCK CA, root.
func (a *Authority) chainPEM() []byte {
	return pemCerts(a.PCK, a.PCKCA, a.Root)
}

func pemCerts(cs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range cs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// signRS signs SHA-256(msg) as r || s, big-endian, as DCAP quotes do.
func signRS(k *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
	if err != nil {
		return nil, err
	}
	return append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...), nil
}

// qeReport is the quoting enclave's report binding the attestation key
// and auth data (REPORTDATA = SHA-256(key || auth) || zeros).
func (a *Authority) qeReport(prodID uint16, akXY, auth []byte) []byte {
	r := make([]byte, 384)
	comps, signer := SGXComponents(), qeSigner()
	copy(r[0:16], comps[:]) // CPUSVN
	attrs, _ := hex.DecodeString(qeReportAttrs)
	copy(r[48:64], attrs)
	mre := sha256.Sum256([]byte("kura simulated quoting enclave"))
	copy(r[64:96], mre[:])
	copy(r[128:160], signer[:])
	binary.LittleEndian.PutUint16(r[256:], prodID)
	binary.LittleEndian.PutUint16(r[258:], QESVN)
	bind := sha256.Sum256(append(bytes.Clone(akXY), auth...))
	copy(r[320:352], bind[:])
	return r
}

func (a *Authority) akXY() []byte {
	b, _ := a.akKey.PublicKey.Bytes() // uncompressed: 0x04 || x || y
	return b[1:]
}

// header is a quote header: version, ECDSA P-256 key, TEE type, Intel's
// QE vendor id and, for SGX, the QE and PCE SVN (reserved, zero, in TDX
// quotes, as real ones have them).
func header(version uint16, teeType uint32) []byte {
	h := make([]byte, 48)
	binary.LittleEndian.PutUint16(h[0:], version)
	binary.LittleEndian.PutUint16(h[2:], 2)
	binary.LittleEndian.PutUint32(h[4:], teeType)
	if teeType == 0 {
		binary.LittleEndian.PutUint16(h[8:], QESVN)
		binary.LittleEndian.PutUint16(h[10:], PCESVN)
	}
	vendor, _ := hex.DecodeString("939a7233f79c4ca9940a0db3957f0607") // Intel's QE
	copy(h[12:28], vendor)
	return h
}

// TDXOptions shape a simulated TD quote. Zero values give a TD that is
// not debuggable, with fixed measurements.
type TDXOptions struct {
	ReportData [64]byte
	MRConfigID [48]byte
	MRTD       []byte // 48 bytes; default SHA-384-sized "kura simulated TD"
	RTMR       [4][48]byte
	Debug      bool
	// V5 makes a quote version 5 with a TD report 1.5 body.
	V5 bool
	// TEETCBSVN2 (V5 only) is the TDX module loaded now; zero means the
	// one the TD was launched on (TDXComponents).
	TEETCBSVN2 [16]byte
}

// DefaultMRTD is a simulated TD's MRTD unless TDXOptions.MRTD is set.
func DefaultMRTD() []byte {
	m := make([]byte, 48)
	d := sha256.Sum256([]byte("kura simulated TD"))
	copy(m, d[:])
	copy(m[32:], d[:16])
	return m
}

// TDXQuote returns a signed TDX quote.
func (a *Authority) TDXQuote(o TDXOptions) ([]byte, error) {
	body := make([]byte, 584)
	tdxComps := TDXComponents()
	copy(body[0:16], tdxComps[:])
	// MRSEAM (16:64) is the module's measurement; MRSIGNERSEAM (64:112)
	// and SEAMATTRIBUTES (112:120) stay zero, as Intel's modules have them.
	mrseam := sha256.Sum256([]byte("kura simulated TDX module"))
	copy(body[16:48], mrseam[:])
	var attrs uint64
	if o.Debug {
		attrs |= 1
	}
	attrs |= 1 << 28 // SEPT_VE_DISABLE, as Linux TDs set it
	binary.LittleEndian.PutUint64(body[120:], attrs)
	binary.LittleEndian.PutUint64(body[128:], 0x602e7) // XFAM as real TDs report it
	mrtd := o.MRTD
	if mrtd == nil {
		mrtd = DefaultMRTD()
	}
	if len(mrtd) != 48 {
		return nil, errors.New("intelsim: MRTD must be 48 bytes")
	}
	copy(body[136:184], mrtd)
	copy(body[184:232], o.MRConfigID[:])
	for i, r := range o.RTMR {
		copy(body[328+48*i:], r[:])
	}
	copy(body[520:584], o.ReportData[:])
	h := header(4, 0x81)
	if o.V5 {
		h = header(5, 0x81)
		svn2 := o.TEETCBSVN2
		if svn2 == ([16]byte{}) {
			svn2 = tdxComps
		}
		body = append(body, svn2[:]...)          // TEE_TCB_SVN2
		body = append(body, make([]byte, 48)...) // MRSERVICETD
		h = append(h, 3, 0)
		h = binary.LittleEndian.AppendUint32(h, uint32(len(body)))
	}
	signed := append(h, body...)
	sd, err := a.signatureDataV4(signed, qeProdTDX)
	if err != nil {
		return nil, err
	}
	q := binary.LittleEndian.AppendUint32(bytes.Clone(signed), uint32(len(sd)))
	return append(q, sd...), nil
}

// signatureDataV4 is the v4/v5 signature data: the quote signature, the
// attestation key, certification data of type 6 (QE report, its
// signature, auth data) around type 5 (the PCK chain).
func (a *Authority) signatureDataV4(signed []byte, qeProd uint16) ([]byte, error) {
	qerc, err := a.qeCertData(qeProd)
	if err != nil {
		return nil, err
	}
	sig, err := signRS(a.akKey, signed)
	if err != nil {
		return nil, err
	}
	sd := append(sig, a.akXY()...)
	sd = binary.LittleEndian.AppendUint16(sd, 6)
	sd = binary.LittleEndian.AppendUint32(sd, uint32(len(qerc)))
	return append(sd, qerc...), nil
}

// qeCertData is QE report, its PCK signature, the auth data and the
// PCK chain as certification data of type 5.
func (a *Authority) qeCertData(qeProd uint16) ([]byte, error) {
	auth := []byte("kura simulated QE authentication data")
	rep := a.qeReport(qeProd, a.akXY(), auth)
	rsig, err := signRS(a.pckKey, rep)
	if err != nil {
		return nil, err
	}
	chain := a.chainPEM()
	out := append(rep, rsig...)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(auth)))
	out = append(out, auth...)
	out = binary.LittleEndian.AppendUint16(out, 5)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(chain)))
	return append(out, chain...), nil
}

// SGXOptions shape a simulated enclave's quote. Zero values give a
// production (not debuggable) enclave with fixed measurements.
type SGXOptions struct {
	ReportData [64]byte
	MREnclave  []byte // 32 bytes; default SHA-256("kura simulated enclave")
	MRSigner   []byte // 32 bytes; default SHA-256("kura simulated enclave signer")
	ProductID  uint16
	SVN        uint16
	Debug      bool
}

// SGXQuote returns a signed SGX quote (version 3).
func (a *Authority) SGXQuote(o SGXOptions) ([]byte, error) {
	r := make([]byte, 384)
	comps := SGXComponents()
	copy(r[0:16], comps[:])
	r[48] = 0x05 // INIT, MODE64BIT
	if o.Debug {
		r[48] |= 0x02
	}
	r[56] = 0x03 // XFRM: x87, SSE
	def := func(b []byte, s string) ([]byte, error) {
		if b == nil {
			d := sha256.Sum256([]byte(s))
			return d[:], nil
		}
		if len(b) != 32 {
			return nil, errors.New("intelsim: MRENCLAVE and MRSIGNER are 32 bytes")
		}
		return b, nil
	}
	mre, err := def(o.MREnclave, "kura simulated enclave")
	if err != nil {
		return nil, err
	}
	mrs, err := def(o.MRSigner, "kura simulated enclave signer")
	if err != nil {
		return nil, err
	}
	copy(r[64:96], mre)
	copy(r[128:160], mrs)
	binary.LittleEndian.PutUint16(r[256:], o.ProductID)
	binary.LittleEndian.PutUint16(r[258:], o.SVN)
	copy(r[320:384], o.ReportData[:])
	signed := append(header(3, 0), r...)
	sig, err := signRS(a.akKey, signed)
	if err != nil {
		return nil, err
	}
	qerc, err := a.qeCertData(qeProdSGX)
	if err != nil {
		return nil, err
	}
	// Version 3 signature data: signature, key, then the QE report
	// certification data flat (no type 6 wrapper).
	sd := append(sig, a.akXY()...)
	sd = append(sd, qerc...)
	q := binary.LittleEndian.AppendUint32(bytes.Clone(signed), uint32(len(sd)))
	return append(q, sd...), nil
}

// Body returns an MAA TdxVm or SgxEnclave request body for a quote and
// the runtime data bound into it (dataType "JSON" or "Binary"; runtime and
// nonce may be empty).
func Body(quote, runtime []byte, dataType, nonce string) ([]byte, error) {
	b64u := base64.RawURLEncoding.EncodeToString
	req := map[string]any{"quote": b64u(quote)}
	if runtime != nil {
		req["runtimeData"] = map[string]string{"data": b64u(runtime), "dataType": dataType}
	}
	if nonce != "" {
		req["nonce"] = nonce
	}
	return json.MarshalIndent(req, "", "  ")
}
