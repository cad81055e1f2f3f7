package intelsim

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File is where an authority is saved in its directory: certificates and
// keys as PEM blocks, each with a Role header.
const File = "intel-authority.pem"

var roles = []string{"root", "pck-ca", "pck", "tcb-signing", "attestation-key"}

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

// Save writes the authority to dir/File (mode 0600, dir 0700).
func (a *Authority) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	certs := []*x509.Certificate{a.Root, a.PCKCA, a.PCK, a.TCBSigner, nil}
	keys := []*ecdsa.PrivateKey{a.rootKey, a.caKey, a.pckKey, a.tcbKey, a.akKey}
	var out []byte
	for i, role := range roles {
		h := map[string]string{"Role": role}
		if c := certs[i]; c != nil {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: h, Bytes: c.Raw})...)
		}
		der, err := x509.MarshalPKCS8PrivateKey(keys[i])
		if err != nil {
			return err
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: h, Bytes: der})...)
	}
	tmp := filepath.Join(dir, File+".tmp")
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, File))
}

// Load reads an authority saved by Save.
func Load(dir string) (*Authority, error) {
	b, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		return nil, err
	}
	certs := map[string]*x509.Certificate{}
	keys := map[string]*ecdsa.PrivateKey{}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		role := blk.Headers["Role"]
		switch blk.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("simulated Intel authority %s: %s certificate: %w", dir, role, err)
			}
			certs[role] = c
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("simulated Intel authority %s: %s key: %w", dir, role, err)
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("simulated Intel authority %s: %s key is a %T, not an ECDSA key", dir, role, k)
			}
			keys[role] = ek
		}
	}
	a := &Authority{Root: certs["root"], PCKCA: certs["pck-ca"], PCK: certs["pck"], TCBSigner: certs["tcb-signing"],
		rootKey: keys["root"], caKey: keys["pck-ca"], pckKey: keys["pck"], tcbKey: keys["tcb-signing"], akKey: keys["attestation-key"]}
	if a.Root == nil || a.PCKCA == nil || a.PCK == nil || a.TCBSigner == nil || a.rootKey == nil || a.caKey == nil || a.pckKey == nil || a.tcbKey == nil || a.akKey == nil {
		return nil, fmt.Errorf("simulated Intel authority %s: %s lacks a certificate or key", dir, File)
	}
	for _, role := range roles[:4] {
		if !keys[role].PublicKey.Equal(certs[role].PublicKey) {
			return nil, fmt.Errorf("simulated Intel authority %s: the %s key is not its certificate's", dir, role)
		}
	}
	return a, nil
}
