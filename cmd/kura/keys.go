package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// keysCmd is `kura keys`: every Key Vault keys operation over HTTPS, as
// JSON in and out (byte values as base64url), so it composes with scripts.
func keysCmd(ctx context.Context, op string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys "+op, flag.ContinueOnError)
	fs.SetOutput(stdout) // -h is asked for: its answer goes to standard output
	mk := clientFlags(fs)
	apiVersion := fs.String("api-version", "2025-07-01", "api-version to send")
	name := fs.String("name", "", "key name")
	version := fs.String("version", "", "key version (default: latest)")
	kty := fs.String("kty", "RSA", "create: key type (RSA, RSA-HSM, EC, EC-HSM, oct, oct-HSM)")
	size := fs.Int("size", 0, "create: key size in bits")
	crv := fs.String("crv", "", "create: curve (P-256, P-384, P-521)")
	ops := fs.String("ops", "", "create/update: comma-separated key_ops")
	exportable := fs.Bool("exportable", false, "create/import: exportable (needs --release-policy)")
	releasePolicy := fs.String("release-policy", "", "create/import/update: release policy JSON file")
	immutable := fs.Bool("immutable", false, "create/import/update: make the release policy immutable")
	enabled := fs.String("enabled", "", "create/import/update: true or false")
	tags := fs.String("tags", "", "create/update: comma-separated k=v tags")
	jwkFile := fs.String("jwk", "", "import: JWK file with the private key")
	hsm := fs.Bool("hsm", false, "import: mark the key as HSM-protected")
	alg := fs.String("alg", "", "crypto operations: algorithm")
	value := fs.String("value", "", "crypto operations: input, base64url (or @FILE for raw bytes)")
	digest := fs.String("digest", "", "verify: digest, base64url")
	iv := fs.String("iv", "", "decrypt: iv, base64url")
	aad := fs.String("aad", "", "encrypt/decrypt: aad, base64url")
	tag := fs.String("tag", "", "decrypt: authentication tag, base64url")
	count := fs.Int("count", 32, "random: number of bytes")
	file := fs.String("file", "", "backup: output file; restore: input file; rotation-policy set: policy JSON")
	checkFlags := subcommandFlags(fs, keysSubFlags, op, "api-version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkFlags(); err != nil {
		return err
	}
	var enabledValue bool
	if *enabled != "" {
		v, err := strconv.ParseBool(*enabled)
		if err != nil {
			return &exitError{2, fmt.Errorf("--enabled %q: want true or false", *enabled)}
		}
		enabledValue = v
	}
	c, err := mk()
	if err != nil {
		return err
	}
	if c.token == "" {
		c.token = os.Getenv("KURA_TOKEN")
	}
	needName := func() error {
		if *name == "" {
			return &exitError{2, fmt.Errorf("keys %s needs --name", op)}
		}
		return nil
	}
	q := "?api-version=" + url.QueryEscape(*apiVersion)
	vpath := func(suffix string) string {
		p := "/keys/" + url.PathEscape(*name)
		if *version != "" {
			p += "/" + url.PathEscape(*version)
		}
		return p + suffix + q
	}
	b64 := func(s string) (string, error) {
		if f, ok := strings.CutPrefix(s, "@"); ok {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", err
			}
			return base64.RawURLEncoding.EncodeToString(b), nil
		}
		return s, nil
	}
	attrs := func() map[string]any {
		a := map[string]any{}
		if *exportable {
			a["exportable"] = true
		}
		if *enabled != "" {
			a["enabled"] = enabledValue
		}
		return a
	}
	withCommon := func(body map[string]any) error {
		if *ops != "" {
			body["key_ops"] = strings.Split(*ops, ",")
		}
		if *tags != "" {
			t := map[string]string{}
			for _, kv := range strings.Split(*tags, ",") {
				k, v, _ := strings.Cut(kv, "=")
				t[k] = v
			}
			body["tags"] = t
		}
		if a := attrs(); len(a) > 0 {
			body["attributes"] = a
		}
		if *releasePolicy != "" {
			b, err := os.ReadFile(*releasePolicy)
			if err != nil {
				return err
			}
			if !json.Valid(b) {
				return fmt.Errorf("%s is not JSON", *releasePolicy)
			}
			rp := map[string]any{"contentType": "application/json; charset=utf-8", "data": base64.RawURLEncoding.EncodeToString(b)}
			if *immutable {
				rp["immutable"] = true
			}
			body["release_policy"] = rp
		}
		return nil
	}

	var method, path string
	var body any
	switch op {
	case "create":
		if err := needName(); err != nil {
			return err
		}
		b := map[string]any{"kty": *kty}
		if *size != 0 {
			b["key_size"] = *size
		}
		if *crv != "" {
			b["crv"] = *crv
		}
		if err := withCommon(b); err != nil {
			return err
		}
		method, path, body = http.MethodPost, "/keys/"+url.PathEscape(*name)+"/create"+q, b
	case "import":
		if err := needName(); err != nil {
			return err
		}
		if *jwkFile == "" {
			return &exitError{2, errors.New("keys import needs --jwk FILE")}
		}
		raw, err := os.ReadFile(*jwkFile)
		if err != nil {
			return err
		}
		var jwk map[string]any
		if err := json.Unmarshal(raw, &jwk); err != nil {
			return fmt.Errorf("%s: %w", *jwkFile, err)
		}
		b := map[string]any{"key": jwk, "Hsm": *hsm}
		if err := withCommon(b); err != nil {
			return err
		}
		method, path, body = http.MethodPut, "/keys/"+url.PathEscape(*name)+q, b
	case "get":
		if err := needName(); err != nil {
			return err
		}
		method, path = http.MethodGet, vpath("/")
		if *version != "" {
			path = vpath("")
		}
	case "list":
		method, path = http.MethodGet, "/keys"+q
	case "versions":
		if err := needName(); err != nil {
			return err
		}
		method, path = http.MethodGet, "/keys/"+url.PathEscape(*name)+"/versions"+q
	case "update":
		if err := needName(); err != nil {
			return err
		}
		b := map[string]any{}
		if err := withCommon(b); err != nil {
			return err
		}
		method, path, body = http.MethodPatch, vpath("/"), b
		if *version != "" {
			path = vpath("")
		}
	case "delete":
		if err := needName(); err != nil {
			return err
		}
		method, path = http.MethodDelete, "/keys/"+url.PathEscape(*name)+q
	case "deleted":
		method, path = http.MethodGet, "/deletedkeys"+q
		if *name != "" {
			path = "/deletedkeys/" + url.PathEscape(*name) + q
		}
	case "recover":
		if err := needName(); err != nil {
			return err
		}
		method, path = http.MethodPost, "/deletedkeys/"+url.PathEscape(*name)+"/recover"+q
	case "purge":
		if err := needName(); err != nil {
			return err
		}
		method, path = http.MethodDelete, "/deletedkeys/"+url.PathEscape(*name)+q
	case "backup":
		if err := needName(); err != nil {
			return err
		}
		method, path = http.MethodPost, "/keys/"+url.PathEscape(*name)+"/backup"+q
	case "restore":
		if *file == "" {
			return &exitError{2, errors.New("keys restore needs --file BACKUP")}
		}
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		method, path, body = http.MethodPost, "/keys/restore"+q, map[string]string{"value": strings.TrimSpace(string(b))}
	case "rotate":
		if err := needName(); err != nil {
			return err
		}
		method, path = http.MethodPost, "/keys/"+url.PathEscape(*name)+"/rotate"+q
	case "rotation-policy":
		if err := needName(); err != nil {
			return err
		}
		method, path = http.MethodGet, "/keys/"+url.PathEscape(*name)+"/rotationpolicy"+q
		if *file != "" {
			b, err := os.ReadFile(*file)
			if err != nil {
				return err
			}
			var p any
			if err := json.Unmarshal(b, &p); err != nil {
				return fmt.Errorf("%s: %w", *file, err)
			}
			method, body = http.MethodPut, p
		}
	case "random":
		method, path, body = http.MethodPost, "/rng"+q, map[string]int{"count": *count}
	case "encrypt", "decrypt", "wrap", "unwrap", "sign", "verify":
		if err := needName(); err != nil {
			return err
		}
		if *alg == "" || *value == "" {
			return &exitError{2, fmt.Errorf("keys %s needs --alg and --value", op)}
		}
		v, err := b64(*value)
		if err != nil {
			return err
		}
		b := map[string]any{"alg": *alg, "value": v}
		for k, f := range map[string]string{"iv": *iv, "aad": *aad, "tag": *tag, "digest": *digest} {
			if f != "" {
				b[k] = f
			}
		}
		wire := map[string]string{"wrap": "wrapkey", "unwrap": "unwrapkey"}[op]
		if wire == "" {
			wire = op
		}
		method, path, body = http.MethodPost, vpath("/"+wire), b
	default:
		return &exitError{2, fmt.Errorf("unknown keys subcommand %q (create, import, get, list, versions, update, delete, deleted, recover, purge, backup, restore, rotate, rotation-policy, random, encrypt, decrypt, wrap, unwrap, sign, verify)", op)}
	}
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	ctype := ""
	if raw != nil {
		ctype = "application/json"
	}
	resp, err := c.do(ctx, method, path, ctype, raw)
	if err != nil {
		return err
	}
	if op == "backup" && *file != "" {
		var out struct {
			Value string `json:"value"`
		}
		if err := json.Unmarshal(resp, &out); err != nil {
			return err
		}
		if err := os.WriteFile(*file, []byte(out.Value+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "backup of %s written to %s\n", *name, *file)
		return nil
	}
	if len(resp) == 0 {
		fmt.Fprintf(stdout, "%s: done\n", op)
		return nil
	}
	var pretty any
	if json.Unmarshal(resp, &pretty) == nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(pretty)
	}
	_, err = stdout.Write(resp)
	return err
}

// authCmd is `kura auth`: principals and roles, through the admin API.
func authCmd(ctx context.Context, op string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("auth "+op, flag.ContinueOnError)
	fs.SetOutput(stdout)
	mk := clientFlags(fs)
	name := fs.String("name", "", "principal name (adopt: comma-separated names)")
	id := fs.String("id", "", "principal id")
	role := fs.String("role", "", "role: administrator, crypto-officer, crypto-user, release-user, auditor")
	scope := fs.String("scope", "/", `scope: "/" (all keys) or "/keys/NAME"`)
	subject := fs.String("oidc-subject", "", `create: bind an external identity "issuer|sub" instead of a client secret`)
	secretFile := fs.String("secret-file", "", "create, reset-secret: write the client secret to this file (mode 0600) instead of printing it")
	checkFlags := subcommandFlags(fs, authSubFlags, op)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkFlags(); err != nil {
		return err
	}
	c, err := mk()
	if err != nil {
		return err
	}
	var method, path string
	var body any
	needID := func() error {
		if *id == "" {
			return &exitError{2, fmt.Errorf("auth %s needs --id", op)}
		}
		return nil
	}
	switch op {
	case "create":
		if *name == "" {
			return &exitError{2, errors.New("auth create needs --name")}
		}
		b := map[string]string{"name": *name}
		if *subject != "" {
			b["oidc_subject"] = *subject
		}
		if *role != "" {
			b["role"], b["scope"] = *role, *scope
		}
		method, path, body = http.MethodPost, "/kura/v1/principals", b
	case "list":
		method, path = http.MethodGet, "/kura/v1/principals"
	case "get":
		if err := needID(); err != nil {
			return err
		}
		method, path = http.MethodGet, "/kura/v1/principals/"+url.PathEscape(*id)
	case "delete":
		if err := needID(); err != nil {
			return err
		}
		method, path = http.MethodDelete, "/kura/v1/principals/"+url.PathEscape(*id)
	case "reset-secret":
		if err := needID(); err != nil {
			return err
		}
		method, path = http.MethodPost, "/kura/v1/principals/"+url.PathEscape(*id)+"/secret"
	case "grant", "revoke":
		if err := needID(); err != nil {
			return err
		}
		if *role == "" {
			return &exitError{2, fmt.Errorf("auth %s needs --role", op)}
		}
		method = http.MethodPost
		if op == "revoke" {
			method = http.MethodDelete
		}
		path, body = "/kura/v1/principals/"+url.PathEscape(*id)+"/roles", map[string]string{"role": *role, "scope": *scope}
	case "adopt":
		if *name == "" {
			return &exitError{2, errors.New("auth adopt needs --name (comma-separated): the principals, checked by you, to vouch for")}
		}
		method, path, body = http.MethodPost, "/kura/v1/principals:adopt", map[string][]string{"names": strings.Split(*name, ",")}
	default:
		return &exitError{2, fmt.Errorf("unknown auth subcommand %q (create, list, get, delete, reset-secret, grant, revoke, adopt)", op)}
	}
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	resp, err := c.do(ctx, method, path, "application/json", raw)
	if err != nil {
		return err
	}
	if len(resp) == 0 {
		fmt.Fprintf(stdout, "%s: done\n", op)
		return nil
	}
	var pretty any
	json.Unmarshal(resp, &pretty)
	if m, ok := pretty.(map[string]any); ok && *secretFile != "" {
		if sec, ok := m["client_secret"].(string); ok {
			if err := writeSecret(*secretFile, sec); err != nil {
				return err
			}
			m["client_secret"] = "(written to " + *secretFile + ")"
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(pretty)
}

// writeSecret writes a secret to a new file, or over one, readable by its
// owner only.
func writeSecret(path, secret string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil { // an existing file keeps its mode otherwise
		f.Close()
		return err
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// operatorCmd is `kura operator`: init, unseal and status of the root.
func operatorCmd(ctx context.Context, op string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("operator "+op, flag.ContinueOnError)
	mk := clientFlags(fs)
	shares := fs.Int("shares", 5, "init, rekey --init: number of unseal key shares")
	threshold := fs.Int("threshold", 3, "init, rekey --init: shares needed to unseal")
	start := fs.Bool("init", false, "rekey: begin a rekey to --shares/--threshold")
	cancel := fs.Bool("cancel", false, "rekey: drop the rekey in progress (the current shares stay valid)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	readShare := func() (string, error) {
		share := strings.TrimSpace(fs.Arg(0))
		if share == "" {
			// Read from standard input so the share stays out of shell history.
			b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
			if err != nil {
				return "", err
			}
			share = strings.TrimSpace(string(b))
		}
		if share == "" {
			return "", &exitError{2, fmt.Errorf("operator %s takes one share (argument or standard input)", op)}
		}
		return share, nil
	}
	c, err := mk()
	if err != nil {
		return err
	}
	var resp []byte
	switch op {
	case "init":
		b, _ := json.Marshal(map[string]int{"shares": *shares, "threshold": *threshold})
		resp, err = c.do(ctx, http.MethodPost, "/kura/v1/operator/init", "application/json", b)
		if err != nil {
			return err
		}
		var out struct {
			Shares    []string `json:"shares"`
			Threshold int      `json:"threshold"`
			Warning   string   `json:"warning"`
		}
		if err := json.Unmarshal(resp, &out); err != nil {
			return err
		}
		state := "initialised and unsealed"
		if out.Warning != "" {
			state = "initialised but still sealed"
		}
		fmt.Fprintf(stdout, "kura is %s. Give each custodian one share; %d of them unseal kura.\nThese shares are shown once and stored nowhere:\n\n", state, out.Threshold)
		for i, s := range out.Shares {
			fmt.Fprintf(stdout, "share %d: %s\n", i+1, s)
		}
		if out.Warning != "" {
			return fmt.Errorf("the shares above are valid, but: %s", out.Warning)
		}
		return nil
	case "unseal":
		share, err := readShare()
		if err != nil {
			return err
		}
		b, _ := json.Marshal(map[string]string{"share": share})
		resp, err = c.do(ctx, http.MethodPost, "/kura/v1/operator/unseal", "application/json", b)
		if err != nil {
			return err
		}
	case "seal":
		resp, err = c.do(ctx, http.MethodPost, "/kura/v1/operator/seal", "application/json", []byte("{}"))
	case "rekey":
		switch {
		case *start && *cancel:
			return &exitError{2, errors.New("operator rekey: --init or --cancel, not both")}
		case *start:
			b, _ := json.Marshal(map[string]int{"shares": *shares, "threshold": *threshold})
			if _, err = c.do(ctx, http.MethodPost, "/kura/v1/operator/rekey/init", "application/json", b); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "rekey to %d shares of threshold %d started: each custodian now gives a current share with `kura operator rekey`\n", *shares, *threshold)
			return nil
		case *cancel:
			if _, err = c.do(ctx, http.MethodDelete, "/kura/v1/operator/rekey", "", nil); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "rekey cancelled; the current shares stay valid")
			return nil
		}
		share, err := readShare()
		if err != nil {
			return err
		}
		b, _ := json.Marshal(map[string]string{"share": share})
		if resp, err = c.do(ctx, http.MethodPost, "/kura/v1/operator/rekey", "application/json", b); err != nil {
			return err
		}
		var out struct {
			NewShares []string `json:"new_shares"`
			Done      bool     `json:"done"`
			Rekey     *struct {
				Threshold, Progress int
				Verifying           bool
			} `json:"rekey"`
		}
		if err := json.Unmarshal(resp, &out); err != nil {
			return err
		}
		switch {
		case out.Done:
			fmt.Fprintln(stdout, "rekey done: the new shares unseal kura; the previous shares open nothing any more")
		case len(out.NewShares) > 0:
			fmt.Fprintf(stdout, "New shares, shown once and stored nowhere. Give each custodian one; then %d of them must each run `kura operator rekey` with their NEW share to finish (until then the previous shares still unseal):\n\n", out.Rekey.Threshold)
			for i, s := range out.NewShares {
				fmt.Fprintf(stdout, "share %d: %s\n", i+1, s)
			}
		case out.Rekey != nil:
			step := "current"
			if out.Rekey.Verifying {
				step = "new"
			}
			fmt.Fprintf(stdout, "rekey: %d of %d %s shares given\n", out.Rekey.Progress, out.Rekey.Threshold, step)
		}
		return nil
	case "status":
		resp, err = c.do(ctx, http.MethodGet, "/kura/v1/operator/status", "", nil)
	default:
		return &exitError{2, fmt.Errorf("unknown operator subcommand %q (init, unseal, seal, rekey, status)", op)}
	}
	if err != nil {
		return err
	}
	var st struct {
		Sealed      bool   `json:"sealed"`
		Initialized bool   `json:"initialized"`
		Seal        string `json:"seal"`
		Threshold   int    `json:"threshold"`
		Progress    int    `json:"progress"`
	}
	if err := json.Unmarshal(resp, &st); err != nil {
		return err
	}
	state := "unsealed"
	if st.Sealed {
		state = fmt.Sprintf("sealed (%d of %d shares given)", st.Progress, st.Threshold)
	}
	if !st.Initialized {
		state = "not initialised"
	}
	fmt.Fprintf(stdout, "%s; root: %s\n", state, st.Seal)
	return nil
}
