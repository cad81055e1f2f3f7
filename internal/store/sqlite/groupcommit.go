package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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
	state  atomic.Int32 // waiting, running or left: who decides, the caller or the leader
	turn   chan *Store  // the caller's view of the transaction, when it is its turn
	done   chan error   // the change's result, from the caller
	result chan error   // the batch's answer, to the caller
}

const (
	waiting int32 = iota // queued or taken into a batch, not yet run
	running              // the leader gave it its turn
	left                 // the caller gave up (timeout, cancellation) before its turn
)

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

	// Until its turn a caller may give up; the leader and the caller agree
	// on which came first through m.state.
	timer := time.NewTimer(busyTimeout)
	defer timer.Stop()
	var view *Store
	select {
	case view = <-m.turn:
	case err := <-m.result:
		return err
	case <-timer.C:
		if m.state.CompareAndSwap(waiting, left) {
			s.leave(m)
			return fmt.Errorf("sqlite: database is busy: another writer of this process held it for %s", busyTimeout)
		}
	case <-ctx.Done():
		if m.state.CompareAndSwap(waiting, left) {
			s.leave(m)
			return fmt.Errorf("begin transaction: %w", ctx.Err())
		}
	}
	if view == nil { // the leader gave it its turn first
		select {
		case view = <-m.turn:
		case err := <-m.result:
			return err
		}
	}
	finished := false
	defer func() {
		view.vs.closed.Store(true) // a goroutine the change left behind writes nothing
		if !finished {             // panic or runtime.Goexit in f: tell the leader
			m.done <- errChangeAborted
		}
	}()
	err := f(view)
	finished = true
	view.vs.closed.Store(true)
	m.done <- err
	return <-m.result
}

// leave takes a member that gave up out of the queue, if it is still
// there (a batch that took it skips it).
func (s *Store) leave(m *member) {
	g := s.group
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, p := range g.pending {
		if p == m {
			g.pending = append(g.pending[:i], g.pending[i+1:]...)
			return
		}
	}
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
	failed := make([]error, len(batch))
	ranAny := make([]bool, len(batch))
	ran := 0
	for i, m := range batch {
		if !m.state.CompareAndSwap(waiting, running) {
			ranAny[i] = false // it left: its caller has its answer
			continue
		}
		if err := m.ctx.Err(); err != nil {
			failed[i] = fmt.Errorf("begin transaction: %w", err)
			continue
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT kura_member`); err != nil {
			s.abort(tx, batch, failed, ranAny, fmt.Errorf("transaction: %w", err))
			return
		}
		// Each member its own view: closed when its change returns, and
		// poisoned if a failed statement ended the shared transaction.
		vs := &viewState{tx: tx}
		m.turn <- &Store{db: s.db, q: s.observed(vs), inTx: tx, vs: vs, path: s.path, writes: s.writes, group: s.group, obs: s.obs}
		ranAny[i] = true
		if err := <-m.done; err != nil {
			failed[i] = err
			_, e1 := tx.ExecContext(ctx, `ROLLBACK TO kura_member`)
			_, e2 := tx.ExecContext(ctx, `RELEASE kura_member`)
			if e := errors.Join(e1, e2, vs.lost()); e != nil {
				s.abort(tx, batch, failed, ranAny, fmt.Errorf("roll back a failed change: %w", e))
				return
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, `RELEASE kura_member`); err != nil || vs.lost() != nil {
			s.abort(tx, batch, failed, ranAny, fmt.Errorf("transaction: %w", errors.Join(err, vs.lost())))
			return
		}
		ran++
	}
	if ran == 0 {
		tx.Rollback()
		for i, m := range batch {
			m.result <- failed[i]
		}
		return
	}
	if err := s.commit(tx); err != nil {
		tx.Rollback()
		s.answerFailed(batch, failed, ranAny, fmt.Errorf("commit transaction: %w", err))
		return
	}
	for i, m := range batch {
		m.result <- failed[i]
	}
}

// abort rolls back the batch and answers every member.
func (s *Store) abort(tx *sql.Tx, batch []*member, failed []error, ranAny []bool, why error) {
	tx.Rollback()
	s.answerFailed(batch, failed, ranAny, why)
}

// answerFailed answers a batch that kept nothing. A member that ran saw the
// changes of those before it, which are gone now, so its own error may be
// false (a conflict with a change never kept): it is told both.
func (s *Store) answerFailed(batch []*member, failed []error, ranAny []bool, why error) {
	for i, m := range batch {
		switch {
		case ranAny[i]:
			m.result <- errors.Join(why, failed[i])
		case failed[i] != nil:
			m.result <- failed[i]
		default:
			m.result <- why
		}
	}
}

// viewState is one member's view of the shared transaction. Its statements
// run without the caller's cancellation or deadline (see the comment at
// the top; the context's values stay); it refuses statements once the
// change returned (closed) or once a failed statement ended the shared
// transaction (SQLite rolls back on its own after SQLITE_FULL, IOERR and
// the like; later statements would run, and commit, one by one).
type viewState struct {
	tx     *sql.Tx
	closed atomic.Bool
	mu     sync.Mutex
	gone   error // the transaction ended under the change
}

var errViewClosed = errors.New("sqlite: the transaction's view was used after its change returned")

func (v *viewState) check() error {
	if v.closed.Load() {
		return errViewClosed
	}
	return v.lost()
}

// lost reports whether the shared transaction ended under this view.
func (v *viewState) lost() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.gone
}

// probe runs after a failed statement: BEGIN fails inside a transaction,
// so its success says the shared one is gone (and the one it began is
// rolled back at once).
func (v *viewState) probe() {
	bg := context.Background()
	_, err := v.tx.ExecContext(bg, `BEGIN`)
	if err != nil && strings.Contains(err.Error(), "within a transaction") {
		return
	}
	if err == nil {
		v.tx.ExecContext(bg, `ROLLBACK`)
	}
	v.mu.Lock()
	if v.gone == nil {
		v.gone = errors.New("sqlite: the shared transaction was rolled back by SQLite after a failed statement")
	}
	v.mu.Unlock()
}

func (v *viewState) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if err := v.check(); err != nil {
		return nil, err
	}
	r, err := v.tx.ExecContext(context.WithoutCancel(ctx), q, args...)
	if err != nil {
		v.probe()
	}
	return r, err
}

func (v *viewState) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if err := v.check(); err != nil {
		return nil, err
	}
	r, err := v.tx.QueryContext(context.WithoutCancel(ctx), q, args...)
	if err != nil {
		v.probe()
	}
	return r, err
}

func (v *viewState) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if err := v.check(); err != nil {
		// A *sql.Row cannot be made to carry an error: ask one that
		// fails (the statement does not parse), so Scan reports it.
		return v.tx.QueryRowContext(context.Background(), "SELECT kura_view_refused /* "+err.Error()+" */")
	}
	return v.tx.QueryRowContext(context.WithoutCancel(ctx), q, args...)
}
