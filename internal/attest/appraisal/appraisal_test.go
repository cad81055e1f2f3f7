package appraisal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/audit"
	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/policy/maa"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
)

// ---- fakes for Service ----

// fakeVerifier returns the Verified (a fresh copy each call) or the error it
// is given, and remembers what it was asked.
type fakeVerifier struct {
	ver *attest.Verified
	err error

	mu       sync.Mutex
	calls    int
	evidence []byte
	at       time.Time
}

func (v *fakeVerifier) Verify(_ context.Context, ev []byte, at time.Time) (*attest.Verified, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls++
	v.evidence, v.at = ev, at
	if v.err != nil {
		return nil, v.err
	}
	c := *v.ver
	c.Claims = append(attest.Claims(nil), v.ver.Claims...)
	return &c, nil
}

// fakePolicies serves policy texts by type, or an error.
type fakePolicies struct {
	texts map[string]string
	err   error
	calls int
}

func (p *fakePolicies) PolicyText(_ context.Context, typ string) (string, error) {
	p.calls++
	if p.err != nil {
		return "", p.err
	}
	t, ok := p.texts[typ]
	if !ok {
		return "", fmt.Errorf("no policy for %s: %w", typ, store.ErrNotFound)
	}
	return t, nil
}

// fakeSigner records the claims it signs.
type fakeSigner struct {
	claims map[string]any
	calls  int
	err    error
}

func (s *fakeSigner) Issue(claims map[string]any) (string, error) {
	s.calls++
	s.claims = claims
	if s.err != nil {
		return "", s.err
	}
	return "signed.token.sig", nil
}

const (
	fakeType = "FakeTee"  // no init-time field
	initType = "FakeInit" // binds init-time data to host_data
)

// permitAll permits everything and issues nothing.
const permitAll = "version=1.0; authorizationrules { => permit(); }; issuancerules { };"

// measurementPolicy denies the measurement "bad" and issues the measurement
// and a constant.
const measurementPolicy = `version=1.0;
authorizationrules
{
    [type=="x-kura-fake-measurement", value=="bad"] => deny();
    => permit();
};
issuancerules
{
    c:[type=="x-kura-fake-measurement"] => issue(type="measurement", value=c.value);
    => issue(type="fake-issued", value=true);
};
`

type rig struct {
	svc    *Service
	fake   *fakeVerifier // FakeTee's verifier
	init   *fakeVerifier // FakeInit's verifier
	pols   *fakePolicies
	signer *fakeSigner
	now    time.Time
}

var testNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// reportData is a 64-byte report-data field whose first 32 bytes are
// SHA-256(data) and whose rest is filler.
func reportData(data []byte) []byte {
	sum := sha256.Sum256(data)
	return append(sum[:], bytes.Repeat([]byte{0xee}, 32)...)
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{
		fake: &fakeVerifier{ver: &attest.Verified{
			AttestationType: "faketee",
			Claims:          attest.Claims{{Type: "x-kura-fake-measurement", Value: "good"}, {Type: "x-kura-fake-svn", Value: int64(7)}},
			ReportData:      make([]byte, 64),
		}},
		init: &fakeVerifier{ver: &attest.Verified{
			AttestationType: "fakeinit",
			ReportData:      make([]byte, 64),
			InitData:        make([]byte, 32),
		}},
		pols:   &fakePolicies{texts: map[string]string{fakeType: measurementPolicy, initType: permitAll}},
		signer: &fakeSigner{},
		now:    testNow,
	}
	tees := map[string]attest.Built{
		fakeType: {Module: attest.Module{Type: fakeType, Member: "quote", ReportDataField: "report_data", DefaultPolicy: permitAll, BinaryRuntimeClaim: "x-ms-sgx-ehd"},
			TEE: &attest.TEE{Verifier: r.fake}},
		initType: {Module: attest.Module{Type: initType, Member: "report", ReportDataField: "report_data", InitDataField: "host_data", DefaultPolicy: permitAll},
			TEE: &attest.TEE{Verifier: r.init}},
	}
	r.svc = NewService(tees, r.pols, r.signer, func() time.Time { return r.now })
	return r
}

// evidenceErr asserts err is an *attest.EvidenceError for field whose
// message contains each of want.
func evidenceErr(t *testing.T, err error, field string, want ...string) {
	t.Helper()
	var ee *attest.EvidenceError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v (%T), want an *attest.EvidenceError", err, err)
	}
	if ee.Field != field {
		t.Errorf("error field %q, want %q (%v)", ee.Field, field, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func deniedErr(t *testing.T, err error, want ...string) {
	t.Helper()
	var pd *attest.PolicyDeniedError
	if !errors.As(err, &pd) {
		t.Fatalf("error %v (%T), want an *attest.PolicyDeniedError", err, err)
	}
	for _, w := range want {
		if !strings.Contains(pd.Reason, w) {
			t.Errorf("denial reason %q does not mention %q", pd.Reason, w)
		}
	}
}

func unavailableErr(t *testing.T, err error, want ...string) {
	t.Helper()
	var ue *attest.UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v (%T), want an *attest.UnavailableError", err, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// ---- Service.Appraise ----

// TestAppraiseClaims: verified claims, the service's own claims and the
// policy's issued claims all reach the outcome, and the verifier sees the
// evidence and the time asked for.
func TestAppraiseClaims(t *testing.T) {
	r := newRig(t)
	at := testNow.Add(-time.Hour)
	out, err := r.svc.Appraise(context.Background(), Request{Type: fakeType, Evidence: []byte("ev"), Nonce: "n-1"}, at)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.fake.evidence) != "ev" || !r.fake.at.Equal(at) {
		t.Errorf("verifier got evidence %q at %v, want %q at %v", r.fake.evidence, r.fake.at, "ev", at)
	}
	want := map[string]any{
		"x-kura-fake-measurement": "good",
		"x-kura-fake-svn":         int64(7),
		"x-ms-ver":                "1.0",
		"x-ms-attestation-type":   "faketee",
		"x-ms-policy-hash":        PolicyHash(measurementPolicy),
		"nonce":                   "n-1",
		"measurement":             "good",
		"fake-issued":             true,
	}
	if !reflect.DeepEqual(out.Claims, want) {
		t.Errorf("claims\n got %v\nwant %v", out.Claims, want)
	}
	if out.Verified == nil || out.Verified.AttestationType != "faketee" {
		t.Errorf("outcome's Verified: %+v", out.Verified)
	}

	// No nonce, no runtime data: no nonce and no x-ms-runtime claim.
	out, err = r.svc.Appraise(context.Background(), Request{Type: fakeType}, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"nonce", "x-ms-runtime", "x-ms-inittime"} {
		if v, ok := out.Claims[c]; ok {
			t.Errorf("claim %s = %v without it being asked for", c, v)
		}
	}
}

// TestAppraiseRuntimeData: runtime data binds to the first 32 bytes of the
// report-data field as SHA-256; JSON data becomes x-ms-runtime, binary none.
func TestAppraiseRuntimeData(t *testing.T) {
	js := []byte(`{"keys":[{"kid":"k1"}],"n":12345678901234567890}`)
	bin := []byte{0, 1, 2, 0xff}
	sumJS := sha256.Sum256(js)
	for _, c := range []struct {
		name    string
		rd      []byte // the evidence's report data
		data    *Data
		field   string // expected error field; "" for success
		errWant []string
		runtime any // expected x-ms-runtime; nil for none
	}{
		{name: "JSON bound", rd: reportData(js), data: &Data{Bytes: js, JSON: true},
			runtime: map[string]any{"keys": []any{map[string]any{"kid": "k1"}}, "n": json.Number("12345678901234567890")}},
		{name: "binary bound", rd: reportData(bin), data: &Data{Bytes: bin}},
		{name: "exactly 32 bytes", rd: sumJS[:], data: &Data{Bytes: js}},
		{name: "empty data", rd: reportData(nil), data: &Data{Bytes: []byte{}}},
		{name: "not bound", rd: make([]byte, 64), data: &Data{Bytes: js, JSON: true},
			field: "runtimeData", errWant: []string{"report_data", fmt.Sprintf("%x", sumJS)}},
		{name: "hash in the second half", rd: append(make([]byte, 32), sumJS[:]...), data: &Data{Bytes: js},
			field: "runtimeData", errWant: []string{"report_data"}},
		{name: "one bit off", rd: func() []byte { b := reportData(js); b[31] ^= 1; return b }(), data: &Data{Bytes: js},
			field: "runtimeData", errWant: []string{"report_data"}},
		{name: "report data too short", rd: sumJS[:31], data: &Data{Bytes: js},
			field: "runtimeData", errWant: []string{"no report_data"}},
		{name: "no report data", rd: nil, data: &Data{Bytes: js},
			field: "runtimeData", errWant: []string{"no report_data"}},
		{name: "bound but not JSON", rd: reportData([]byte("{nope")), data: &Data{Bytes: []byte("{nope"), JSON: true},
			field: "runtimeData", errWant: []string{"not valid JSON"}},
		{name: "bound but two JSON values", rd: reportData([]byte(`{} {}`)), data: &Data{Bytes: []byte(`{} {}`), JSON: true},
			field: "runtimeData", errWant: []string{"more than one"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.fake.ver.ReportData = c.rd
			out, err := r.svc.Appraise(context.Background(), Request{Type: fakeType, RuntimeData: c.data}, testNow)
			if c.field != "" {
				evidenceErr(t, err, c.field, c.errWant...)
				if r.pols.calls != 0 {
					t.Error("the policy was consulted for a request refused before appraisal")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, ok := out.Claims["x-ms-runtime"]
			ehd, hasEHD := out.Claims["x-ms-sgx-ehd"]
			if c.runtime == nil {
				if ok {
					t.Errorf("x-ms-runtime = %v for binary data", got)
				}
				// The module's binary claim carries it, base64url.
				if c.data != nil && len(c.data.Bytes) > 0 && (!hasEHD || ehd != base64.RawURLEncoding.EncodeToString(c.data.Bytes)) {
					t.Errorf("x-ms-sgx-ehd = %v for binary data %q", ehd, c.data.Bytes)
				}
				return
			}
			if hasEHD {
				t.Errorf("x-ms-sgx-ehd = %v for JSON data", ehd)
			}
			if !reflect.DeepEqual(got, c.runtime) {
				t.Errorf("x-ms-runtime = %#v, want %#v", got, c.runtime)
			}
		})
	}
}

// TestAppraiseRuntimeClaimReachesPolicy: x-ms-runtime is in the policy's
// incoming set, so a policy can issue from it.
func TestAppraiseRuntimeClaimReachesPolicy(t *testing.T) {
	r := newRig(t)
	js := []byte(`{"keys":[{"kid":"k1"}]}`)
	r.fake.ver.ReportData = reportData(js)
	pol := `version=1.2; authorizationrules { c:[type=="x-ms-runtime"] => permit(); };
issuancerules { c:[type=="x-ms-runtime"] => issue(type="kid", value=JsonToClaimValue(JmesPath(c.value, "keys[0].kid"))); };`
	out, err := r.svc.Appraise(context.Background(), Request{Type: fakeType, RuntimeData: &Data{Bytes: js, JSON: true}, DraftPolicy: pol}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if out.Claims["kid"] != "k1" {
		t.Errorf("kid = %v, want k1 (claims %v)", out.Claims["kid"], out.Claims)
	}
	// Without runtime data the same policy finds nothing to permit.
	_, err = r.svc.Appraise(context.Background(), Request{Type: fakeType, DraftPolicy: pol}, testNow)
	deniedErr(t, err, "no authorization rule permitted")
}

// TestAppraiseInitTimeData: init-time data is refused for a TEE without a
// launch-time field (before verifying), and bound to InitData otherwise.
func TestAppraiseInitTimeData(t *testing.T) {
	js := []byte(`{"policy":"p"}`)
	t.Run("no launch-time field", func(t *testing.T) {
		r := newRig(t)
		_, err := r.svc.Appraise(context.Background(), Request{Type: fakeType, InitTimeData: &Data{Bytes: js, JSON: true}}, testNow)
		evidenceErr(t, err, "initTimeData", fakeType, "no launch-time field")
		if r.fake.calls != 0 {
			t.Error("the evidence was verified although the request was refused")
		}
	})
	t.Run("bound", func(t *testing.T) {
		r := newRig(t)
		sum := sha256.Sum256(js)
		r.init.ver.InitData = sum[:]
		out, err := r.svc.Appraise(context.Background(), Request{Type: initType, InitTimeData: &Data{Bytes: js, JSON: true}}, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]any{"policy": "p"}; !reflect.DeepEqual(out.Claims["x-ms-inittime"], want) {
			t.Errorf("x-ms-inittime = %#v, want %#v", out.Claims["x-ms-inittime"], want)
		}
		if _, ok := out.Claims["x-ms-runtime"]; ok {
			t.Error("x-ms-runtime without runtime data")
		}
	})
	t.Run("binary bound", func(t *testing.T) {
		r := newRig(t)
		sum := sha256.Sum256([]byte{9, 9})
		r.init.ver.InitData = sum[:]
		out, err := r.svc.Appraise(context.Background(), Request{Type: initType, InitTimeData: &Data{Bytes: []byte{9, 9}}}, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := out.Claims["x-ms-inittime"]; ok {
			t.Errorf("x-ms-inittime = %v for binary data", v)
		}
	})
	t.Run("not bound", func(t *testing.T) {
		r := newRig(t)
		_, err := r.svc.Appraise(context.Background(), Request{Type: initType, InitTimeData: &Data{Bytes: js}}, testNow)
		evidenceErr(t, err, "initTimeData", "host_data")
	})
	t.Run("no launch-time data in the evidence", func(t *testing.T) {
		r := newRig(t)
		r.init.ver.InitData = nil
		_, err := r.svc.Appraise(context.Background(), Request{Type: initType, InitTimeData: &Data{Bytes: js}}, testNow)
		evidenceErr(t, err, "initTimeData", "no host_data")
	})
	t.Run("runtime bound, init-time not", func(t *testing.T) {
		r := newRig(t)
		rt := []byte("rt")
		r.init.ver.ReportData = reportData(rt)
		_, err := r.svc.Appraise(context.Background(), Request{Type: initType, RuntimeData: &Data{Bytes: rt}, InitTimeData: &Data{Bytes: js}}, testNow)
		evidenceErr(t, err, "initTimeData", "host_data")
	})
	t.Run("init-time data is not JSON", func(t *testing.T) {
		r := newRig(t)
		bad := []byte("[1,")
		sum := sha256.Sum256(bad)
		r.init.ver.InitData = sum[:]
		_, err := r.svc.Appraise(context.Background(), Request{Type: initType, InitTimeData: &Data{Bytes: bad, JSON: true}}, testNow)
		evidenceErr(t, err, "initTimeData", "not valid JSON")
	})
}

// TestAppraiseUnknownType: a type the service has no TEE for is the
// client's error, naming the type, and nothing is verified.
func TestAppraiseUnknownType(t *testing.T) {
	r := newRig(t)
	for _, typ := range []string{"NoSuchTee", ""} {
		_, err := r.svc.Appraise(context.Background(), Request{Type: typ}, testNow)
		evidenceErr(t, err, "attestationType", fmt.Sprintf("%q", typ))
	}
	if r.fake.calls+r.init.calls != 0 || r.pols.calls != 0 {
		t.Error("an unknown type reached a verifier or the policies")
	}
}

// TestAppraiseVerifierErrors: the verifier's errors come back as they are,
// and the policy is not consulted.
func TestAppraiseVerifierErrors(t *testing.T) {
	for _, verr := range []error{
		attest.Bad("quote.mac", "does not verify"),
		&attest.UnavailableError{Err: errors.New("collateral service down")},
	} {
		r := newRig(t)
		r.fake.err = verr
		out, err := r.svc.Appraise(context.Background(), Request{Type: fakeType, RuntimeData: &Data{Bytes: []byte("x")}}, testNow)
		if err != verr || out != nil {
			t.Errorf("Appraise = %v, %v; want the verifier's error %v", out, err, verr)
		}
		if r.pols.calls != 0 {
			t.Errorf("policy consulted after the verifier failed with %v", verr)
		}
	}
}

// TestAppraisePolicyDenies: a policy that does not permit, or faults, is a
// PolicyDeniedError naming why.
func TestAppraisePolicyDenies(t *testing.T) {
	for _, c := range []struct {
		name   string
		policy string
		claims attest.Claims
		want   []string
	}{
		{name: "deny rule", policy: measurementPolicy, claims: attest.Claims{{Type: "x-kura-fake-measurement", Value: "bad"}},
			want: []string{"authorizationrules", "deny()"}},
		{name: "no rule permits", policy: `version=1.0; authorizationrules { [type=="x-kura-fake-measurement", value=="other"] => permit(); };`,
			claims: attest.Claims{{Type: "x-kura-fake-measurement", Value: "good"}}, want: []string{"no authorization rule permitted"}},
		{name: "no authorizationrules", policy: `version=1.0; issuancerules { => issue(type="a", value=1); };`,
			want: []string{"no authorizationrules section"}},
		{name: "attestation type checked", policy: `version=1.0; authorizationrules { [type=="x-ms-attestation-type", value!="sevsnpvm"] => deny(); => permit(); };`,
			want: []string{"deny()"}},
		{name: "incoming claim the evaluator cannot take", policy: permitAll, claims: attest.Claims{{Type: "x-kura-fake-chan", Value: make(chan int)}},
			want: []string{"x-kura-fake-chan"}},
		{name: "runtime fault in issuance", policy: `version=1.2; authorizationrules { => permit(); };
issuancerules { c:[type=="x-kura-fake-measurement"] => issue(type="kid", value=JmesPath(c.value, "a")); };`,
			claims: attest.Claims{{Type: "x-kura-fake-measurement", Value: "good"}}, want: []string{"issuancerules"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.fake.ver.Claims = c.claims
			r.pols.texts[fakeType] = c.policy
			out, err := r.svc.Appraise(context.Background(), Request{Type: fakeType}, testNow)
			if out != nil {
				t.Errorf("a denied request has an outcome: %v", out.Claims)
			}
			deniedErr(t, err, c.want...)
		})
	}
}

// TestAppraiseReservedClaims: a policy may not issue claims the service
// owns (x-ms-*, x-kura-*, registered JWT claims) nor overwrite a verified
// claim; other names are free.
func TestAppraiseReservedClaims(t *testing.T) {
	issue := func(typ string) string {
		return fmt.Sprintf(`version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(type=%q, value="forged"); };`, typ)
	}
	for _, typ := range []string{"x-ms-runtime", "x-ms-policy-hash", "x-ms-anything", "x-kura-simulated", "iss", "iat", "nbf", "exp", "jti", "nonce", "cnf", "sub", "aud", "x-kura-fake-measurement"} {
		r := newRig(t)
		r.pols.texts[fakeType] = issue(typ)
		_, err := r.svc.Appraise(context.Background(), Request{Type: fakeType}, testNow)
		deniedErr(t, err, fmt.Sprintf("%q", typ), "reserved")
	}
	// Verified claims need not be x-kura-*: any claim the verifier set is
	// taken.
	r := newRig(t)
	r.fake.ver.Claims = attest.Claims{{Type: "measurement", Value: "good"}}
	r.pols.texts[fakeType] = issue("measurement")
	_, err := r.svc.Appraise(context.Background(), Request{Type: fakeType}, testNow)
	deniedErr(t, err, `"measurement"`)

	for _, typ := range []string{"issuer", "x-msfoo", "audience", "Nonce", "kura-x"} {
		r := newRig(t)
		r.pols.texts[fakeType] = issue(typ)
		out, err := r.svc.Appraise(context.Background(), Request{Type: fakeType}, testNow)
		if err != nil {
			t.Errorf("issuing %q: %v", typ, err)
			continue
		}
		if out.Claims[typ] != "forged" {
			t.Errorf("issued %q = %v", typ, out.Claims[typ])
		}
	}
}

// TestAppraiseRepeatedIssue: a claim issued more than once becomes an
// array of its values in issue order; once, a single value.
func TestAppraiseRepeatedIssue(t *testing.T) {
	r := newRig(t)
	r.pols.texts[fakeType] = `version=1.0; authorizationrules { => permit(); };
issuancerules { => issue(type="tag", value="a"); => issue(type="one", value=1); => issue(type="tag", value="b"); => issue(type="tag", value="c"); };`
	out, err := r.svc.Appraise(context.Background(), Request{Type: fakeType}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{"a", "b", "c"}; !reflect.DeepEqual(out.Claims["tag"], want) {
		t.Errorf("tag = %#v, want %#v", out.Claims["tag"], want)
	}
	if out.Claims["one"] != int64(1) {
		t.Errorf("one = %#v, want int64(1)", out.Claims["one"])
	}
}

// TestAppraiseStoredPolicyErrors: a policy that cannot be loaded or does
// not parse is the service's failure (unavailable), never a verdict.
func TestAppraiseStoredPolicyErrors(t *testing.T) {
	t.Run("load fails", func(t *testing.T) {
		r := newRig(t)
		cause := errors.New("database is locked")
		r.pols.err = cause
		_, err := r.svc.Appraise(context.Background(), Request{Type: fakeType}, testNow)
		unavailableErr(t, err, fakeType, "database is locked")
		if !errors.Is(err, cause) {
			t.Errorf("%v does not wrap the cause", err)
		}
		if attest.IsEvidence(err) {
			t.Error("a store failure is reported as the client's fault")
		}
	})
	t.Run("load unavailable", func(t *testing.T) {
		r := newRig(t)
		ue := &attest.UnavailableError{Err: ErrPolicyIntegrity}
		r.pols.err = ue
		_, err := r.svc.Appraise(context.Background(), Request{Type: fakeType}, testNow)
		if err != ue {
			t.Errorf("Appraise = %v, want the policies' own UnavailableError", err)
		}
	})
	t.Run("stored text does not parse", func(t *testing.T) {
		r := newRig(t)
		r.pols.texts[fakeType] = "version=1.0; authorizationrules { => permit() };"
		_, err := r.svc.Appraise(context.Background(), Request{Type: fakeType}, testNow)
		unavailableErr(t, err, fakeType, "does not parse")
		var pe *maa.ParseError
		if !errors.As(err, &pe) || pe.Line != 1 {
			t.Errorf("%v does not carry the parse error's position", err)
		}
	})
}

// TestAppraiseDraftPolicy: a draft policy replaces the stored one (which is
// not read), its hash is the token's policy hash, and a draft that does not
// parse is the client's error.
func TestAppraiseDraftPolicy(t *testing.T) {
	draft := `version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(type="draft", value=true); };`
	r := newRig(t)
	r.pols.err = errors.New("must not be read")
	out, err := r.svc.Appraise(context.Background(), Request{Type: fakeType, DraftPolicy: draft}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if r.pols.calls != 0 {
		t.Error("the stored policy was read for a draft request")
	}
	if out.Claims["draft"] != true || out.Claims["x-ms-policy-hash"] != PolicyHash(draft) {
		t.Errorf("claims %v: want draft=true and the draft's policy hash %s", out.Claims, PolicyHash(draft))
	}
	if _, ok := out.Claims["fake-issued"]; ok {
		t.Error("the stored policy's claim was issued for a draft request")
	}

	_, err = r.svc.Appraise(context.Background(), Request{Type: fakeType, DraftPolicy: "version=1.0; authorizationrules { => permit(); "}, testNow)
	evidenceErr(t, err, "draftPolicyForAttestation", "line 1")

	_, err = r.svc.Appraise(context.Background(), Request{Type: fakeType, DraftPolicy: "version=1.0; authorizationrules { => deny(); };"}, testNow)
	deniedErr(t, err, "deny()")
}

// ---- Service.Attest ----

// TestAttestSigns: Attest appraises at the service's clock and signs exactly
// the outcome's claims; failures are not signed.
func TestAttestSigns(t *testing.T) {
	r := newRig(t)
	tok, err := r.svc.Attest(context.Background(), Request{Type: fakeType, Nonce: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if tok != "signed.token.sig" || r.signer.calls != 1 {
		t.Errorf("token %q after %d signer calls", tok, r.signer.calls)
	}
	if !r.fake.at.Equal(testNow) {
		t.Errorf("verified at %v, want the service clock %v", r.fake.at, testNow)
	}
	out, err := r.svc.Appraise(context.Background(), Request{Type: fakeType, Nonce: "n"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.signer.claims, out.Claims) {
		t.Errorf("signed claims %v, want the outcome's %v", r.signer.claims, out.Claims)
	}

	r.signer.err = errors.New("signing key sealed")
	if _, err := r.svc.Attest(context.Background(), Request{Type: fakeType}); !errors.Is(err, r.signer.err) {
		t.Errorf("signer failure: %v", err)
	}

	r = newRig(t)
	r.fake.ver.Claims = attest.Claims{{Type: "x-kura-fake-measurement", Value: "bad"}}
	if tok, err := r.svc.Attest(context.Background(), Request{Type: fakeType}); tok != "" || err == nil {
		t.Errorf("denied request: %q, %v", tok, err)
	} else {
		deniedErr(t, err)
	}
	if r.signer.calls != 0 {
		t.Error("a denied request was signed")
	}
}

// TestAttestDraftUnsigned: a draft-policy request gets an alg-none token
// with the outcome's claims and an 8-hour validity, never the signer's.
func TestAttestDraftUnsigned(t *testing.T) {
	r := newRig(t)
	js := []byte(`{"n":1}`)
	r.fake.ver.ReportData = reportData(js)
	draft := `version=1.0; authorizationrules { => permit(); }; issuancerules { => issue(type="draft", value=true); };`
	tok, err := r.svc.Attest(context.Background(), Request{Type: fakeType, DraftPolicy: draft, Nonce: "nn", RuntimeData: &Data{Bytes: js, JSON: true}})
	if err != nil {
		t.Fatal(err)
	}
	if r.signer.calls != 0 {
		t.Error("a draft token was signed")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[2] != "" {
		t.Fatalf("token %q: want header.payload. with an empty signature", tok)
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || string(h) != `{"alg":"none"}` {
		t.Errorf("header %q (%v)", h, err)
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		t.Fatal(err)
	}
	num := func(k string) int64 {
		n, _ := claims[k].(json.Number).Int64()
		return n
	}
	if num("iat") != testNow.Unix() || num("nbf") != testNow.Unix() || num("exp") != testNow.Add(8*time.Hour).Unix() {
		t.Errorf("iat %v nbf %v exp %v, want %d, %d, %d", claims["iat"], claims["nbf"], claims["exp"], testNow.Unix(), testNow.Unix(), testNow.Add(8*time.Hour).Unix())
	}
	if claims["draft"] != true || claims["nonce"] != "nn" || claims["x-ms-policy-hash"] != PolicyHash(draft) ||
		!reflect.DeepEqual(claims["x-ms-runtime"], map[string]any{"n": json.Number("1")}) {
		t.Errorf("payload claims %v", claims)
	}
}

// TestUnsignedTokenLeavesClaims: the validity claims go into a copy.
func TestUnsignedTokenLeavesClaims(t *testing.T) {
	in := map[string]any{"a": "b"}
	if _, err := unsignedToken(in, testNow); err != nil {
		t.Fatal(err)
	}
	if len(in) != 1 {
		t.Errorf("unsignedToken changed its input: %v", in)
	}
	if _, err := unsignedToken(map[string]any{"c": make(chan int)}, testNow); err == nil {
		t.Error("unsignedToken encoded a value that is not JSON")
	}
}

// ---- helpers ----

func TestBind(t *testing.T) {
	data := []byte("hello")
	sum := sha256.Sum256(data)
	if err := bind("runtimeData", nil, nil, "report_data"); err != nil {
		t.Errorf("no data: %v", err)
	}
	if err := bind("runtimeData", &Data{Bytes: data}, append(sum[:], 1, 2, 3), "report_data"); err != nil {
		t.Errorf("bound: %v", err)
	}
	// A field the data's hash is a prefix of, in a buffer too short.
	evidenceErr(t, bind("initTimeData", &Data{Bytes: data}, sum[:16], "HOST_DATA"), "initTimeData", "HOST_DATA")
	// SHA-256, not another hash and not the data itself.
	raw := append([]byte("hello"), make([]byte, 27)...)
	evidenceErr(t, bind("runtimeData", &Data{Bytes: data}, raw, "REPORT_DATA"), "runtimeData", "REPORT_DATA", "SHA-256")
}

func TestDataClaim(t *testing.T) {
	for _, c := range []struct {
		name string
		d    *Data
		want any
		bad  string // message fragment of an expected EvidenceError
	}{
		{name: "none", d: nil},
		{name: "binary", d: &Data{Bytes: []byte(`{"a":1}`)}},
		{name: "object", d: &Data{Bytes: []byte(`{"a":1,"b":[true,null,"s"]}`), JSON: true},
			want: map[string]any{"a": json.Number("1"), "b": []any{true, nil, "s"}}},
		{name: "exact numbers", d: &Data{Bytes: []byte(`[12345678901234567890, 1.5e300, -0]`), JSON: true},
			want: []any{json.Number("12345678901234567890"), json.Number("1.5e300"), json.Number("-0")}},
		{name: "string", d: &Data{Bytes: []byte(`"s"`), JSON: true}, want: "s"},
		{name: "surrounding space", d: &Data{Bytes: []byte(" \n{}\n\t "), JSON: true}, want: map[string]any{}},
		{name: "empty", d: &Data{Bytes: nil, JSON: true}, bad: "not valid JSON"},
		{name: "truncated", d: &Data{Bytes: []byte(`{"a":`), JSON: true}, bad: "not valid JSON"},
		{name: "two values", d: &Data{Bytes: []byte(`{"a":1} {"b":2}`), JSON: true}, bad: "more than one"},
		{name: "trailing garbage", d: &Data{Bytes: []byte(`{"a":1} x`), JSON: true}, bad: "JSON"},
		{name: "stray bracket", d: &Data{Bytes: []byte(`{"a":1}]`), JSON: true}, bad: "trailing bytes"},
		{name: "stray brace", d: &Data{Bytes: []byte(`1}`), JSON: true}, bad: "trailing bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := dataClaim("runtimeData", c.d)
			if c.bad != "" {
				evidenceErr(t, err, "runtimeData", c.bad)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(v, c.want) {
				t.Errorf("claim %#v, want %#v", v, c.want)
			}
		})
	}
}

// TestPolicyHash: MAA's x-ms-policy-hash, checked against values computed
// outside Go (base64url | sha256 | base64url in a shell), stable and
// sensitive to every byte.
func TestPolicyHash(t *testing.T) {
	for text, want := range map[string]string{
		"version=1.0; authorizationrules { => permit(); };": "LkkfAmFiCb6lP7D1_AsUhtClXNPBqCek05v8jHbD5q0",
		"": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
	} {
		if got := PolicyHash(text); got != want {
			t.Errorf("PolicyHash(%q) = %s, want %s", text, got, want)
		}
		if PolicyHash(text) != PolicyHash(strings.Clone(text)) {
			t.Errorf("PolicyHash(%q) is not stable", text)
		}
	}
	a := PolicyHash(permitAll)
	if b := PolicyHash(permitAll + "\n"); a == b {
		t.Error("a trailing newline does not change the policy hash")
	}
	if strings.ContainsAny(a, "+/=") || len(a) != 43 {
		t.Errorf("PolicyHash %q is not unpadded base64url of 32 bytes", a)
	}
}

func TestReservedJWT(t *testing.T) {
	for typ, want := range map[string]bool{
		"iss": true, "iat": true, "nbf": true, "exp": true, "jti": true, "nonce": true, "cnf": true, "sub": true, "aud": true,
		"x-ms-": true, "x-ms-sevsnpvm-vmpl": true, "x-kura-": true, "x-kura-simulated": true,
		"": false, "x-ms": false, "x-kura": false, "X-MS-VER": false, "issuer": false, "my-claim": false, "xx-ms-a": false,
	} {
		if got := reservedJWT(typ); got != want {
			t.Errorf("reservedJWT(%q) = %v, want %v", typ, got, want)
		}
	}
}

// TestParseCache: a policy text is parsed once, and the cache stays
// bounded however many distinct texts arrive.
func TestParseCache(t *testing.T) {
	r := newRig(t)
	p1, err := r.svc.parse(permitAll)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := r.svc.parse(strings.Clone(permitAll))
	if p1 != p2 {
		t.Error("the same text was parsed twice")
	}
	if _, err := r.svc.parse("not a policy"); err == nil {
		t.Error("parse accepted a malformed policy")
	}
	for i := range 200 {
		if _, err := r.svc.parse(fmt.Sprintf("version=1.0; authorizationrules { => permit(); }; // %d", i)); err != nil {
			t.Fatal(err)
		}
		if n := len(r.svc.parsed); n > 64 {
			t.Fatalf("parse cache holds %d policies", n)
		}
	}
	// And the results still evaluate right after the cache was cleared.
	out, err := r.svc.Appraise(context.Background(), Request{Type: fakeType}, testNow)
	if err != nil || out.Claims["fake-issued"] != true {
		t.Errorf("after cache turnover: %v, %v", out, err)
	}
}

func TestLookup(t *testing.T) {
	r := newRig(t)
	for _, typ := range []string{"FakeTee", "faketee", "FAKETEE"} {
		m, ok := r.svc.Lookup(typ)
		if !ok || m.Type != fakeType || m.ReportDataField != "report_data" {
			t.Errorf("Lookup(%q) = %+v, %v", typ, m, ok)
		}
	}
	if m, ok := r.svc.Lookup("fakeinit"); !ok || m.InitDataField != "host_data" {
		t.Errorf("Lookup(fakeinit) = %+v, %v", m, ok)
	}
	for _, typ := range []string{"", "nosuch", "FakeTe"} {
		if m, ok := r.svc.Lookup(typ); ok {
			t.Errorf("Lookup(%q) = %+v", typ, m)
		}
	}
}

// ---- PolicyStore ----

// memBackend is an in-memory PolicyBackend: a database kura does not trust.
type memBackend struct {
	mu     sync.Mutex
	rows   map[string]store.Policy
	gets   int
	getErr error
	putErr error
}

func newMem() *memBackend { return &memBackend{rows: map[string]store.Policy{}} }

func (m *memBackend) GetPolicy(_ context.Context, typ string) (store.Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	if m.getErr != nil {
		return store.Policy{}, m.getErr
	}
	p, ok := m.rows[typ]
	if !ok {
		return store.Policy{}, fmt.Errorf("policy %q: %w", typ, store.ErrNotFound)
	}
	p.Signer, p.MAC = bytes.Clone(p.Signer), bytes.Clone(p.MAC)
	return p, nil
}

func (m *memBackend) PutPolicy(_ context.Context, p store.Policy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.putErr != nil {
		return m.putErr
	}
	p.Signer, p.MAC = bytes.Clone(p.Signer), bytes.Clone(p.MAC)
	m.rows[p.Type] = p
	return nil
}

func (m *memBackend) DeletePolicy(_ context.Context, typ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rows, typ)
	return nil
}

// edit changes a stored row behind the policy store's back.
func (m *memBackend) edit(typ string, f func(p *store.Policy)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.rows[typ]
	f(&p)
	m.rows[typ] = p
}

func (m *memBackend) row(typ string) (store.Policy, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.rows[typ]
	return p, ok
}

// txView is the store.Store a recorder hands a change: only the policy
// methods are there (the rest would panic, and must not be called).
type txView struct {
	store.Store
	m *memBackend
}

func (v txView) GetPolicy(ctx context.Context, typ string) (store.Policy, error) {
	return v.m.GetPolicy(ctx, typ)
}
func (v txView) PutPolicy(ctx context.Context, p store.Policy) error { return v.m.PutPolicy(ctx, p) }
func (v txView) DeletePolicy(ctx context.Context, typ string) error {
	return v.m.DeletePolicy(ctx, typ)
}

// fakeRecorder applies changes to its memBackend and records their events;
// with fail set it records nothing and applies nothing.
type fakeRecorder struct {
	m      *memBackend
	events []audit.Event
	fail   error
}

func (r *fakeRecorder) Record(_ context.Context, e audit.Event, change func(tx store.Store) error) (audit.Receipt, error) {
	if r.fail != nil {
		return audit.Receipt{}, r.fail
	}
	if err := change(txView{m: r.m}); err != nil {
		return audit.Receipt{}, err
	}
	r.events = append(r.events, e)
	return audit.Receipt{Seq: int64(len(r.events))}, nil
}

var testDefaults = map[string]string{fakeType: permitAll, initType: measurementPolicy}

// testSealer is the real sealer over a software root in a temporary
// directory.
func testSealer(t *testing.T) *seal.Sealer {
	t.Helper()
	root, err := seal.OpenSoftwareRoot(filepath.Join(t.TempDir(), "root.sealed"), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return seal.New(root)
}

// newPolicyStore is the one place tests build a PolicyStore.
func newPolicyStore(m *memBackend, mac Sealer, now func() time.Time) (*PolicyStore, *fakeRecorder) {
	rec := &fakeRecorder{m: m}
	return NewPolicyStore(m, mac, now, testDefaults).WithAudit(rec), rec
}

func TestPolicyStoreDefaults(t *testing.T) {
	ctx := context.Background()
	ps, _ := newPolicyStore(newMem(), testSealer(t), time.Now)
	for typ, def := range testDefaults {
		if !ps.Known(typ) {
			t.Errorf("Known(%s) = false", typ)
		}
		sp, err := ps.Get(ctx, typ)
		if err != nil {
			t.Fatal(err)
		}
		if sp.Type != typ || sp.Text != def || sp.JWS != "" || sp.Signer != nil || sp.MAC != nil {
			t.Errorf("Get(%s) = %+v, want the default with no JWS", typ, sp)
		}
		text, err := ps.PolicyText(ctx, typ)
		if err != nil || text != def {
			t.Errorf("PolicyText(%s) = %q, %v", typ, text, err)
		}
	}
	for _, typ := range []string{"NoSuch", "faketee", ""} {
		if ps.Known(typ) {
			t.Errorf("Known(%q) = true", typ)
		}
		_, err := ps.Get(ctx, typ)
		if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), typ) {
			t.Errorf("Get(%q): %v, want ErrNotFound naming the type", typ, err)
		}
		if _, err := ps.PolicyText(ctx, typ); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("PolicyText(%q): %v", typ, err)
		}
	}
}

// TestPolicyStoreSetResetApplyAtOnce: Set and Reset change what PolicyText
// serves immediately, though an older read was cached.
func TestPolicyStoreSetResetApplyAtOnce(t *testing.T) {
	ctx := context.Background()
	m := newMem()
	updated := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	ps, rec := newPolicyStore(m, testSealer(t), time.Now)
	if text, _ := ps.PolicyText(ctx, fakeType); text != permitAll { // now cached
		t.Fatalf("default %q", text)
	}

	const text = `version=1.0; authorizationrules { [type=="x-kura-fake-measurement", value=="good"] => permit(); };`
	signer := []byte{0x30, 0x03, 1, 2, 3}
	ps.now = func() time.Time { return updated } // for Set's timestamp only
	err := ps.Set(ctx, store.Policy{Type: fakeType, Text: text, JWS: "h.p.s", Signer: signer})
	ps.now = time.Now
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ps.PolicyText(ctx, fakeType); err != nil || got != text {
		t.Errorf("PolicyText after Set = %q, %v; want the new text", got, err)
	}
	sp, err := ps.Get(ctx, fakeType)
	if err != nil {
		t.Fatal(err)
	}
	if sp.Text != text || sp.JWS != "h.p.s" || !bytes.Equal(sp.Signer, signer) || !sp.Updated.Equal(updated) || len(sp.MAC) == 0 {
		t.Errorf("Get after Set = %+v", sp)
	}
	// Another type is untouched.
	if got, _ := ps.PolicyText(ctx, initType); got != measurementPolicy {
		t.Errorf("the other type's policy became %q", got)
	}

	if err := ps.Reset(ctx, fakeType); err != nil {
		t.Fatal(err)
	}
	if got, err := ps.PolicyText(ctx, fakeType); err != nil || got != permitAll {
		t.Errorf("PolicyText after Reset = %q, %v; want the default", got, err)
	}
	if _, ok := m.row(fakeType); ok {
		t.Error("Reset left the stored row")
	}
	// Reset of a type never set is fine.
	if err := ps.Reset(ctx, initType); err != nil {
		t.Errorf("Reset of a default: %v", err)
	}

	// Each change was recorded, naming the policy.
	if len(rec.events) != 3 {
		t.Fatalf("recorded %d events, want 3: %+v", len(rec.events), rec.events)
	}
	set := rec.events[0]
	if set.Action != "policy.set" || !strings.Contains(set.Object, fakeType) || set.Details["policy_hash"] != PolicyHash(text) {
		t.Errorf("set event %+v", set)
	}
	if sum := sha256.Sum256(signer); set.Details["signer_sha256"] != fmt.Sprintf("%x", sum) {
		t.Errorf("set event signer digest %q", set.Details["signer_sha256"])
	}
	if rec.events[1].Action != "policy.reset" || !strings.Contains(rec.events[1].Object, fakeType) {
		t.Errorf("reset event %+v", rec.events[1])
	}
}

// TestPolicyStoreSetRefuses: a policy that does not parse, or one that
// cannot be authenticated, is refused and nothing changes.
func TestPolicyStoreSetRefuses(t *testing.T) {
	ctx := context.Background()
	m := newMem()
	ps, rec := newPolicyStore(m, testSealer(t), time.Now)
	err := ps.Set(ctx, store.Policy{Type: fakeType, Text: "version=1.0;\nauthorizationrules {\n => permit()\n};"})
	var pe *maa.ParseError
	if !errors.As(err, &pe) || pe.Line != 4 {
		t.Errorf("Set of a malformed policy: %v, want a ParseError at line 4", err)
	}
	if _, ok := m.row(fakeType); ok || len(rec.events) != 0 {
		t.Error("a malformed policy was stored or recorded")
	}

	// No root key: cannot store.
	nokey, rec2 := newPolicyStore(m, nil, time.Now)
	if err := nokey.Set(ctx, store.Policy{Type: fakeType, Text: permitAll}); err == nil || !strings.Contains(err.Error(), "root key") {
		t.Errorf("Set without a root key: %v", err)
	}
	if _, ok := m.row(fakeType); ok || len(rec2.events) != 0 {
		t.Error("a policy was stored without a root key")
	}

	// A sealed root: the MAC cannot be made.
	sealed, _ := newPolicyStore(m, seal.New(&seal.SoftwareRoot{}), time.Now)
	if err := sealed.Set(ctx, store.Policy{Type: fakeType, Text: permitAll}); !errors.Is(err, seal.ErrSealed) {
		t.Errorf("Set with a sealed root: %v", err)
	}
	if _, ok := m.row(fakeType); ok {
		t.Error("a policy was stored without a MAC")
	}
}

// TestPolicyStoreAuditFailClosed: a change whose audit record cannot be
// written, or with no recorder at all, is refused as unavailable.
func TestPolicyStoreAuditFailClosed(t *testing.T) {
	ctx := context.Background()
	m := newMem()
	mac := testSealer(t)
	ps, rec := newPolicyStore(m, mac, time.Now)
	rec.fail = &audit.Error{Err: errors.New("audit log full")}
	for name, f := range map[string]func() error{
		"set":   func() error { return ps.Set(ctx, store.Policy{Type: fakeType, Text: permitAll}) },
		"reset": func() error { return ps.Reset(ctx, fakeType) },
	} {
		if err := f(); fault.Of(err) != fault.Unavailable {
			t.Errorf("%s with a failing audit log: %v (kind %v), want Unavailable", name, err, fault.Of(err))
		}
	}
	bare := NewPolicyStore(m, mac, time.Now, testDefaults) // a PolicyBackend, not a store: no recorder
	if err := bare.Set(ctx, store.Policy{Type: fakeType, Text: permitAll}); fault.Of(err) != fault.Unavailable {
		t.Errorf("Set without a recorder: %v", err)
	}
	if err := bare.Reset(ctx, fakeType); fault.Of(err) != fault.Unavailable {
		t.Errorf("Reset without a recorder: %v", err)
	}
	if _, ok := m.row(fakeType); ok {
		t.Error("a change was applied without its audit record")
	}

	// The store failing the change itself is unavailable too.
	rec.fail = nil
	m.putErr = errors.New("disk full")
	err := ps.Set(ctx, store.Policy{Type: fakeType, Text: permitAll})
	if !errors.Is(err, m.putErr) {
		t.Errorf("Set with a failing store: %v", err)
	}
	var ue *attest.UnavailableError
	if !errors.As(err, &ue) {
		t.Errorf("Set with a failing store: %v (%T), want unavailable", err, err)
	}
}

// TestPolicyStoreIntegrity: a stored row changed in the database without
// the root key is refused, never served, and the default is not served
// in its place either.
func TestPolicyStoreIntegrity(t *testing.T) {
	const text = `version=1.0; authorizationrules { [type=="x-kura-fake-measurement", value=="good"] => permit(); };`
	for _, c := range []struct {
		name string
		edit func(p *store.Policy, other store.Policy)
	}{
		{"text", func(p *store.Policy, _ store.Policy) { p.Text = permitAll }},
		{"text by one byte", func(p *store.Policy, _ store.Policy) { p.Text = strings.Replace(p.Text, "good", "gooe", 1) }},
		{"jws", func(p *store.Policy, _ store.Policy) { p.JWS = "other.jws.sig" }},
		{"signer", func(p *store.Policy, _ store.Policy) { p.Signer = []byte{0x30, 0} }},
		{"signer removed", func(p *store.Policy, _ store.Policy) { p.Signer = nil }},
		{"mac flipped", func(p *store.Policy, _ store.Policy) { p.MAC[len(p.MAC)-1] ^= 1 }},
		{"mac removed", func(p *store.Policy, _ store.Policy) { p.MAC = nil }},
		{"mac truncated", func(p *store.Policy, _ store.Policy) { p.MAC = p.MAC[:10] }},
		{"another row's mac", func(p *store.Policy, o store.Policy) { p.MAC = o.MAC }},
		{"another type's row", func(p *store.Policy, o store.Policy) { *p = o }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			m := newMem()
			ps, _ := newPolicyStore(m, testSealer(t), time.Now)
			if err := ps.Set(ctx, store.Policy{Type: fakeType, Text: text, JWS: "a.b.c", Signer: []byte{0x30, 1, 2}}); err != nil {
				t.Fatal(err)
			}
			if err := ps.Set(ctx, store.Policy{Type: initType, Text: permitAll}); err != nil {
				t.Fatal(err)
			}
			// The untampered row serves.
			if _, err := ps.Get(ctx, fakeType); err != nil {
				t.Fatalf("before the edit: %v", err)
			}
			other, _ := m.row(initType)
			m.edit(fakeType, func(p *store.Policy) { c.edit(p, other) })
			ps.forget(fakeType) // as if the cache had expired

			sp, err := ps.Get(ctx, fakeType)
			if !errors.Is(err, ErrPolicyIntegrity) || sp.Text != "" {
				t.Errorf("Get of an edited row = %+v, %v; want ErrPolicyIntegrity", sp, err)
			}
			unavailableErr(t, err, fakeType)
			got, err := ps.PolicyText(ctx, fakeType)
			if !errors.Is(err, ErrPolicyIntegrity) || got != "" {
				t.Errorf("PolicyText of an edited row = %q, %v", got, err)
			}
			// Through the service: unavailable, not a verdict either way.
			r := newRig(t)
			svc := NewService(r.svc.tees, ps, r.signer, func() time.Time { return testNow })
			_, err = svc.Appraise(ctx, Request{Type: fakeType}, testNow)
			if !errors.Is(err, ErrPolicyIntegrity) {
				t.Errorf("Appraise over an edited policy: %v", err)
			}
			unavailableErr(t, err)
		})
	}
}

// TestPolicyStoreOtherRoot: a row sealed under another root key does not
// authenticate.
func TestPolicyStoreOtherRoot(t *testing.T) {
	ctx := context.Background()
	m := newMem()
	a, _ := newPolicyStore(m, testSealer(t), time.Now)
	if err := a.Set(ctx, store.Policy{Type: fakeType, Text: permitAll}); err != nil {
		t.Fatal(err)
	}
	b, _ := newPolicyStore(m, testSealer(t), time.Now)
	if _, err := b.Get(ctx, fakeType); !errors.Is(err, ErrPolicyIntegrity) {
		t.Errorf("Get under another root: %v", err)
	}
}

// TestPolicyStoreWithoutRootKey: with no sealer only defaults serve; a
// stored row is unavailable, never trusted unauthenticated.
func TestPolicyStoreWithoutRootKey(t *testing.T) {
	ctx := context.Background()
	m := newMem()
	withKey, _ := newPolicyStore(m, testSealer(t), time.Now)
	nokey, _ := newPolicyStore(m, nil, time.Now)
	if text, err := nokey.PolicyText(ctx, fakeType); err != nil || text != permitAll {
		t.Errorf("default without a root key: %q, %v", text, err)
	}
	if err := withKey.Set(ctx, store.Policy{Type: fakeType, Text: measurementPolicy}); err != nil {
		t.Fatal(err)
	}
	nokey.forget(fakeType)
	sp, err := nokey.Get(ctx, fakeType)
	unavailableErr(t, err, fakeType, "root key")
	if sp.Text != "" {
		t.Errorf("served %q without authenticating it", sp.Text)
	}
}

// TestPolicyStoreBackendError: a failing database is an error, and the
// default is not served in its place.
func TestPolicyStoreBackendError(t *testing.T) {
	ctx := context.Background()
	m := newMem()
	m.getErr = errors.New("connection refused")
	ps, _ := newPolicyStore(m, testSealer(t), time.Now)
	if sp, err := ps.Get(ctx, fakeType); !errors.Is(err, m.getErr) || sp.Text != "" {
		t.Errorf("Get = %+v, %v", sp, err)
	}
	if text, err := ps.PolicyText(ctx, fakeType); !errors.Is(err, m.getErr) || text != "" {
		t.Errorf("PolicyText = %q, %v", text, err)
	}
	// The failure is not cached: once the database answers, it serves.
	m.getErr = nil
	if text, err := ps.PolicyText(ctx, fakeType); err != nil || text != permitAll {
		t.Errorf("after recovery: %q, %v", text, err)
	}
}

// TestPolicyStoreCache: a fresh read is served from the cache (a change by
// another node shows within cacheTTL, not at once); a stale one, or one
// from the future, is read again.
func TestPolicyStoreCache(t *testing.T) {
	ctx := context.Background()
	m := newMem()
	mac := testSealer(t)
	ps, _ := newPolicyStore(m, mac, time.Now)
	otherNode, _ := newPolicyStore(m, mac, time.Now)

	if text, _ := ps.PolicyText(ctx, fakeType); text != permitAll {
		t.Fatalf("default %q", text)
	}
	gets := m.gets
	if err := otherNode.Set(ctx, store.Policy{Type: fakeType, Text: measurementPolicy}); err != nil {
		t.Fatal(err)
	}
	if text, _ := ps.PolicyText(ctx, fakeType); text != permitAll {
		t.Errorf("within the TTL: %q, want the cached default", text)
	}
	if m.gets != gets {
		t.Errorf("a fresh cached policy was read from the store again (%d reads)", m.gets-gets)
	}
	for name, fetched := range map[string]time.Time{
		"stale":       time.Now().Add(-2 * cacheTTL),
		"future":      time.Now().Add(time.Hour),
		"just at TTL": time.Now().Add(-cacheTTL),
	} {
		ps.mu.Lock()
		c := ps.cache[fakeType]
		c.p.Text, c.fetched = permitAll, fetched
		ps.cache[fakeType] = c
		ps.mu.Unlock()
		if text, _ := ps.PolicyText(ctx, fakeType); text != measurementPolicy {
			t.Errorf("%s cache entry: %q, want the stored policy", name, text)
		}
	}
}

// auditedMem is a whole store.Store as far as policies go: transactions
// (rolled back on error) and an audit log over a memBackend.
type auditedMem struct {
	txView
	records   []store.AuditRecord
	appendErr error
}

func (s *auditedMem) WithTx(ctx context.Context, f func(tx store.Store) error) error {
	s.m.mu.Lock()
	saved := make(map[string]store.Policy, len(s.m.rows))
	for k, v := range s.m.rows {
		saved[k] = v
	}
	s.m.mu.Unlock()
	n := len(s.records)
	if err := f(s); err != nil {
		s.m.mu.Lock()
		s.m.rows = saved
		s.m.mu.Unlock()
		s.records = s.records[:n]
		return err
	}
	return nil
}

func (s *auditedMem) AppendAudit(_ context.Context, r store.AuditRecord) (int64, error) {
	if s.appendErr != nil {
		return 0, s.appendErr
	}
	s.records = append(s.records, r)
	return int64(len(s.records)), nil
}

// TestPolicyStoreAuditsThroughItsStore: over a whole store, NewPolicyStore
// records changes in that store's audit log, in the change's transaction.
func TestPolicyStoreAuditsThroughItsStore(t *testing.T) {
	ctx := audit.WithActor(context.Background(), "admin-1")
	at := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	st := &auditedMem{txView: txView{m: newMem()}}
	ps := NewPolicyStore(st, testSealer(t), func() time.Time { return at }, testDefaults)
	if err := ps.Set(ctx, store.Policy{Type: fakeType, Text: measurementPolicy}); err != nil {
		t.Fatal(err)
	}
	if len(st.records) != 1 {
		t.Fatalf("audit records %+v, want one", st.records)
	}
	r := st.records[0]
	var details map[string]string
	if err := json.Unmarshal(r.Details, &details); err != nil {
		t.Fatal(err)
	}
	if r.Action != "policy.set" || r.Object != "policies/"+fakeType || r.Actor != "admin-1" || !r.At.Equal(at) || details["policy_hash"] != PolicyHash(measurementPolicy) {
		t.Errorf("audit record %+v details %v", r, details)
	}
	if text, err := ps.PolicyText(ctx, fakeType); err != nil || text != measurementPolicy {
		t.Errorf("PolicyText after an audited Set: %q, %v", text, err)
	}

	// The audit log failing undoes the change.
	st.appendErr = errors.New("audit table locked")
	err := ps.Set(ctx, store.Policy{Type: fakeType, Text: permitAll})
	if fault.Of(err) != fault.Unavailable || !errors.Is(err, st.appendErr) {
		t.Errorf("Set with a failing audit log: %v (kind %v)", err, fault.Of(err))
	}
	if err := ps.Reset(ctx, fakeType); fault.Of(err) != fault.Unavailable {
		t.Errorf("Reset with a failing audit log: %v", err)
	}
	if text, err := ps.PolicyText(ctx, fakeType); err != nil || text != measurementPolicy {
		t.Errorf("after refused changes: %q, %v; want the audited policy still", text, err)
	}
}
