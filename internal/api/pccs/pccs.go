// Package pccs serves Intel collateral cached in kura over the REST shape
// of Intel's Provisioning Certification Caching Service, API v4, so that
// DCAP quote providers and verifiers in guests can use kura as their
// caching service, as Azure's THIM serves them:
//
//	GET /sgx/certification/v4/tcb?fmspc=     TCB info (SGX)
//	GET /tdx/certification/v4/tcb?fmspc=     TCB info (TDX)
//	GET /sgx/certification/v4/qe/identity    QE identity
//	GET /tdx/certification/v4/qe/identity    TD_QE identity
//	GET /sgx/certification/v4/pckcrl?ca=platform|processor[&encoding=pem|der]
//	GET /sgx/certification/v4/rootcacrl      Intel SGX Root CA CRL (DER)
//
// Documents are served exactly as Intel signed them, with their signature
// and, in the response header Intel uses, their issuer chain
// (URL-escaped PEM). Only collateral that verifies now is served: kura
// never hands out what it would refuse itself. PCK certificates are not
// served (/pckcert answers 404): guests' quotes carry them.
package pccs

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/api/wire"
	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/intel"
)

// Source finds the current collateral of a platform (FMSPC, or
// intel.AnyPlatform) of one TEE.
type Source interface {
	Current(ctx context.Context, fmspc string, now time.Time, accept func(*intel.Collateral) bool) (*intel.Collateral, error)
}

// Handler serves the PCCS routes over one Source per TEE ("sgx", "tdx").
type Handler struct {
	Sources map[string]Source
	Now     func() time.Time
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	for _, tee := range []string{"sgx", "tdx"} {
		mux.HandleFunc("GET /"+tee+"/certification/v4/tcb", func(w http.ResponseWriter, r *http.Request) { h.tcb(w, r, tee) })
		mux.HandleFunc("GET /"+tee+"/certification/v4/qe/identity", func(w http.ResponseWriter, r *http.Request) { h.identity(w, r, tee) })
	}
	mux.HandleFunc("GET /sgx/certification/v4/pckcrl", h.pckCRL)
	mux.HandleFunc("GET /sgx/certification/v4/rootcacrl", h.rootCRL)
	mux.HandleFunc("GET /sgx/certification/v4/pckcert", func(w http.ResponseWriter, r *http.Request) {
		wire.Error(w, http.StatusNotFound, "NotFound", "kura serves no PCK certificates: the quote's certification data carries the PCK chain (certification data type 5)")
	})
}

var fmspcRE = regexp.MustCompile(`^[0-9A-Fa-f]{12}$`)

func (h *Handler) current(w http.ResponseWriter, r *http.Request, tee, fmspc string) *intel.Collateral {
	src := h.Sources[tee]
	if src == nil {
		wire.Error(w, http.StatusNotFound, "NotFound", fmt.Sprintf("this kura verifies no %s quotes", strings.ToUpper(tee)))
		return nil
	}
	c, err := src.Current(r.Context(), fmspc, h.Now(), nil)
	if err != nil {
		var un *attest.UnavailableError
		if errors.As(err, &un) {
			wire.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "reading the collateral store failed (request id "+wire.RequestID(w)+")")
			return nil
		}
		wire.Error(w, http.StatusNotFound, "NotFound", err.Error())
		return nil
	}
	return c
}

// tcb serves {"tcbInfo": <as signed>, "signature": hex} with the
// TCB-Info-Issuer-Chain header.
func (h *Handler) tcb(w http.ResponseWriter, r *http.Request, tee string) {
	fmspc := r.URL.Query().Get("fmspc")
	if !fmspcRE.MatchString(fmspc) {
		wire.Error(w, http.StatusBadRequest, "BadParameter", "fmspc: want 12 hex digits (6 bytes), got "+strconvQuote(fmspc))
		return
	}
	c := h.current(w, r, tee, strings.ToUpper(fmspc))
	if c == nil {
		return
	}
	signed(w, "tcbInfo", c.TCBInfo, c.TCBInfoSig, "TCB-Info-Issuer-Chain", c.TCBInfoChain)
}

// identity serves {"enclaveIdentity": <as signed>, "signature": hex} with
// the SGX-Enclave-Identity-Issuer-Chain header.
func (h *Handler) identity(w http.ResponseWriter, r *http.Request, tee string) {
	c := h.current(w, r, tee, intel.AnyPlatform)
	if c == nil {
		return
	}
	signed(w, "enclaveIdentity", c.QEIdentity, c.QEIdentitySig, "SGX-Enclave-Identity-Issuer-Chain", c.QEIdentityChain)
}

// pckCRL serves the CRL of the PCK CA named by ca, PEM (Intel's default)
// or DER, with the SGX-PCK-CRL-Issuer-Chain header. It is the same for
// SGX and TDX platforms; bundles of either TEE are searched.
func (h *Handler) pckCRL(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	want := map[string]string{"platform": "Intel SGX PCK Platform CA", "processor": "Intel SGX PCK Processor CA"}[strings.ToLower(q.Get("ca"))]
	if want == "" {
		wire.Error(w, http.StatusBadRequest, "BadParameter", "ca: want platform or processor, got "+strconvQuote(q.Get("ca")))
		return
	}
	enc := strings.ToLower(q.Get("encoding"))
	if enc != "" && enc != "pem" && enc != "der" {
		wire.Error(w, http.StatusBadRequest, "BadParameter", "encoding: want pem or der, got "+strconvQuote(q.Get("encoding")))
		return
	}
	c := h.anyTEE(w, r, func(c *intel.Collateral) bool {
		return len(c.PCKCRLChain) > 0 && c.PCKCRLChain[0].Subject.CommonName == want
	}, "no current CRL of the "+want+" is on file")
	if c == nil {
		return
	}
	w.Header()["SGX-PCK-CRL-Issuer-Chain"] = []string{chainHeader(c.PCKCRLChain)}
	if enc == "der" {
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(c.PCKCRL)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: c.PCKCRL}))
}

// rootCRL serves the Intel SGX Root CA CRL, DER.
func (h *Handler) rootCRL(w http.ResponseWriter, r *http.Request) {
	c := h.anyTEE(w, r, func(*intel.Collateral) bool { return true }, "no current Intel SGX Root CA CRL is on file")
	if c == nil {
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Write(c.RootCRL)
}

// anyTEE returns current collateral of either TEE that ok accepts,
// Intel's before another root's (a --dev server's simulator), or answers
// 404 with notFound.
func (h *Handler) anyTEE(w http.ResponseWriter, r *http.Request, ok func(*intel.Collateral) bool, notFound string) *intel.Collateral {
	var other *intel.Collateral
	root := intel.RootCert()
	for _, tee := range []string{"sgx", "tdx"} {
		src := h.Sources[tee]
		if src == nil {
			continue
		}
		c, err := src.Current(r.Context(), intel.AnyPlatform, h.Now(), ok)
		var un *attest.UnavailableError
		if errors.As(err, &un) {
			wire.Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "reading the collateral store failed (request id "+wire.RequestID(w)+")")
			return nil
		}
		if err != nil {
			continue
		}
		if ch := c.PCKCRLChain; len(ch) > 0 && ch[len(ch)-1].Equal(root) {
			return c
		}
		if other == nil {
			other = c
		}
	}
	if other == nil {
		wire.Error(w, http.StatusNotFound, "NotFound", notFound)
	}
	return other
}

// signed writes {"<member>": doc, "signature": hex(sig)}, doc byte for
// byte as Intel signed it, and the issuer chain header.
func signed(w http.ResponseWriter, member string, doc, sig []byte, header string, chain []*x509.Certificate) {
	// Intel's exact spelling, not Go's canonical form: some clients look
	// the name up case-sensitively.
	w.Header()[header] = []string{chainHeader(chain)}
	w.Header().Set("Content-Type", "application/json")
	body := make([]byte, 0, len(doc)+len(sig)*2+40)
	body = append(body, `{"`+member+`":`...)
	body = append(body, doc...)
	body = append(body, `,"signature":"`+hex.EncodeToString(sig)+`"}`...)
	w.Write(body)
}

// chainHeader is a PEM chain URL-escaped as Intel's PCS sends it: space
// as %20 and + as %2B, so path and query unescaping both read it.
func chainHeader(chain []*x509.Certificate) string {
	var b []byte
	for _, c := range chain {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return strings.ReplaceAll(url.QueryEscape(string(b)), "+", "%20")
}

func strconvQuote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", s)
}
