package ledger_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/ledger"
	"github.com/kura-project/kura/internal/ledger/receipt"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/sqlite"
)

const crashOrigin = "kura.test/crash"

// openCrashLog opens the ledger in dir as kura serve does: SQLite with
// group commit, its key sealed under a root, and the ACL tree.
func openCrashLog(dir string) (*ledger.Log, *ledger.Key, func(), error) {
	st, err := sqlite.Open(filepath.Join(dir, "kura.db"))
	if err != nil {
		return nil, nil, nil, err
	}
	root, err := seal.OpenSoftwareRoot(filepath.Join(dir, "root"), bytes.Repeat([]byte{5}, 32))
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	sealer := seal.New(root)
	ctx := context.Background()
	key, err := ledger.OpenKey(ctx, st, sealer, crashOrigin, time.Now())
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	acl, err := ledger.OpenACLKey(ctx, st, sealer, nil, time.Now)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	l, err := ledger.New(st, ledger.Config{Origin: crashOrigin, Signer: key.Signer, Verifier: key.Verifier, ACL: acl,
		Tx: func(ctx context.Context, f func(ledger.Store) error) error {
			return st.WithTx(ctx, func(tx store.Store) error { return f(tx) })
		}})
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return l, &key, func() { st.Close() }, nil
}

// TestMain runs the test binary as TestCrash's subprocess when asked.
func TestMain(m *testing.M) {
	if dir := os.Getenv("KURA_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// crashChild is the process TestCrash kills: it appends from 32 writers,
// printing each entry once acknowledged, and signs checkpoints (printing
// each) until it is killed.
func crashChild(dir string) {
	l, _, done, err := openCrashLog(dir)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	defer done()
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush() // a line is out before the next acknowledgement is counted
		mu.Unlock()
	}
	say("ready")
	ctx := context.Background()
	for w := range 32 {
		go func() {
			for i := 0; ; i++ {
				rec, err := l.Append(ctx, "c", fmt.Appendf(nil, "w%d-%d-%d", w, i, os.Getpid()))
				if err != nil {
					say("error %v", err)
					os.Exit(1)
				}
				say("ack %d %s", rec.Leaf.Seq, hex.EncodeToString(rec.Leaf.Commitment[:]))
			}
		}()
	}
	for {
		_, signed, err := l.Checkpoint(ctx)
		if err != nil {
			say("error %v", err)
			os.Exit(1)
		}
		say("cp %s", base64.StdEncoding.EncodeToString(signed))
		time.Sleep(time.Millisecond)
	}
}

// TestCrash: a kura ledger killed with SIGKILL in the middle of batches,
// again and again on one database, loses no acknowledged entry; after
// each restart the stored tree extends every checkpoint signed before the
// kill (consistency proof), a new checkpoint is signed over it, and every
// acknowledged entry's receipt (C2SP and ACL) verifies.
func TestCrash(t *testing.T) {
	iterations, budget := 100, 100*time.Second
	if testing.Short() {
		iterations, budget = 10, 30*time.Second
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	acked := map[int64]string{} // seq → commitment, over every run
	var lastCP []byte
	ran := 0
	for ; ran < iterations && time.Since(start) < budget; ran++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "KURA_CRASH_CHILD="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // a failed run leaves no process behind
		// A child that hangs or stops printing is killed all the same, so
		// that the line loop ends and the run fails on what it finds.
		hung := time.AfterFunc(20*time.Second, func() { cmd.Process.Signal(syscall.SIGKILL) })
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<16), 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill at a random moment once writing is under way.
		var kill <-chan time.Time // from "ready" on
		started, killed := false, false
		runAcked := map[int64]string{}
		for line := range lines {
			switch {
			case line == "ready":
				started = true
				kill = time.After(time.Duration(20+rand.IntN(110)) * time.Millisecond)
			case strings.HasPrefix(line, "ack "):
				f := strings.Fields(line)
				seq, _ := strconv.ParseInt(f[1], 10, 64)
				if prev, ok := acked[seq]; ok && prev != f[2] {
					t.Fatalf("run %d: entry %d acknowledged twice, with two contents", ran, seq)
				}
				acked[seq], runAcked[seq] = f[2], f[2]
			case strings.HasPrefix(line, "cp "):
				lastCP, _ = base64.StdEncoding.DecodeString(line[3:])
			case strings.HasPrefix(line, "error"):
				t.Fatalf("run %d: the child: %s", ran, line)
			}
			if started && !killed {
				select {
				case <-kill:
					cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				default:
				}
			}
		}
		hung.Stop()
		if !killed {
			cmd.Process.Signal(syscall.SIGKILL)
		}
		cmd.Wait()
		if !started {
			t.Fatalf("run %d: the child never started", ran)
		}
		checkAfterCrash(t, dir, acked, runAcked, lastCP, ran)
	}
	checkAll(t, dir, acked)
	if ran < iterations {
		t.Fatalf("%d kill -9 iterations in %s, want %d", ran, budget, iterations)
	}
	t.Logf("%d kill -9 iterations, %d acknowledged entries, all present, in %s", ran, len(acked), time.Since(start).Round(time.Millisecond))
}

func checkAfterCrash(t *testing.T, dir string, acked, runAcked map[int64]string, lastCP []byte, run int) {
	t.Helper()
	ctx := context.Background()
	l, key, done, err := openCrashLog(dir)
	if err != nil {
		t.Fatalf("run %d: reopen after the kill: %v", run, err)
	}
	defer done()
	tree, signed, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("run %d: checkpoint after the kill: %v", run, err)
	}
	for seq := range acked {
		if seq >= tree.N {
			t.Fatalf("run %d: acknowledged entry %d is gone (the tree has %d)", run, seq, tree.N)
		}
	}
	if lastCP != nil {
		before, err := receipt.OpenCheckpoint(lastCP, crashOrigin, key.Verifier)
		if err != nil {
			t.Fatalf("run %d: the last checkpoint before the kill: %v", run, err)
		}
		p, err := l.Consistency(ctx, before.N, tree.N)
		if before.N > 0 && err != nil {
			t.Fatalf("run %d: consistency %d → %d: %v", run, before.N, tree.N, err)
		}
		if err := receipt.VerifyConsistency(lastCP, signed, p, crashOrigin, key.Verifier); before.N > 0 && err != nil {
			t.Fatalf("run %d: the tree after the kill does not extend the checkpoint before it: %v", run, err)
		}
	}
	// Every acknowledged entry of this run as acknowledged; the receipts of
	// its last ones and of a sample.
	for seq, c := range runAcked {
		rec, err := l.Get(ctx, seq)
		if err != nil || hex.EncodeToString(rec.Leaf.Commitment[:]) != c {
			t.Fatalf("run %d: acknowledged entry %d: %v", run, seq, err)
		}
		if seq < tree.N-64 && seq%97 != 0 {
			continue
		}
		rec, rcpt, err := l.Receipt(ctx, seq)
		if err != nil {
			t.Fatalf("run %d: rcpt of entry %d: %v", run, seq, err)
		}
		if hex.EncodeToString(rec.Leaf.Commitment[:]) != c {
			t.Fatalf("run %d: entry %d is not the one acknowledged", run, seq)
		}
		if _, _, err := receipt.Verify(rcpt, crashOrigin, key.Verifier, rec.Contents, rec.Salt); err != nil {
			t.Fatalf("run %d: rcpt of entry %d: %v", run, seq, err)
		}
		if _, _, err := l.ACLReceipt(ctx, seq); err != nil {
			t.Fatalf("run %d: ACL rcpt of entry %d: %v", run, seq, err)
		}
	}
}

// checkAll reads every entry and compares each acknowledged one.
func checkAll(t *testing.T, dir string, acked map[int64]string) {
	t.Helper()
	ctx := context.Background()
	l, _, done, err := openCrashLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	seen := 0
	for from := int64(0); ; from += 1000 {
		recs, err := l.List(ctx, "", from, from+999, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if c, ok := acked[int64(r.Leaf.Seq)]; ok {
				if hex.EncodeToString(r.Leaf.Commitment[:]) != c {
					t.Fatalf("entry %d is not the one acknowledged", r.Leaf.Seq)
				}
				seen++
			}
		}
	}
	if seen != len(acked) {
		t.Fatalf("%d of %d acknowledged entries are in the log", seen, len(acked))
	}
}
