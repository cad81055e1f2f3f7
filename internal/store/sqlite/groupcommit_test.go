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
	time.Sleep(20 * time.Millisecond)
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
	time.Sleep(20 * time.Millisecond)
	run(func() { goodErr = s.WithTx(bg, func(tx store.Store) error { return use(bg, tx, "good") }) })
	late, cancelLate := context.WithCancel(bg)
	ran := false
	run(func() {
		lateErr = s.WithTx(late, func(tx store.Store) error { ran = true; return use(late, tx, "late") })
	})
	time.Sleep(20 * time.Millisecond)
	// Last in the batch (whoever queues behind it waits out busyTimeout).
	run(func() {
		nestedErr = s.WithTx(bg, func(tx store.Store) error {
			if err := use(bg, tx, "outer"); err != nil {
				return err
			}
			return s.WithTx(bg, func(inner store.Store) error { return use(bg, inner, "inner") })
		})
	})
	time.Sleep(20 * time.Millisecond)
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

// batchOf runs changes in one batch, in order: a slow change holds the
// writer while they queue one after the other, then lets them go.
func batchOf(t *testing.T, s *Store, changes ...func(tx store.Store) error) []error {
	t.Helper()
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.WithTx(context.Background(), func(store.Store) error { <-release; return nil })
	}()
	time.Sleep(30 * time.Millisecond)
	errs := make([]error, len(changes))
	for i, f := range changes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.WithTx(context.Background(), f) }()
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	return errs
}

// TestGroupCommitWaitsForEachOther: a change that waits for a later
// member of its own batch does not wedge the writer: the later member
// gives up after busyTimeout (it had not run), and the first goes on.
func TestGroupCommitWaitsForEachOther(t *testing.T) {
	defer func(d time.Duration) { busyTimeout = d }(busyTimeout)
	busyTimeout = 300 * time.Millisecond
	s, _ := openObserved(t)
	bg := context.Background()
	exp := time.Now().Add(time.Hour)
	release, bDone := make(chan struct{}), make(chan struct{})
	var aErr, bErr error
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.WithTx(bg, func(store.Store) error { <-release; return nil }) }()
	time.Sleep(30 * time.Millisecond)
	go func() {
		defer wg.Done()
		aErr = s.WithTx(bg, func(tx store.Store) error {
			<-bDone // waits for the later member's WithTx to return
			return tx.UseNonce(bg, "a", time.Now(), exp)
		})
	}()
	time.Sleep(20 * time.Millisecond)
	go func() {
		defer wg.Done()
		defer close(bDone)
		bErr = s.WithTx(bg, func(tx store.Store) error { return tx.UseNonce(bg, "b", time.Now(), exp) })
	}()
	time.Sleep(20 * time.Millisecond)
	close(release)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("two members of one batch waiting for each other wedged the writer")
	}
	if aErr != nil || bErr == nil || !strings.Contains(bErr.Error(), "busy") {
		t.Errorf("a: %v; b: %v (want busy)", aErr, bErr)
	}
	if !spent(t, s, "a") || spent(t, s, "b") {
		t.Error("a should be kept and b not")
	}
}

// TestGroupCommitSQLiteRollback: when SQLite itself rolls the shared
// transaction back (here a trigger's RAISE(ROLLBACK)), the member's later
// statements are refused instead of committing one by one, nothing of the
// batch is kept, and every member is told; a member's own error, which may
// come from a change of the batch that is gone, is told with the cause.
func TestGroupCommitSQLiteRollback(t *testing.T) {
	s, _ := openObserved(t)
	bg := context.Background()
	exp := time.Now().Add(time.Hour)
	if _, err := s.db.Exec(`CREATE TRIGGER boom BEFORE INSERT ON used_nonces WHEN NEW.nonce = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'boom'); END`); err != nil {
		t.Fatal(err)
	}
	use := func(tx store.Store, n string) error { return tx.UseNonce(bg, n, time.Now(), exp) }
	var afterErr error
	errs := batchOf(t, s,
		func(tx store.Store) error { return use(tx, "x") },
		func(tx store.Store) error { return use(tx, "x") }, // a conflict with a change that will not be kept
		func(tx store.Store) error {
			if err := use(tx, "boom"); err == nil {
				return errors.New("the trigger did not fire")
			}
			afterErr = use(tx, "after") // the transaction is gone: refused
			return afterErr
		},
		func(tx store.Store) error { return use(tx, "later") },
	)
	for i, err := range errs {
		if err == nil {
			t.Errorf("member %d was told success in a batch SQLite rolled back", i)
		}
	}
	if errs[1] != nil && !strings.Contains(errs[1].Error(), "rolled back") && !strings.Contains(errs[1].Error(), "savepoint") {
		t.Errorf("the conflicting member is not told the batch failed: %v", errs[1])
	}
	if afterErr == nil || !strings.Contains(afterErr.Error(), "rolled back by SQLite") {
		t.Errorf("a statement after SQLite's rollback: %v", afterErr)
	}
	for _, n := range []string{"x", "after", "later"} {
		if spent(t, s, n) {
			t.Errorf("%s was kept from a batch that failed", n)
		}
	}
}

// TestViewClosedAfterChange: a view kept past its change's return writes
// nothing.
func TestViewClosedAfterChange(t *testing.T) {
	s, _ := openObserved(t)
	bg := context.Background()
	var kept store.Store
	if err := s.WithTx(bg, func(tx store.Store) error { kept = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := kept.UseNonce(bg, "late", time.Now(), time.Now().Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "after its change returned") {
		t.Errorf("a write through a view after its change returned: %v", err)
	}
}
