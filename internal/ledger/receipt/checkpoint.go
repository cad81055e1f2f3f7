package receipt

import (
	"fmt"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// OpenCheckpoint verifies a signed checkpoint of origin with the log's
// verifier key (note.NewVerifier's text form) and returns its tree.
func OpenCheckpoint(signed []byte, origin string, verifier note.Verifier) (tlog.Tree, error) {
	cp, _, _, err := log.ParseCheckpoint(signed, origin, verifier)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("ledger: checkpoint: %w", err)
	}
	if len(cp.Hash) != tlog.HashSize || cp.Size > 1<<62 {
		return tlog.Tree{}, fmt.Errorf("ledger: checkpoint: malformed root or size")
	}
	var h tlog.Hash
	copy(h[:], cp.Hash)
	return tlog.Tree{N: int64(cp.Size), Hash: h}, nil
}
