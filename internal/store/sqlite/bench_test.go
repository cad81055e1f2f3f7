package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/store"
)

// BenchmarkWithTx measures durable (synchronous=FULL) write transactions
// of one audit record each from 16 concurrent writers, as group commit
// serves them, and the floor of the same with one transaction per commit.
func BenchmarkWithTx(b *testing.B) {
	for _, c := range []struct {
		name  string
		group int
	}{{"group", maxGroup}, {"one-per-commit", 1}} {
		b.Run(c.name, func(b *testing.B) {
			defer func(n int) { groupLimit = n }(groupLimit)
			groupLimit = c.group
			s, err := Open(filepath.Join(b.TempDir(), "kura.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			var n atomic.Int64
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					err := s.WithTx(ctx, func(tx store.Store) error {
						_, err := tx.AppendAudit(ctx, store.AuditRecord{Action: "bench", Object: fmt.Sprint(i), At: time.Now()})
						return err
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
