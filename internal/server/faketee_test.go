package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/tees"
	"github.com/kura-project/kura/internal/config"
)

// fakeKey "signs" fake evidence: an HMAC stands in for a vendor signature.
var fakeKey = []byte("fake TEE vendor key")

// fakeEvidence is the fake TEE's quote: report data and a measurement,
// authenticated by mac.
type fakeEvidence struct {
	ReportData  string `json:"report_data"` // hex, 64 bytes
	Measurement string `json:"measurement"`
	MAC         string `json:"mac"` // hex HMAC-SHA256 of report_data|measurement
}

func fakeMAC(e fakeEvidence) string {
	m := hmac.New(sha256.New, fakeKey)
	m.Write([]byte(e.ReportData + "|" + e.Measurement))
	return hex.EncodeToString(m.Sum(nil))
}

type fakeVerifier struct{ minMeasurement string }

func (v fakeVerifier) Verify(_ context.Context, ev []byte, now time.Time) (*attest.Verified, error) {
	var e fakeEvidence
	if err := json.Unmarshal(ev, &e); err != nil {
		return nil, attest.BadWrap("quote", err, "not fake evidence")
	}
	if !hmac.Equal([]byte(fakeMAC(e)), []byte(e.MAC)) {
		return nil, attest.Bad("quote.mac", "does not verify")
	}
	rd, err := hex.DecodeString(e.ReportData)
	if err != nil {
		return nil, attest.BadWrap("quote.report_data", err, "not hex")
	}
	return &attest.Verified{AttestationType: "faketee", ReportData: rd, Claims: attest.Claims{
		{Type: "x-kura-faketee-measurement", Value: e.Measurement},
	}}, nil
}

// fakeModule is a whole TEE registration, built only from this file.
func fakeModule(built *attest.Deps) attest.Module {
	return attest.Module{
		Type: "FakeTee", Member: "quote", ReportDataField: "report_data",
		DefaultPolicy: "version=1.0;\nauthorizationrules\n{\n    c:[type==\"x-kura-faketee-measurement\", value==\"good\"] => permit();\n};\nissuancerules\n{\n    => issue(type=\"fake-issued\", value=true);\n};\n",
		Settings:      []attest.Setting{{Key: "fake_min", Kind: attest.String}},
		New: func(d attest.Deps) (*attest.TEE, error) {
			*built = d
			return &attest.TEE{Verifier: fakeVerifier{minMeasurement: d.Setting("fake_min")}}, nil
		},
	}
}

// TestFakeTEEEndToEnd: a TEE registered from a test attests over HTTP
// through the server, the appraisal (its default policy, its report-data
// binding) and the MAA surface, with no change outside this file.
func TestFakeTEEEndToEnd(t *testing.T) {
	reg := tees.Registry()
	var deps attest.Deps
	if err := reg.Register(fakeModule(&deps)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Dev, cfg.Issuer = dir, true, "https://kura.test"
	cfg.TEE = map[string]string{"fake_min": "3"}
	srv, err := NewWithRegistry(context.Background(), cfg, reg, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r := &rig{t: t, srv: srv, dir: dir}
	adm, err := os.ReadFile(filepath.Join(dir, "dev", "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	r.admin = strings.TrimSpace(string(adm))
	if deps.Setting("fake_min") != "3" || deps.DataDir != dir || !deps.Simulator || deps.Collateral == nil {
		t.Fatalf("the module's dependencies: %+v", deps)
	}

	runtime := []byte(`{"keys":[]}`)
	sum := sha256.Sum256(runtime)
	quote := func(measurement string, rd []byte) []byte {
		e := fakeEvidence{ReportData: hex.EncodeToString(append(rd, make([]byte, 32)...)), Measurement: measurement}
		e.MAC = fakeMAC(e)
		q, _ := json.Marshal(e)
		b, _ := json.Marshal(map[string]any{"quote": b64u(q), "nonce": "n-7",
			"runtimeData": map[string]string{"data": base64.StdEncoding.EncodeToString(runtime), "dataType": "JSON"}})
		return b
	}
	const path = "/attest/faketee?api-version=2022-08-01" // the type in any case

	code, b, _ := r.do("POST", path, quote("good", sum[:]))
	if code != http.StatusOK {
		t.Fatalf("attest: %d %s", code, b)
	}
	var tok struct{ Token string }
	json.Unmarshal(b, &tok)
	parts := strings.Split(tok.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", tok.Token)
	}
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	json.Unmarshal(p, &claims)
	if claims["x-kura-faketee-measurement"] != "good" || claims["x-ms-attestation-type"] != "faketee" || claims["fake-issued"] != true || claims["nonce"] != "n-7" {
		t.Errorf("claims: %v", claims)
	}

	for _, c := range []struct {
		name string
		body []byte
		want string
	}{
		{"policy refuses", quote("bad", sum[:]), "PolicyEvaluationError"},
		{"runtime data not bound", quote("good", make([]byte, 32)), "report_data"},
		{"forged", []byte(strings.Replace(string(quote("good", sum[:])), `"quote":"`, `"quote":"x`, 1)), "quote"},
		{"evidence in the wrong member", []byte(`{"report":"e30"}`), "quote: missing"},
		{"init-time data without a launch field", []byte(strings.Replace(string(quote("good", sum[:])), `"nonce"`, `"initTimeData":{"data":"e30","dataType":"JSON"},"nonce"`, 1)), "initTimeData: FakeTee evidence has no launch-time field"},
	} {
		code, b, h := r.do("POST", path, c.body)
		if code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", c.name, code, b)
			continue
		}
		ecode, msg := errBody(t, b, h)
		if !strings.Contains(ecode+" "+msg, c.want) {
			t.Errorf("%s: %s %s, want %q", c.name, ecode, msg, c.want)
		}
	}

	// Its default policy is served and replaceable like any other.
	code, b, _ = r.do("GET", "/policies/FakeTee?api-version=2022-08-01", nil, "Authorization", "Bearer "+r.admin)
	if code != http.StatusOK {
		t.Fatalf("get policy: %d %s", code, b)
	}
	// SevSnpVm is still there beside it.
	if _, ok := srv.App().Reg.Lookup("SevSnpVm"); !ok {
		t.Error("SevSnpVm lost")
	}
}

// TestRegistryRefusesConflicts: a type registered twice, a module without
// its essentials and a setting key two modules claim are refused.
func TestRegistryRefusesConflicts(t *testing.T) {
	reg := tees.Registry()
	var d attest.Deps
	if err := reg.Register(fakeModule(&d)); err != nil {
		t.Fatal(err)
	}
	m := fakeModule(&d)
	m.Type = "FAKETEE"
	if err := reg.Register(m); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate type: %v", err)
	}
	m = fakeModule(&d)
	m.Type = "Other"
	if err := reg.Register(m); err == nil || !strings.Contains(err.Error(), "fake_min") {
		t.Errorf("shared setting: %v", err)
	}
	m = fakeModule(&d)
	m.Type, m.Settings, m.Member = "Third", nil, ""
	if err := reg.Register(m); err == nil {
		t.Error("a module without an evidence member was registered")
	}
}
