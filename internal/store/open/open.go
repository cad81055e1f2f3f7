// Package open chooses a storage engine by data source name. It lives
// apart from package store because the engines import store.
package open

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/sqlite"
)

// Open opens the store a dsn names:
//
//   - "sqlite:PATH", or a plain file path: the SQLite database file at PATH
//     (created if needed). A path whose first element contains a colon,
//     like "a:b.db", must be written "sqlite:a:b.db" or "./a:b.db".
//   - "postgres://..." or "postgresql://...": PostgreSQL, which is not
//     built yet; Open says so.
//
// Any other scheme is an error naming it.
func Open(dsn string) (store.Store, error) {
	if dsn == "" {
		return nil, errors.New("store: empty data source name")
	}
	scheme, rest, ok := strings.Cut(dsn, ":")
	if !ok || !isScheme(scheme) || strings.ContainsAny(scheme, `/\`) {
		return openSQLite(dsn)
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		return openSQLite(rest)
	case "postgres", "postgresql":
		return nil, errors.New("store: the PostgreSQL engine is not built yet (it has its own issue); use a sqlite: data source name")
	}
	return nil, fmt.Errorf("store: unknown data source scheme %q (want sqlite:PATH, a file path, or postgres://...)", scheme)
}

func openSQLite(path string) (store.Store, error) {
	if path == "" {
		return nil, errors.New("store: sqlite: empty path")
	}
	s, err := sqlite.Open(path)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// isScheme reports whether s is a URL scheme (RFC 3986) longer than one
// letter, so that a Windows drive letter ("C:\...") reads as a path.
func isScheme(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
