package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kura-project/kura/internal/agent"
	"github.com/kura-project/kura/internal/agent/evidence"
	"github.com/kura-project/kura/internal/agent/simsource"
	"github.com/kura-project/kura/internal/attest/intelsim"
	"github.com/kura-project/kura/internal/attest/sim"
)

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// agentCmd is `kura agent`: the guest side of secure key release.
func agentCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	mk, dataDir, resolveData := clientDataFlags(fs)
	var keyFlags multi
	fs.Var(&keyFlags, "key", "key to release, NAME or NAME/VERSION (repeatable)")
	clientID := fs.String("client-id", os.Getenv("KURA_CLIENT_ID"), "principal (release-user role) id or name; also KURA_CLIENT_ID")
	secretFile := fs.String("client-secret-file", "", "file with the principal's client secret (or KURA_CLIENT_SECRET)")
	out := fs.String("out", "", "write each released key to DIR/NAME, mode 0600 (use a tmpfs)")
	socket := fs.String("socket", "", "serve released keys on this Unix socket: GET /keys/NAME")
	once := fs.Bool("once", false, "release once and exit (init containers); default: renew before the token expires")
	simulate := fs.Bool("sim", false, "use the simulated TEE (root in DATA/sim; only a --dev kura trusts it)")
	simDebug := fs.Bool("sim-debug", false, "with --sim: simulate a debuggable guest")
	simTEE := fs.String("sim-tee", "snp", "with --sim: the simulated TEE, snp or tdx")
	enc := fs.String("enc", "", "release wrapping: CKM_RSA_AES_KEY_WRAP (default), RSA_AES_KEY_WRAP_256, RSA_AES_KEY_WRAP_384")
	data := fs.String("sim-data", "", "with --sim: the data directory holding the simulated root (default: --data)")
	ledgerKeyFile := fs.String("ledger-key", "", "the ledger's verifier key (what `kura ledger key` prints), pinned: each release must be proved on that ledger (default: fetched from kura over TLS)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := resolveData(); err != nil {
		return err
	}
	if *data == "" {
		*data = *dataDir
	}
	if len(keyFlags) == 0 {
		return &exitError{2, errors.New("agent needs at least one --key")}
	}
	var refs []agent.KeyRef
	for _, k := range keyFlags {
		r, err := agent.ParseKeyRef(k)
		if err != nil {
			return &exitError{2, err}
		}
		refs = append(refs, r)
	}
	secret := os.Getenv("KURA_CLIENT_SECRET")
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return err
		}
		secret = strings.TrimSpace(string(b))
	}
	if *clientID == "" || secret == "" {
		return &exitError{2, errors.New("agent needs --client-id and a client secret (--client-secret-file or KURA_CLIENT_SECRET)")}
	}
	var ledgerKey string
	if *ledgerKeyFile != "" {
		b, err := os.ReadFile(*ledgerKeyFile)
		if err != nil {
			return err
		}
		ledgerKey = string(b)
	}
	c, err := mk()
	if err != nil {
		return err
	}
	var src evidence.Source
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !*simulate && (set["sim-tee"] || set["sim-debug"]) {
		return &exitError{2, errors.New("--sim-tee and --sim-debug shape the simulated TEE: add --sim")}
	}
	switch {
	case *simulate && *simTEE == "snp":
		a, err := sim.Load(filepath.Join(*data, "sim"))
		if err != nil {
			return fmt.Errorf("simulated TEE: %w (run a --dev kura on %s first)", err, *data)
		}
		src = simsource.Source{Authority: a, Debug: *simDebug}
	case *simulate && *simTEE == "tdx":
		a, err := intelsim.Load(filepath.Join(*data, "sim"))
		if err != nil {
			return fmt.Errorf("simulated TDX: %w (run a --dev kura on %s first)", err, *data)
		}
		src = simsource.TDX{Authority: a, Debug: *simDebug}
	case *simulate:
		return &exitError{2, fmt.Errorf("--sim-tee %q: want snp or tdx", *simTEE)}
	default:
		if src, err = evidence.Detect(); err != nil {
			return err
		}
	}
	ag, err := agent.New(agent.Config{URL: c.url, HTTP: c.http, ClientID: *clientID, ClientSecret: secret, Keys: refs,
		Enc: *enc, Source: src, OutDir: *out, Socket: *socket, Log: newLogger(stderr, "info"), LedgerKey: ledgerKey})
	if err != nil {
		return &exitError{2, err}
	}
	if err := ag.Run(ctx, *once); err != nil {
		return err
	}
	if *once {
		for _, r := range refs {
			if k, ok := ag.Key(r.Name); ok {
				fmt.Fprintf(stdout, "released %s (version %s, %s)\n", k.Name, k.Version, k.Kty)
			}
		}
	}
	return nil
}
