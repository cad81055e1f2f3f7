// Package sim is kura's simulated SEV-SNP TEE: a test-only AMD root (ARK, ASK)
// and VCEK made at run time, and reports signed with them in the exact AMD
// report layout. It lets the whole attestation and key-release path run on a
// laptop without TEE hardware.
//
// Nothing here is trusted by default: only a server started with --dev (or
// with the explicit trust-simulator option) pins this root, and evidence that
// chains to it carries the claim x-kura-simulated=true so policies can refuse
// it. The root's keys are stored in plain files because the root protects
// nothing real; it must never be pinned in production.
package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kura-project/kura/internal/attest/snp"
)

// Organization names the simulator in every certificate it makes.
const Organization = "kura simulated TEE (TEST ONLY)"

// IsSimulated reports whether c was made by a simulated TEE root (of any
// data directory): its subject or issuer is the simulator's.
func IsSimulated(c *x509.Certificate) bool {
	return slices.Contains(c.Subject.Organization, Organization) || slices.Contains(c.Issuer.Organization, Organization)
}

// ProductLine is the product line the simulator claims to be.
const ProductLine = "Milan"

// TCB the simulated VCEK is issued for: bl=3, tee=0, snp=8, ucode=115.
const TCB uint64 = 0x7308000000000003

// Authority is a simulated AMD root with one chip's VCEK.
type Authority struct {
	ARK, ASK, VCEK *x509.Certificate
	vcekKey        *ecdsa.PrivateKey
	arkKey, askKey *ecdsa.PrivateKey // only for authorities made by New; Save does not keep them
	ChipID         [64]byte
}

var kdsArc = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1}

// New makes a fresh authority valid from now-1h for ten years.
func New(now time.Time) (*Authority, error) {
	arkKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	askKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	vcekKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	a := &Authority{vcekKey: vcekKey, arkKey: arkKey, askKey: askKey}
	if _, err := rand.Read(a.ChipID[:]); err != nil {
		return nil, err
	}
	nb, na := now.Add(-time.Hour), now.AddDate(10, 0, 0)
	name := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{Organization}}
	}
	ca := func(cn string, serial int64, pub, parentKey any, parent *x509.Certificate) (*x509.Certificate, error) {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: name(cn), NotBefore: nb, NotAfter: na,
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	if a.ARK, err = ca("ARK-"+ProductLine, 1, &arkKey.PublicKey, arkKey, nil); err != nil {
		return nil, fmt.Errorf("simulated ARK: %w", err)
	}
	if a.ASK, err = ca("SEV-"+ProductLine, 2, &askKey.PublicKey, arkKey, a.ARK); err != nil {
		return nil, fmt.Errorf("simulated ASK: %w", err)
	}
	exts, err := vcekExtensions(a.ChipID[:])
	if err != nil {
		return nil, err
	}
	vt := &x509.Certificate{
		SerialNumber: big.NewInt(0), Subject: name("SEV-VCEK"), NotBefore: nb, NotAfter: na,
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, vt, a.ASK, &vcekKey.PublicKey, askKey)
	if err != nil {
		return nil, fmt.Errorf("simulated VCEK: %w", err)
	}
	if a.VCEK, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	return a, nil
}

func vcekExtensions(chipID []byte) ([]pkix.Extension, error) {
	oid := func(arc ...int) asn1.ObjectIdentifier { return append(slices.Clone(kdsArc), arc...) }
	tcb := snp.DecodeTCB(TCB, ProductLine)
	var exts []pkix.Extension
	add := func(id asn1.ObjectIdentifier, v any, params string) error {
		b, err := asn1.MarshalWithParams(v, params)
		if err != nil {
			return err
		}
		exts = append(exts, pkix.Extension{Id: id, Value: b})
		return nil
	}
	for _, e := range []struct {
		id     asn1.ObjectIdentifier
		v      any
		params string
	}{
		{oid(1), 1, ""},
		{oid(2), ProductLine + "-B1", "ia5"},
		{oid(3, 1), int(tcb.BL), ""},
		{oid(3, 2), int(tcb.TEE), ""},
		{oid(3, 3), int(tcb.SNP), ""},
		{oid(3, 4), 0, ""},
		{oid(3, 5), 0, ""},
		{oid(3, 6), 0, ""},
		{oid(3, 7), 0, ""},
		{oid(3, 8), int(tcb.UCODE), ""},
		{oid(4), chipID, ""},
	} {
		if err := add(e.id, e.v, e.params); err != nil {
			return nil, fmt.Errorf("VCEK extension %v: %w", e.id, err)
		}
	}
	return exts, nil
}

// Root returns the authority's pinned root, marked simulated.
func (a *Authority) Root() snp.Root {
	return snp.Root{ProductLine: ProductLine, Kind: snp.VCEK, ARK: a.ARK, Intermediate: a.ASK, Simulated: true}
}

// ChainPEM returns VCEK, ASK and ARK as PEM, the VcekCertChain of a request.
func (a *Authority) ChainPEM() []byte {
	var out []byte
	for _, c := range []*x509.Certificate{a.VCEK, a.ASK, a.ARK} {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// Options shape a simulated report. Zero values give a launch-ready guest:
// SMT allowed, not debuggable, VMPL 0, guest SVN 1.
type Options struct {
	ReportData  [64]byte
	HostData    [32]byte
	Measurement []byte // 48 bytes; default SHA-384("kura simulated guest")
	Debug       bool
	VMPL        uint32
	GuestSVN    uint32
}

// Report returns a signed version-3 report.
func (a *Authority) Report(o Options) ([]byte, error) {
	raw := make([]byte, snp.ReportSize)
	le := binary.LittleEndian
	le.PutUint32(raw[0x00:], 3)
	le.PutUint32(raw[0x04:], max(o.GuestSVN, 1))
	policy := uint64(snp.PolicySMT | 1<<17)
	if o.Debug {
		policy |= snp.PolicyDebug
	}
	le.PutUint64(raw[0x08:], policy)
	raw[0x10] = 1 // family id, as Azure's HCL sets it
	raw[0x20] = 2 // image id
	le.PutUint32(raw[0x30:], o.VMPL)
	le.PutUint32(raw[0x34:], 1)
	le.PutUint64(raw[0x38:], TCB)
	le.PutUint32(raw[0x48:], 0) // VCEK, chip key not masked
	copy(raw[0x50:0x90], o.ReportData[:])
	m := o.Measurement
	if m == nil {
		d := sha512.Sum384([]byte("kura simulated guest"))
		m = d[:]
	}
	if len(m) != 48 {
		return nil, errors.New("measurement must be 48 bytes")
	}
	copy(raw[0x90:0xC0], m)
	copy(raw[0xC0:0xE0], o.HostData[:])
	if _, err := rand.Read(raw[0x140:0x160]); err != nil { // report id
		return nil, err
	}
	le.PutUint64(raw[0x180:], TCB)
	raw[0x188], raw[0x189], raw[0x18A] = 0x19, 0x01, 0x01 // Milan CPUID
	copy(raw[0x1A0:0x1E0], a.ChipID[:])
	le.PutUint64(raw[0x1E0:], TCB)
	raw[0x1E8], raw[0x1E9], raw[0x1EA] = 4, 52, 1 // firmware 1.52.4
	raw[0x1EC], raw[0x1ED], raw[0x1EE] = 4, 52, 1
	le.PutUint64(raw[0x1F0:], TCB)
	if err := Sign(raw, a.vcekKey); err != nil {
		return nil, err
	}
	return raw, nil
}

// Sign writes the ECDSA P-384 signature of raw's signed prefix into raw, in
// the report's little-endian layout.
func Sign(raw []byte, key *ecdsa.PrivateKey) error {
	digest := sha512.Sum384(raw[:snp.SignedSize])
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return err
	}
	put := func(off int, v *big.Int) {
		b := v.FillBytes(make([]byte, 72))
		slices.Reverse(b)
		copy(raw[off:off+72], b)
	}
	clear(raw[snp.SignedSize:])
	put(0x2A0, r)
	put(0x2E8, s)
	return nil
}

// Files of an authority saved in a directory.
const (
	arkFile  = "ark.pem"
	askFile  = "ask.pem"
	vcekFile = "vcek.pem"
	keyFile  = "vcek-key.pem"
)

// LoadOrCreate loads the authority saved in dir, creating one on first use.
func LoadOrCreate(dir string, now time.Time) (*Authority, error) {
	a, err := Load(dir)
	if err == nil {
		return a, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if a, err = New(now); err != nil {
		return nil, err
	}
	if err := a.Save(dir); err != nil {
		return nil, err
	}
	return a, nil
}

// Save writes the authority to dir (mode 0700; the VCEK key file 0600).
func (a *Authority) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(a.vcekKey)
	if err != nil {
		return err
	}
	files := []struct {
		name, typ string
		der       []byte
	}{
		{arkFile, "CERTIFICATE", a.ARK.Raw}, {askFile, "CERTIFICATE", a.ASK.Raw},
		{vcekFile, "CERTIFICATE", a.VCEK.Raw}, {keyFile, "PRIVATE KEY", keyDER},
	}
	for _, f := range files {
		b := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(filepath.Join(dir, f.name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Load reads an authority saved by Save.
func Load(dir string) (*Authority, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: no PEM block", name)
		}
		return blk.Bytes, nil
	}
	a := &Authority{}
	for _, c := range []struct {
		name string
		dst  **x509.Certificate
	}{{arkFile, &a.ARK}, {askFile, &a.ASK}, {vcekFile, &a.VCEK}} {
		der, err := read(c.name)
		if err != nil {
			return nil, err
		}
		if *c.dst, err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	der, err := read(keyFile)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	var ok bool
	if a.vcekKey, ok = k.(*ecdsa.PrivateKey); !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", keyFile)
	}
	ext, err := snp.ParseExtensions(a.VCEK)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", vcekFile, err)
	}
	copy(a.ChipID[:], ext.HWID)
	return a, nil
}

// RequestBody returns an MAA SevSnpVm request body for a raw report, its
// certificate chain (PEM) and the runtime data bound into it. dataType is
// "JSON" or "Binary"; runtime and nonce may be empty.
func RequestBody(report, chainPEM, runtime []byte, dataType, nonce string) ([]byte, error) {
	b64u := base64.RawURLEncoding.EncodeToString
	bundle, err := json.Marshal(snp.Bundle{SnpReport: b64u(report), VcekCertChain: base64.StdEncoding.EncodeToString(chainPEM)})
	if err != nil {
		return nil, err
	}
	req := map[string]any{"report": b64u(bundle)}
	if runtime != nil {
		req["runtimeData"] = map[string]string{"data": b64u(runtime), "dataType": dataType}
	}
	if nonce != "" {
		req["nonce"] = nonce
	}
	return json.MarshalIndent(req, "", "  ")
}

// Body is RequestBody for a fresh report of a with SHA-256(runtime) in its
// report_data.
func (a *Authority) Body(runtime []byte, dataType, nonce string, o Options) ([]byte, error) {
	sum := sha256.Sum256(runtime)
	copy(o.ReportData[:], sum[:])
	raw, err := a.Report(o)
	if err != nil {
		return nil, err
	}
	return RequestBody(raw, a.ChainPEM(), runtime, dataType, nonce)
}

// CRL returns a CRL issued by the simulated ARK revoking serials, for tests
// of revocation handling. Only an authority made by New (not loaded) has the
// ARK key to sign it.
func (a *Authority) CRL(revoked []*big.Int, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	if a.arkKey == nil {
		return nil, errors.New("this simulated authority was loaded from disk and holds no ARK key")
	}
	var entries []x509.RevocationListEntry
	for _, s := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: thisUpdate})
	}
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: thisUpdate, NextUpdate: nextUpdate, RevokedCertificateEntries: entries,
	}, a.ARK, a.arkKey)
}

// ReissueASK returns a new certificate for the same ASK key with another
// validity, signed by the ARK, as AMD reissues intermediates. Only an
// authority made by New can.
func (a *Authority) ReissueASK(notBefore, notAfter time.Time) (*x509.Certificate, error) {
	if a.arkKey == nil || a.askKey == nil {
		return nil, errors.New("this simulated authority was loaded from disk and holds no ARK key")
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: a.ASK.Subject, NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.ARK, &a.askKey.PublicKey, a.arkKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
