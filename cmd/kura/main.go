// Command kura is the kura trust plane: attestation service, and the tools
// around it. Run `kura help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/kura-project/kura/internal/attest/tees"
	"github.com/kura-project/kura/internal/config"
	"github.com/kura-project/kura/internal/server"
)

const usage = `kura — a self-hosted trust plane for confidential computing

Usage:
  kura serve [--dev] [--addr 127.0.0.1:8443] [--data ./kura-data] [flags]
  kura demo                       the whole secure-key-release path on this machine
  kura agent --key NAME [--once] [--sim [--sim-tee snp|tdx]] --client-id ID --client-secret-file F [--out DIR|--socket PATH]
  kura attest verify --type SevSnpVm [--at RFC3339] [--data DIR] BODY.json
  kura attest send --type TYPE [--url URL] [--data DIR] BODY.json
  kura attest snp [--url URL] [--data DIR] BODY.json   (attest send --type SevSnpVm)
  kura collateral import [--data DIR] FILE...
  kura collateral export [--data DIR] --out DIR
  kura policy get|set|reset --type SevSnpVm [--file POLICY] [--url URL] [--data DIR]
  kura token rotate [--url URL] [--data DIR]
  kura ledger key|checkpoint|get --seq N [--url URL]     the confidential ledger's key, checkpoint, an entry
  kura ledger append [--collection C] [--file F|TEXT]    write an entry (ACL API); prints its transaction id
  kura ledger list [--collection C] [--from ID] [--to ID]  a collection's entries, a JSON object a line
  kura ledger receipt --id 1.N                           an entry's receipt in ACL's shape
  kura ledger tail [--key-file KEY] [--interval 1s]      follow checkpoints, each proved consistent from the tiles
  kura ledger verify --key-file KEY [--witness VKEY]... [--quorum N] ENTRY.json|CHECKPOINT
                                 verify an entry with its receipt, or a checkpoint, offline (and its witnesses' cosignatures)
  kura keys create|import|get|list|versions|update|delete|deleted|recover|purge|
            backup|restore|rotate|rotation-policy|random|
            encrypt|decrypt|wrap|unwrap|sign|verify --name KEY [flags]
  kura auth create|list|get|delete|reset-secret|grant|revoke|adopt [flags]
  kura operator init|unseal|seal|rekey|status [flags]
  kura sim snp --runtime-data FILE --out FILE [--data DIR]
  kura sim tdx|sgx --runtime-data FILE --out FILE [--data DIR] [--v5]
  kura bench attest [--clients N] [--duration 5s] [--alg RS256|ES256|ES384]
  kura bench keys [--clients N] [--duration 3s]
  kura bench release [--clients N] [--duration 5s]
  kura bench ledger [--writers 1,16,256] [--duration 3s] [--tessera DIR|none]
  kura version

Run "kura COMMAND -h" for a command's flags.
`

// exitError carries an exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if len(os.Args) > 1 && (os.Args[1] == "serve" || os.Args[1] == "bench" || os.Args[1] == "demo") {
		tuneGC(os.Getenv)
	}
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "kura:", err)
	}
	os.Exit(exitCode(err))
}

// exitCode is the process status for run's error: 0 for none and for help
// that was asked for (-h), an exitError's code, else 1.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

// groupHelp prints the usage lines of one command group.
func groupHelp(w io.Writer, cmd string) {
	fmt.Fprintf(w, "kura %s — subcommands:\n", cmd)
	in := false
	for _, l := range strings.Split(usage, "\n") {
		// A usage entry may continue on more indented lines.
		in = strings.HasPrefix(strings.TrimSpace(l), "kura "+cmd+" ") || in && strings.HasPrefix(l, "    ") && !strings.HasPrefix(strings.TrimSpace(l), "kura ")
		if in {
			fmt.Fprintln(w, l)
		}
	}
	fmt.Fprintf(w, "Run \"kura %s SUBCOMMAND -h\" for a subcommand's flags.\n", cmd)
}

// version is kura's version: the module version and VCS revision the
// binary was built from, as the Go toolchain recorded them.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "kura (unknown build)"
	}
	v, rev, dirty := bi.Main.Version, "", ""
	for _, st := range bi.Settings {
		switch st.Key {
		case "vcs.revision":
			rev = st.Value
		case "vcs.modified":
			if st.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	out := "kura " + v
	if rev != "" {
		out += " " + rev + dirty
	}
	return out + " (" + bi.GoVersion + ")"
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{2, errors.New("no command")}
	}
	cmd, rest := args[0], args[1:]
	sub := func() (string, []string, error) {
		if len(rest) == 0 {
			return "", nil, &exitError{2, fmt.Errorf("%s needs a subcommand", cmd)}
		}
		if h := rest[0]; h == "-h" || h == "--help" || h == "help" {
			groupHelp(stdout, cmd)
			return "", nil, flag.ErrHelp
		}
		return rest[0], rest[1:], nil
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "attest":
		s, r, err := sub()
		if err != nil {
			return err
		}
		switch s {
		case "verify":
			return attestVerify(ctx, r, stdout)
		case "send":
			return attestSend(ctx, "send", "", r, stdout)
		case "snp":
			return attestSend(ctx, "snp", "SevSnpVm", r, stdout)
		}
		return &exitError{2, fmt.Errorf("unknown attest subcommand %q (verify, send, snp)", s)}
	case "collateral":
		s, r, err := sub()
		if err != nil {
			return err
		}
		switch s {
		case "import":
			return collateralImport(ctx, r, stdout)
		case "export":
			return collateralExport(ctx, r, stdout)
		}
		return &exitError{2, fmt.Errorf("unknown collateral subcommand %q (import, export)", s)}
	case "policy":
		s, r, err := sub()
		if err != nil {
			return err
		}
		return policyCmd(ctx, s, r, stdout)
	case "sim":
		s, r, err := sub()
		if err != nil {
			return err
		}
		switch s {
		case "snp":
			return simSNP(r, stdout)
		case "tdx", "sgx":
			return simIntel(s, r, stdout)
		}
		return &exitError{2, fmt.Errorf("unknown sim subcommand %q (snp, tdx, sgx)", s)}
	case "bench":
		s, r, err := sub()
		if err != nil {
			return err
		}
		switch s {
		case "attest":
			return benchAttest(ctx, r, stdout)
		case "keys":
			return benchKeys(ctx, r, stdout)
		case "release":
			return benchRelease(ctx, r, stdout)
		case "ledger":
			return benchLedger(ctx, r, stdout)
		}
		return &exitError{2, fmt.Errorf("unknown bench subcommand %q (attest, keys, release, ledger)", s)}
	case "agent":
		return agentCmd(ctx, rest, stdout, stderr)
	case "demo":
		return demo(ctx, rest, stdout)
	case "keys", "auth", "operator":
		s, r, err := sub()
		if err != nil {
			return err
		}
		switch cmd {
		case "keys":
			return keysCmd(ctx, s, r, stdout)
		case "auth":
			return authCmd(ctx, s, r, stdout)
		}
		return operatorCmd(ctx, s, r, stdout)
	case "ledger":
		s, r, err := sub()
		if err != nil {
			return err
		}
		return ledgerCmd(ctx, s, r, stdout)
	case "token":
		s, r, err := sub()
		if err != nil {
			return err
		}
		if s != "rotate" {
			return &exitError{2, fmt.Errorf("unknown token subcommand %q (rotate)", s)}
		}
		return tokenRotate(ctx, r, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version", "--version":
		fmt.Fprintln(stdout, version())
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &exitError{2, fmt.Errorf("unknown command %q", cmd)}
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := config.Load(args, os.Getenv, tees.Registry().Settings())
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{2, err}
	}
	log := newLogger(stderr, cfg.LogLevel)
	srv, err := server.New(ctx, cfg, log, time.Now)
	if err != nil {
		return err
	}
	defer srv.Close()
	if cfg.Dev {
		log.Info("development mode", "ca", cfg.DataDir+"/tls/ca.pem", "admin_token_file", cfg.DataDir+"/dev/admin-token",
			"note", "simulated TEE trusted; never use --dev in production")
	}
	return srv.Serve(ctx, nil)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
