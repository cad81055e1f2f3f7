package sqlite

import (
	"path/filepath"
	"testing"

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
