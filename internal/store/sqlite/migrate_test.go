package sqlite

import (
	"bytes"
	"database/sql"
	"os"
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
		db, _ := sql.Open("sqlite", "file:"+path)
		var mode string
		db.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
		db.Close()
		if mode != "wal" {
			t.Errorf("journal_mode %q, want wal", mode)
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
		rawExec(t, path, `CREATE TABLE signing_keys (id TEXT PRIMARY KEY, purpose TEXT, alg TEXT, cert BLOB, sealed BLOB, created INTEGER, retired INTEGER);
CREATE TABLE policies (type TEXT PRIMARY KEY, text TEXT NOT NULL, jws TEXT NOT NULL, signer BLOB, updated INTEGER NOT NULL);`)
		before := fileBytes(t, path)
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), "table policies lacks column mac") || !strings.Contains(err.Error(), "empty data directory") {
			t.Fatalf("open: %v", err)
		}
		unchanged(t, path, before)
	})
	t.Run("another application's database is refused, untouched", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "other.db")
		rawExec(t, path, `CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)`)
		before := fileBytes(t, path)
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), "not a kura database") {
			t.Fatalf("open: %v", err)
		}
		unchanged(t, path, before)
	})
	t.Run("concurrent first opens", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kura.db")
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				s, err := Open(path)
				if err == nil {
					s.Close()
				}
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Errorf("open: %v", err)
			}
		}
	})
	t.Run("schema 2 migrates to 3", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kura.db")
		v2 := schema + keysSchema + strings.ReplaceAll(principalsSchema, ",\n\tmac          BLOB", "") + auditSchema
		if strings.Contains(strings.ReplaceAll(principalsSchema, ",\n\tmac          BLOB", ""), "mac") {
			t.Fatal("the schema-2 reconstruction still has a mac column")
		}
		rawExec(t, path, v2+`INSERT INTO principals (id, name, created) VALUES ('p1', 'app', 1);
INSERT INTO access_tokens (hash, principal_id, expires) VALUES (x'0102', 'p1', 99999999999999999);
PRAGMA user_version = 2;`)
		s, err := Open(path)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer s.Close()
		if v := userVersion(t, path); v != schemaVersion {
			t.Errorf("user_version %d, want %d", v, schemaVersion)
		}
		p, err := s.GetPrincipal(t.Context(), "p1")
		if err != nil || p.Name != "app" || p.MAC != nil {
			t.Errorf("principal after migration: %+v %v", p, err)
		}
		if _, err := s.GetAccessToken(t.Context(), []byte{1, 2}); err == nil {
			t.Error("an untagged access token survived the migration")
		}
	})
	t.Run("newer database is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kura.db")
		rawExec(t, path, `PRAGMA user_version = 99`)
		before := fileBytes(t, path)
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), "schema version 99, written by a newer kura") {
			t.Fatalf("open: %v", err)
		}
		unchanged(t, path, before)
	})
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unchanged checks that a refused database file is as it was, with no WAL
// files made beside it.
func unchanged(t *testing.T, path string, before []byte) {
	t.Helper()
	if !bytes.Equal(fileBytes(t, path), before) {
		t.Error("a refused database was modified")
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); err == nil {
			t.Errorf("a refused database got a %s file", suffix)
		}
	}
}
