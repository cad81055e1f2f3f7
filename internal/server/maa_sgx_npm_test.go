package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest/intelsim"
	"github.com/kura-project/kura/internal/attest/sgx"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/evidence"
)

// sgxResult is what the npm client made of a token (sgx.mjs's result).
type sgxResult struct {
	Issuer, VerifierType, MrEnclave, MrSigner string
	IsDebuggable                              bool
	ProductID                                 float64 `json:"productId"`
	Svn                                       float64
	EnclaveHeldData                           *string
	RunTimeClaims                             map[string]any
	PolicyHash                                string
	TokenIssuer                               string
	Collateral                                map[string]any
}

// wantOf is what the client must read for quote q: its own fields.
func checkSGXResult(t *testing.T, name string, got sgxResult, q []byte) {
	t.Helper()
	p, err := sgx.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	r := p.Report
	if got.VerifierType != "sgx" || got.Issuer != kuraIssuer || got.TokenIssuer != kuraIssuer ||
		got.MrEnclave != hex.EncodeToString(r.MREnclave[:]) || got.MrSigner != hex.EncodeToString(r.MRSigner[:]) ||
		got.IsDebuggable != (r.Attributes[0]&2 != 0) || got.ProductID != float64(r.ISVProdID) || got.Svn != float64(r.ISVSVN) ||
		len(got.PolicyHash) != 64 {
		t.Errorf("%s: the client read %+v", name, got)
	}
}

// TestSgxWithNpmClient: Microsoft's @azure/attestation client attests SGX
// quotes (attestSgxEnclave) and an Open Enclave report (attestOpenEnclave)
// against kura with its own token validation against kura's signing
// certificates: simulated evidence with runtime JSON (x-ms-runtime) and
// binary runtime data (x-ms-sgx-ehd), every time check on; binary data the
// quote does not bind is refused; and a real SGX quote of the evidence
// set with its imported collateral, at the collateral's time (the token
// is issued then, so the client checks its signature and issuer, not its
// expiry).
func TestSgxWithNpmClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the npm interop test starts node")
	}
	dir := npmInstall(t)
	t.Run("simulated", func(t *testing.T) {
		l := startLive(t, issuerOpt)
		a, err := intelsim.Load(filepath.Join(l.dir, "sim"))
		if err != nil {
			t.Fatal(err)
		}
		runtimeJSON := `{"keys":[{"kid":"enclave-key","kty":"RSA","e":"AQAB","n":"AQAB"}]}`
		bin := []byte("enclave held data \x00\x01\x02")
		quote := func(data []byte, o intelsim.SGXOptions) []byte {
			sum := sha256.Sum256(data)
			copy(o.ReportData[:], sum[:])
			q, err := a.SGXQuote(o)
			if err != nil {
				t.Fatal(err)
			}
			return q
		}
		qJSON := quote([]byte(runtimeJSON), intelsim.SGXOptions{ProductID: 3, SVN: 9})
		qBin := quote(bin, intelsim.SGXOptions{Debug: true})
		oe := binary.LittleEndian.AppendUint32(nil, 1)
		oe = binary.LittleEndian.AppendUint32(oe, 2)
		oe = binary.LittleEndian.AppendUint64(oe, uint64(len(qJSON)))
		oe = append(oe, qJSON...)
		b64 := base64.StdEncoding.EncodeToString
		out := runScript(t, dir, "sgx.mjs", l, []string{"KURA_ISSUER=" + kuraIssuer, "NODE_EXTRA_CA_CERTS=" + filepath.Join(l.dir, "tls", "ca.pem"),
			"KURA_QUOTE=" + b64(qJSON), "KURA_RUNTIME_JSON=" + runtimeJSON, "KURA_QUOTE_BIN=" + b64(qBin), "KURA_RUNTIME_BIN=" + b64(bin),
			"KURA_OE_REPORT=" + b64(oe)})
		for _, c := range []struct {
			step  string
			quote []byte
		}{{"attestSgxEnclave", qJSON}, {"attestOpenEnclave", qJSON}} {
			var r sgxResult
			out[c.step].must(t, &r)
			checkSGXResult(t, c.step, r, c.quote)
			keys, _ := r.RunTimeClaims["keys"].([]any)
			if len(keys) != 1 || keys[0].(map[string]any)["kid"] != "enclave-key" || r.EnclaveHeldData != nil {
				t.Errorf("%s: runtime claims %v, ehd %v", c.step, r.RunTimeClaims, r.EnclaveHeldData)
			}
		}
		var r sgxResult
		out["attestSgxEnclaveBinary"].must(t, &r)
		checkSGXResult(t, "attestSgxEnclaveBinary", r, qBin)
		if r.EnclaveHeldData == nil || *r.EnclaveHeldData != hex.EncodeToString(bin) || !r.IsDebuggable {
			t.Errorf("binary runtime data: ehd %v, debuggable %v", r.EnclaveHeldData, r.IsDebuggable)
		}
		if s := out["attestSgxEnclaveUnbound"]; s.OK || s.Status != 400 || !strings.Contains(s.Error, "runtime") {
			t.Errorf("runtime data the quote does not bind: %+v", s)
		}
	})
	t.Run("real quote at its collateral's time", func(t *testing.T) {
		at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
		var caPath string
		l := startLiveAt(t, func() time.Time { return at }, issuerOpt, spanningTLS(t, &caPath))
		pool := x509.NewCertPool()
		if b, err := os.ReadFile(caPath); err != nil || !pool.AppendCertsFromPEM(b) {
			t.Fatalf("test CA: %v", err)
		}
		l.http.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
		req, _ := http.NewRequest("POST", l.url()+"/kura/v1/collateral", bytes.NewReader(evidence.Read(t, "sgx/dcap-qvl/sgx_quote_collateral.json")))
		req.Header.Set("Authorization", "Bearer "+l.admin)
		resp, err := l.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("collateral import: %d", resp.StatusCode)
		}
		q := evidence.Read(t, "sgx/dcap-qvl/sgx_quote")
		out := runScript(t, dir, "sgx.mjs", l, []string{"KURA_ISSUER=" + kuraIssuer, "NODE_EXTRA_CA_CERTS=" + caPath,
			"KURA_QUOTE=" + base64.StdEncoding.EncodeToString(q), "KURA_RECORDED_TIME=1"})
		var r sgxResult
		out["attestSgxEnclave"].must(t, &r)
		checkSGXResult(t, "real quote", r, q)
		if r.MrEnclave != "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" {
			t.Errorf("real quote: mrEnclave %s", r.MrEnclave)
		}
		if b, _ := json.Marshal(r.Collateral); !strings.Contains(string(b), "quotehash") {
			t.Errorf("real quote: x-ms-sgx-collateral %s", b)
		}
	})
}

// spanningTLS gives the server a TLS certificate valid from 2020 to 2040
// under a test CA (written to *caPath), so a server whose clock is pinned
// to recorded evidence's time is reachable from clients on today's clock.
func spanningTLS(t *testing.T, caPath *string) rigOpt {
	return func(c *config.Config) {
		from, to := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kura test CA"}, NotBefore: from, NotAfter: to,
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		ca, _ := x509.ParseCertificate(caDER)
		leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kura test server"}, NotBefore: from, NotAfter: to,
			DNSNames: []string{"localhost", "*.localhost", "kura.localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		leafDER, err := x509.CreateCertificate(rand.Reader, leafT, ca, &leafKey.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(leafKey)
		tdir := filepath.Join(c.DataDir, "tls")
		if err := os.MkdirAll(tdir, 0o700); err != nil {
			t.Fatal(err)
		}
		write := func(name string, b []byte) string {
			p := filepath.Join(tdir, name)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		*caPath = write("test-ca.pem", pemOf(caDER))
		c.TLSCert = write("server.pem", append(pemOf(leafDER), pemOf(caDER)...))
		c.TLSKey = write("server-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	}
}
