package main

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kura-project/kura/internal/attest/intelsim"
)

// simIntel is `kura sim tdx` and `kura sim sgx`: an MAA TdxVm or
// SgxEnclave request body whose quote is signed under the simulated Intel
// root of the data directory, with SHA-256(runtime data) in the first 32
// bytes of its report data.
func simIntel(tee string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sim "+tee, flag.ContinueOnError)
	rt := fs.String("runtime-data", "", "runtime data file; its SHA-256 goes into the report data")
	out := fs.String("out", "", "where to write the request body")
	data, resolveData := dataFlag(fs, "the server's data directory, holding the simulated root (DATA/sim)")
	dataType := fs.String("data-type", "", "runtimeData dataType: JSON or Binary (default: JSON if the file is JSON)")
	nonce := fs.String("nonce", "", "nonce to send")
	debug := fs.Bool("debug", false, "simulate a debuggable TD or enclave")
	v5 := fs.Bool("v5", false, "tdx: a quote version 5 with a TD report 1.5")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := resolveData(); err != nil {
		return err
	}
	if *rt == "" || *out == "" {
		return &exitError{2, fmt.Errorf("sim %s needs --runtime-data and --out", tee)}
	}
	if *v5 && tee != "tdx" {
		return &exitError{2, errors.New("--v5 is a TDX quote version")}
	}
	runtime, dt, err := readRuntime(*rt, *dataType)
	if err != nil {
		return err
	}
	dir := filepath.Join(*data, "sim")
	a, err := intelsim.LoadOrCreate(dir, time.Now())
	if err != nil {
		return err
	}
	var rd [64]byte
	sum := sha256.Sum256(runtime)
	copy(rd[:], sum[:])
	var quote []byte
	what := "Intel TDX"
	if tee == "tdx" {
		quote, err = a.TDXQuote(intelsim.TDXOptions{ReportData: rd, Debug: *debug, V5: *v5})
	} else {
		what = "Intel SGX"
		quote, err = a.SGXQuote(intelsim.SGXOptions{ReportData: rd, Debug: *debug})
	}
	if err != nil {
		return err
	}
	body, err := intelsim.Body(quote, runtime, dt, *nonce)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, body, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: simulated %s evidence (TEST ONLY root in %s), report data = SHA-256(runtime data)\n", *out, what, dir)
	return nil
}
