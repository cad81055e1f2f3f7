package attest

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// ParseCertificates parses one DER certificate or a PEM bundle of them with
// parse (nil: x509.ParseCertificate). It refuses more than max PEM blocks
// (0: no limit) before parsing any, so a request cannot make the server
// parse more certificates than a chain holds; chain names what a full chain
// is, for that error.
func ParseCertificates(data []byte, parse func([]byte) (*x509.Certificate, error), max int, chain string) ([]*x509.Certificate, error) {
	if parse == nil {
		parse = x509.ParseCertificate
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("no certificate data")
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN")) {
		c, err := parse(data)
		if err != nil {
			return nil, fmt.Errorf("parse DER certificate: %w", err)
		}
		return []*x509.Certificate{c}, nil
	}
	if n := bytes.Count(data, []byte("-----BEGIN")); max > 0 && n > max {
		return nil, fmt.Errorf("%d PEM blocks; at most %d (%s)", n, max, chain)
	}
	var out []*x509.Certificate
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n, blk.Type)
		}
		c, err := parse(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM certificate %d: %w", n, err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(data)) != 0 {
		return nil, fmt.Errorf("trailing data after the last PEM certificate")
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	return out, nil
}
