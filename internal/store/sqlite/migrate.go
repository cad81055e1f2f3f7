package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
)

// schemaVersion is the schema this kura writes, kept in PRAGMA
// user_version. A later change of the schema appends a step to migrations
// and raises it; a database from a newer kura is refused rather than
// misread.
const schemaVersion = 6

// migrations[i] takes a database from version i+1 to i+2.
var migrations = []string{
	auditSchema, // 1 → 2: the audit log
	// 2 → 3: integrity tags on principals and access tokens. Existing
	// tokens cannot be authenticated and live an hour at most: dropped
	// (clients fetch new ones). Existing principals are refused until an
	// administrator adopts them (auth.Service.Adopt).
	`ALTER TABLE principals ADD COLUMN mac BLOB;
ALTER TABLE access_tokens ADD COLUMN mac BLOB;
DELETE FROM access_tokens;`,
	ledgerSchema,         // 3 → 4: the confidential ledger
	ledgerACLSchema,      // 4 → 5: the ledger's ACL-shaped tree, for Azure Confidential Ledger receipts
	ledgerCosignedSchema, // 5 → 6: the ledger's latest witness-cosigned checkpoint
}

// querier is what migrate needs of a connection.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// migrate brings the database at db to schemaVersion, in one IMMEDIATE
// transaction on one connection: two processes starting at once migrate
// it once, and a crash midway leaves it as it was (user_version is
// transactional in SQLite).
func migrate(db *sql.DB) error {
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return fmt.Errorf("lock the database for migration: %w", err)
	}
	if err := migrateTx(ctx, conn); err != nil {
		conn.ExecContext(ctx, `ROLLBACK`)
		return err
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return fmt.Errorf("commit migration: %w", err)
	}
	return nil
}

func migrateTx(ctx context.Context, q querier) error {
	var v int
	if err := q.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("the database has schema version %d, written by a newer kura; this kura knows versions up to %d", v, schemaVersion)
	}
	if v == 0 {
		// A new database, or one from before schema versions existed: the
		// latter must already have every column, since nothing says how to
		// convert it.
		if err := checkUnversioned(ctx, q); err != nil {
			return err
		}
		if _, err := q.ExecContext(ctx, fullSchema); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		v = schemaVersion // fullSchema is the current schema: nothing to migrate
	}
	for ; v < schemaVersion; v++ {
		if _, err := q.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("migrate schema %d → %d: %w", v, v+1, err)
		}
	}
	// Tables added with IF NOT EXISTS cost nothing when present.
	if _, err := q.ExecContext(ctx, fullSchema+fmt.Sprintf("PRAGMA user_version = %d;", schemaVersion)); err != nil {
		return fmt.Errorf("stamp schema version: %w", err)
	}
	return nil
}

const fullSchema = schema + keysSchema + principalsSchema + auditSchema + ledgerSchema + ledgerACLSchema + ledgerCosignedSchema

// checkUnversioned refuses an unversioned database whose tables lack a
// column of the current schema, naming the first one missing.
func checkUnversioned(ctx context.Context, q querier) error {
	have, err := columns(ctx, q)
	if err != nil {
		return err
	}
	if len(have) == 0 {
		return nil // empty: a new database
	}
	if _, ok := have["signing_keys"]; !ok {
		// Every kura database has signing keys from its first unseal.
		return fmt.Errorf("the database holds tables but not kura's (no signing_keys): not a kura database")
	}
	ref, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		return err
	}
	defer ref.Close()
	ref.SetMaxOpenConns(1) // one connection: one in-memory database
	if _, err := ref.Exec(fullSchema); err != nil {
		return fmt.Errorf("reference schema: %w", err)
	}
	want, err := columns(ctx, ref)
	if err != nil {
		return err
	}
	for _, table := range slices.Sorted(maps.Keys(want)) {
		got, ok := have[table]
		if !ok {
			continue // a missing table is created
		}
		for _, c := range want[table] {
			if !slices.Contains(got, c) {
				return fmt.Errorf("the database is from a development version of kura before schema versions (table %s lacks column %s): start from an empty data directory", table, c)
			}
		}
	}
	return nil
}

// columns lists the columns of every table.
func columns(ctx context.Context, q querier) (map[string][]string, error) {
	pairs, err := queryAll(ctx, q, func(r scanner) (tc [2]string, err error) { return tc, r.Scan(&tc[0], &tc[1]) },
		`SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	out := map[string][]string{}
	for _, tc := range pairs {
		out[tc[0]] = append(out[tc[0]], tc[1])
	}
	return out, nil
}
