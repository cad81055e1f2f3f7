package sqlite

import (
	"context"
	"fmt"

	"github.com/kura-project/kura/internal/store"
)

const auditSchema = `
CREATE TABLE IF NOT EXISTS audit_log (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	action   TEXT NOT NULL,
	object   TEXT NOT NULL,
	actor    TEXT NOT NULL,
	at       INTEGER NOT NULL,
	details  BLOB NOT NULL
);
`

func (s *Store) AppendAudit(ctx context.Context, r store.AuditRecord) (int64, error) {
	details := r.Details
	if details == nil {
		details = []byte("{}")
	}
	res, err := s.exec(ctx, `INSERT INTO audit_log (action, object, actor, at, details) VALUES (?, ?, ?, ?, ?)`,
		r.Action, r.Object, r.Actor, unix(r.At), details)
	if err != nil {
		return 0, fmt.Errorf("append audit record: %w", err)
	}
	return res.LastInsertId()
}

func (s *Store) AuditRecords(ctx context.Context, after int64, limit int) ([]store.AuditRecord, error) {
	out, err := queryAll(ctx, s.q, func(r scanner) (store.AuditRecord, error) {
		var a store.AuditRecord
		var at int64
		err := r.Scan(&a.Seq, &a.Action, &a.Object, &a.Actor, &at, &a.Details)
		a.At = fromUnix(at)
		return a, err
	}, `SELECT seq, action, object, actor, at, details FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit records: %w", err)
	}
	return out, nil
}
