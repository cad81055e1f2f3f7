// Command tessera runs transparency-dev's Tessera (POSIX driver) on the
// workload `kura bench ledger` gives kura's ledger, as the peer baseline
// measured in the same run. It is a module of its own so that Tessera never
// becomes a dependency of kura.
//
// For each writer count it runs two phases of -duration each and prints a
// JSON line per phase: "durable" (Add, then wait for the entry to be
// sequenced: written and fsync'd) and "checkpoint" (Add, then wait for a
// published checkpoint that commits to it: what a client needs to build a
// receipt).
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"
)

type result struct {
	Peer     string  `json:"peer"`
	Phase    string  `json:"phase"`
	Writers  int     `json:"writers"`
	Ops      int     `json:"ops"`
	PerSec   float64 `json:"per_second"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Settings string  `json:"settings"`
}

func main() {
	dir := flag.String("dir", "", "an empty directory for the log (default: a temporary one)")
	writersFlag := flag.String("writers", "1,16,256", "writer counts, comma-separated")
	dur := flag.Duration("duration", 3*time.Second, "measuring time per phase")
	batchSize := flag.Uint("batch-size", 256, "Tessera batch size")
	batchAge := flag.Duration("batch-age", 10*time.Millisecond, "Tessera batch age")
	cpEvery := flag.Duration("checkpoint-interval", 100*time.Millisecond, "Tessera checkpoint interval")
	poll := flag.Duration("poll", 10*time.Millisecond, "publication awaiter poll period")
	flag.Parse()
	klog.SetOutput(os.Stderr)
	if err := run(*dir, *writersFlag, *dur, *batchSize, *batchAge, *cpEvery, *poll); err != nil {
		fmt.Fprintln(os.Stderr, "tessera:", err)
		os.Exit(1)
	}
}

func run(dir, writersFlag string, dur time.Duration, batchSize uint, batchAge, cpEvery, poll time.Duration) error {
	var writers []int
	for _, f := range strings.Split(writersFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-writers: %q", f)
		}
		writers = append(writers, n)
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "tessera-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	skey, _, err := note.GenerateKey(rand.Reader, "bench.tessera/log")
	if err != nil {
		return err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return err
	}
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return err
	}
	opts := tessera.NewAppendOptions().WithCheckpointSigner(signer).
		WithBatching(batchSize, batchAge).WithCheckpointInterval(cpEvery).WithPushback(1 << 16)
	app, shutdown, reader, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		return err
	}
	defer shutdown(context.Background())
	awaiter := tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, poll)
	settings := fmt.Sprintf("posix, batch %d/%s, checkpoint every %s, poll %s", batchSize, batchAge, cpEvery, poll)
	enc := json.NewEncoder(os.Stdout)
	var seq int64
	var seqMu sync.Mutex
	entry := func() *tessera.Entry {
		seqMu.Lock()
		seq++
		n := seq
		seqMu.Unlock()
		return tessera.NewEntry(benchContents(n))
	}
	for _, w := range writers {
		for _, phase := range []string{"durable", "checkpoint"} {
			op := func() error {
				f := app.Add(ctx, entry())
				if phase == "durable" {
					_, err := f()
					return err
				}
				_, _, err := awaiter.Await(ctx, f)
				return err
			}
			r, err := measure(w, dur, op)
			if err != nil {
				return fmt.Errorf("%s with %d writers: %w", phase, w, err)
			}
			r.Peer, r.Phase, r.Writers, r.Settings = "tessera", phase, w, settings
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// benchContents is the entry both logs get: the same as kura's bench.
func benchContents(n int64) []byte {
	return fmt.Appendf(nil, `{"bench":"ledger","n":%d,"pad":"%064d"}`, n, n)
}

func measure(writers int, d time.Duration, op func() error) (result, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var first error
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for time.Now().Before(deadline) {
				t := time.Now()
				if err := op(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if first != nil {
		return result{}, first
	}
	slices.Sort(lat)
	r := result{Ops: len(lat), PerSec: float64(len(lat)) / el.Seconds()}
	if len(lat) > 0 {
		r.P50ms = float64(lat[len(lat)/2]) / 1e6
		r.P99ms = float64(lat[min(len(lat)-1, len(lat)*99/100)]) / 1e6
	}
	return r, nil
}
