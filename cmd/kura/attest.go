package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	apimaa "github.com/kura-project/kura/internal/api/maa"
	"github.com/kura-project/kura/internal/app"
	"github.com/kura-project/kura/internal/attest"
	"github.com/kura-project/kura/internal/attest/appraisal"
	"github.com/kura-project/kura/internal/attest/intel"
	"github.com/kura-project/kura/internal/attest/sim"
	"github.com/kura-project/kura/internal/attest/tees"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/seal"
)

func attestVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("attest verify", flag.ContinueOnError)
	typ := fs.String("type", "SevSnpVm", "attestation type")
	at := fs.String("at", "", "verification time, RFC 3339 (default now)")
	data, resolveData := dataFlag(fs, "data directory with cached collateral and policies")
	storeDSN := storeFlag(fs)
	trustSim := fs.Bool("trust-simulator", false, "trust kura's simulated TEE (its root in DATA/sim)")
	unsealFile := fs.String("unseal-key-file", "", "unseal key, to authenticate the stored policy (default DATA/dev/unseal.key if present)")
	policyFile := fs.String("policy", "", "evaluate this policy text instead of the stored one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := resolveData(); err != nil {
		return err
	}
	if err := resolveStore(fs, storeDSN); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &exitError{2, errors.New("attest verify takes one request body file")}
	}
	reg := tees.Registry()
	mod, ok := reg.Lookup(*typ)
	if !ok {
		return &exitError{2, fmt.Errorf("unknown attestation type %q (%s)", *typ, typeNames(reg))}
	}
	when := time.Now()
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return &exitError{2, fmt.Errorf("--at: %w", err)}
		}
		when = t
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	cfg := config.Default()
	cfg.DataDir, cfg.TrustSimulator, cfg.UnsealKeyFile, cfg.Store = *data, *trustSim, *unsealFile, *storeDSN
	if cfg.UnsealKeyFile == "" {
		cfg.Dev = true // only to find DATA/dev/unseal.key; nothing is created
	}
	sealer, err := app.OpenSeal(cfg, false)
	if err != nil {
		if *unsealFile != "" {
			return &exitError{1, fmt.Errorf("--unseal-key-file: %w", err)}
		}
		sealer = nil // stored policies cannot be authenticated; defaults and --policy still work
	}
	cfg.Dev = false
	st, err := app.OpenStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := app.OpenAttestation(cfg, reg, st, nilIfNone(sealer), func() time.Time { return when })
	if err != nil {
		return err
	}
	req, err := apimaa.DecodeRequest(mod, body)
	if err != nil {
		return &exitError{1, err}
	}
	if *policyFile != "" {
		text, err := os.ReadFile(*policyFile)
		if err != nil {
			return err
		}
		req.DraftPolicy = string(text)
	}
	svc := newAppraisal(a, when)
	out, err := svc.Appraise(ctx, req, when)
	if err != nil {
		return &exitError{1, err}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out.Claims)
}

// client is an HTTPS client for a kura server that trusts the dev CA in
// DATA/tls/ca.pem (or --ca) and sends the admin token when it has one.
type client struct {
	url   string
	http  *http.Client
	token string
}

// Like VAULT_ADDR and VAULT_CACERT, KURA_ADDR (a URL, or host:port for
// https), KURA_CACERT, KURA_DATA and KURA_TOKEN give the defaults.
func clientFlags(fs *flag.FlagSet) func() (*client, error) {
	mk, _, _ := clientDataFlags(fs)
	return mk
}

// clientDataFlags is clientFlags that also gives the data directory (once
// resolved) to a command that can work on it offline.
func clientDataFlags(fs *flag.FlagSet) (func() (*client, error), *string, func() error) {
	url := fs.String("url", envOr("KURA_ADDR", "https://127.0.0.1:8443"), "kura server URL (default KURA_ADDR)")
	data, resolveData := dataFlag(fs, "data directory, for DATA/tls/ca.pem and DATA/dev/admin-token")
	ca := fs.String("ca", os.Getenv("KURA_CACERT"), "CA certificate to trust (default KURA_CACERT, else DATA/tls/ca.pem, else the system roots)")
	tokenFile := fs.String("token-file", "", "bearer token file (default KURA_TOKEN's token, else DATA/dev/admin-token if present)")
	return func() (*client, error) {
		if err := resolveData(); err != nil {
			return nil, err
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		caFile := *ca
		if caFile == "" {
			if _, err := os.Stat(filepath.Join(*data, "tls", "ca.pem")); err == nil {
				caFile = filepath.Join(*data, "tls", "ca.pem")
			}
		}
		if caFile != "" {
			b, err := os.ReadFile(caFile)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
			}
			tc.RootCAs = pool
		}
		u := strings.TrimRight(*url, "/")
		if !strings.Contains(u, "://") {
			u = "https://" + u // KURA_ADDR=host:port
		}
		c := &client{url: u, http: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64},
		}}
		tf := *tokenFile
		if tok := os.Getenv("KURA_TOKEN"); tf == "" && tok != "" {
			c.token = strings.TrimSpace(tok)
			return c, nil
		}
		if tf == "" {
			if _, err := os.Stat(filepath.Join(*data, "dev", "admin-token")); err == nil {
				tf = filepath.Join(*data, "dev", "admin-token")
			}
		}
		if tf != "" {
			b, err := os.ReadFile(tf)
			if err != nil {
				return nil, err
			}
			c.token = strings.TrimSpace(string(b))
		}
		return c, nil
	}, data, resolveData
}

// do sends a request and returns the body of a 2xx answer, or an error
// carrying the server's error message.
func (c *client) do(ctx context.Context, method, path, ctype string, body []byte) ([]byte, error) {
	b, _, err := c.doHeader(ctx, method, path, ctype, body)
	return b, err
}

// doHeader is do with the answer's header.
func (c *client) doHeader(ctx context.Context, method, path, ctype string, body []byte) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return nil, resp.Header, &httpError{resp.StatusCode, fmt.Sprintf("%s (%s): %s", resp.Status, e.Error.Code, e.Error.Message)}
		}
		return nil, resp.Header, &httpError{resp.StatusCode, fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	return b, resp.Header, nil
}

// decodeJWT returns the header and payload of a compact JWS, unverified
// (for display only).
func decodeJWT(tok string) (map[string]any, map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("not a compact JWS")
	}
	var h, p map[string]any
	for i, dst := range []*map[string]any{&h, &p} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return nil, nil, err
		}
	}
	return h, p, nil
}

// attestSend posts a request body to a running kura's /attest/{type}.
// `attest snp` is `attest send --type SevSnpVm`, kept for the scripts that
// call it.
func attestSend(ctx context.Context, name, defType string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("attest "+name, flag.ContinueOnError)
	mk := clientFlags(fs)
	typ := fs.String("type", defType, "attestation type (a path segment of /attest/{type})")
	apiVersion := fs.String("api-version", "2025-06-01", "api-version to send")
	raw := fs.Bool("raw", false, "print the token itself instead of its decoded header and claims")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &exitError{2, fmt.Errorf("attest %s takes one request body file", name)}
	}
	if *typ == "" || strings.ContainsAny(*typ, "/?#%") {
		return &exitError{2, fmt.Errorf("attest %s needs --type, an attestation type such as SevSnpVm", name)}
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	c, err := mk()
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, "/attest/"+*typ+"?api-version="+url.QueryEscape(*apiVersion), "application/json", body)
	if err != nil {
		return err
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		return fmt.Errorf("server answer: %w", err)
	}
	if *raw {
		fmt.Fprintln(stdout, out.Token)
		return nil
	}
	h, p, err := decodeJWT(out.Token)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"header": h, "claims": p})
}

func collateralImport(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("collateral import", flag.ContinueOnError)
	mk, data, resolveData := clientDataFlags(fs)
	storeDSN := storeFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := resolveData(); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return &exitError{2, errors.New("collateral import takes one or more files (AMD: VCEK, VLEK, ASK as DER or PEM, CRLs; Intel: dcap-qvl bundles, or PCS answers with their certificates and CRLs)")}
	}
	items, err := collateralFiles(fs.Args())
	if err != nil {
		return err
	}
	// With --url, or KURA_ADDR and no local store named (--data, --store,
	// --config), the files go to the server's API.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["url"] || (os.Getenv("KURA_ADDR") != "" && !set["data"] && !set["store"] && !set["config"]) {
		c, err := mk()
		if err != nil {
			return err
		}
		for _, it := range items {
			f, b := it.name, it.data
			resp, err := c.do(ctx, http.MethodPost, "/kura/v1/collateral", "application/octet-stream", b)
			if err != nil {
				return &exitError{1, fmt.Errorf("%s: %w", f, err)}
			}
			var out struct {
				Imported int `json:"imported"`
			}
			json.Unmarshal(resp, &out)
			fmt.Fprintf(stdout, "%s: imported %d item(s) into %s\n", f, out.Imported, c.url)
		}
		return nil
	}
	if err := resolveStore(fs, storeDSN); err != nil {
		return err
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Store = *data, *storeDSN
	st, err := app.OpenStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	a, err := app.OpenAttestation(cfg, tees.Registry(), st, nil, time.Now)
	if err != nil {
		return err
	}
	for _, it := range items {
		f, b := it.name, it.data
		n, err := a.Import(ctx, b)
		if err != nil {
			return &exitError{1, fmt.Errorf("%s: %w", f, err)}
		}
		fmt.Fprintf(stdout, "%s: imported %d item(s)\n", f, n)
	}
	return nil
}

// collateralFile is one file to import (or a bundle assembled from several).
type collateralFile struct {
	name string
	data []byte
}

// collateralFiles reads the files and assembles Intel PCS answers among
// them (TCB info, enclave identity, certificates and CRLs, as Intel
// serves them) into bundles; the other files are imported as they are.
func collateralFiles(paths []string) ([]collateralFile, error) {
	var raw [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		raw = append(raw, b)
	}
	bundles, used, err := intel.AssemblePCS(raw)
	if err != nil {
		return nil, &exitError{1, err}
	}
	var out []collateralFile
	var from []string
	for _, i := range used {
		from = append(from, filepath.Base(paths[i]))
	}
	for _, b := range bundles {
		out = append(out, collateralFile{"Intel PCS answers (" + strings.Join(from, ", ") + ")", b})
	}
	for i, p := range paths {
		if !slices.Contains(used, i) {
			out = append(out, collateralFile{p, raw[i]})
		}
	}
	return out, nil
}

func policyCmd(ctx context.Context, op string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy "+op, flag.ContinueOnError)
	mk := clientFlags(fs)
	typ := fs.String("type", "SevSnpVm", "attestation type")
	file := fs.String("file", "", "policy text file (set)")
	apiVersion := fs.String("api-version", "2025-06-01", "api-version to send")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := mk()
	if err != nil {
		return err
	}
	path := "/policies/" + *typ
	var resp []byte
	switch op {
	case "get":
		resp, err = c.do(ctx, http.MethodGet, path+"?api-version="+*apiVersion, "", nil)
	case "set":
		if *file == "" {
			return &exitError{2, errors.New("policy set needs --file")}
		}
		text, rerr := os.ReadFile(*file)
		if rerr != nil {
			return rerr
		}
		resp, err = c.do(ctx, http.MethodPut, path+"?api-version="+*apiVersion, "text/plain", []byte(unsignedPolicyJWS(string(text))))
	case "reset":
		resp, err = c.do(ctx, http.MethodPost, path+":reset?api-version="+*apiVersion, "text/plain", []byte(unsignedPolicyJWS("")))
	default:
		return &exitError{2, fmt.Errorf("unknown policy subcommand %q (get, set, reset)", op)}
	}
	if err != nil {
		return err
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		return fmt.Errorf("server answer: %w", err)
	}
	_, claims, err := decodeJWT(out.Token)
	if err != nil {
		return err
	}
	if r, ok := claims["x-ms-policy-result"]; ok {
		fmt.Fprintf(stdout, "result: %v\n", r)
	}
	if jws, ok := claims["x-ms-policy"].(string); ok {
		parts := strings.Split(jws, ".")
		if len(parts) == 3 {
			if pb, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
				var doc struct{ AttestationPolicy string }
				if json.Unmarshal(pb, &doc) == nil {
					if text, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(doc.AttestationPolicy, "=")); err == nil {
						fmt.Fprint(stdout, string(text))
					}
				}
			}
		}
	}
	return nil
}

// unsignedPolicyJWS wraps policy text as an unsigned MAA policy JWS; an
// empty text makes the empty document a reset takes.
func unsignedPolicyJWS(text string) string {
	payload := "{}"
	if text != "" {
		b, _ := json.Marshal(map[string]string{"AttestationPolicy": base64.RawURLEncoding.EncodeToString([]byte(text))})
		payload = string(b)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "."
}

func simSNP(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sim snp", flag.ContinueOnError)
	rt := fs.String("runtime-data", "", "runtime data file; its SHA-256 goes into report_data")
	out := fs.String("out", "", "where to write the SevSnpVm request body")
	data, resolveData := dataFlag(fs, "the server's data directory, holding the simulated root (DATA/sim)")
	dataType := fs.String("data-type", "", "runtimeData dataType: JSON or Binary (default: JSON if the file is JSON)")
	nonce := fs.String("nonce", "", "nonce to send")
	debug := fs.Bool("debug", false, "simulate a debuggable guest")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := resolveData(); err != nil {
		return err
	}
	if *rt == "" || *out == "" {
		return &exitError{2, errors.New("sim snp needs --runtime-data and --out")}
	}
	runtime, dt, err := readRuntime(*rt, *dataType)
	if err != nil {
		return err
	}
	a, err := sim.LoadOrCreate(filepath.Join(*data, "sim"), time.Now())
	if err != nil {
		return err
	}
	body, err := a.Body(runtime, dt, *nonce, sim.Options{Debug: *debug})
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, body, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: simulated SEV-SNP evidence (TEST ONLY root in %s), report_data = SHA-256(runtime data)\n", *out, filepath.Join(*data, "sim"))
	return nil
}

// readRuntime reads a runtime data file and its MAA dataType: dataType
// if set, else JSON when the file is JSON, else Binary.
func readRuntime(path, dataType string) ([]byte, string, error) {
	runtime, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	if dataType == "" {
		dataType = "Binary"
		if json.Valid(runtime) {
			dataType = "JSON"
		}
	}
	return runtime, dataType, nil
}

// nilIfNone keeps a nil *seal.Sealer from becoming a non-nil interface.
func nilIfNone(s *seal.Sealer) appraisal.Sealer {
	if s == nil {
		return nil
	}
	return s
}

func newAppraisal(a *app.Attestation, when time.Time) *appraisal.Service {
	return appraisal.NewService(a.TEEs, a.Policies, nil, func() time.Time { return when })
}

// typeNames lists the registered attestation types, for usage errors.
func typeNames(reg *attest.Registry) string {
	var names []string
	for _, m := range reg.Modules() {
		names = append(names, m.Type)
	}
	return strings.Join(names, ", ")
}

func tokenRotate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token rotate", flag.ContinueOnError)
	mk := clientFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := mk()
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, "/kura/v1/token-keys:rotate", "", nil)
	if err != nil {
		return err
	}
	var out struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		return fmt.Errorf("server answer: %w", err)
	}
	fmt.Fprintf(stdout, "rotated; %d key(s) published (the newest signs):\n", len(out.Keys))
	for _, k := range out.Keys {
		fmt.Fprintf(stdout, "  %s %s\n", k.Alg, k.Kid)
	}
	return nil
}

// storeFlag is --store, defaulting to KURA_STORE as `kura serve` does, so
// offline commands read the database the server uses.
func storeFlag(fs *flag.FlagSet) *string {
	return fs.String("store", os.Getenv("KURA_STORE"), "database data source name (default KURA_STORE, else the store of --config or KURA_CONFIG, else DATA/kura.db)")
}

// resolveStore fills an unset --store (and KURA_STORE) from the config
// file's store, as kura serve takes it; after Parse, with dataFlag's
// --config on fs.
func resolveStore(fs *flag.FlagSet, dsn *string) error {
	f := fs.Lookup("config")
	if *dsn != "" || f == nil || f.Value.String() == "" {
		return nil
	}
	var c struct {
		Store string `json:"store"`
	}
	if err := readConfigFile(f.Value.String(), &c); err != nil {
		return err
	}
	*dsn = c.Store
	return nil
}

// readConfigFile decodes the members v names from kura serve's config file.
func readConfigFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// envOr is the environment variable k, or def when it is unset or empty.
// dataFlag adds --data and --config to a command that reads the server's
// data directory, which it finds as kura serve does: --data, else
// KURA_DATA, else the data_dir of the config file (--config or
// KURA_CONFIG), else ./kura-data. Call the returned function after Parse.
func dataFlag(fs *flag.FlagSet, what string) (*string, func() error) {
	data := fs.String("data", "", what+" (default: KURA_DATA, else data_dir of --config or KURA_CONFIG, else ./kura-data)")
	file := fs.String("config", os.Getenv("KURA_CONFIG"), "kura serve's JSON config file, read for its data_dir (default KURA_CONFIG)")
	return data, func() error {
		if *data != "" {
			return nil
		}
		if v := os.Getenv("KURA_DATA"); v != "" {
			*data = v
			return nil
		}
		if *file != "" {
			var c struct {
				DataDir string `json:"data_dir"`
			}
			if err := readConfigFile(*file, &c); err != nil {
				return err
			}
			if c.DataDir != "" {
				*data = c.DataDir
				return nil
			}
		}
		*data = config.Default().DataDir
		return nil
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// httpError is a server's refusal, with its status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }
