package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/store"
)

func openObserved(t *testing.T) (*Store, *atomic.Int64) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var commits atomic.Int64
	s.Observe(func(op string, _ time.Duration, _ error) {
		if op == "commit" {
			commits.Add(1)
		}
	})
	return s, &commits
}

func spent(t *testing.T, s *Store, nonce string) bool {
	t.Helper()
	err := s.UseNonce(context.Background(), nonce, time.Now(), time.Now().Add(time.Hour))
	if err == nil {
		return false
	}
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("nonce %s: %v", nonce, err)
	}
	return true
}

// TestGroupCommit: concurrent transactions share commits (fewer commits
// than transactions), and each is answered with its own outcome.
func TestGroupCommit(t *testing.T) {
	s, commits := openObserved(t)
	ctx := context.Background()
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.WithTx(ctx, func(tx store.Store) error {
				if err := tx.UseNonce(ctx, fmt.Sprint("g", i), time.Now(), time.Now().Add(time.Hour)); err != nil {
					return err
				}
				if i%8 == 5 {
					return errors.New("refused")
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%8 == 5) != (err != nil) {
			t.Errorf("transaction %d: %v", i, err)
		}
		if spent(t, s, fmt.Sprint("g", i)) != (i%8 != 5) {
			t.Errorf("transaction %d: its change is kept %v, want %v", i, !(i%8 != 5), i%8 != 5)
		}
	}
	if c := commits.Load(); c >= n {
		t.Errorf("%d commits for %d concurrent transactions: nothing was grouped", c, n)
	} else {
		t.Logf("%d transactions, %d commits", n, c)
	}
}

// TestGroupCommitIsolation: a change that cancels its own context midway,
// one that exits its goroutine, and one that calls the store's WithTx
// instead of its view's do not spoil the changes they share a commit with;
// a caller cancelled before its turn runs nothing.
func TestGroupCommitIsolation(t *testing.T) {
	defer func(d time.Duration) { busyTimeout = d }(busyTimeout)
	busyTimeout = time.Second
	s, _ := openObserved(t)
	bg := context.Background()
	exp := time.Now().Add(time.Hour)
	use := func(ctx context.Context, tx store.Store, n string) error { return tx.UseNonce(ctx, n, time.Now(), exp) }

	// Hold a first batch open with a slow change; the others queue for the
	// next one and share it.
	release := make(chan struct{})
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	var slowErr, cancelErr, nestedErr, goodErr, lateErr error
	run(func() {
		slowErr = s.WithTx(bg, func(tx store.Store) error {
			<-release
			return use(bg, tx, "slow")
		})
	})
	time.Sleep(50 * time.Millisecond) // the slow change holds the writer
	run(func() {
		ctx, cancel := context.WithCancel(bg)
		cancelErr = s.WithTx(ctx, func(tx store.Store) error {
			cancel() // midway: its statements still run, nobody else's are interrupted
			return use(ctx, tx, "cancelled-midway")
		})
	})
	run(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.WithTx(bg, func(tx store.Store) error {
				use(bg, tx, "goexit")
				runtime.Goexit()
				return nil
			})
		}()
		<-done
	})
	run(func() {
		nestedErr = s.WithTx(bg, func(tx store.Store) error {
			if err := use(bg, tx, "outer"); err != nil {
				return err
			}
			return s.WithTx(bg, func(inner store.Store) error { return use(bg, inner, "inner") })
		})
	})
	run(func() { goodErr = s.WithTx(bg, func(tx store.Store) error { return use(bg, tx, "good") }) })
	late, cancelLate := context.WithCancel(bg)
	ran := false
	run(func() {
		lateErr = s.WithTx(late, func(tx store.Store) error { ran = true; return use(late, tx, "late") })
	})
	time.Sleep(50 * time.Millisecond)
	cancelLate() // before its turn
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()

	if slowErr != nil || goodErr != nil || cancelErr != nil {
		t.Errorf("slow %v, good %v, cancelled midway %v", slowErr, goodErr, cancelErr)
	}
	if nestedErr == nil || !strings.Contains(nestedErr.Error(), "busy") {
		t.Errorf("a change that used the store's WithTx: %v", nestedErr)
	}
	if lateErr == nil || !errors.Is(lateErr, context.Canceled) || ran {
		t.Errorf("cancelled before its turn: %v (ran %v)", lateErr, ran)
	}
	for n, want := range map[string]bool{"slow": true, "good": true, "cancelled-midway": true,
		"goexit": false, "outer": false, "inner": false, "late": false} {
		if got := spent(t, s, n); got != want {
			t.Errorf("%s kept %v, want %v", n, got, want)
		}
	}
}
