// Package audit is the record kura keeps of every operation that changes
// what it grants: key create, import, update, rotate, delete, purge,
// recover, restore and release; appraisal and release policy set and reset;
// token-key rotation; principal and role changes.
//
// The domain calls a Recorder with the change and the event together, and
// the Recorder applies both as one unit: an event that cannot be recorded
// fails the operation and leaves no change behind (fail closed). Store
// keeps the records in kura's database in the same transaction as the
// change and, with a Ledger, appends each to the confidential ledger in
// that transaction too, so that every change is provably on record.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kura-project/kura/internal/fault"
	"github.com/kura-project/kura/internal/store"
)

// Event is one audited operation: names and digests, never secrets.
type Event struct {
	Action  string            // "key.create", "key.release", "policy.set", ...
	Object  string            // "keys/NAME/VERSION", "policies/SevSnpVm", "principals/ID"
	Actor   string            // the principal's name, when the domain knows it
	ActorID string            // its id: names can be reused after a delete, ids are not
	Details map[string]string // digests and non-secret attributes
}

// Receipt says where an event was recorded.
type Receipt struct {
	Seq       int64 // in the audit log
	LedgerSeq int64 // in the ledger; -1 without one
}

// Ledger appends an entry in a transaction of the store (internal/ledger's
// Log).
type Ledger interface {
	AppendTx(ctx context.Context, tx store.Store, collection string, contents []byte) (seq int64, err error)
}

// LedgerCollection is the ledger collection of audit records.
const LedgerCollection = "kura-audit"

// Recorder applies a change and records its event as one unit.
type Recorder interface {
	// Record runs change on a transaction view of the store and records
	// e with it: both commit, or neither. An error of change is returned
	// as it is; a failure to record is an *Error.
	Record(ctx context.Context, e Event, change func(tx store.Store) error) (Receipt, error)
}

// Error is an event that could not be recorded: the operation was not
// done. Callers answer it as "unavailable".
type Error struct{ Err error }

func (e *Error) Error() string { return "the audit record could not be written: " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// IsError reports whether err is (or wraps) an *Error.
func IsError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

type actorKey struct{}

// WithActor returns ctx naming the principal on whose behalf the domain
// acts; the API layer sets it once it has authenticated the caller, and
// recorders fill Event.Actor from it when the domain leaves it empty.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// Actor returns the actor WithActor set, or "".
func Actor(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

type actorIDKey struct{}

// WithPrincipal is WithActor for an authenticated principal: its name and
// its id, which recorders fill into Event.ActorID.
func WithPrincipal(ctx context.Context, id, name string) context.Context {
	return context.WithValue(WithActor(ctx, name), actorIDKey{}, id)
}

// ActorID returns the principal id WithPrincipal set, or "".
func ActorID(ctx context.Context) string {
	a, _ := ctx.Value(actorIDKey{}).(string)
	return a
}

// Store records events in the store's audit log, in the change's
// transaction.
type Store struct {
	St     store.Store
	Now    func() time.Time
	Ledger Ledger // nil: the audit log only
}

// Record implements Recorder.
func (s Store) Record(ctx context.Context, e Event, change func(tx store.Store) error) (Receipt, error) {
	if e.Actor == "" {
		e.Actor = Actor(ctx)
	}
	if e.ActorID == "" {
		e.ActorID = ActorID(ctx)
	}
	details, err := json.Marshal(e.Details)
	if err != nil {
		return Receipt{}, &Error{Err: fmt.Errorf("encode details: %w", err)}
	}
	r := Receipt{LedgerSeq: -1}
	err = s.St.WithTx(ctx, func(tx store.Store) error {
		if err := change(tx); err != nil {
			return err
		}
		at := s.Now()
		var err error
		r.Seq, err = tx.AppendAudit(ctx, store.AuditRecord{Action: e.Action, Object: e.Object, Actor: e.Actor, At: at, Details: details})
		if err != nil {
			return &Error{Err: err}
		}
		if s.Ledger == nil {
			return nil
		}
		entry, err := json.Marshal(struct {
			Seq     int64             `json:"audit_seq"`
			Action  string            `json:"action"`
			Object  string            `json:"object"`
			Actor   string            `json:"actor,omitempty"`
			ActorID string            `json:"actor_id,omitempty"`
			At      int64             `json:"at_ms"`
			Details map[string]string `json:"details,omitempty"`
		}{r.Seq, e.Action, e.Object, e.Actor, e.ActorID, at.UnixMilli(), e.Details})
		if err != nil {
			return &Error{Err: err}
		}
		if r.LedgerSeq, err = s.Ledger.AppendTx(ctx, tx, LedgerCollection, entry); err != nil {
			return &Error{Err: fmt.Errorf("ledger: %w", err)}
		}
		return nil
	})
	if err != nil {
		return Receipt{}, err
	}
	return r, nil
}

// FaultKind places Error in the domain's error vocabulary.
func (*Error) FaultKind() fault.Kind { return fault.Unavailable }

// Apply runs change through r and answers as the domain does: a missing
// recorder or a record that could not be written is Unavailable, and
// nothing was changed; an error of change comes back as it is.
func Apply(ctx context.Context, r Recorder, e Event, change func(tx store.Store) error) error {
	if r == nil {
		return fault.Down("no audit recorder is configured; nothing was changed", nil)
	}
	_, err := r.Record(ctx, e, change)
	if IsError(err) {
		return fault.Down("the audit record could not be written; nothing was changed", err)
	}
	return err
}
