package open

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	for _, dsn := range []string{filepath.Join(dir, "a.db"), "sqlite:" + filepath.Join(dir, "b.db")} {
		s, err := Open(dsn)
		if err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Errorf("%s: ping: %v", dsn, err)
		}
		s.Close()
	}
}

func TestOpenRefused(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://u@h/db":   "PostgreSQL engine is not built yet",
		"postgresql://u@h/db": "PostgreSQL engine is not built yet",
		"mysql://u@h/db":      `"mysql"`,
		"redis:x":             `"redis"`,
		"":                    "empty",
		"sqlite:":             "empty path",
	} {
		s, err := Open(dsn)
		if err == nil {
			s.Close()
			t.Errorf("%q: opened", dsn)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want it to mention %s", dsn, err, want)
		}
	}
}
