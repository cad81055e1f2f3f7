package sqlite

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

func userVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func rawExec(t *testing.T, path, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaVersions(t *testing.T) {
	t.Run("new database is stamped", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kura.db")
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if v := userVersion(t, path); v != schemaVersion {
			t.Errorf("user_version %d, want %d", v, schemaVersion)
		}
		// Opening again is a no-op.
		s, err = Open(path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		s.Close()
	})
	t.Run("unversioned database with the full schema is adopted", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kura.db")
		rawExec(t, path, fullSchema) // what earlier development builds left: no user_version
		if _, err := Open(path); err != nil {
			t.Fatalf("open: %v", err)
		}
		if v := userVersion(t, path); v != schemaVersion {
			t.Errorf("user_version %d", v)
		}
	})
	t.Run("unversioned database lacking a column is refused by name", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kura.db")
		rawExec(t, path, `CREATE TABLE policies (type TEXT PRIMARY KEY, text TEXT NOT NULL, jws TEXT NOT NULL, signer BLOB, updated INTEGER NOT NULL);`)
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), "table policies lacks column mac") || !strings.Contains(err.Error(), "empty data directory") {
			t.Fatalf("open: %v", err)
		}
		if v := userVersion(t, path); v != 0 {
			t.Errorf("a refused database was stamped %d", v)
		}
	})
	t.Run("newer database is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kura.db")
		rawExec(t, path, `PRAGMA user_version = 99`)
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), "schema version 99, written by a newer kura") {
			t.Fatalf("open: %v", err)
		}
	})
}
