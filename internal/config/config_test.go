package config

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

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

// TestLedgerWitnesses: witnesses from the file, replaced by the
// environment, replaced by flags; a malformed one, one listed twice, a
// quorum the list cannot meet and a bad interval are refused.
func TestLedgerWitnesses(t *testing.T) {
	_, k1, _ := note.GenerateKey(rand.Reader, "w1.example/w")
	_, k2, _ := note.GenerateKey(rand.Reader, "w2.example/w")
	w1, w2 := "https://w1.example/ "+k1, "https://w2.example/ "+k2
	dir := t.TempDir()
	file := filepath.Join(dir, "kura.json")
	b, _ := json.Marshal(map[string]any{"dev": true, "ledger_witnesses": []string{w1, w2}, "ledger_witness_quorum": 1, "ledger_witness_interval": "2s"})
	os.WriteFile(file, b, 0o600)
	cfg, err := Load([]string{"--config", file}, env(nil), nil)
	if err != nil || len(cfg.LedgerWitnesses) != 2 || cfg.LedgerWitnessQuorum != 1 || time.Duration(cfg.LedgerWitnessInterval) != 2*time.Second {
		t.Fatalf("from the file: %+v %v", cfg, err)
	}
	cfg, err = Load([]string{"--config", file}, env(map[string]string{"KURA_LEDGER_WITNESSES": w2, "KURA_LEDGER_WITNESS_INTERVAL": "500ms"}), nil)
	if err != nil || len(cfg.LedgerWitnesses) != 1 || cfg.LedgerWitnesses[0] != w2 || time.Duration(cfg.LedgerWitnessInterval) != 500*time.Millisecond {
		t.Fatalf("from the environment: %+v %v", cfg.LedgerWitnesses, err)
	}
	cfg, err = Load([]string{"--config", file, "--ledger-witness", w1, "--ledger-witness-quorum", "1"}, env(nil), nil)
	if err != nil || len(cfg.LedgerWitnesses) != 1 || cfg.LedgerWitnesses[0] != w1 {
		t.Fatalf("the flag replaces the file's: %+v %v", cfg.LedgerWitnesses, err)
	}
	if cfg, err := Load([]string{"--dev"}, env(nil), nil); err != nil || time.Duration(cfg.LedgerWitnessInterval) != 10*time.Second || len(cfg.LedgerWitnesses) != 0 {
		t.Errorf("defaults: %+v %v", cfg, err)
	}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--dev", "--ledger-witness", "https://w.example/"}, nil, "separated by a space"},
		{[]string{"--dev", "--ledger-witness", w1, "--ledger-witness", w1}, nil, "listed twice"},
		{[]string{"--dev", "--ledger-witness", w1, "--ledger-witness-quorum", "2"}, nil, "ledger_witness_quorum 2"},
		{[]string{"--dev", "--ledger-witness-quorum", "1"}, nil, "ledger_witness_quorum 1"},
		{[]string{"--dev", "--ledger-witness", w1, "--ledger-witness-interval", "0s"}, nil, "positive duration"},
		{[]string{"--dev"}, map[string]string{"KURA_LEDGER_WITNESS_QUORUM": "all"}, "KURA_LEDGER_WITNESS_QUORUM"},
		{[]string{"--dev"}, map[string]string{"KURA_LEDGER_WITNESS_INTERVAL": "-1s"}, "KURA_LEDGER_WITNESS_INTERVAL"},
	} {
		if _, err := Load(c.args, env(c.env), nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%v, %v): %v, want %q", c.args, c.env, err, c.want)
		}
	}
}
