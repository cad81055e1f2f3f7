// Package acltest is a test helper: Azure Confidential Ledger's published
// receipt verification (ledger.md §2.2, the Python SDK's verify_receipt),
// written from that description over the receipt's JSON as ACL serves it,
// sharing no code with internal/ledger, so that kura's receipts are judged
// by an implementation that is not kura's.
package acltest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// Receipt is ACL's ReceiptContents.
type Receipt struct {
	Cert           string `json:"cert"`
	LeafComponents struct {
		ClaimsDigest   string `json:"claimsDigest"`
		CommitEvidence string `json:"commitEvidence"`
		WriteSetDigest string `json:"writeSetDigest"`
	} `json:"leafComponents"`
	NodeID              string              `json:"nodeId"`
	Proof               []map[string]string `json:"proof"`
	ServiceEndorsements []string            `json:"serviceEndorsements"`
	Signature           string              `json:"signature"`
}

// Verify checks receipt (ACL's JSON ReceiptContents) against the service
// certificate (PEM): the endorsement chain from the node certificate to
// it, the leaf from its components, the root from the proof (no RFC 6962
// prefixes), the node id, and the signature over the root as a SHA-256
// digest.
func Verify(receipt []byte, serviceCertPEM string) error {
	var r Receipt
	if err := json.Unmarshal(receipt, &r); err != nil {
		return fmt.Errorf("receipt JSON: %w", err)
	}
	node, err := parse(r.Cert)
	if err != nil {
		return fmt.Errorf("cert: %w", err)
	}
	pub, ok := node.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return errors.New("cert: not an EC key")
	}
	current := node
	for i, e := range append(append([]string{}, r.ServiceEndorsements...), serviceCertPEM) {
		c, err := parse(e)
		if err != nil {
			return fmt.Errorf("endorsement %d: %w", i, err)
		}
		if err := c.CheckSignature(current.SignatureAlgorithm, current.RawTBSCertificate, current.Signature); err != nil {
			return fmt.Errorf("endorsement %d does not sign the certificate below it: %w", i, err)
		}
		current = c
	}
	unhex := func(name, s string) ([]byte, error) {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("%s: not a hex SHA-256", name)
		}
		return b, nil
	}
	wsd, err := unhex("writeSetDigest", r.LeafComponents.WriteSetDigest)
	if err != nil {
		return err
	}
	claims, err := unhex("claimsDigest", r.LeafComponents.ClaimsDigest)
	if err != nil {
		return err
	}
	ce := sha256.Sum256([]byte(r.LeafComponents.CommitEvidence))
	leaf := sha256.Sum256(bytes.Join([][]byte{wsd, ce[:], claims}, nil))
	h := leaf[:]
	for i, p := range r.Proof {
		if len(p) != 1 {
			return fmt.Errorf("proof element %d: exactly one of left, right", i)
		}
		if l, ok := p["left"]; ok {
			b, err := unhex("proof", l)
			if err != nil {
				return err
			}
			s := sha256.Sum256(append(b, h...))
			h = s[:]
		} else if rt, ok := p["right"]; ok {
			b, err := unhex("proof", rt)
			if err != nil {
				return err
			}
			s := sha256.Sum256(append(append([]byte{}, h...), b...))
			h = s[:]
		} else {
			return fmt.Errorf("proof element %d: neither left nor right", i)
		}
	}
	if r.NodeID != "" {
		spki, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return err
		}
		id := sha256.Sum256(spki)
		if hex.EncodeToString(id[:]) != r.NodeID {
			return errors.New("nodeId is not the certificate's key")
		}
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	if !ecdsa.VerifyASN1(pub, h, sig) {
		return errors.New("the signature over the root does not verify")
	}
	return nil
}

func parse(p string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}
