package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kura-project/kura/internal/bench"
)

// benchLedger measures durable appends/s and the time from an append to
// its receipt, for kura's ledger in-process and over HTTPS (the ACL API)
// with 1, 16 and 256 writers, next to the floor measured in the same run
// (the disk's fsync rate, hashing, checkpoint signatures) and to Tessera
// (POSIX driver) on the same work, run from its own module in bench/tessera.
func benchLedger(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench ledger", flag.ContinueOnError)
	writersFlag := fs.String("writers", "1,16,256", "writer counts, comma-separated")
	dur := fs.Duration("duration", 3*time.Second, "measuring time per phase")
	tessera := fs.String("tessera", "bench/tessera", "the bench/tessera module's directory (run with `go run`), or none")
	noHTTPS := fs.Bool("no-https", false, "measure in-process only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var writers []int
	for _, f := range strings.Split(*writersFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 4096 {
			return &exitError{2, fmt.Errorf("-writers: %q is not a count from 1 to 4096", f)}
		}
		writers = append(writers, n)
	}
	if *dur <= 0 {
		return &exitError{2, fmt.Errorf("-duration %s: want a positive duration", *dur)}
	}
	dir, cleanup, err := benchDir()
	if err != nil {
		return err
	}
	defer cleanup()
	rig, err := bench.StartLedger(ctx, dir)
	if err != nil {
		return err
	}
	defer rig.Close()
	fmt.Fprintf(stdout, "kura bench ledger: %s per phase, GOMAXPROCS=%d, data in %s\n", *dur, runtime.GOMAXPROCS(0), dir)

	// Floors: one durable commit, the hashing of an entry, a checkpoint's
	// signatures.
	fsyncOp, closeFsync, err := bench.FsyncFloor(dir)
	if err != nil {
		return err
	}
	defer closeFsync()
	fsyncBefore, err := bench.Run(ctx, 1, *dur/2, fsyncOp)
	if err != nil {
		return fmt.Errorf("fsync floor: %w", err)
	}
	hashes, err := bench.Run(ctx, runtime.GOMAXPROCS(0), *dur/2, bench.HashFloor())
	if err != nil {
		return err
	}
	signOp, err := bench.SignFloor()
	if err != nil {
		return err
	}
	signs, err := bench.Run(ctx, runtime.GOMAXPROCS(0), *dur/2, signOp)
	if err != nil {
		return err
	}

	type row struct {
		writers          int
		log              string
		durable, receipt bench.Result
	}
	var rows []row
	for _, w := range writers {
		r := row{writers: w, log: "kura in-process"}
		if r.durable, err = bench.Run(ctx, w, *dur, func() error { return rig.Append(ctx) }); err != nil {
			return fmt.Errorf("in-process appends, %d writers: %w", w, err)
		}
		if err := rig.Settle(ctx); err != nil {
			return err
		}
		if r.receipt, err = bench.Run(ctx, w, *dur, func() error { return rig.AppendReceipt(ctx) }); err != nil {
			return fmt.Errorf("in-process receipts, %d writers: %w", w, err)
		}
		rows = append(rows, r)
		if *noHTTPS {
			continue
		}
		h := row{writers: w, log: "kura HTTPS, ACL API"}
		if h.durable, err = bench.Run(ctx, w, *dur, func() error { _, err := rig.AppendHTTPS(ctx); return err }); err != nil {
			return fmt.Errorf("HTTPS appends, %d writers: %w", w, err)
		}
		if err := rig.Settle(ctx); err != nil {
			return err
		}
		if h.receipt, err = bench.Run(ctx, w, *dur, func() error { return rig.AppendReceiptHTTPS(ctx) }); err != nil {
			return fmt.Errorf("HTTPS receipts, %d writers: %w", w, err)
		}
		rows = append(rows, h)
	}
	fsyncAfter, err := bench.Run(ctx, 1, *dur/2, fsyncOp)
	if err != nil {
		return fmt.Errorf("fsync floor: %w", err)
	}
	peer, settings, peerErr := runTessera(ctx, *tessera, *writersFlag, *dur)

	fmt.Fprintf(stdout, "floor: fsync (4 KiB write + fsync, one writer): %8.0f /s  (before %.0f, after %.0f): one durable commit each\n",
		(fsyncBefore.PerSecond()+fsyncAfter.PerSecond())/2, fsyncBefore.PerSecond(), fsyncAfter.PerSecond())
	fmt.Fprintf(stdout, "floor: hashing an entry (commitment, leaf, node; SHA-256):  %8.0f /s\n", hashes.PerSecond())
	fmt.Fprintf(stdout, "floor: a checkpoint's signatures (Ed25519 + ECDSA P-256): %8.0f /s\n", signs.PerSecond())
	fmt.Fprintf(stdout, "%-8s %-32s %12s %9s %9s  %12s %9s %9s\n", "writers", "log", "durable/s", "p50", "p99", "receipts/s", "p50", "p99")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }
	for _, w := range writers {
		for _, r := range rows {
			if r.writers == w {
				fmt.Fprintf(stdout, "%-8d %-32s %12.0f %9s %9s  %12.0f %9s %9s\n", w, r.log, r.durable.PerSecond(), ms(r.durable.P50), ms(r.durable.P99),
					r.receipt.PerSecond(), ms(r.receipt.P50), ms(r.receipt.P99))
			}
		}
		for _, p := range peer {
			if p.writers == w {
				fmt.Fprintf(stdout, "%-8d %-32s %12.0f %9s %9s  %12.0f %9s %9s\n", w, "tessera POSIX (checkpoint)", p.durable.PerSec, msf(p.durable.P50ms), msf(p.durable.P99ms),
					p.checkpoint.PerSec, msf(p.checkpoint.P50ms), msf(p.checkpoint.P99ms))
			}
		}
	}
	fmt.Fprintln(stdout, "durable: the append is acknowledged once fsync'd; receipts: append, then a verifiable receipt in hand (kura: the inclusion proof in a signed checkpoint; HTTPS: ACL's receipt; tessera: a published checkpoint that commits to the entry)")
	if peerErr != nil {
		fmt.Fprintf(stdout, "tessera: not run: %v\n", peerErr)
	} else {
		fmt.Fprintf(stdout, "tessera: %s\n", settings)
	}
	return nil
}

func msf(v float64) string { return fmt.Sprintf("%.2fms", v) }

// peerRow is Tessera's two phases at one writer count.
type peerRow struct {
	writers             int
	durable, checkpoint peerResult
}

type peerResult struct {
	Phase    string  `json:"phase"`
	Writers  int     `json:"writers"`
	PerSec   float64 `json:"per_second"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Settings string  `json:"settings"`
}

// runTessera runs bench/tessera with `go run` (its own module: Tessera is
// no dependency of kura's) and reads its JSON lines.
func runTessera(ctx context.Context, dir, writers string, dur time.Duration) ([]peerRow, string, error) {
	if dir == "none" {
		return nil, "", fmt.Errorf("-tessera none")
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return nil, "", fmt.Errorf("no Go module at %s (run from kura's source tree, or pass -tessera DIR): %v", dir, err)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return nil, "", fmt.Errorf("the go command is needed to build it: %v", err)
	}
	cmd := exec.CommandContext(ctx, gobin, "run", ".", "-writers", writers, "-duration", dur.String())
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		tail := errb.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return nil, "", fmt.Errorf("%v: %s", err, tail)
	}
	var rows []peerRow
	settings := ""
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r peerResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, "", fmt.Errorf("its output %q: %v", sc.Text(), err)
		}
		settings = r.Settings
		if len(rows) == 0 || rows[len(rows)-1].writers != r.Writers {
			rows = append(rows, peerRow{writers: r.Writers})
		}
		switch r.Phase {
		case "durable":
			rows[len(rows)-1].durable = r
		case "checkpoint":
			rows[len(rows)-1].checkpoint = r
		}
	}
	return rows, settings, nil
}
