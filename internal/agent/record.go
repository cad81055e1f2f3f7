package agent

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kura-project/kura/internal/ledger/receipt"
)

// auditCollection is the ledger collection of kura's audit records
// (internal/audit's, which the agent does not link).
const auditCollection = "kura-audit"

// Record is what the ledger record of a release must say: the key version
// released, the token and the answer (as SHA-256), the nonce and the TEE
// key.
type Record struct {
	Name, Version string
	Token, Answer string
	Nonce         string
	TEEKeyID      string
}

// onRecord checks that the release want is on kura's ledger: the entry
// the answer named (id, "1.<seqno>") is fetched with the agent's access
// token (a principal may read the records of its own releases), its
// receipt verified against the ledger's key and its contents against
// want.
func (a *Agent) onRecord(ctx context.Context, access, id string, want Record) error {
	if id == "" {
		return errors.New("the release answer names no ledger record (x-kura-ledger-transaction-id): the release is not provably on record, so its key is not used")
	}
	seq, err := parseTxID(id)
	if err != nil {
		return err
	}
	v, err := a.ledgerKey(ctx)
	if err != nil {
		return err
	}
	body, _, err := a.send(ctx, http.MethodGet, "/kura/v1/ledger/entries/"+strconv.FormatInt(seq, 10), "", access, nil)
	if err != nil {
		return fmt.Errorf("the ledger record %s of the release: %w", id, err)
	}
	t, err := CheckRecord(body, v, seq, want)
	if err != nil {
		return fmt.Errorf("the ledger record %s of the release: %w", id, err)
	}
	a.cfg.Log.Info("release on record", "key", want.Name, "version", want.Version, "ledger_id", id, "tree_size", t.N)
	return nil
}

// parseTxID reads "1.<seqno>" (seqno from 1) into an entry's seq.
func parseTxID(id string) (int64, error) {
	v, s, ok := strings.Cut(id, ".")
	n, err := strconv.ParseInt(s, 10, 64)
	if !ok || v != "1" || err != nil || n < 1 || s != strconv.FormatInt(n, 10) {
		return 0, fmt.Errorf("the release answer's ledger record %q is not a transaction id (1.<seqno>)", id)
	}
	return n - 1, nil
}

// ledgerKey is the pinned ledger key, or the one kura publishes, fetched
// once over the TLS channel the agent trusts.
func (a *Agent) ledgerKey(ctx context.Context) (note.Verifier, error) {
	a.ledgerMu.Lock()
	defer a.ledgerMu.Unlock()
	if a.ledger != nil {
		return a.ledger, nil
	}
	b, _, err := a.send(ctx, http.MethodGet, "/kura/v1/ledger/key", "", "", nil)
	if err != nil {
		return nil, fmt.Errorf("the ledger's key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("the ledger's key: %w", err)
	}
	a.ledger = v
	return v, nil
}

// CheckRecord verifies entry, the JSON of GET /kura/v1/ledger/entries/seq,
// as the ledger record of the release want: its receipt proves the entry
// in a tree signed by the ledger key v, and its contents, the audit
// record, name that release. It returns the tree.
func CheckRecord(entry []byte, v note.Verifier, seq int64, want Record) (tlog.Tree, error) {
	var e struct {
		Contents string `json:"contents"` // base64
		Salt     string `json:"salt"`     // hex
		Receipt  string `json:"receipt"`
	}
	if err := json.Unmarshal(entry, &e); err != nil {
		return tlog.Tree{}, fmt.Errorf("not a ledger entry: %w", err)
	}
	contents, err1 := base64.StdEncoding.DecodeString(e.Contents)
	salt, err2 := hex.DecodeString(e.Salt)
	if err1 != nil || err2 != nil || len(salt) != 32 {
		return tlog.Tree{}, errors.New("the entry's contents or salt do not decode")
	}
	leaf, t, err := receipt.Verify([]byte(e.Receipt), v.Name(), v, contents, [32]byte(salt))
	if err != nil {
		return tlog.Tree{}, err
	}
	if leaf.Seq != uint64(seq) || leaf.Collection != auditCollection {
		return tlog.Tree{}, fmt.Errorf("the receipt is of entry %d in %q, not of the audit record %d", leaf.Seq, leaf.Collection, seq)
	}
	var rec struct {
		Action  string            `json:"action"`
		Object  string            `json:"object"`
		Details map[string]string `json:"details"`
	}
	if err := json.Unmarshal(contents, &rec); err != nil {
		return tlog.Tree{}, fmt.Errorf("the record is not an audit record: %w", err)
	}
	digest := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	for _, c := range []struct{ what, got, want string }{
		{"action", rec.Action, "key.release"},
		{"key", rec.Object, "keys/" + want.Name + "/" + want.Version},
		{"token digest", rec.Details["token_sha256"], digest(want.Token)},
		{"answer digest", rec.Details["answer_sha256"], digest(want.Answer)},
		{"nonce", rec.Details["nonce"], want.Nonce},
		{"TEE key", rec.Details["tee_key"], want.TEEKeyID},
	} {
		if c.got != c.want {
			return tlog.Tree{}, fmt.Errorf("the record's %s is %q, the release's %q", c.what, c.got, c.want)
		}
	}
	return t, nil
}
