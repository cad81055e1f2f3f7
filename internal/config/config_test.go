package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kura-project/kura/internal/attest"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kura.json")
	os.WriteFile(file, []byte(`{"addr":"127.0.0.1:1","data_dir":"/from-file","token_alg":"ES384","dev":true}`), 0o600)
	cfg, err := Load([]string{"--config", file, "--addr", "127.0.0.1:3"}, env(map[string]string{"KURA_ADDR": "127.0.0.1:2", "KURA_DATA": "/from-env"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:3" || cfg.DataDir != "/from-env" || cfg.TokenAlg != "ES384" || !cfg.Dev {
		t.Errorf("precedence: %+v", cfg)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"addr":"x","unknown_key":1}`), 0o600)
	rates := filepath.Join(dir, "rates.json")
	os.WriteFile(rates, []byte(`{"dev":true,"attest_rate":{"per_client":-1,"global":5}}`), 0o600)
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "--tls-cert"},
		{[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, nil, "--admin-token-file"},
		{[]string{"--dev", "--seal", "tpm"}, nil, "seal"},
		{[]string{"--dev", "--seal", "pkcs11"}, nil, "pkcs11_module"},
		{[]string{"--dev", "--token-alg", "HS256"}, nil, "token-alg"},
		{[]string{"--dev", "--max-body-bytes", "10"}, nil, "max-body-bytes"},
		{[]string{"--dev", "--log-level", "loud"}, nil, "log-level"},
		{[]string{"--dev", "--tls-cert", "c.pem"}, nil, "go together"},
		{[]string{"--dev"}, map[string]string{"KURA_DEV": "maybe"}, "not a boolean"},
		{[]string{"--config", bad}, nil, "unknown_key"},
		{[]string{"--dev", "extra"}, nil, "unexpected argument"},
		{[]string{"--config", rates}, nil, "attest_rate"},
		{[]string{"--dev", "--rate-limit", "sometimes"}, nil, "not a boolean"},
		{[]string{"--dev"}, map[string]string{"KURA_RATE_LIMIT": "maybe"}, "KURA_RATE_LIMIT"},
		{[]string{"--dev", "--release-ca-cert", "ca.pem"}, nil, "go together"},
		{[]string{"--dev", "--release-ca-cert", "ca.pem", "--release-ca-key", "k.pem"}, nil, "development CA"},
	} {
		_, err := Load(c.args, env(c.env), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%v): %v, want an error containing %q", c.args, err, c.want)
		}
	}
	if _, err := Load([]string{"--dev"}, env(nil), nil); err != nil {
		t.Errorf("--dev alone: %v", err)
	}
}

// settings stand for a TEE module's own (attest.Module.Settings).
var settings = []attest.Setting{
	{Key: "kds_timeout", Kind: attest.Duration, Default: "10s"},
	{Key: "require_crl", Kind: attest.Bool, Flag: true},
	{Key: "kds_url", Kind: attest.String},
}

// TestModuleSettings: a module's settings are read from the file, the
// environment and flags, in that order of precedence, checked by kind, and
// still refused when misspelt.
func TestModuleSettings(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"kds_timeout":"1m30s","require_crl":false,"kds_url":"https://file"}`), 0o600)
	cfg, err := Load([]string{"--dev", "--config", good}, env(nil), settings)
	if err != nil || cfg.TEE["kds_timeout"] != "1m30s" || cfg.TEE["require_crl"] != "false" || cfg.TEE["kds_url"] != "https://file" {
		t.Fatalf("from the file: %v %v", cfg.TEE, err)
	}
	cfg, err = Load([]string{"--dev", "--config", good, "--require-crl"}, env(map[string]string{"KURA_KDS_URL": "https://env", "KURA_REQUIRE_CRL": "false"}), settings)
	if err != nil || cfg.TEE["require_crl"] != "true" || cfg.TEE["kds_url"] != "https://env" {
		t.Fatalf("env and flags over the file: %v %v", cfg.TEE, err)
	}
	if cfg, err := Load([]string{"--dev"}, env(nil), settings); err != nil || len(cfg.TEE) != 0 {
		t.Fatalf("nothing set: %v %v", cfg.TEE, err)
	}
	for _, c := range []struct {
		file string
		env  map[string]string
		args []string
		want string
	}{
		{`{"kds_timeout":10}`, nil, nil, "duration"},
		{`{"kds_timeout":"soon"}`, nil, nil, "duration"},
		{`{"kds_timeout":"-1s"}`, nil, nil, "duration"},
		{`{"require_crl":"yes"}`, nil, nil, "true or false"},
		{`{"kds_url":1}`, nil, nil, "string"},
		{`{"require_crls":true}`, nil, nil, "require_crls"},
		{`{}`, map[string]string{"KURA_KDS_TIMEOUT": "x"}, nil, "KURA_KDS_TIMEOUT"},
		{`{}`, map[string]string{"KURA_REQUIRE_CRL": "maybe"}, nil, "KURA_REQUIRE_CRL"},
		{`{}`, nil, []string{"--require-crl=maybe"}, "require-crl"},
	} {
		f := filepath.Join(dir, "bad.json")
		os.WriteFile(f, []byte(c.file), 0o600)
		_, err := Load(append([]string{"--dev", "--config", f}, c.args...), env(c.env), settings)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v %v: %v, want an error containing %q", c.file, c.env, c.args, err, c.want)
		}
	}
}

// TestEverySettingDocumented: each member of the config file is named in
// the README (the "every setting documented").
func TestEverySettingDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeOf(Config{})
	for i := range typ.NumField() {
		tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		if !strings.Contains(string(readme), "`"+tag+"`") {
			t.Errorf("config file setting %q is not documented in README.md", tag)
		}
	}
}
