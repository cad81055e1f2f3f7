package receipt

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// CheckCosignatures checks that a checkpoint carries valid cosignatures
// of at least quorum of witnesses (a signature by one of them that does
// not verify is an error) and returns their names. It does not check the
// log's own signature (OpenCheckpoint does).
func CheckCosignatures(signed []byte, witnesses []note.Verifier, quorum int) ([]string, error) {
	if quorum < 1 || quorum > len(witnesses) {
		return nil, fmt.Errorf("ledger: a quorum of %d of %d witnesses", quorum, len(witnesses))
	}
	n, err := note.Open(signed, note.VerifierList(witnesses...))
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		return nil, fmt.Errorf("ledger: the checkpoint carries no cosignature by the %d witnesses (%d needed)", len(witnesses), quorum)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: the checkpoint's cosignatures: %w", err)
	}
	var names []string
	seen := map[string]bool{}
	for _, s := range n.Sigs {
		// A witness is its name: two keys of one witness are one cosigner.
		if !seen[s.Name] {
			seen[s.Name] = true
			names = append(names, s.Name)
		}
	}
	if len(names) < quorum {
		return names, fmt.Errorf("ledger: the checkpoint carries cosignatures by %d of the witnesses (%s), %d needed", len(names), strings.Join(names, ", "), quorum)
	}
	return names, nil
}
