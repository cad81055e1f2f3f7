package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	open := func(t *testing.T, path string) store.Store {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	storetest.Run(t, storetest.Engine{
		Open: func(t *testing.T) store.Store { return open(t, filepath.Join(t.TempDir(), "kura.db")) },
		Reopen: func(t *testing.T, s store.Store) store.Store {
			return open(t, s.(*Store).path)
		},
	})
}

// TestWriteQueue: writers of one process queue behind each other; a change
// that writes through the store instead of its transaction view (waiting
// for itself) fails after the busy timeout instead of hanging, and leaves
// nothing behind.
func TestWriteQueue(t *testing.T) {
	defer func(d time.Duration) { busyTimeout = d }(busyTimeout)
	busyTimeout = 200 * time.Millisecond
	s, err := Open(filepath.Join(t.TempDir(), "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	start := time.Now()
	err = s.WithTx(ctx, func(tx store.Store) error {
		if err := tx.UseNonce(ctx, "inside", time.Now(), time.Now().Add(time.Hour)); err != nil {
			return err
		}
		return s.UseNonce(ctx, "outside", time.Now(), time.Now().Add(time.Hour))
	})
	if err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("a write through the store inside its own transaction: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	// Neither nonce was spent: both can be used now.
	for _, n := range []string{"inside", "outside"} {
		if err := s.UseNonce(ctx, n, time.Now(), time.Now().Add(time.Hour)); err != nil {
			t.Errorf("nonce %s: %v", n, err)
		}
	}
	// Concurrent writers all get through.
	errs := make(chan error, 16)
	for i := range 16 {
		go func() { errs <- s.UseNonce(ctx, fmt.Sprint("n", i), time.Now(), time.Now().Add(time.Hour)) }()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestFileModes: the database and its WAL and shared-memory files are
// readable by their owner only, whatever the umask.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "kura.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.UseNonce(context.Background(), "n", time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %#o, want 0600", filepath.Base(f), st.Mode().Perm())
		}
	}
}

// TestConcurrentTransactions: concurrent transactions keep their own
// outcome: a failing one is rolled back alone, a panicking one panics in
// its own caller only, the others commit; and a WithTx on the store from
// inside another's f fails instead of waiting for itself.
func TestConcurrentTransactions(t *testing.T) {
	defer func(d time.Duration) { busyTimeout = d }(busyTimeout)
	busyTimeout = 300 * time.Millisecond
	s, err := Open(filepath.Join(t.TempDir(), "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	const n = 40
	type result struct {
		i        int
		err      error
		panicked any
	}
	results := make(chan result, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			defer func() {
				if p := recover(); p != nil {
					results <- result{i: i, panicked: p}
				}
			}()
			<-start
			err := s.WithTx(ctx, func(tx store.Store) error {
				if err := tx.UseNonce(ctx, fmt.Sprint("g", i), time.Now(), exp); err != nil {
					return err
				}
				switch i % 10 {
				case 3:
					return errors.New("refused")
				case 7:
					panic("boom")
				}
				return nil
			})
			results <- result{i: i, err: err}
		}()
	}
	close(start)
	for range n {
		r := <-results
		switch r.i % 10 {
		case 3:
			if r.err == nil || r.err.Error() != "refused" {
				t.Errorf("%d: %v, want its own error", r.i, r.err)
			}
		case 7:
			if r.panicked != "boom" {
				t.Errorf("%d: panicked %v, want its own panic", r.i, r.panicked)
			}
		default:
			if r.err != nil || r.panicked != nil {
				t.Errorf("%d: %v %v", r.i, r.err, r.panicked)
			}
		}
	}
	// Committed: the good ones' nonces are spent; the failed ones' are not.
	for i := range n {
		err := s.UseNonce(ctx, fmt.Sprint("g", i), time.Now(), exp)
		spent := errors.Is(err, store.ErrConflict)
		if want := i%10 != 3 && i%10 != 7; spent != want {
			t.Errorf("nonce g%d spent %v, want %v (%v)", i, spent, want, err)
		}
	}
	err = s.WithTx(ctx, func(tx store.Store) error {
		return s.WithTx(ctx, func(store.Store) error { return nil })
	})
	if err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("WithTx on the store inside a transaction: %v, want a busy error", err)
	}
}
