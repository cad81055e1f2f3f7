package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
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
}, now time.Time) (*tls.Certificate, *issuer, error) {
	tdir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return nil, nil, err
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
			return nil, nil, fmt.Errorf("%s: no PEM certificate", caPath)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", caPath, err)
		}
		der, err := sealer.Open(sealed, aad)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
		}
		k, err := x509.ParseECPrivateKey(der)
		clear(der)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
		}
		ca, caKey = c, k
	} else if errors.Is(err1, os.ErrNotExist) || errors.Is(err2, os.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{CommonName: "kura development CA", Organization: []string{"kura (dev mode)"}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0),
			IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			return nil, nil, err
		}
		if ca, err = x509.ParseCertificate(der); err != nil {
			return nil, nil, err
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, nil, err
		}
		s, err := sealer.Seal(kder, aad)
		clear(kder)
		if err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(keyPath, s, 0o600); err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return nil, nil, err
		}
		caKey = k
	} else {
		return nil, nil, fmt.Errorf("dev TLS CA: %w", errors.Join(err1, err2))
	}

	iss := &issuer{ca: ca, key: caKey, dns: []string{"localhost", "*.localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	chain, err := iss.certify(&leafKey.PublicKey, now)
	if err != nil {
		return nil, nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{chain[0].Raw, ca.Raw}, PrivateKey: leafKey}, iss, nil
}

// issuer issues server certificates for the names the server is reached
// under: the TLS certificate and the certificate that signs release answers,
// which Microsoft's SKR clients check against the vault's host.
type issuer struct {
	ca       *x509.Certificate
	tail     []*x509.Certificate // sent after the leaf: ca, then its issuers if known
	key      crypto.Signer
	dns      []string
	ips      []net.IP
	lifetime time.Duration // default 90 days
}

func (i *issuer) certify(pub crypto.PublicKey, now time.Time) ([]*x509.Certificate, error) {
	if !now.Before(i.ca.NotAfter) {
		return nil, fmt.Errorf("the CA %q expired on %s: renew it", i.ca.Subject.CommonName, i.ca.NotAfter.UTC().Format(time.RFC3339))
	}
	life := i.lifetime
	if life == 0 {
		life = 90 * 24 * time.Hour
	}
	notAfter := now.Add(life)
	if notAfter.After(i.ca.NotAfter) {
		notAfter = i.ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: i.commonName()},
		NotBefore: now.Add(-time.Hour), NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    i.dns,
		IPAddresses: i.ips,
	}
	if _, ok := pub.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.ca, pub, i.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	tail := i.tail
	if len(tail) == 0 {
		tail = []*x509.Certificate{i.ca}
	}
	return append([]*x509.Certificate{leaf}, tail...), nil
}

func (i *issuer) commonName() string {
	if len(i.dns) > 0 {
		return i.dns[0]
	}
	if len(i.ips) > 0 {
		return i.ips[0].String()
	}
	return "kura"
}

// releaseIssuer loads the CA that certifies the release signing key outside
// --dev (release_ca_cert, release_ca_key): an intermediate under the CA of
// the TLS certificate, whose names (DNS and IP) the issued certificates
// carry.
func releaseIssuer(certFile, keyFile string, tlsCert *tls.Certificate) (*issuer, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("release CA: %w", err)
	}
	var tail []*x509.Certificate
	for _, der := range pair.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("release CA %s: %w", certFile, err)
		}
		tail = append(tail, c)
	}
	ca := tail[0]
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("release CA %s: not a CA certificate (basic constraints CA and key usage certSign are needed)", certFile)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("release CA %s: the key cannot sign", keyFile)
	}
	if time.Now().After(ca.NotAfter) {
		return nil, fmt.Errorf("release CA %s expired on %s", certFile, ca.NotAfter.UTC().Format(time.RFC3339))
	}
	leaf, err := x509.ParseCertificate(tlsCert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	if len(leaf.DNSNames) == 0 && len(leaf.IPAddresses) == 0 {
		return nil, errors.New("release CA: the TLS certificate names no DNS or IP subject alternative name to issue the release certificate for")
	}
	return &issuer{ca: ca, tail: tail, key: key, dns: leaf.DNSNames, ips: leaf.IPAddresses}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
