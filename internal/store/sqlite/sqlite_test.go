package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(filepath.Join(t.TempDir(), "kura.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
