// Package appraisal is the attestation service's decision path: verify the
// evidence with its TEE's verifier, check the runtime and init-time data
// bindings, evaluate the MAA appraisal policy, and build (and sign) the
// token's claims. The HTTP API and `kura attest verify` both call it, so an
// auditor re-checking recorded evidence runs exactly the service's code.
package appraisal

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/policy/maa"
)

// Data is runtime or init-time data sent with evidence.
type Data struct {
	Bytes []byte
	JSON  bool // dataType JSON: the bytes are UTF-8 JSON and become claims
}

// Request is one attestation request, independent of its wire format.
type Request struct {
	Type         string // canonical attestation type, e.g. "SevSnpVm"
	Evidence     []byte
	RuntimeData  *Data
	InitTimeData *Data
	Nonce        string
	DraftPolicy  string // evaluate this policy text instead of the stored one; the token is unsigned
}

// Policies returns the appraisal policy text for an attestation type.
type Policies interface {
	PolicyText(ctx context.Context, typ string) (string, error)
}

// Signer signs token claims.
type Signer interface {
	Issue(claims map[string]any) (string, error)
}

// Service verifies evidence, appraises it and issues tokens.
type Service struct {
	tees     map[string]attest.Built // by canonical type
	lookup   map[string]string       // lower-cased type → canonical
	policies Policies
	signer   Signer
	now      func() time.Time

	mu     sync.Mutex
	parsed map[[32]byte]*maa.Policy // parsed policies by SHA-256 of their text

	// Observe, when set, is told the verdict of each Attest: the type
	// (canonical, or "unknown") and one of the Verdict values. Set it
	// before serving.
	Observe func(tee string, v Verdict)
}

// Verdict is how an attestation ended, as metrics count it.
type Verdict string

const (
	Accepted        Verdict = "accepted"
	RefusedEvidence Verdict = "refused_evidence" // the evidence did not verify or bind
	RefusedPolicy   Verdict = "refused_policy"   // the appraisal policy denied it
	Failed          Verdict = "error"            // kura could not decide (store or collateral service down, a signing failure)
)

// VerdictOf classifies an Attest error.
func VerdictOf(err error) Verdict {
	var pd *attest.PolicyDeniedError
	var ee *attest.EvidenceError
	switch {
	case err == nil:
		return Accepted
	case errors.As(err, &pd):
		return RefusedPolicy
	case errors.As(err, &ee), fault.Of(err) == fault.BadInput:
		return RefusedEvidence
	}
	return Failed // kura could not decide: a dependency, or kura itself
}

// parse returns the parsed policy, parsing each distinct text once.
func (s *Service) parse(text string) (*maa.Policy, error) {
	key := sha256.Sum256([]byte(text))
	s.mu.Lock()
	p := s.parsed[key]
	s.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := maa.Parse(text)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.parsed) >= 64 {
		clear(s.parsed)
	}
	s.parsed[key] = p
	s.mu.Unlock()
	return p, nil
}

// NewService assembles a Service over the built TEEs (attest.Registry.Build).
func NewService(tees map[string]attest.Built, policies Policies, signer Signer, now func() time.Time) *Service {
	lookup := make(map[string]string, len(tees))
	for t := range tees {
		lookup[strings.ToLower(t)] = t
	}
	return &Service{tees: tees, lookup: lookup, policies: policies, signer: signer, now: now, parsed: map[[32]byte]*maa.Policy{}}
}

// Lookup returns the module of an attestation type this service verifies,
// matched without regard to case.
func (s *Service) Lookup(typ string) (attest.Module, bool) {
	t, ok := s.tees[s.lookup[strings.ToLower(typ)]]
	return t.Module, ok
}

// Outcome is the result of Appraise: the claims a token would carry.
type Outcome struct {
	Verified *attest.Verified
	Claims   map[string]any
}

// Appraise verifies a request at time at and evaluates the policy, without
// signing. It is the whole decision: `kura attest verify` prints its claims,
// the HTTP path signs them.
func (s *Service) Appraise(ctx context.Context, req Request, at time.Time) (*Outcome, error) {
	tee, ok := s.tees[req.Type]
	if !ok {
		return nil, attest.Bad("attestationType", "%q is not supported", req.Type)
	}
	if req.InitTimeData != nil && tee.InitDataField == "" {
		return nil, attest.Bad("initTimeData", "%s evidence has no launch-time field to bind init-time data to", req.Type)
	}
	ver, err := tee.Verifier.Verify(ctx, req.Evidence, at)
	if err != nil {
		return nil, err
	}
	if err := bind("runtimeData", req.RuntimeData, ver.ReportData, tee.ReportDataField); err != nil {
		return nil, err
	}
	if err := bind("initTimeData", req.InitTimeData, ver.InitData, tee.InitDataField); err != nil {
		return nil, err
	}
	incoming := make([]maa.Claim, 0, len(ver.Claims)+4)
	for _, c := range ver.Claims {
		incoming = append(incoming, maa.Claim{Type: c.Type, Value: c.Value, Issuer: "AttestationService"})
	}
	incoming = append(incoming, maa.Claim{Type: "x-ms-attestation-type", Value: ver.AttestationType, Issuer: "AttestationService"})
	runtime, err := dataClaim("runtimeData", req.RuntimeData)
	if err != nil {
		return nil, err
	}
	inittime, err := dataClaim("initTimeData", req.InitTimeData)
	if err != nil {
		return nil, err
	}
	if runtime != nil {
		incoming = append(incoming, maa.Claim{Type: "x-ms-runtime", Value: runtime, Issuer: "AttestationService"})
	}
	var ehd string // binary runtime data, for the TEE's claim
	if d := req.RuntimeData; d != nil && !d.JSON && len(d.Bytes) > 0 && tee.BinaryRuntimeClaim != "" {
		ehd = base64.RawURLEncoding.EncodeToString(d.Bytes)
		incoming = append(incoming, maa.Claim{Type: tee.BinaryRuntimeClaim, Value: ehd, Issuer: "AttestationService"})
	}
	if inittime != nil {
		incoming = append(incoming, maa.Claim{Type: "x-ms-inittime", Value: inittime, Issuer: "AttestationService"})
	}

	text := req.DraftPolicy
	if text == "" {
		if text, err = s.policies.PolicyText(ctx, req.Type); err != nil {
			var ue *attest.UnavailableError
			if errors.As(err, &ue) {
				return nil, err
			}
			return nil, &attest.UnavailableError{Err: fmt.Errorf("load %s policy: %w", req.Type, err)}
		}
	}
	pol, err := s.parse(text)
	if err != nil {
		if req.DraftPolicy != "" {
			return nil, attest.Bad("draftPolicyForAttestation", "%v", err)
		}
		return nil, &attest.UnavailableError{Err: fmt.Errorf("stored %s policy does not parse: %w", req.Type, err)}
	}
	res, err := pol.Evaluate(incoming)
	if err != nil {
		return nil, &attest.PolicyDeniedError{Reason: err.Error()}
	}
	if !res.Permitted {
		return nil, &attest.PolicyDeniedError{Reason: res.Reason}
	}

	claims := make(map[string]any, len(ver.Claims)+len(res.Issued)+8)
	for _, c := range ver.Claims {
		claims[c.Type] = c.Value
	}
	claims["x-ms-ver"] = "1.0"
	claims["x-ms-attestation-type"] = ver.AttestationType
	claims["x-ms-policy-hash"] = PolicyHash(text)
	if req.Nonce != "" {
		claims["nonce"] = req.Nonce
	}
	if runtime != nil {
		claims["x-ms-runtime"] = runtime
	}
	if inittime != nil {
		claims["x-ms-inittime"] = inittime
	}
	if ehd != "" {
		claims[tee.BinaryRuntimeClaim] = ehd
	}
	issued := map[string][]any{}
	var order []string
	for _, c := range res.Issued {
		if _, taken := claims[c.Type]; taken || reservedJWT(c.Type) {
			return nil, &attest.PolicyDeniedError{Reason: fmt.Sprintf("the policy issues claim %q, which is reserved for the service (x-ms-*, x-kura-* and registered JWT claims)", c.Type)}
		}
		if _, seen := issued[c.Type]; !seen {
			order = append(order, c.Type)
		}
		issued[c.Type] = append(issued[c.Type], c.Value)
	}
	for _, t := range order {
		if vs := issued[t]; len(vs) == 1 {
			claims[t] = vs[0]
		} else {
			claims[t] = vs
		}
	}
	return &Outcome{Verified: ver, Claims: claims}, nil
}

// Attest appraises a request now and signs the token. Draft-policy requests
// get an unsigned token (alg none), as MAA's draft tokens cannot be validated.
func (s *Service) Attest(ctx context.Context, req Request) (string, error) {
	tok, err := s.attest(ctx, req)
	if s.Observe != nil {
		tee := "unknown"
		if _, ok := s.tees[req.Type]; ok {
			tee = req.Type
		}
		s.Observe(tee, VerdictOf(err))
	}
	return tok, err
}

func (s *Service) attest(ctx context.Context, req Request) (string, error) {
	out, err := s.Appraise(ctx, req, s.now())
	if err != nil {
		return "", err
	}
	if req.DraftPolicy != "" {
		return unsignedToken(out.Claims, s.now())
	}
	return s.signer.Issue(out.Claims)
}

func unsignedToken(claims map[string]any, now time.Time) (string, error) {
	c := make(map[string]any, len(claims)+3)
	for k, v := range claims {
		c[k] = v
	}
	c["iat"], c["nbf"], c["exp"] = now.Unix(), now.Unix(), now.Add(8*time.Hour).Unix()
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString(p) + ".", nil
}

// reservedJWT reports whether a policy may not issue claim t: registered
// JWT claims, and the x-ms-* and x-kura-* namespaces, which relying parties
// read as statements of the service itself (x-ms-runtime, x-kura-simulated,
// ...), present or not.
func reservedJWT(t string) bool {
	switch t {
	case "iss", "iat", "nbf", "exp", "jti", "nonce", "cnf", "sub", "aud":
		return true
	}
	return strings.HasPrefix(t, "x-ms-") || strings.HasPrefix(t, "x-kura-")
}

// bind checks that SHA-256(data) equals the first 32 bytes of field.
func bind(name string, d *Data, field []byte, fieldName string) error {
	if d == nil {
		return nil
	}
	if len(field) < 32 {
		return attest.Bad(name, "evidence has no %s to bind it to", fieldName)
	}
	sum := sha256.Sum256(d.Bytes)
	if subtle.ConstantTimeCompare(sum[:], field[:32]) != 1 {
		return attest.Bad(name, "SHA-256 of the %s is %s but the evidence's %s is %s", name, hex.EncodeToString(sum[:]), fieldName, hex.EncodeToString(field[:32]))
	}
	return nil
}

// dataClaim returns the claim value of JSON runtime or init-time data: the
// parsed JSON (numbers kept exact). Binary data yields no claim.
func dataClaim(name string, d *Data) (any, error) {
	if d == nil || !d.JSON {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(d.Bytes)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, attest.BadWrap(name, err, "dataType is JSON but the data is not valid JSON")
	}
	// Only white space may follow the value: More() alone lets a stray
	// ']' or '}' through, and the claim would not be what was hashed.
	var extra any
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, attest.Bad(name, "dataType is JSON but the data holds more than one JSON value or trailing bytes after it (at byte %d)", dec.InputOffset())
	}
	return v, nil
}

// PolicyHash is MAA's x-ms-policy-hash:
// BASE64URL(SHA256(UTF8(BASE64URL(UTF8(policy text))))).
func PolicyHash(text string) string {
	inner := base64.RawURLEncoding.EncodeToString([]byte(text))
	sum := sha256.Sum256([]byte(inner))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
