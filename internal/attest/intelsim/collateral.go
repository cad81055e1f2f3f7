package intelsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Doc is a collateral document (TCB info or QE identity) as JSON values,
// for tests to edit before it is signed.
type Doc = map[string]any

// CollateralOptions shape a simulated collateral bundle.
type CollateralOptions struct {
	// TEE is "TDX" or "SGX".
	TEE string
	// From and To bound every part (documents and CRLs); zero From is
	// now-1h, zero To From+30 days.
	From, To time.Time
	// Edit, when set, changes the TCB info and QE identity before they
	// are signed (statuses, levels, identities).
	Edit func(tcbInfo, qeIdentity Doc)
	// RevokedPCK and RevokedByRoot are serials put on the PCK CRL and the
	// root CA CRL.
	RevokedPCK, RevokedByRoot []*big.Int
	// TamperTCBInfo flips a byte of the TCB info after it is signed.
	TamperTCBInfo bool
	// PCKCRLIssuer makes the PCK CRL another CA's: "processor" (an Intel
	// SGX PCK Processor CA), "rekeyed" (a CA of the Platform CA's name
	// with another key), "root" (the root itself); "" is the Platform
	// CA's, which issued the simulated PCK.
	PCKCRLIssuer string
}

// tcbDate is the date of the simulated UpToDate TCB level.
func tcbDate() time.Time { return time.Date(2025, 2, 12, 0, 0, 0, 0, time.UTC) }

func comps(c []byte) []any {
	out := make([]any, len(c))
	for i, v := range c {
		out[i] = map[string]any{"svn": int(v)}
	}
	return out
}

// TCBInfo returns the simulated platform's TCB info document: an
// UpToDate level at the platform's TCB, an OutOfDate level below it.
func TCBInfo(tee string, from, to time.Time) Doc {
	level := func(status string, sgx, tdx []byte, pcesvn int, date time.Time, adv []any) map[string]any {
		t := map[string]any{"sgxtcbcomponents": comps(sgx), "pcesvn": pcesvn}
		if tee == "TDX" {
			t["tdxtcbcomponents"] = comps(tdx)
		}
		return map[string]any{"tcb": t, "tcbDate": date.Format(time.RFC3339), "tcbStatus": status, "advisoryIDs": adv}
	}
	zero := make([]byte, 16)
	sgx, tdx := SGXComponents(), TDXComponents()
	d := Doc{
		"id": tee, "version": 3, "issueDate": from.UTC().Format(time.RFC3339), "nextUpdate": to.UTC().Format(time.RFC3339),
		"fmspc": FMSPC, "pceId": PCEID, "tcbType": 0, "tcbEvaluationDataNumber": 17,
		"tcbLevels": []any{
			level("UpToDate", sgx[:], tdx[:], PCESVN, tcbDate(), []any{}),
			level("OutOfDate", zero, zero, 0, tcbDate().AddDate(-2, 0, 0), []any{"INTEL-SA-00837"}),
		},
	}
	if tee == "TDX" {
		signer := strings.Repeat("0", 96)
		d["tdxModule"] = map[string]any{"mrsigner": signer, "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF"}
		d["tdxModuleIdentities"] = []any{map[string]any{
			"id": fmt.Sprintf("TDX_%02X", ModuleVersion), "mrsigner": signer, "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF",
			"tcbLevels": []any{
				map[string]any{"tcb": map[string]any{"isvsvn": ModuleSVN}, "tcbDate": tcbDate().Format(time.RFC3339), "tcbStatus": "UpToDate"},
				map[string]any{"tcb": map[string]any{"isvsvn": 0}, "tcbDate": tcbDate().AddDate(-2, 0, 0).Format(time.RFC3339), "tcbStatus": "OutOfDate"},
			},
		}}
	}
	return d
}

// QEIdentity returns the identity document of the simulated quoting
// enclave ("TD_QE" for TDX, "QE" for SGX).
func QEIdentity(tee string, from, to time.Time) Doc {
	id, prod, signer := "QE", qeProdSGX, qeSigner()
	if tee == "TDX" {
		id, prod = "TD_QE", qeProdTDX
	}
	return Doc{
		"id": id, "version": 2, "issueDate": from.UTC().Format(time.RFC3339), "nextUpdate": to.UTC().Format(time.RFC3339),
		"tcbEvaluationDataNumber": 17, "miscselect": "00000000", "miscselectMask": "FFFFFFFF",
		"attributes": qeAttributes, "attributesMask": qeAttributesMask,
		"mrsigner": strings.ToUpper(hex.EncodeToString(signer[:])), "isvprodid": prod,
		"tcbLevels": []any{
			map[string]any{"tcb": map[string]any{"isvsvn": QESVN}, "tcbDate": tcbDate().Format(time.RFC3339), "tcbStatus": "UpToDate"},
			map[string]any{"tcb": map[string]any{"isvsvn": 0}, "tcbDate": tcbDate().AddDate(-2, 0, 0).Format(time.RFC3339), "tcbStatus": "OutOfDate"},
		},
	}
}

// Collateral returns a dcap-qvl collateral bundle for the simulated
// platform, every part signed by the simulated root's keys.
func (a *Authority) Collateral(o CollateralOptions, now time.Time) ([]byte, error) {
	if o.TEE != "TDX" && o.TEE != "SGX" {
		return nil, fmt.Errorf("intelsim: TEE %q, want TDX or SGX", o.TEE)
	}
	from, to := o.From, o.To
	if from.IsZero() {
		from = now.Add(-time.Hour)
	}
	if to.IsZero() {
		to = from.AddDate(0, 0, 30)
	}
	ti, qe := TCBInfo(o.TEE, from, to), QEIdentity(o.TEE, from, to)
	if o.Edit != nil {
		o.Edit(ti, qe)
	}
	tij, err := json.Marshal(ti)
	if err != nil {
		return nil, err
	}
	qej, err := json.Marshal(qe)
	if err != nil {
		return nil, err
	}
	tiSig, err := signRS(a.tcbKey, tij)
	if err != nil {
		return nil, err
	}
	qeSig, err := signRS(a.tcbKey, qej)
	if err != nil {
		return nil, err
	}
	if o.TamperTCBInfo {
		tij = []byte(strings.Replace(string(tij), `"version":3`, `"version":3 `, 1))
	}
	issuer, issuerKey, err := a.pckCRLIssuer(o.PCKCRLIssuer, now)
	if err != nil {
		return nil, err
	}
	pckCRL, err := a.crl(issuer, issuerKey, o.RevokedPCK, from, to)
	if err != nil {
		return nil, err
	}
	pckCRLChain := pemCerts(issuer, a.Root)
	if issuer == a.Root {
		pckCRLChain = pemCerts(a.Root)
	}
	rootCRL, err := a.crl(a.Root, a.rootKey, o.RevokedByRoot, from, to)
	if err != nil {
		return nil, err
	}
	signerChain := string(pemCerts(a.TCBSigner, a.Root))
	return json.MarshalIndent(map[string]string{
		"tcb_info": string(tij), "tcb_info_signature": hex.EncodeToString(tiSig), "tcb_info_issuer_chain": signerChain,
		"qe_identity": string(qej), "qe_identity_signature": hex.EncodeToString(qeSig), "qe_identity_issuer_chain": signerChain,
		"pck_crl": hex.EncodeToString(pckCRL), "pck_crl_issuer_chain": string(pckCRLChain),
		"root_ca_crl": hex.EncodeToString(rootCRL),
	}, "", "  ")
}

func (a *Authority) crl(issuer *x509.Certificate, key *ecdsa.PrivateKey, revoked []*big.Int, from, to time.Time) ([]byte, error) {
	var entries []x509.RevocationListEntry
	for _, s := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: from})
	}
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(from.Unix()), ThisUpdate: from, NextUpdate: to, RevokedCertificateEntries: entries,
	}, issuer, key)
}

// pckCRLIssuer is the CA whose CRL CollateralOptions.PCKCRLIssuer names.
func (a *Authority) pckCRLIssuer(which string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	var cn string
	switch which {
	case "":
		return a.PCKCA, a.caKey, nil
	case "root":
		return a.Root, a.rootKey, nil
	case "processor":
		cn = "Intel SGX PCK Processor CA"
	case "rekeyed":
		cn = a.PCKCA.Subject.CommonName
	default:
		return nil, nil, fmt.Errorf("intelsim: PCK CRL issuer %q", which)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: a.PCKCA.Subject, NotBefore: a.PCKCA.NotBefore, NotAfter: a.PCKCA.NotAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	tmpl.Subject.CommonName = cn
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Root, &k.PublicKey, a.rootKey)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, k, err
}
