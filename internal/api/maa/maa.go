// Package maa is the Microsoft Azure Attestation–compatible HTTP surface:
// routes, request and response bodies, and MAA's error format. It translates
// the wire to internal/attest/appraisal and back, and nothing else.
package maa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/api/wire"
	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/appraisal"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/token"
	"github.com/kura-project/kura/internal/wirejson"
)

// APIVersions are the api-version values accepted.
var APIVersions = []string{"2020-10-01", "2022-08-01", "2025-06-01"}

// Keyring is what the API needs from the token keyring.
type Keyring interface {
	Issue(claims map[string]any) (string, error)
	Published() []token.Published
	Issuer() string
	Alg() token.Alg
}

// Handler serves the MAA surface.
type Handler struct {
	Service  *appraisal.Service
	Keys     Keyring
	Policies *PolicyStore
	// Authorize checks that the request carries administrator rights and
	// names the administrator for the audit log; policy routes require it.
	// A fault.Denied error (a valid caller without the rights) answers 403,
	// any other 401.
	Authorize func(r *http.Request) (actor string, err error)
	Log       *slog.Logger
	Now       func() time.Time // checks the exp and nbf of certificate requests; nil: time.Now

	// bodies recycles attest request buffers (~8 KiB each): at thousands
	// of requests a second they are a good part of the collector's work.
	bodies sync.Pool
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /attest/{type}", h.attest)
	mux.HandleFunc("GET /certs", h.certs)
	mux.HandleFunc("GET /.well-known/openid-configuration", h.openid)
	mux.HandleFunc("GET /policies/{type}", h.getPolicy)
	mux.HandleFunc("PUT /policies/{type}", h.setPolicy)
	mux.HandleFunc("POST /policies/{typeop}", h.resetPolicy)
	mux.HandleFunc("GET /certificates", h.getCertificates)
	mux.HandleFunc("POST /certificates:add", h.addCertificate)
	mux.HandleFunc("POST /certificates:remove", h.removeCertificate)
}

// Error writes MAA's error body {"error":{"code","message"}} with the
// x-ms-error-code header.
func Error(w http.ResponseWriter, status int, code, msg string) { wire.Error(w, status, code, msg) }

// writeJSON answers with a Content-Length, so tokens larger than net/http's
// chunking threshold are not chunked.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		Error(w, http.StatusInternalServerError, "InternalError", "encoding the answer failed")
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// checkAPIVersion answers 400 unless api-version is one kura speaks.
func checkAPIVersion(w http.ResponseWriter, r *http.Request) bool {
	if err := wire.APIVersion(r, APIVersions); err != nil {
		e, _ := fault.As(err)
		Error(w, http.StatusBadRequest, e.Code, e.Public())
		return false
	}
	return true
}

// readBody reads the whole body; the server's limit turns an oversized body
// into a 413 here.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := readInto(r, nil)
	if err != nil {
		bodyError(w, err)
		return nil, false
	}
	return b, true
}

func bodyError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		Error(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", fmt.Sprintf("request body exceeds the limit of %d bytes", mbe.Limit))
		return
	}
	Error(w, http.StatusBadRequest, "InvalidRequest", "reading the request body failed: "+err.Error())
}

// readInto reads the body into buf (reused when large enough), sized by the
// announced length for ordinary bodies instead of io.ReadAll's doubling.
// Larger announcements are not trusted for an up-front allocation (a client
// could announce megabytes and send nothing): those grow as data arrives,
// still bounded by the server's MaxBytesReader.
func readInto(r *http.Request, buf []byte) ([]byte, error) {
	if n := r.ContentLength; n > 0 && n <= 64<<10 {
		b := buf[:0]
		if int64(cap(b)) < n+1 {
			b = make([]byte, n+1)
		}
		b = b[:n+1] // one spare byte: a body longer than announced reads into it
		m, err := io.ReadFull(r.Body, b)
		switch {
		case err == io.ErrUnexpectedEOF:
			return b[:m], nil
		case err != nil:
			return nil, err
		}
		rest, err := io.ReadAll(r.Body)
		return append(b, rest...), err
	}
	b := bytes.NewBuffer(buf[:0])
	_, err := b.ReadFrom(r.Body)
	return b.Bytes(), err
}

// wireData is RuntimeData / InitTimeData on the wire.
type wireData struct {
	Data     string `json:"data"`
	DataType string `json:"dataType"`
}

// attestRequest is the union of the attest bodies kura accepts.
type attestRequest struct {
	Report      string          `json:"report"`
	Quote       string          `json:"quote"`
	RuntimeData *wireData       `json:"runtimeData"`
	InitTime    *wireData       `json:"initTimeData"`
	Nonce       json.RawMessage `json:"nonce"`
	DraftPolicy string          `json:"draftPolicyForAttestation"`
}

// decodeFast decodes the common shape of an attest body without
// encoding/json's per-byte scan of the long base64 members. Anything it does
// not recognise (unknown or mistyped members, escapes, nulls) returns
// ok=false and goes to encoding/json, which also words the errors.
func decodeFast(body []byte) (attestRequest, bool) {
	var in attestRequest
	ms, ok := wirejson.Members(body)
	if !ok {
		return in, false
	}
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		// Member names are ASCII here, so lower-casing matches
		// encoding/json's case-insensitive field matching. Repeated
		// members go to encoding/json, whose merge rules decide them.
		key := strings.ToLower(m.Key)
		if seen[key] {
			return in, false
		}
		seen[key] = true
		switch key {
		case "report", "quote", "draftpolicyforattestation":
			if m.Kind != wirejson.String {
				return in, false
			}
			switch strings.ToLower(m.Key) {
			case "report":
				in.Report = string(m.Value)
			case "quote":
				in.Quote = string(m.Value)
			default:
				in.DraftPolicy = string(m.Value)
			}
		case "runtimedata", "inittimedata":
			if m.Kind != wirejson.Object {
				return in, false
			}
			d := &wireData{}
			dec := json.NewDecoder(bytes.NewReader(m.Value))
			dec.DisallowUnknownFields()
			if dec.Decode(d) != nil {
				return in, false
			}
			if strings.ToLower(m.Key) == "runtimedata" {
				in.RuntimeData = d
			} else {
				in.InitTime = d
			}
		case "nonce":
			if m.Kind == wirejson.String {
				in.Nonce = json.RawMessage(`"` + string(m.Value) + `"`)
			} else if m.Kind == wirejson.Number {
				in.Nonce = json.RawMessage(m.Value)
			} else {
				return in, false
			}
		default:
			return in, false
		}
	}
	return in, true
}

// DecodeRequest turns an attest body into a domain request for the TEE
// module m (its type and evidence member). It is exported so `kura attest
// verify` decodes recorded bodies exactly as the server does.
func DecodeRequest(m attest.Module, body []byte) (appraisal.Request, error) {
	typ := m.Type
	var req appraisal.Request
	in, ok := decodeFast(body)
	if !ok {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return req, attest.BadWrap("body", jsonErr(err, body), "not a valid %s request", typ)
		}
		if dec.More() {
			return req, attest.Bad("body", "trailing data after the JSON object")
		}
	}
	req.Type = typ
	// MAA's bodies carry evidence in one of these members; the module says
	// which is its own.
	field := m.Member
	var evidence string
	switch field {
	case "report":
		evidence = in.Report
	case "quote":
		evidence = in.Quote
	default:
		return req, fmt.Errorf("attestation type %s: evidence member %q is not one of the MAA request members (report, quote)", typ, field)
	}
	if evidence == "" {
		return req, attest.Bad(field, "missing")
	}
	ev, err := attest.DecodeBase64(evidence)
	if err != nil {
		return req, attest.BadWrap(field, err, "not base64")
	}
	if len(ev) == 0 {
		return req, attest.Bad(field, "empty")
	}
	req.Evidence = ev
	if req.RuntimeData, err = decodeData("runtimeData", in.RuntimeData); err != nil {
		return req, err
	}
	if req.InitTimeData, err = decodeData("initTimeData", in.InitTime); err != nil {
		return req, err
	}
	if req.Nonce, err = decodeNonce(in.Nonce); err != nil {
		return req, err
	}
	req.DraftPolicy = in.DraftPolicy
	return req, nil
}

// jsonErr adds the byte offset of a JSON syntax error.
func jsonErr(err error, body []byte) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w (at byte %d)", err, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: %s is not a %s (at byte %d)", te.Field, te.Value, te.Type, te.Offset)
	}
	if errors.Is(err, io.EOF) && len(bytes.TrimSpace(body)) == 0 {
		return errors.New("empty body")
	}
	return err
}

func decodeData(name string, d *wireData) (*appraisal.Data, error) {
	if d == nil {
		return nil, nil
	}
	out := &appraisal.Data{}
	switch strings.ToLower(d.DataType) {
	case "", "binary":
	case "json":
		out.JSON = true
	default:
		return nil, attest.Bad(name+".dataType", "%q is neither Binary nor JSON", d.DataType)
	}
	b, err := attest.DecodeBase64(d.Data)
	if err != nil {
		return nil, attest.BadWrap(name+".data", err, "not base64")
	}
	out.Bytes = b
	return out, nil
}

// decodeNonce accepts a string or a JSON number (the Confidential ACI sidecar
// sends a uint64); the token echoes it as a string.
func decodeNonce(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if len(s) > 1024 {
			return "", attest.Bad("nonce", "longer than 1024 characters")
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		if len(n) > 1024 {
			return "", attest.Bad("nonce", "longer than 1024 characters")
		}
		return n.String(), nil
	}
	return "", attest.Bad("nonce", "must be a string or a number")
}

func (h *Handler) attest(w http.ResponseWriter, r *http.Request) {
	if !checkAPIVersion(w, r) {
		return
	}
	m, ok := h.Service.Lookup(r.PathValue("type"))
	if !ok {
		Error(w, http.StatusBadRequest, "InvalidAttestationType", fmt.Sprintf("attestation type %q is not supported by this instance", r.PathValue("type")))
		return
	}
	buf, _ := h.bodies.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	body, err := readInto(r, *buf)
	if err != nil {
		h.bodies.Put(buf)
		bodyError(w, err)
		return
	}
	// DecodeRequest copies what it keeps (strings, decoded evidence), so the
	// buffer can go back before the request is appraised.
	req, err := DecodeRequest(m, body)
	if cap(body) <= 1<<20 {
		*buf = body[:0]
		h.bodies.Put(buf)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	tok, err := h.Service.Attest(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeToken(w, tok)
}

// writeToken answers {"token": tok}. A compact JWS is base64url and dots,
// which JSON carries unescaped, so the answer is assembled directly rather
// than through encoding/json (a measurable share of a request's CPU).
func writeToken(w http.ResponseWriter, tok string) {
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			writeJSON(w, http.StatusOK, map[string]string{"token": tok})
			return
		}
	}
	b := make([]byte, 0, len(tok)+13)
	b = append(b, `{"token":"`...)
	b = append(b, tok...)
	b = append(b, "\"}\n"...)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// fail maps domain errors to MAA's status codes and error codes.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ev *attest.EvidenceError
	var pd *attest.PolicyDeniedError
	var un *attest.UnavailableError
	fe, isFault := fault.As(err)
	switch {
	case isFault && fe.Kind != fault.Internal && fe.Kind != fault.Unavailable:
		Error(w, wire.Status(fe.Kind), map[fault.Kind]string{fault.BadInput: "InvalidParameter", fault.NotFound: "NotFound", fault.Conflict: "Conflict", fault.Denied: "Forbidden"}[fe.Kind], fe.Public())
	case isFault && fe.Kind == fault.Unavailable:
		h.log().ErrorContext(r.Context(), "attestation dependency failed", "err", err, "request_id", wire.RequestID(w))
		Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", fe.Public()+" (request id "+wire.RequestID(w)+")")
	case errors.As(err, &ev):
		Error(w, http.StatusBadRequest, "InvalidParameter", err.Error())
	case errors.As(err, &pd):
		Error(w, http.StatusBadRequest, "PolicyEvaluationError", err.Error())
	case errors.As(err, &un), errors.Is(err, context.DeadlineExceeded):
		// The detail (store errors, upstream URLs) stays in the log.
		h.log().ErrorContext(r.Context(), "attestation dependency failed", "err", err, "request_id", w.Header().Get("x-ms-request-id"))
		Error(w, http.StatusServiceUnavailable, "ServiceUnavailable", "a dependency of the attestation service is unavailable; retry later (request id "+w.Header().Get("x-ms-request-id")+")")
	default:
		h.log().ErrorContext(r.Context(), "attestation failed", "err", err, "request_id", w.Header().Get("x-ms-request-id"))
		Error(w, http.StatusInternalServerError, "InternalError", "internal error (request id "+w.Header().Get("x-ms-request-id")+")")
	}
}

func (h *Handler) log() *slog.Logger {
	if h.Log == nil {
		return slog.Default()
	}
	return h.Log
}

func (h *Handler) certs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, wire.JWKS(h.Keys.Published()))
}

func (h *Handler) openid(w http.ResponseWriter, r *http.Request) {
	iss := h.Keys.Issuer()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"jwks_uri":                              iss + "/certs",
		"id_token_signing_alg_values_supported": []string{string(h.Keys.Alg())},
		"response_types_supported":              []string{"token", "none"},
		"claims_supported":                      []string{"x-ms-attestation-type", "x-ms-policy-hash", "x-ms-runtime", "x-ms-inittime", "x-ms-ver", "nonce"},
	})
}
