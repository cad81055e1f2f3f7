package intel

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"sort"
)

// Intel's certificate names, as its PCS issues them.
const (
	cnRoot      = "Intel SGX Root CA"
	cnTCB       = "Intel SGX TCB Signing"
	cnPlatform  = "Intel SGX PCK Platform CA"
	cnProcessor = "Intel SGX PCK Processor CA"
)

// pcsFile is what one file holds of Intel's PCS answers.
type pcsFile struct {
	tcbInfo, tcbSig []byte // {"tcbInfo": ..., "signature": ...}
	idDoc, idSig    []byte // {"enclaveIdentity": ..., "signature": ...}
	certs           []*x509.Certificate
	crls            []*x509.RevocationList
}

// readPCSFile classifies one file: a TCB info or enclave identity answer,
// or Intel certificates and CRLs (PEM, several allowed, or DER). ok is
// false for anything else (another vendor's certificate, a bundle).
func readPCSFile(b []byte) (f pcsFile, ok bool) {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '{' {
		if doc, sig, err := ParsePCSSigned(t, "tcbInfo"); err == nil {
			return pcsFile{tcbInfo: doc, tcbSig: sig}, true
		}
		if doc, sig, err := ParsePCSSigned(t, "enclaveIdentity"); err == nil {
			return pcsFile{idDoc: doc, idSig: sig}, true
		}
		return f, false
	}
	add := func(der []byte, typ string) bool {
		if typ != "X509 CRL" {
			if c, err := x509.ParseCertificate(der); err == nil {
				switch c.Subject.CommonName {
				case cnRoot, cnTCB, cnPlatform, cnProcessor:
					f.certs = append(f.certs, c)
					return true
				}
				return false
			}
		}
		if l, err := x509.ParseRevocationList(der); err == nil {
			switch l.Issuer.CommonName {
			case cnRoot, cnPlatform, cnProcessor:
				f.crls = append(f.crls, l)
				return true
			}
		}
		return false
	}
	if bytes.Contains(t, []byte("-----BEGIN")) {
		rest := t
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if !add(blk.Bytes, blk.Type) {
				return pcsFile{}, false
			}
		}
		return f, len(f.certs)+len(f.crls) > 0
	}
	return f, add(t, "")
}

// AssemblePCS builds collateral bundles from files holding Intel's PCS
// answers as Intel serves them: TCB info and enclave identity answers
// ({"tcbInfo"|"enclaveIdentity": ..., "signature": hex}), and the
// certificates and CRLs of the issuer-chain headers and CRL routes (TCB
// Signing certificate, PCK CA certificates, PCK CRLs, the root CA CRL;
// PEM or DER). Each TCB info becomes one bundle per PCK CRL, with the
// enclave identity of its TEE. used lists the files (by index) taken;
// the others are left to other importers. Nothing is verified here; the
// importer verifies each bundle.
func AssemblePCS(files [][]byte) (bundles [][]byte, used []int, err error) {
	var tcbs, ids []pcsFile
	certs := map[string]*x509.Certificate{}
	var pckCRLs []*x509.RevocationList
	var rootCRL *x509.RevocationList
	for i, b := range files {
		f, ok := readPCSFile(b)
		if !ok {
			continue
		}
		used = append(used, i)
		switch {
		case f.tcbInfo != nil:
			tcbs = append(tcbs, f)
		case f.idDoc != nil:
			ids = append(ids, f)
		}
		for _, c := range f.certs {
			certs[c.Subject.CommonName] = c
		}
		for _, l := range f.crls {
			if l.Issuer.CommonName == cnRoot {
				rootCRL = l
			} else {
				pckCRLs = append(pckCRLs, l)
			}
		}
	}
	if len(tcbs) == 0 {
		if len(used) > 0 && len(ids) > 0 {
			return nil, nil, fmt.Errorf("intel PCS answers: an enclave identity without a TCB info: import them together")
		}
		return nil, nil, nil // nothing of Intel's PCS here: other importers' files
	}
	root := certs[cnRoot]
	if root == nil {
		root = RootCert()
	}
	signer := certs[cnTCB]
	switch {
	case signer == nil:
		return nil, nil, fmt.Errorf("intel PCS answers: no %s certificate among the files (Intel sends it in the TCB-Info-Issuer-Chain header: save it as PEM)", cnTCB)
	case rootCRL == nil:
		return nil, nil, fmt.Errorf("intel PCS answers: no %s CRL among the files (GET /sgx/certification/v4/rootcacrl)", cnRoot)
	case len(pckCRLs) == 0:
		return nil, nil, fmt.Errorf("intel PCS answers: no PCK CRL among the files (GET /sgx/certification/v4/pckcrl?ca=platform|processor)")
	}
	pemOf := func(cs ...*x509.Certificate) string {
		var out []byte
		for _, c := range cs {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		return string(out)
	}
	for _, t := range tcbs {
		var head struct {
			ID, FMSPC string
		}
		if err := json.Unmarshal(t.tcbInfo, &head); err != nil {
			return nil, nil, fmt.Errorf("intel PCS answers: TCB info: %w", err)
		}
		want := map[string]string{"TDX": "TD_QE", "SGX": "QE"}[head.ID]
		var id *pcsFile
		for i := range ids {
			var ih struct{ ID string }
			if json.Unmarshal(ids[i].idDoc, &ih) == nil && ih.ID == want {
				id = &ids[i]
			}
		}
		if id == nil {
			return nil, nil, fmt.Errorf("intel PCS answers: the %s TCB info for FMSPC %s needs the %s identity (GET /%s/certification/v4/qe/identity) among the files", head.ID, head.FMSPC, want, map[string]string{"TDX": "tdx", "SGX": "sgx"}[head.ID])
		}
		for _, l := range pckCRLs {
			ca := certs[l.Issuer.CommonName]
			if ca == nil {
				return nil, nil, fmt.Errorf("intel PCS answers: no %s certificate among the files for its CRL (Intel sends it in the SGX-PCK-CRL-Issuer-Chain header: save it as PEM)", l.Issuer.CommonName)
			}
			b, err := json.Marshal(map[string]string{
				"tcb_info": string(t.tcbInfo), "tcb_info_signature": hex.EncodeToString(t.tcbSig), "tcb_info_issuer_chain": pemOf(signer, root),
				"qe_identity": string(id.idDoc), "qe_identity_signature": hex.EncodeToString(id.idSig), "qe_identity_issuer_chain": pemOf(signer, root),
				"pck_crl": hex.EncodeToString(l.Raw), "pck_crl_issuer_chain": pemOf(ca, root), "root_ca_crl": hex.EncodeToString(rootCRL.Raw),
			})
			if err != nil {
				return nil, nil, err
			}
			bundles = append(bundles, b)
		}
	}
	sort.Ints(used)
	return bundles, used, nil
}
