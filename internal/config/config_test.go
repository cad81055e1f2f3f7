package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kura.json")
	os.WriteFile(file, []byte(`{"addr":"127.0.0.1:1","data_dir":"/from-file","token_alg":"ES384","dev":true}`), 0o600)
	cfg, err := Load([]string{"--config", file, "--addr", "127.0.0.1:3"}, env(map[string]string{"KURA_ADDR": "127.0.0.1:2", "KURA_DATA": "/from-env"}))
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
	} {
		_, err := Load(c.args, env(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%v): %v, want an error containing %q", c.args, err, c.want)
		}
	}
	if _, err := Load([]string{"--dev"}, env(nil)); err != nil {
		t.Errorf("--dev alone: %v", err)
	}
}

func TestKDSTimeoutInFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"kds_timeout":"1m30s"}`), 0o600)
	cfg, err := Load([]string{"--dev", "--config", good}, env(nil))
	if err != nil || time.Duration(cfg.KDSTimeout) != 90*time.Second {
		t.Fatalf("kds_timeout \"1m30s\": %v %v", cfg.KDSTimeout, err)
	}
	for _, bad := range []string{`{"kds_timeout":10}`, `{"kds_timeout":"soon"}`, `{"kds_timeout":"-1s"}`} {
		f := filepath.Join(dir, "bad.json")
		os.WriteFile(f, []byte(bad), 0o600)
		if _, err := Load([]string{"--dev", "--config", f}, env(nil)); err == nil || !strings.Contains(err.Error(), "duration") {
			t.Errorf("%s: %v, want a duration error", bad, err)
		}
	}
}
