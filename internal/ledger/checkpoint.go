package ledger

import (
	"fmt"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A checkpoint is the C2SP tlog-checkpoint of a tree size: origin, size
// and root, as a signed note (Ed25519). Receipts carry one; witnesses and
// monitors follow them.

// signCheckpoint signs the checkpoint of tree t.
func signCheckpoint(origin string, t tlog.Tree, s note.Signer) ([]byte, error) {
	body := log.Checkpoint{Origin: origin, Size: uint64(t.N), Hash: t.Hash[:]}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, s)
	if err != nil {
		return nil, fmt.Errorf("ledger: sign checkpoint: %w", err)
	}
	return signed, nil
}
