// Package config is kura's one configuration struct and how it is filled:
// built-in defaults, then a JSON config file, then KURA_* environment
// variables, then command-line flags, each overriding the one before.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/ledger/witness"
)

// Config configures `kura serve`.
type Config struct {
	Addr    string `json:"addr"`     // listen address (HTTPS only)
	DataDir string `json:"data_dir"` // where the database, sealed root and dev material live
	// Store is the database's data source name: sqlite:PATH (or a path);
	// empty: DATA_DIR/kura.db. postgres:// is refused until its engine exists.
	Store string `json:"store"`
	Dev   bool   `json:"dev"` // self-signed TLS, self-unsealing root, admin token file, simulated TEE trusted

	Issuer   string `json:"issuer"`    // token issuer URL; default https://<addr>
	TokenAlg string `json:"token_alg"` // RS256 (default), ES256 or ES384

	TLSCert string `json:"tls_cert"` // PEM certificate chain file
	TLSKey  string `json:"tls_key"`  // PEM private key file
	// ReleaseCACert and ReleaseCAKey are a CA (an intermediate under the TLS
	// certificate's CA) that certifies the key signing release answers for
	// the TLS certificate's names, as SKR clients check. --dev uses its dev
	// CA; without either the release certificate is self-signed.
	ReleaseCACert string `json:"release_ca_cert"`
	ReleaseCAKey  string `json:"release_ca_key"`

	Seal           string `json:"seal"`             // root of trust: "software" (default) or "pkcs11"
	UnsealKeyFile  string `json:"unseal_key_file"`  // 32-byte key that unseals the software root; without it operators unseal with Shamir shares
	PKCS11Module   string `json:"pkcs11_module"`    // PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
	PKCS11Token    string `json:"pkcs11_token"`     // token label
	PKCS11PIN      string `json:"-"`                // user PIN: from KURA_PKCS11_PIN or pkcs11_pin_file, never the config file
	PKCS11PINFile  string `json:"pkcs11_pin_file"`  // file holding the user PIN
	PKCS11KeyLabel string `json:"pkcs11_key_label"` // label of the root key object; default kura-root
	AdminTokenFile string `json:"admin_token_file"` // file holding the administrator bearer token (not needed with --dev)

	TrustSimulator bool     `json:"trust_simulator"` // trust kura's simulated TEE without --dev (for test rigs)
	PolicySigners  []string `json:"policy_signers"`  // PEM certificate files; when set, MAA's isolated mode: the initial policy management certificates, one of which must sign every policy upload
	TrustRoots     []string `json:"trust_roots"`     // extra vendor root bundles (PEM) to pin beside the built-in ones; each TEE module takes its vendor's

	// TEE holds the settings the TEE modules own (attest.Module.Settings),
	// as text by key: in the file they are top-level members like the
	// others (require_crl, kds_fetch, ...), in the environment KURA_<KEY>.
	TEE map[string]string `json:"-"`

	RecoverableDays  int      `json:"recoverable_days"`  // soft-delete retention of keys, 7..90; default 90
	KeyVaultResource string   `json:"keyvault_resource"` // resource URL of the Key Vault 401 challenge; default: parent domain of the request host
	OIDCIssuers      []string `json:"oidc_issuers"`      // external OpenID Connect issuers whose JWTs are accepted as bearer tokens
	OIDCAudience     string   `json:"oidc_audience"`     // required aud of external tokens
	// ReleaseAuthorities are attestation services (besides this kura's own)
	// whose tokens secure key release accepts, e.g. an MAA instance URL.
	ReleaseAuthorities []string `json:"release_authorities"`
	// OIDCCAFile is a PEM bundle trusted, besides the system roots, for the
	// HTTPS discovery of OIDC issuers and release authorities (private CAs).
	OIDCCAFile string `json:"oidc_ca_file"`

	// KeyVaultStrictInputs refuses key_ops listed twice and exp before nbf
	// (BadParameter), which Key Vault is not documented to refuse.
	KeyVaultStrictInputs bool `json:"keyvault_strict_inputs"`

	// LedgerOrigin is the origin line of the ledger's checkpoints, which
	// names the log to its verifiers and never changes; default: the
	// issuer's host and "/ledger".
	LedgerOrigin string `json:"ledger_origin"`
	// LedgerWitnesses are C2SP tlog-witness witnesses asked to cosign the
	// ledger's checkpoints, each "URL VKEY": the witness's submission
	// prefix and its cosignature verifier key. With any, the published
	// checkpoint is the latest that LedgerWitnessQuorum of them cosigned.
	LedgerWitnesses []string `json:"ledger_witnesses"`
	// LedgerWitnessQuorum is how many witnesses must cosign a checkpoint
	// before it is published; default all of them.
	LedgerWitnessQuorum int `json:"ledger_witness_quorum"`
	// LedgerWitnessInterval is how often the latest checkpoint is sent to
	// the witnesses (when it grew); default 10s.
	LedgerWitnessInterval Duration `json:"ledger_witness_interval"`

	// ReleasePolicyStrictTypes evaluates release policies without Key
	// Vault's leniency, in which {"equals": "true"} is met by the boolean
	// true: only values of the same JSON type are then equal.
	ReleasePolicyStrictTypes bool `json:"release_policy_strict_types"`

	// RateLimit bounds POST /attest/* and /oauth2/token per client address
	// and for everyone (429 with Retry-After); nil: on, except with --dev.
	RateLimit  *bool `json:"rate_limit"`
	AttestRate Rate  `json:"attest_rate"` // default 50/s per client, 1000/s in all
	TokenRate  Rate  `json:"token_rate"`  // default 10/s per client, 200/s in all

	// MetricsAddr serves GET /metrics in plain HTTP without authentication
	// (a scraper on a private network); empty: only on the main listener,
	// to the auditor or administrator role.
	MetricsAddr string `json:"metrics_addr"`

	MaxBodyBytes int64  `json:"max_body_bytes"` // request body limit; default 1 MiB
	LogLevel     string `json:"log_level"`      // debug, info, warn, error
}

// Rate is a request rate per client address and for all clients, in
// requests per second; each admits a burst of one second's worth. 0: no
// limit.
type Rate struct {
	PerClient float64 `json:"per_client"`
	Global    float64 `json:"global"`
}

// RateLimited reports whether the rate limits apply.
func (c Config) RateLimited() bool {
	if c.RateLimit != nil {
		return *c.RateLimit
	}
	return !c.Dev
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		Addr:                  "127.0.0.1:8443",
		DataDir:               "./kura-data",
		TokenAlg:              "RS256",
		MaxBodyBytes:          1 << 20,
		LogLevel:              "info",
		AttestRate:            Rate{PerClient: 50, Global: 1000},
		LedgerWitnessInterval: Duration(10 * time.Second),
		TokenRate:             Rate{PerClient: 10, Global: 200},
	}
}

// Load fills a Config for `kura serve` from args (the flags after the
// subcommand), the environment and the config file named by --config or
// KURA_CONFIG. settings are the TEE modules' own (attest.Registry.Settings).
func Load(args []string, getenv func(string) string, settings []attest.Setting) (Config, error) {
	cfg := Default()
	cfg.TEE = map[string]string{}
	file := getenv("KURA_CONFIG")
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			file = v
		} else if (a == "--config" || a == "-config") && i+1 < len(args) {
			file = args[i+1]
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return cfg, fmt.Errorf("config file: %w", err)
		}
		if b, err = takeSettings(b, settings, cfg.TEE); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", file, err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", file, err)
		}
	}
	if err := fromEnv(&cfg, getenv); err != nil {
		return cfg, err
	}
	for _, st := range settings {
		if v := getenv("KURA_" + strings.ToUpper(st.Key)); v != "" {
			if err := checkSetting(st, v); err != nil {
				return cfg, fmt.Errorf("KURA_%s=%q: %w", strings.ToUpper(st.Key), v, err)
			}
			cfg.TEE[st.Key] = v
		}
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.String("config", file, "JSON config file (also KURA_CONFIG)")
	Flags(fs, &cfg)
	settingFlags(fs, settings, cfg.TEE)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, cfg.Validate()
}

// Flags binds the command-line flags of `kura serve` to cfg.
func Flags(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address (HTTPS)")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "database data source name: sqlite:PATH or a path (default DATA/kura.db)")
	fs.BoolVar(&cfg.Dev, "dev", cfg.Dev, "development mode: generated TLS CA, self-unsealing root, admin token in DATA/dev/admin-token, simulated TEE trusted")
	fs.StringVar(&cfg.Issuer, "issuer", cfg.Issuer, "token issuer URL (default https://ADDR)")
	fs.StringVar(&cfg.TokenAlg, "token-alg", cfg.TokenAlg, "token signing algorithm: RS256, ES256 or ES384")
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "TLS certificate chain (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "TLS private key (PEM)")
	fs.StringVar(&cfg.ReleaseCACert, "release-ca-cert", cfg.ReleaseCACert, "CA certificate (PEM, an intermediate under the TLS CA) that certifies the release-signing key for the TLS names")
	fs.StringVar(&cfg.ReleaseCAKey, "release-ca-key", cfg.ReleaseCAKey, "private key (PEM) of --release-ca-cert")
	fs.StringVar(&cfg.UnsealKeyFile, "unseal-key-file", cfg.UnsealKeyFile, "file with the 32-byte unseal key of the software root (default: unseal with Shamir shares)")
	fs.StringVar(&cfg.Seal, "seal", cfg.Seal, "root of trust: software or pkcs11")
	fs.StringVar(&cfg.AdminTokenFile, "admin-token-file", cfg.AdminTokenFile, "file with the administrator bearer token")
	fs.BoolVar(&cfg.TrustSimulator, "trust-simulator", cfg.TrustSimulator, "trust the simulated TEE outside --dev (test rigs only)")
	fs.Func("rate-limit", "limit POST /attest/* and /oauth2/token per client and in all: true or false (default true, false with --dev; rates: attest_rate, token_rate in the config file)", func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q: not a boolean", v)
		}
		cfg.RateLimit = &b
		return nil
	})
	fs.BoolVar(&cfg.KeyVaultStrictInputs, "keyvault-strict-inputs", cfg.KeyVaultStrictInputs, "refuse key_ops listed twice and exp before nbf (Key Vault is not documented to)")
	fs.BoolVar(&cfg.ReleasePolicyStrictTypes, "release-policy-strict-types", cfg.ReleasePolicyStrictTypes, "release policies compare only values of the same JSON type (no Key Vault leniency: \"true\" does not equal true)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "also serve GET /metrics on this address, plain HTTP without authentication (a private network's scraper)")
	flagged := false
	fs.Func("ledger-witness", "a witness that cosigns the ledger's checkpoints: \"URL VKEY\" (repeat the flag for each; the flags replace ledger_witnesses)", func(v string) error {
		if !flagged { // flags override the file and the environment, as everywhere
			cfg.LedgerWitnesses, flagged = nil, true
		}
		cfg.LedgerWitnesses = append(cfg.LedgerWitnesses, v)
		return nil
	})
	fs.IntVar(&cfg.LedgerWitnessQuorum, "ledger-witness-quorum", cfg.LedgerWitnessQuorum, "how many ledger witnesses must cosign a checkpoint before it is published (default all)")
	fs.Func("ledger-witness-interval", "how often the latest ledger checkpoint goes to the witnesses (default 10s)", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("want a positive duration such as \"10s\", got %q", v)
		}
		cfg.LedgerWitnessInterval = Duration(d)
		return nil
	})
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", cfg.MaxBodyBytes, "request body size limit")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn, error")
}

func fromEnv(cfg *Config, getenv func(string) string) error {
	str := map[string]*string{
		"KURA_ADDR": &cfg.Addr, "KURA_DATA": &cfg.DataDir, "KURA_STORE": &cfg.Store, "KURA_ISSUER": &cfg.Issuer,
		"KURA_TOKEN_ALG": &cfg.TokenAlg, "KURA_TLS_CERT": &cfg.TLSCert, "KURA_TLS_KEY": &cfg.TLSKey,
		"KURA_RELEASE_CA_CERT": &cfg.ReleaseCACert, "KURA_RELEASE_CA_KEY": &cfg.ReleaseCAKey,
		"KURA_UNSEAL_KEY_FILE": &cfg.UnsealKeyFile, "KURA_ADMIN_TOKEN_FILE": &cfg.AdminTokenFile,
		"KURA_LOG_LEVEL": &cfg.LogLevel, "KURA_METRICS_ADDR": &cfg.MetricsAddr,
		"KURA_SEAL": &cfg.Seal, "KURA_PKCS11_MODULE": &cfg.PKCS11Module, "KURA_PKCS11_TOKEN": &cfg.PKCS11Token,
		"KURA_PKCS11_PIN": &cfg.PKCS11PIN, "KURA_PKCS11_PIN_FILE": &cfg.PKCS11PINFile, "KURA_PKCS11_KEY_LABEL": &cfg.PKCS11KeyLabel,
	}
	for k, p := range str {
		if v := getenv(k); v != "" {
			*p = v
		}
	}
	if v := getenv("KURA_RATE_LIMIT"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("KURA_RATE_LIMIT=%q: not a boolean", v)
		}
		cfg.RateLimit = &b
	}
	bools := map[string]*bool{"KURA_DEV": &cfg.Dev, "KURA_TRUST_SIMULATOR": &cfg.TrustSimulator, "KURA_RELEASE_POLICY_STRICT_TYPES": &cfg.ReleasePolicyStrictTypes,
		"KURA_KEYVAULT_STRICT_INPUTS": &cfg.KeyVaultStrictInputs}
	for k, p := range bools {
		if v := getenv(k); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%s=%q: not a boolean", k, v)
			}
			*p = b
		}
	}
	if v := getenv("KURA_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("KURA_MAX_BODY_BYTES=%q: not an integer", v)
		}
		cfg.MaxBodyBytes = n
	}
	if v := getenv("KURA_POLICY_SIGNERS"); v != "" {
		cfg.PolicySigners = strings.Split(v, ",")
	}
	if v := getenv("KURA_OIDC_ISSUERS"); v != "" {
		cfg.OIDCIssuers = strings.Split(v, ",")
	}
	if v := getenv("KURA_RELEASE_AUTHORITIES"); v != "" {
		cfg.ReleaseAuthorities = strings.Split(v, ",")
	}
	if v := getenv("KURA_OIDC_AUDIENCE"); v != "" {
		cfg.OIDCAudience = v
	}
	if v := getenv("KURA_KEYVAULT_RESOURCE"); v != "" {
		cfg.KeyVaultResource = v
	}
	if v := getenv("KURA_LEDGER_WITNESSES"); v != "" {
		cfg.LedgerWitnesses = strings.Split(v, ",")
	}
	if v := getenv("KURA_LEDGER_WITNESS_QUORUM"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("KURA_LEDGER_WITNESS_QUORUM=%q: not an integer", v)
		}
		cfg.LedgerWitnessQuorum = n
	}
	if v := getenv("KURA_LEDGER_WITNESS_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("KURA_LEDGER_WITNESS_INTERVAL=%q: want a positive duration such as \"10s\"", v)
		}
		cfg.LedgerWitnessInterval = Duration(d)
	}
	if v := getenv("KURA_TRUST_ROOTS"); v != "" {
		cfg.TrustRoots = strings.Split(v, ",")
	}
	return nil
}

// Validate checks the configuration for contradictions and missing
// production settings.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("addr is empty"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data directory is empty"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key go together"))
	}
	if (c.ReleaseCACert == "") != (c.ReleaseCAKey == "") {
		errs = append(errs, errors.New("release-ca-cert and release-ca-key go together"))
	}
	if c.Dev && c.ReleaseCACert != "" {
		errs = append(errs, errors.New("release-ca-cert: --dev certifies the release key with its development CA"))
	}
	if !c.Dev {
		if c.TLSCert == "" {
			errs = append(errs, errors.New("HTTPS needs --tls-cert and --tls-key (or --dev for a generated development CA)"))
		}
		if (c.Seal == "" || c.Seal == "software") && c.UnsealKeyFile == "" && c.AdminTokenFile == "" {
			errs = append(errs, errors.New("a sealed software root is initialised and unsealed by operators holding the admin token: set --admin-token-file (or --unseal-key-file, or seal pkcs11)"))
		}

	}
	if c.RecoverableDays != 0 && (c.RecoverableDays < 7 || c.RecoverableDays > 90) {
		errs = append(errs, fmt.Errorf("recoverable_days %d: must be 7 to 90", c.RecoverableDays))
	}
	if len(c.OIDCIssuers) > 0 && c.OIDCAudience == "" {
		errs = append(errs, errors.New("oidc_issuers needs oidc_audience: without it a token an issuer minted for another application would be accepted"))
	}
	for name, r := range map[string]Rate{"attest_rate": c.AttestRate, "token_rate": c.TokenRate} {
		if r.PerClient < 0 || r.Global < 0 || math.IsNaN(r.PerClient) || math.IsNaN(r.Global) {
			errs = append(errs, fmt.Errorf("%s: rates are requests per second, 0 (no limit) or more", name))
		}
	}
	if n := len(c.LedgerWitnesses); c.LedgerWitnessQuorum < 0 || c.LedgerWitnessQuorum > n || (n == 0 && c.LedgerWitnessQuorum != 0) {
		errs = append(errs, fmt.Errorf("ledger_witness_quorum %d: must be 1 to the %d ledger_witnesses (0: all)", c.LedgerWitnessQuorum, n))
	}
	seen := map[string]bool{}
	for _, w := range c.LedgerWitnesses {
		_, v, err := witness.Parse(w)
		if err != nil {
			errs = append(errs, fmt.Errorf("ledger_witnesses: %w", err))
			continue
		}
		if seen[v.Name()] { // one key a witness: the quorum counts witnesses
			errs = append(errs, fmt.Errorf("ledger_witnesses: witness %s is listed twice", v.Name()))
		} else {
			seen[v.Name()] = true
		}
	}
	if len(c.LedgerWitnesses) > 0 && c.LedgerWitnessInterval <= 0 {
		errs = append(errs, fmt.Errorf("ledger_witness_interval %s: must be positive", time.Duration(c.LedgerWitnessInterval)))
	}
	if c.MaxBodyBytes < 4096 {
		errs = append(errs, fmt.Errorf("max-body-bytes %d is below 4096", c.MaxBodyBytes))
	}
	switch c.Seal {
	case "", "software":
	case "pkcs11":
		if c.PKCS11Module == "" || c.PKCS11Token == "" {
			errs = append(errs, errors.New("seal pkcs11 needs pkcs11_module and pkcs11_token"))
		}
		if c.PKCS11PIN == "" && c.PKCS11PINFile == "" {
			errs = append(errs, errors.New("seal pkcs11 needs a PIN: KURA_PKCS11_PIN or pkcs11_pin_file"))
		}
	default:
		errs = append(errs, fmt.Errorf("seal %q: want software or pkcs11", c.Seal))
	}
	switch c.TokenAlg {
	case "RS256", "ES256", "ES384":
	default:
		errs = append(errs, fmt.Errorf("token-alg %q: want RS256, ES256 or ES384", c.TokenAlg))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}

// Duration is a time.Duration written as Go duration text ("10s", "1m30s")
// in the configuration file.
type Duration time.Duration

// UnmarshalJSON accepts duration text; a bare number is refused because it
// would silently mean nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"10s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("want a positive duration such as \"10s\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes duration text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// takeSettings moves the modules' settings out of the config file's JSON
// object into into, and returns the rest for the strict decode of Config.
func takeSettings(b []byte, settings []attest.Setting, into map[string]string) ([]byte, error) {
	if len(settings) == 0 {
		return b, nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return b, nil // the strict decode words the error
	}
	for _, st := range settings {
		raw, ok := members[st.Key]
		if !ok {
			continue
		}
		delete(members, st.Key)
		var v string
		switch st.Kind {
		case attest.Bool:
			var x bool
			if err := json.Unmarshal(raw, &x); err != nil {
				return nil, fmt.Errorf("%s: want true or false, got %s", st.Key, raw)
			}
			v = strconv.FormatBool(x)
		default:
			if err := json.Unmarshal(raw, &v); err != nil {
				if st.Kind == attest.Duration {
					return nil, fmt.Errorf("%s: want a duration such as \"10s\", got %s", st.Key, raw)
				}
				return nil, fmt.Errorf("%s: want a string, got %s", st.Key, raw)
			}
		}
		if err := checkSetting(st, v); err != nil {
			return nil, fmt.Errorf("%s: %w", st.Key, err)
		}
		into[st.Key] = v
	}
	return json.Marshal(members)
}

// checkSetting refuses text that the setting's kind cannot read.
func checkSetting(st attest.Setting, v string) error {
	switch st.Kind {
	case attest.Bool:
		if _, err := strconv.ParseBool(v); err != nil {
			return errors.New("not a boolean")
		}
	case attest.Duration:
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("want a positive duration such as \"10s\", got %q", v)
		}
	}
	return nil
}

// settingFlags binds the settings marked Flag to command-line flags.
func settingFlags(fs *flag.FlagSet, settings []attest.Setting, into map[string]string) {
	for _, st := range settings {
		if !st.Flag {
			continue
		}
		fs.Func(strings.ReplaceAll(st.Key, "_", "-"), st.Usage, func(v string) error {
			if err := checkSetting(st, v); err != nil {
				return err
			}
			into[st.Key] = v
			return nil
		})
		if st.Kind == attest.Bool {
			// A bare --flag means true, as for flag.Bool.
			f := fs.Lookup(strings.ReplaceAll(st.Key, "_", "-"))
			f.Value = boolSetting{key: st.Key, into: into}
		}
	}
}

// boolSetting is a boolean flag whose value lands in the settings map.
type boolSetting struct {
	key  string
	into map[string]string
}

func (b boolSetting) String() string   { return b.into[b.key] }
func (b boolSetting) IsBoolFlag() bool { return true }
func (b boolSetting) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("not a boolean")
	}
	b.into[b.key] = strconv.FormatBool(x)
	return nil
}
