package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// devTLS returns a server certificate for 127.0.0.1, ::1, localhost and
// *.localhost, issued by a development CA. The CA certificate is written to
// DIR/tls/ca.pem for clients to trust; its private key is kept sealed under
// the root (DIR/tls/ca-key.sealed), never in plaintext. The server key lives
// only in memory and is made anew at every start.
func devTLS(dir string, sealer interface {
	Seal(p, aad []byte) ([]byte, error)
	Open(c, aad []byte) ([]byte, error)
}, now time.Time) (*tls.Certificate, error) {
	tdir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return nil, err
	}
	caPath, keyPath := filepath.Join(tdir, "ca.pem"), filepath.Join(tdir, "ca-key.sealed")
	aad := []byte("kura/dev-tls-ca")
	var ca *x509.Certificate
	var caKey *ecdsa.PrivateKey
	caPEM, err1 := os.ReadFile(caPath)
	sealed, err2 := os.ReadFile(keyPath)
	if err1 == nil && err2 == nil {
		blk, _ := pem.Decode(caPEM)
		if blk == nil {
			return nil, fmt.Errorf("%s: no PEM certificate", caPath)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", caPath, err)
		}
		der, err := sealer.Open(sealed, aad)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", keyPath, err)
		}
		k, err := x509.ParseECPrivateKey(der)
		clear(der)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", keyPath, err)
		}
		ca, caKey = c, k
	} else if errors.Is(err1, os.ErrNotExist) || errors.Is(err2, os.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{CommonName: "kura development CA", Organization: []string{"kura (dev mode)"}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0),
			IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			return nil, err
		}
		if ca, err = x509.ParseCertificate(der); err != nil {
			return nil, err
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		s, err := sealer.Seal(kder, aad)
		clear(kder)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(keyPath, s, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return nil, err
		}
		caKey = k
	} else {
		return nil, fmt.Errorf("dev TLS CA: %w", errors.Join(err1, err2))
	}

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 3, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "*.localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: leafKey}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
