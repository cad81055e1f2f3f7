package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kura-project/kura/internal/store"
)

// Group commit: concurrent WithTx calls share one SQLite transaction and
// so one fsync of the WAL (synchronous=FULL), instead of one each. A
// leader goroutine of the store's own, which runs no caller code, opens the
// transaction and hands it to each waiting caller in turn; each caller's
// change runs on its own goroutine inside a savepoint of its own, so that
// one that fails, panics or exits its goroutine is rolled back alone. Every
// caller is answered only after the one commit: nothing is acknowledged
// that a crash could still take.
//
// Three rules keep one caller from spoiling the others' work:
//   - a caller's context counts only until its turn: a cancellation during
//     its change could interrupt a statement, and SQLite rolls back the
//     whole transaction on an interrupted write; statements in a turn run
//     without the caller's cancellation;
//   - when releasing or rolling back a savepoint fails, the transaction is
//     in an unknown state (SQLite may have rolled it back on its own) and
//     the whole batch is rolled back and refused;
//   - a caller waiting for its turn gives up after busyTimeout if its
//     batch has not started, so a change that calls the store's WithTx
//     instead of its view's fails instead of waiting for itself.

// maxBatch bounds the callers one transaction takes.
const maxBatch = 64

type groupCommit struct {
	mu      sync.Mutex
	pending []*member
	leading bool // a leader goroutine is running
}

// member is one WithTx call in a batch.
type member struct {
	ctx    context.Context
	turn   chan *Store // the transaction's view, when it is the caller's turn
	done   chan error  // the change's result, from the caller
	result chan error  // the batch's answer, to the caller
}

// errChangeAborted is the result of a change that panicked or exited its
// goroutine: it is rolled back.
var errChangeAborted = errors.New("the change did not return (panic or goroutine exit); rolled back")

func (s *Store) withGroupTx(ctx context.Context, f func(tx store.Store) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	m := &member{ctx: ctx, turn: make(chan *Store, 1), done: make(chan error, 1), result: make(chan error, 1)}
	g := s.group
	g.mu.Lock()
	g.pending = append(g.pending, m)
	if !g.leading {
		g.leading = true
		go s.lead()
	}
	g.mu.Unlock()

	timer := time.NewTimer(busyTimeout)
	defer timer.Stop()
	var view *Store
	select {
	case view = <-m.turn:
	case err := <-m.result:
		return err
	case <-timer.C:
		if s.leave(m) {
			return fmt.Errorf("sqlite: database is busy: another writer of this process held it for %s", busyTimeout)
		}
	case <-ctx.Done():
		if s.leave(m) {
			return fmt.Errorf("begin transaction: %w", ctx.Err())
		}
	}
	if view == nil { // taken into a batch already: the leader answers
		select {
		case view = <-m.turn:
		case err := <-m.result:
			return err
		}
	}
	finished := false
	defer func() {
		if !finished { // panic or runtime.Goexit in f: tell the leader
			m.done <- errChangeAborted
		}
	}()
	err := f(view)
	finished = true
	m.done <- err
	return <-m.result
}

// leave takes m out of the queue if its batch has not started.
func (s *Store) leave(m *member) bool {
	g := s.group
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, p := range g.pending {
		if p == m {
			g.pending = append(g.pending[:i], g.pending[i+1:]...)
			return true
		}
	}
	return false
}

// lead runs batches until no caller waits.
func (s *Store) lead() {
	g := s.group
	for {
		g.mu.Lock()
		n := min(len(g.pending), maxBatch)
		if n == 0 {
			g.leading = false
			g.mu.Unlock()
			return
		}
		batch := append([]*member(nil), g.pending[:n]...)
		g.pending = append(g.pending[:0], g.pending[n:]...)
		g.mu.Unlock()
		s.runBatch(batch)
	}
}

// runBatch runs the members' changes in one transaction and answers each.
func (s *Store) runBatch(batch []*member) {
	ctx := context.Background() // no caller's context may end the shared transaction
	answer := func(err error) {
		for _, m := range batch {
			m.result <- err
		}
	}
	if err := s.writes.lock(ctx); err != nil {
		answer(fmt.Errorf("begin transaction: %w", err))
		return
	}
	defer s.writes.unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		answer(fmt.Errorf("begin transaction: %w", err))
		return
	}
	view := &Store{db: s.db, q: s.observed(uncancelled{tx}), inTx: tx, path: s.path, writes: s.writes, group: s.group, obs: s.obs}
	failed := make([]error, len(batch))
	ran := 0
	for i, m := range batch {
		if err := m.ctx.Err(); err != nil {
			failed[i] = fmt.Errorf("begin transaction: %w", err)
			continue
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT kura_member`); err != nil {
			s.abort(tx, batch, failed, fmt.Errorf("transaction: %w", err))
			return
		}
		m.turn <- view
		if err := <-m.done; err != nil {
			failed[i] = err
			_, e1 := tx.ExecContext(ctx, `ROLLBACK TO kura_member`)
			_, e2 := tx.ExecContext(ctx, `RELEASE kura_member`)
			if e := errors.Join(e1, e2); e != nil {
				s.abort(tx, batch, failed, fmt.Errorf("roll back a failed change: %w", e))
				return
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, `RELEASE kura_member`); err != nil {
			s.abort(tx, batch, failed, fmt.Errorf("transaction: %w", err))
			return
		}
		ran++
	}
	var cerr error
	if ran > 0 {
		if cerr = s.commit(tx); cerr != nil {
			cerr = fmt.Errorf("commit transaction: %w", cerr)
		}
	} else {
		tx.Rollback()
	}
	for i, m := range batch {
		if failed[i] != nil {
			m.result <- failed[i]
		} else {
			m.result <- cerr
		}
	}
}

// abort rolls back the batch: no member's change is kept, and every member
// not already refused is told why.
func (s *Store) abort(tx *sql.Tx, batch []*member, failed []error, why error) {
	tx.Rollback()
	for i, m := range batch {
		if failed[i] != nil {
			m.result <- failed[i]
		} else {
			m.result <- why
		}
	}
}

// uncancelled runs a turn's statements without its caller's cancellation
// or deadline (see the comment at the top); the context's values stay.
type uncancelled struct{ tx *sql.Tx }

func (u uncancelled) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return u.tx.ExecContext(context.WithoutCancel(ctx), q, args...)
}

func (u uncancelled) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return u.tx.QueryContext(context.WithoutCancel(ctx), q, args...)
}

func (u uncancelled) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return u.tx.QueryRowContext(context.WithoutCancel(ctx), q, args...)
}
