package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/kura-project/kura/internal/bench"
	"github.com/kura-project/kura/internal/token"
)

// parseBench adds the flags every bench subcommand shares to fs (which may
// hold the subcommand's own), parses args and checks them.
func parseBench(fs *flag.FlagSet, args []string, dur time.Duration) (clients int, d time.Duration, err error) {
	c := fs.Int("clients", 2*runtime.GOMAXPROCS(0), "concurrent clients")
	dd := fs.Duration("duration", dur, "measuring time per phase")
	if err := fs.Parse(args); err != nil {
		return 0, 0, err
	}
	if *c < 1 || *c > 1024 {
		return 0, 0, &exitError{2, fmt.Errorf("-clients %d: want 1 to 1024", *c)}
	}
	if *dd <= 0 {
		return 0, 0, &exitError{2, fmt.Errorf("-duration %s: want a positive duration", *dd)}
	}
	return *c, *dd, nil
}

// benchDir is a temporary data directory for an in-process kura, and the
// function that removes it.
func benchDir() (string, func(), error) {
	dir, err := os.MkdirTemp("", "kura-bench-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// benchAttest drives POST /attest/SevSnpVm over HTTPS (keep-alive TLS
// connections, a lean HTTP/1.1 load generator) with concurrent clients
// against an in-process dev server, and prints the figure next to
// the floor measured in the same run: one P-384 report-signature verify plus
// one token signature, on as many goroutines as there are clients.
func benchAttest(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench attest", flag.ContinueOnError)
	alg := fs.String("alg", "", "token algorithm: RS256, ES256 or ES384 (default: RS256 then ES256)")
	tee := fs.String("tee", "snp", "the TEE's evidence: snp (SevSnpVm), tdx (TdxVm) or sgx (SgxEnclave)")
	clients, dur, err := parseBench(fs, args, 5*time.Second)
	if err != nil {
		return err
	}
	if *tee != "snp" && *tee != "tdx" && *tee != "sgx" {
		return &exitError{2, fmt.Errorf("-tee %q: want snp, tdx or sgx", *tee)}
	}
	algs := []string{"RS256", "ES256"}
	if *alg != "" {
		if _, err := token.ParseAlg(*alg); err != nil {
			return &exitError{2, fmt.Errorf("-alg: %w", err)}
		}
		algs = []string{*alg}
	}
	fmt.Fprintf(stdout, "kura bench attest: %s evidence, %d clients, %s per phase, GOMAXPROCS=%d GOGC=%d\n", *tee, clients, dur, runtime.GOMAXPROCS(0), gcPercent())
	for _, a := range algs {
		one := benchOneAlg
		if *tee != "snp" {
			one = func(ctx context.Context, alg string, clients int, dur time.Duration, stdout io.Writer) error {
				return benchIntel(ctx, *tee, alg, clients, dur, stdout)
			}
		}
		if err := one(ctx, a, clients, dur, stdout); err != nil {
			return err
		}
	}
	return nil
}

// benchKeys drives the key operations over HTTPS with concurrent clients
// and prints each next to its raw in-process crypto floor, both measured in
// this run.
func benchKeys(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench keys", flag.ContinueOnError)
	clients, dur, err := parseBench(fs, args, 3*time.Second)
	if err != nil {
		return err
	}
	dir, cleanup, err := benchDir()
	if err != nil {
		return err
	}
	defer cleanup()
	rig, err := bench.StartKeys(ctx, dir)
	if err != nil {
		return err
	}
	defer rig.Close()
	ops, err := rig.Ops(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kura bench keys: %d clients, %s per phase, GOMAXPROCS=%d GOGC=%d (reference: Azure Managed HSM publishes ~900 RSA-2048 signs/s per instance)\n", clients, dur, runtime.GOMAXPROCS(0), gcPercent())
	fmt.Fprintf(stdout, "%-24s %12s %12s %10s %10s %8s\n", "operation", "floor op/s", "HTTPS op/s", "p50", "p99", "ratio")
	for _, op := range ops {
		c, err := bench.Compare(ctx, clients, dur, op.Floor, op.HTTPS)
		if err != nil {
			return fmt.Errorf("%s: %w", op.Name, err)
		}
		floor, res := c.Floor, c.Result
		fmt.Fprintf(stdout, "%-24s %12.0f %12.0f %10s %10s %7.0f%%\n", op.Name, floor, res.PerSecond(),
			res.P50.Round(10*time.Microsecond), res.P99.Round(10*time.Microsecond), 100*res.PerSecond()/floor)
	}
	return nil
}

// benchRelease measures attestation plus secure key release end to end
// over HTTPS next to its crypto floor, measured before and after.
func benchRelease(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench release", flag.ContinueOnError)
	clients, dur, err := parseBench(fs, args, 5*time.Second)
	if err != nil {
		return err
	}
	dir, cleanup, err := benchDir()
	if err != nil {
		return err
	}
	defer cleanup()
	rig, err := bench.StartRelease(ctx, dir)
	if err != nil {
		return err
	}
	defer rig.Close()
	// Warm: the first release verifies and caches the VCEK chain, a later
	// one gives the VCEK its table; the figure is the steady state.
	for range 3 {
		if err := rig.Release(ctx); err != nil {
			return err
		}
	}
	floorOp, err := rig.ReleaseFloor()
	if err != nil {
		return err
	}
	tableOp, err := rig.ReleaseTableFloor()
	if err != nil {
		return err
	}
	c, err := bench.CompareOwn(ctx, clients, dur, floorOp, tableOp, func() error { return rig.Release(ctx) })
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	f1, f2, res, floor := c.Before, c.After, c.Result, c.Floor
	fmt.Fprintf(stdout, "kura bench release: %d clients, %s, GOMAXPROCS=%d GOGC=%d\n", clients, dur, runtime.GOMAXPROCS(0), gcPercent())
	fmt.Fprintf(stdout, "floor: crypto/ecdsa P-384 verify + RS256 token + RSA-OAEP wrap + KWP + RS256 JWS, in-process: %7.0f /s (before %.0f, after %.0f)\n", floor, f1.PerSecond(), f2.PerSecond())
	fmt.Fprintf(stdout, "kura's crypto: the same with the cached-VCEK table verify, in-process:                     %7.0f /s (before %.0f, after %.0f)\n", c.Own, c.OwnBefore.PerSecond(), c.OwnAfter.PerSecond())
	fmt.Fprintf(stdout, "attest + release over HTTPS:                                                                %7.0f /s  p50 %s  p99 %s\n",
		res.PerSecond(), res.P50.Round(10*time.Microsecond), res.P99.Round(10*time.Microsecond))
	fmt.Fprintf(stdout, "= %.0f%% of kura's own crypto (the overhead of HTTPS, JSON, policy, and the client); %.0f%% of the crypto/ecdsa floor\n",
		100*res.PerSecond()/c.Own, 100*res.PerSecond()/floor)
	return nil
}

func benchOneAlg(ctx context.Context, alg string, clients int, dur time.Duration, stdout io.Writer) error {
	dir, cleanup, err := benchDir()
	if err != nil {
		return err
	}
	defer cleanup()
	rig, err := bench.StartAttest(ctx, dir, alg)
	if err != nil {
		return err
	}
	defer rig.Close()
	if err := rig.Warm(); err != nil {
		return err
	}
	floorOp, err := rig.FloorOp()
	if err != nil {
		return err
	}
	tableOp, err := rig.TableFloorOp()
	if err != nil {
		return err
	}
	// The lean load generator keeps the client's own CPU cost small: the
	// client shares the two cores with the server under test.
	c, err := bench.CompareOwn(ctx, clients, dur, floorOp, tableOp, rig.AttestLean)
	if err != nil {
		return err
	}
	f1, f2, res, floor := c.Before, c.After, c.Result, c.Floor
	fmt.Fprintf(stdout, "%s  floor: crypto/ecdsa P-384 verify + %s sign, in-process:      %8.0f ops/s  (before %.0f, after %.0f; CPU %s/op)\n",
		alg, alg, floor, f1.PerSecond(), f2.PerSecond(), f1.CPUPerOp().Round(time.Microsecond))
	fmt.Fprintf(stdout, "%s  kura's crypto: cached-VCEK table verify + %s sign, in-process: %8.0f ops/s  (before %.0f, after %.0f; CPU %s/op)\n",
		alg, alg, c.Own, c.OwnBefore.PerSecond(), c.OwnAfter.PerSecond(), c.OwnBefore.CPUPerOp().Round(time.Microsecond))
	fmt.Fprintf(stdout, "%s  POST /attest/SevSnpVm over HTTPS:                             %8.0f attestations/s  p50 %s  p99 %s  (CPU %s/op, client included)\n",
		alg, res.PerSecond(), res.P50.Round(10*time.Microsecond), res.P99.Round(10*time.Microsecond), res.CPUPerOp().Round(time.Microsecond))
	fmt.Fprintf(stdout, "%s  = %.0f%% of the crypto/ecdsa floor (issue #2's aim: >= 80%%); %.0f%% of kura's own crypto (the rest is HTTPS, JSON, policy, claims and the load generator)\n",
		alg, 100*res.PerSecond()/floor, 100*res.PerSecond()/c.Own)
	return nil
}

// benchIntel is benchOneAlg for simulated Intel evidence (TdxVm or
// SgxEnclave): the figure over HTTPS next to the floor (the quote's and
// the QE report's P-256 signatures plus the token signature) and to what
// each attestation would cost without kura's PCK-chain and collateral
// caches, all measured in this run.
func benchIntel(ctx context.Context, tee, alg string, clients int, dur time.Duration, stdout io.Writer) error {
	dir, cleanup, err := benchDir()
	if err != nil {
		return err
	}
	defer cleanup()
	rig, err := bench.StartIntel(ctx, dir, alg, tee)
	if err != nil {
		return err
	}
	defer rig.Close()
	if err := rig.Warm(); err != nil {
		return err
	}
	floorOp, err := rig.FloorOp()
	if err != nil {
		return err
	}
	uncached, err := rig.UncachedOp()
	if err != nil {
		return err
	}
	c, err := bench.CompareOwn(ctx, clients, dur, floorOp, uncached, rig.AttestLean)
	if err != nil {
		return err
	}
	path := map[string]string{"tdx": "TdxVm", "sgx": "SgxEnclave"}[tee]
	f1, f2, res, floor := c.Before, c.After, c.Result, c.Floor
	fmt.Fprintf(stdout, "%s  floor: quote + QE report P-256 verify (crypto/ecdsa) + %s sign, in-process: %8.0f ops/s  (before %.0f, after %.0f; CPU %s/op)\n",
		alg, alg, floor, f1.PerSecond(), f2.PerSecond(), f1.CPUPerOp().Round(time.Microsecond))
	fmt.Fprintf(stdout, "%s  without caches: the floor + PCK chain + collateral verification, in-process: %8.0f ops/s  (before %.0f, after %.0f)\n",
		alg, c.Own, c.OwnBefore.PerSecond(), c.OwnAfter.PerSecond())
	fmt.Fprintf(stdout, "%s  POST /attest/%s over HTTPS (%d-byte quote, collateral cached):   %8.0f attestations/s  p50 %s  p99 %s  (CPU %s/op, client included)\n",
		alg, path, rig.QuoteSize(), res.PerSecond(), res.P50.Round(10*time.Microsecond), res.P99.Round(10*time.Microsecond), res.CPUPerOp().Round(time.Microsecond))
	fmt.Fprintf(stdout, "%s  = %.0f%% of the floor, kura's own crypto per attestation (issue #11's aim: >= 80%%); %.1fx the uncached cost\n",
		alg, 100*res.PerSecond()/floor, res.PerSecond()/c.Own)
	return nil
}
