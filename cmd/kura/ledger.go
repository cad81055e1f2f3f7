package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"

	apiledger "github.com/kura-project/kura/internal/api/ledger"
	"github.com/kura-project/kura/internal/ledger/receipt"
)

// ledgerCmd is `kura ledger`: fetch the verifier key, the checkpoint or an
// entry with its receipt from a server, and verify an entry offline.
func ledgerCmd(ctx context.Context, op string, args []string, stdout io.Writer) error {
	if op == "verify" {
		return ledgerVerify(args, stdout)
	}
	fs := flag.NewFlagSet("ledger "+op, flag.ContinueOnError)
	fs.SetOutput(stdout)
	mk := clientFlags(fs)
	seq := fs.Int64("seq", -1, "get: the entry's sequence number")
	collection := fs.String("collection", "", "append, list: the collection (ACL's collectionId; append's default subledger:0)")
	file := fs.String("file", "", "append: the contents, from this file (default: the argument, else standard input)")
	id := fs.String("id", "", "receipt: the transaction id (1.<seqno>, as append printed)")
	from := fs.String("from", "", "list: the first transaction id")
	to := fs.String("to", "", "list: the last transaction id")
	keyFile := fs.String("key-file", "", "tail: the log's verifier key (default: fetched from the server, trusted on first use)")
	interval := fs.Duration("interval", time.Second, "tail: how often to poll the checkpoint")
	count := fs.Int("count", 0, "tail: stop after this many new checkpoints (0: follow until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := mk()
	if err != nil {
		return err
	}
	switch op {
	case "append":
		return ledgerAppend(ctx, c, *collection, *file, fs.Args(), os.Stdin, stdout)
	case "list":
		return ledgerList(ctx, c, *collection, *from, *to, stdout)
	case "receipt":
		if *id == "" {
			return &exitError{2, errors.New("ledger receipt needs --id (a transaction id, 1.<seqno>)")}
		}
		return ledgerReceipt(ctx, c, *id, stdout)
	case "tail":
		return ledgerTail(ctx, c, *keyFile, *interval, *count, stdout)
	}
	var path string
	switch op {
	case "key":
		path = "/kura/v1/ledger/key"
	case "checkpoint":
		path = "/kura/v1/ledger/checkpoint"
	case "get":
		if *seq < 0 {
			return &exitError{2, errors.New("ledger get needs --seq")}
		}
		path = fmt.Sprintf("/kura/v1/ledger/entries/%d", *seq)
	default:
		return &exitError{2, fmt.Errorf("unknown ledger subcommand %q (key, checkpoint, get, append, list, receipt, tail, verify)", op)}
	}
	b, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// ledgerVerify checks an entry (the JSON `ledger get` prints) offline: its
// receipt against the log's verifier key, and its contents against the
// leaf's commitment.
func ledgerVerify(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ledger verify", flag.ContinueOnError)
	fs.SetOutput(stdout)
	keyFile := fs.String("key-file", "", "the log's verifier key (what `kura ledger key` printed, from a source you trust)")
	var witnesses []note.Verifier
	fs.Func("witness", "require a cosignature by this witness (its verifier key; repeat for each)", func(v string) error {
		w, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("witness key %q: %w", v, err)
		}
		for _, o := range witnesses {
			if o.Name() == w.Name() {
				return fmt.Errorf("witness %s given twice (the quorum counts witnesses, one key each)", w.Name())
			}
		}
		witnesses = append(witnesses, w)
		return nil
	})
	quorum := fs.Int("quorum", 0, "how many of the --witness keys must have cosigned (default all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *quorum == 0 {
		*quorum = len(witnesses)
	}
	if *quorum < 0 || *quorum > len(witnesses) {
		return &exitError{2, fmt.Errorf("--quorum %d: want 1 to the %d --witness keys", *quorum, len(witnesses))}
	}
	// cosigned words the witness check of checkpoint cp ("" without --witness).
	cosigned := func(cp []byte) (string, error) {
		if len(witnesses) == 0 {
			return "", nil
		}
		names, err := receipt.CheckCosignatures(cp, witnesses, *quorum)
		if err != nil {
			return "", &exitError{1, err}
		}
		return fmt.Sprintf(", cosigned by %s", strings.Join(names, ", ")), nil
	}
	if fs.NArg() != 1 || *keyFile == "" {
		return &exitError{2, errors.New("ledger verify takes --key-file and one file: an entry (the JSON of `kura ledger get`) or a checkpoint (`kura ledger checkpoint`)")}
	}
	kb, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(kb)))
	if err != nil {
		return &exitError{2, fmt.Errorf("verifier key: %w", err)}
	}
	eb, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(bytes.TrimSpace(eb), []byte("{")) {
		// A checkpoint (what `kura ledger checkpoint` printed).
		t, err := receipt.OpenCheckpoint(eb, v.Name(), v)
		if err != nil {
			return &exitError{1, fmt.Errorf("%s: neither an entry (JSON) nor a checkpoint of %s: %w", fs.Arg(0), v.Name(), err)}
		}
		co, err := cosigned(eb)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "verified: checkpoint of %s's tree of %d entries, root %s%s\n", v.Name(), t.N, t.Hash, co)
		return nil
	}
	var e apiledger.Entry
	if err := json.Unmarshal(eb, &e); err != nil {
		return &exitError{1, fmt.Errorf("%s: not a ledger entry: %w", fs.Arg(0), err)}
	}
	contents, err1 := base64.StdEncoding.DecodeString(e.Contents)
	salt, err2 := hex.DecodeString(e.Salt)
	if err1 != nil || err2 != nil || len(salt) != 32 {
		return &exitError{1, errors.New("the entry's contents or salt do not decode")}
	}
	var s [32]byte
	copy(s[:], salt)
	// The origin is the key's: a receipt of another log does not verify.
	leaf, tree, err := receipt.Verify([]byte(e.Receipt), v.Name(), v, contents, s)
	if err != nil {
		return &exitError{1, err}
	}
	var tp proof.TLogProof
	if err := tp.Unmarshal([]byte(e.Receipt)); err != nil {
		return &exitError{1, err} // receipt.Verify read it: not reached
	}
	co, err := cosigned(tp.Checkpoint)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verified: entry %d (collection %s, %s) is in %s's tree of %d entries, root %s%s\n",
		leaf.Seq, leaf.Collection, leaf.Time.Format("2006-01-02T15:04:05.000Z07:00"), v.Name(), tree.N, tree.Hash, co)
	return nil
}
