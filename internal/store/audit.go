package store

import (
	"context"
	"time"
)

// AuditRecord is one durable record of an operation that changed what kura
// grants (a key written or released, a policy set, a principal's roles).
// It holds names and digests, never secrets.
type AuditRecord struct {
	Seq     int64 // assigned by the store, increasing
	Action  string
	Object  string
	Actor   string
	At      time.Time
	Details []byte // JSON object
}

// Audit is the part of the store that keeps audit records. An append
// inside WithTx commits with the change it records, or not at all.
type Audit interface {
	AppendAudit(ctx context.Context, r AuditRecord) (int64, error)
	// AuditRecords returns records after seq in order, at most limit.
	AuditRecords(ctx context.Context, after int64, limit int) ([]AuditRecord, error)
}
