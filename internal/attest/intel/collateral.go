package intel

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Collateral is Intel's collateral for one platform (FMSPC), as Intel's
// PCS serves it: the TCB info and the QE identity, each the exact JSON
// Intel signed with its signature and the issuer chain (TCB Signing
// certificate to the root); the PCK CRL with its issuer chain; the Intel
// SGX Root CA CRL.
type Collateral struct {
	TCBInfo, TCBInfoSig       []byte
	TCBInfoChain              []*x509.Certificate
	QEIdentity, QEIdentitySig []byte
	QEIdentityChain           []*x509.Certificate
	PCKCRL                    []byte // DER
	PCKCRLChain               []*x509.Certificate
	RootCRL                   []byte // DER
}

// ParseQVLBundle reads collateral in the JSON form of Phala's dcap-qvl
// (tcb_info, tcb_info_signature, tcb_info_issuer_chain, qe_identity, ...,
// pck_crl, root_ca_crl; signatures and CRLs in hex, chains in PEM).
func ParseQVLBundle(b []byte) (*Collateral, error) {
	var j struct {
		TCBInfo         string `json:"tcb_info"`
		TCBInfoSig      string `json:"tcb_info_signature"`
		TCBInfoChain    string `json:"tcb_info_issuer_chain"`
		QEIdentity      string `json:"qe_identity"`
		QEIdentitySig   string `json:"qe_identity_signature"`
		QEIdentityChain string `json:"qe_identity_issuer_chain"`
		PCKCRL          string `json:"pck_crl"`
		PCKCRLChain     string `json:"pck_crl_issuer_chain"`
		RootCRL         string `json:"root_ca_crl"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("collateral bundle: %w", err)
	}
	c := &Collateral{TCBInfo: []byte(j.TCBInfo), QEIdentity: []byte(j.QEIdentity)}
	var err error
	for _, f := range []struct {
		name string
		hex  string
		into *[]byte
	}{{"tcb_info_signature", j.TCBInfoSig, &c.TCBInfoSig}, {"qe_identity_signature", j.QEIdentitySig, &c.QEIdentitySig},
		{"pck_crl", j.PCKCRL, &c.PCKCRL}, {"root_ca_crl", j.RootCRL, &c.RootCRL}} {
		if *f.into, err = hex.DecodeString(f.hex); err != nil || len(*f.into) == 0 {
			return nil, fmt.Errorf("collateral bundle: %s is not hex: %v", f.name, err)
		}
	}
	for _, f := range []struct {
		name string
		pem  string
		into *[]*x509.Certificate
	}{{"tcb_info_issuer_chain", j.TCBInfoChain, &c.TCBInfoChain}, {"qe_identity_issuer_chain", j.QEIdentityChain, &c.QEIdentityChain},
		{"pck_crl_issuer_chain", j.PCKCRLChain, &c.PCKCRLChain}} {
		if *f.into, err = ParseChain([]byte(f.pem)); err != nil {
			return nil, fmt.Errorf("collateral bundle: %s: %w", f.name, err)
		}
	}
	return c, nil
}

// ParsePCSSigned reads a PCS answer of the form {"<member>": {...},
// "signature": "<hex>"} and returns the member's JSON exactly as served
// (what the signature covers) and the signature.
func ParsePCSSigned(b []byte, member string) (signed, sig []byte, err error) {
	var j map[string]json.RawMessage
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, nil, fmt.Errorf("PCS answer: %w", err)
	}
	raw, ok := j[member]
	if !ok {
		return nil, nil, fmt.Errorf("PCS answer: no %q member", member)
	}
	var s string
	if err := json.Unmarshal(j["signature"], &s); err != nil {
		return nil, nil, errors.New("PCS answer: no signature")
	}
	if sig, err = hex.DecodeString(s); err != nil {
		return nil, nil, fmt.Errorf("PCS answer: the signature is not hex: %w", err)
	}
	return raw, sig, nil
}

// ParseChain reads PEM certificates.
func ParseChain(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// TCBInfo is Intel's TCB info (version 3, "SGX" or "TDX").
type TCBInfo struct {
	ID                      string    `json:"id"`
	Version                 int       `json:"version"`
	IssueDate               time.Time `json:"issueDate"`
	NextUpdate              time.Time `json:"nextUpdate"`
	FMSPC                   string    `json:"fmspc"`
	PCEID                   string    `json:"pceId"`
	TCBEvaluationDataNumber int       `json:"tcbEvaluationDataNumber"`
	TDXModule               *struct {
		MRSigner       string `json:"mrsigner"`
		Attributes     string `json:"attributes"`
		AttributesMask string `json:"attributesMask"`
	} `json:"tdxModule"`
	TDXModuleIdentities []struct {
		ID             string `json:"id"`
		MRSigner       string `json:"mrsigner"`
		Attributes     string `json:"attributes"`
		AttributesMask string `json:"attributesMask"`
		TCBLevels      []struct {
			TCB struct {
				ISVSVN int `json:"isvsvn"`
			} `json:"tcb"`
			TCBDate   time.Time `json:"tcbDate"`
			TCBStatus string    `json:"tcbStatus"`
		} `json:"tcbLevels"`
	} `json:"tdxModuleIdentities"`
	TCBLevels []TCBLevel `json:"tcbLevels"`
}

// TCBLevel is one level of a TCB info.
type TCBLevel struct {
	TCB struct {
		SGX    []svn `json:"sgxtcbcomponents"`
		PCESVN int   `json:"pcesvn"`
		TDX    []svn `json:"tdxtcbcomponents"`
	} `json:"tcb"`
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   string    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs"`
}

type svn struct {
	SVN int `json:"svn"`
}

// QEIdentity is Intel's identity of a quoting enclave (version 2;
// "QE" for SGX, "TD_QE" for TDX).
type QEIdentity struct {
	ID                      string    `json:"id"`
	Version                 int       `json:"version"`
	IssueDate               time.Time `json:"issueDate"`
	NextUpdate              time.Time `json:"nextUpdate"`
	TCBEvaluationDataNumber int       `json:"tcbEvaluationDataNumber"`
	MiscSelect              string    `json:"miscselect"`
	MiscSelectMask          string    `json:"miscselectMask"`
	Attributes              string    `json:"attributes"`
	AttributesMask          string    `json:"attributesMask"`
	MRSigner                string    `json:"mrsigner"`
	ISVProdID               int       `json:"isvprodid"`
	TCBLevels               []struct {
		TCB struct {
			ISVSVN int `json:"isvsvn"`
		} `json:"tcb"`
		TCBDate   time.Time `json:"tcbDate"`
		TCBStatus string    `json:"tcbStatus"`
	} `json:"tcbLevels"`
}

// Verified is collateral whose signatures, chains, CRLs and validity
// windows were checked.
type Verified struct {
	TCBInfo    *TCBInfo
	QEIdentity *QEIdentity
	// Root is the root the collateral chains to.
	Root   *x509.Certificate
	pckCRL *x509.RevocationList
	// pckCRLIssuer verified the PCK CRL's signature in Verify.
	pckCRLIssuer *x509.Certificate
	rootCRL      *x509.RevocationList
}

// Verify checks c at now against roots: each issuer chain to the root,
// each signature over the exact JSON, each document's and CRL's validity
// window (collateral not yet valid or expired fails closed, naming it).
func (c *Collateral) Verify(roots *x509.CertPool, now time.Time) (*Verified, error) {
	var v Verified
	// The root CRL first: the signers below are checked against it.
	if len(c.PCKCRLChain) == 0 {
		return nil, errors.New("the PCK CRL has no issuer chain")
	}
	root, err := chain("the PCK CRL's issuer", c.PCKCRLChain, roots, now)
	if err != nil {
		return nil, err
	}
	v.Root = root
	if v.rootCRL, err = crl("the Intel SGX Root CA CRL", c.RootCRL, root, now); err != nil {
		return nil, err
	}
	v.pckCRLIssuer = c.PCKCRLChain[0]
	if v.pckCRL, err = crl("the PCK CRL", c.PCKCRL, c.PCKCRLChain[0], now); err != nil {
		return nil, err
	}
	ti, err := v.verifySigned("TCB info", c.TCBInfo, c.TCBInfoSig, c.TCBInfoChain, roots, now)
	if err != nil {
		return nil, err
	}
	if err := strictJSON(ti, &v.TCBInfo); err != nil || v.TCBInfo == nil {
		return nil, fmt.Errorf("TCB info: not a TCB info: %v", err)
	}
	if err := window("TCB info", v.TCBInfo.IssueDate, v.TCBInfo.NextUpdate, now); err != nil {
		return nil, err
	}
	if v.TCBInfo.Version != 3 {
		return nil, fmt.Errorf("TCB info: version %d, want 3", v.TCBInfo.Version)
	}
	qi, err := v.verifySigned("QE identity", c.QEIdentity, c.QEIdentitySig, c.QEIdentityChain, roots, now)
	if err != nil {
		return nil, err
	}
	if err := strictJSON(qi, &v.QEIdentity); err != nil || v.QEIdentity == nil {
		return nil, fmt.Errorf("QE identity: not a QE identity: %v", err)
	}
	if err := window("QE identity", v.QEIdentity.IssueDate, v.QEIdentity.NextUpdate, now); err != nil {
		return nil, err
	}
	if v.QEIdentity.Version != 2 {
		return nil, fmt.Errorf("QE identity: version %d, want 2", v.QEIdentity.Version)
	}
	return &v, nil
}

// ErrRevoked is what CheckRevoked's refusals of a revoked certificate
// wrap; its other errors say the collateral does not fit the chain.
var ErrRevoked = errors.New("revoked")

// CheckRevoked refuses a PCK chain as verified (PCK, PCK CA, root) whose
// PCK is on the PCK CRL or whose CA is on the root CA CRL. The PCK CRL
// must be signed by that very CA, which must be Intel's Platform or
// Processor CA.
func (v *Verified) CheckRevoked(pckChain []*x509.Certificate) error {
	if len(pckChain) != 3 {
		return errors.New("the PCK chain is not PCK, PCK CA, root")
	}
	leaf, ca, root := pckChain[0], pckChain[1], pckChain[2]
	// With several roots pinned (a --dev server's simulated one), a
	// platform is judged only by collateral of its own root.
	if !v.Root.Equal(root) {
		return fmt.Errorf("the collateral on file chains to %q (%s), the PCK to another root", v.Root.Subject.CommonName, strings.Join(v.Root.Subject.Organization, ", "))
	}
	if n := ca.Subject.CommonName; n != "Intel SGX PCK Platform CA" && n != "Intel SGX PCK Processor CA" {
		return fmt.Errorf("the PCK is issued by %q, not an Intel SGX PCK CA", n)
	}
	// The CRL's signature was checked in Verify by the issuer its chain
	// names; another certificate of the PCK's CA (a reissue) is checked
	// here.
	if !bytes.Equal(v.pckCRL.RawIssuer, ca.RawSubject) || (!ca.Equal(v.pckCRLIssuer) && v.pckCRL.CheckSignatureFrom(ca) != nil) {
		return fmt.Errorf("the PCK CRL on file is %q's, not signed by the PCK's CA %q", v.pckCRL.Issuer.CommonName, ca.Subject.CommonName)
	}
	for _, r := range v.pckCRL.RevokedCertificateEntries {
		if r.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			return fmt.Errorf("the PCK certificate (serial %x) is %w by %q's CRL", leaf.SerialNumber, ErrRevoked, ca.Subject.CommonName)
		}
	}
	if v.revokedByRoot(ca) {
		return fmt.Errorf("the PCK CA %q (serial %x) is %w by the Intel SGX Root CA CRL", ca.Subject.CommonName, ca.SerialNumber, ErrRevoked)
	}
	return nil
}

func (v *Verified) revokedByRoot(c *x509.Certificate) bool {
	for _, r := range v.rootCRL.RevokedCertificateEntries {
		if r.SerialNumber.Cmp(c.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

// verifySigned checks a document Intel signs: its signer must be the
// Intel SGX TCB Signing certificate, issued by the root itself and not
// revoked by the root CRL (a PCK, which also chains to the root, must
// never pass for it), and its key must verify the exact JSON.
func (v *Verified) verifySigned(what string, doc, sig []byte, ch []*x509.Certificate, roots *x509.CertPool, now time.Time) ([]byte, error) {
	if len(doc) == 0 || len(ch) == 0 {
		return nil, fmt.Errorf("%s: missing (document or issuer chain)", what)
	}
	signer := ch[0]
	if signer.Subject.CommonName != "Intel SGX TCB Signing" {
		return nil, fmt.Errorf("%s: signed by %q, not the Intel SGX TCB Signing certificate", what, signer.Subject.CommonName)
	}
	chains, err := signer.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fmt.Errorf("%s's signer %q is not issued by the Intel SGX Root CA at %s: %w", what, signer.Subject.CommonName, now.UTC().Format(time.RFC3339), err)
	}
	if len(chains[0]) != 2 {
		return nil, fmt.Errorf("%s's signer is not issued by the root directly", what)
	}
	if !chains[0][1].Equal(v.Root) {
		return nil, fmt.Errorf("%s's signer is issued by another root than the CRLs'", what)
	}
	if v.revokedByRoot(signer) {
		return nil, fmt.Errorf("%s's signer (serial %x) is revoked by the Intel SGX Root CA CRL", what, signer.SerialNumber)
	}
	pub, ok := signer.PublicKey.(*ecdsa.PublicKey)
	if !ok || len(sig) != SigSize || !verifyRS(pub, doc, sig) {
		return nil, fmt.Errorf("%s: the signature does not verify with %q", what, signer.Subject.CommonName)
	}
	return doc, nil
}

// chain verifies ch (leaf first) to roots at now and returns the root.
func chain(what string, ch []*x509.Certificate, roots *x509.CertPool, now time.Time) (*x509.Certificate, error) {
	inter := x509.NewCertPool()
	for _, c := range ch[1:] {
		inter.AddCert(c)
	}
	chains, err := ch[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fmt.Errorf("%s %q does not chain to the Intel SGX Root CA at %s: %w", what, ch[0].Subject.CommonName, now.UTC().Format(time.RFC3339), err)
	}
	return chains[0][len(chains[0])-1], nil
}

func crl(what string, der []byte, issuer *x509.Certificate, now time.Time) (*x509.RevocationList, error) {
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := l.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("%s is not signed by %q: %w", what, issuer.Subject.CommonName, err)
	}
	if err := window(what, l.ThisUpdate, l.NextUpdate, now); err != nil {
		return nil, err
	}
	return l, nil
}

func window(what string, from, to, now time.Time) error {
	f := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	if now.Before(from) {
		return fmt.Errorf("%s is not yet valid at %s (issued %s)", what, f(now), f(from))
	}
	if to.IsZero() {
		return fmt.Errorf("%s has no next update: it would never expire", what)
	}
	if now.After(to) {
		return fmt.Errorf("%s expired at %s (verifying at %s)", what, f(to), f(now))
	}
	return nil
}

// strictJSON decodes one JSON object, refusing trailing data.
func strictJSON(b []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(into); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the object")
	}
	return nil
}

// hexEq compares hex strings case-insensitively.
func hexEq(a, b string) bool { return strings.EqualFold(a, b) }

// Window is when c can verify: from the latest issue date of its parts
// (TCB info, QE identity, CRLs) to the earliest expiry. Nothing is
// verified here.
func (c *Collateral) Window() (from, to time.Time, err error) {
	var ti TCBInfo
	var qe QEIdentity
	if err := json.Unmarshal(c.TCBInfo, &ti); err != nil {
		return from, to, fmt.Errorf("TCB info: %w", err)
	}
	if err := json.Unmarshal(c.QEIdentity, &qe); err != nil {
		return from, to, fmt.Errorf("QE identity: %w", err)
	}
	from, to = ti.IssueDate, ti.NextUpdate
	widen := func(f, t time.Time) {
		if f.After(from) {
			from = f
		}
		if !t.IsZero() && t.Before(to) {
			to = t
		}
	}
	widen(qe.IssueDate, qe.NextUpdate)
	for _, der := range [][]byte{c.PCKCRL, c.RootCRL} {
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			return from, to, fmt.Errorf("CRL: %w", err)
		}
		widen(l.ThisUpdate, l.NextUpdate)
	}
	return from, to, nil
}
