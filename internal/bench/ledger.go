package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kura-project/kura/internal/ledger"
	"github.com/kura-project/kura/internal/seal"
	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/sqlite"
)

// LedgerRig is kura's ledger twice: in-process, built as `kura serve`
// builds it (SQLite with group commit and synchronous=FULL, Ed25519
// checkpoints, the ACL tree and its node key), and behind a running dev
// kura's Azure Confidential Ledger API over HTTPS.
type LedgerRig struct {
	Log   *ledger.Log
	st    *sqlite.Store
	https *KeysRig
	n     atomic.Int64
}

// BenchContents is entry n of the workload; bench/tessera gives Tessera
// the same bytes.
func BenchContents(n int64) []byte {
	return fmt.Appendf(nil, `{"bench":"ledger","n":%d,"pad":"%064d"}`, n, n)
}

// StartLedger opens the in-process ledger in dir/inproc and starts kura
// in dir/serve.
func StartLedger(ctx context.Context, dir string) (*LedgerRig, error) {
	in := filepath.Join(dir, "inproc")
	if err := os.MkdirAll(in, 0o700); err != nil {
		return nil, err
	}
	st, err := sqlite.Open(filepath.Join(in, "kura.db"))
	if err != nil {
		return nil, err
	}
	r := &LedgerRig{st: st}
	root, err := seal.OpenSoftwareRoot(filepath.Join(in, "root"), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		r.Close()
		return nil, err
	}
	sealer := seal.New(root)
	const origin = "bench.kura/ledger"
	key, err := ledger.OpenKey(ctx, st, sealer, origin, time.Now())
	if err != nil {
		r.Close()
		return nil, err
	}
	acl, err := ledger.OpenACLKey(ctx, st, sealer, nil, time.Now)
	if err != nil {
		r.Close()
		return nil, err
	}
	if r.Log, err = ledger.New(st, ledger.Config{Origin: origin, Signer: key.Signer, Verifier: key.Verifier, ACL: acl,
		Tx: func(ctx context.Context, f func(ledger.Store) error) error {
			return st.WithTx(ctx, func(tx store.Store) error { return f(tx) })
		}}); err != nil {
		r.Close()
		return nil, err
	}
	serve := filepath.Join(dir, "serve")
	if err := os.MkdirAll(serve, 0o700); err != nil {
		r.Close()
		return nil, err
	}
	if r.https, err = startKeys(ctx, serve, "ES256"); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close stops kura and closes the in-process ledger.
func (r *LedgerRig) Close() {
	if r.https != nil {
		r.https.Close()
	}
	r.st.Close()
}

// Settle signs both ledgers' current trees, so that a phase that follows
// one of appends alone does not pay for the backlog's checkpoint (in
// service, checkpoints follow the appends).
func (r *LedgerRig) Settle(ctx context.Context) error {
	if _, _, err := r.Log.Checkpoint(ctx); err != nil {
		return err
	}
	return r.AppendReceiptHTTPS(ctx)
}

// Append makes one entry durable in-process.
func (r *LedgerRig) Append(ctx context.Context) error {
	_, err := r.Log.Append(ctx, "bench", BenchContents(r.n.Add(1)))
	return err
}

// AppendReceipt makes one entry durable and gets its receipt: a
// c2sp.org/tlog-proof in a signed checkpoint (checked before it is given).
func (r *LedgerRig) AppendReceipt(ctx context.Context) error {
	rec, err := r.Log.Append(ctx, "bench", BenchContents(r.n.Add(1)))
	if err != nil {
		return err
	}
	_, _, err = r.Log.Receipt(ctx, int64(rec.Leaf.Seq))
	return err
}

const aclVersion = "?api-version=2022-05-13"

// AppendHTTPS is ACL's POST /app/transactions, answered once durable.
func (r *LedgerRig) AppendHTTPS(ctx context.Context) (string, error) {
	body, _ := json.Marshal(map[string]string{"contents": string(BenchContents(r.n.Add(1)))})
	resp, b, err := r.do(ctx, "POST", "/app/transactions"+aclVersion+"&collectionId=bench", body)
	if err != nil {
		return "", err
	}
	id := resp.Header.Get("x-ms-ccf-transaction-id")
	if resp.StatusCode != http.StatusOK || id == "" {
		return "", fmt.Errorf("POST /app/transactions: %s %s", resp.Status, b)
	}
	return id, nil
}

// AppendReceiptHTTPS appends and then fetches the entry's ACL receipt.
func (r *LedgerRig) AppendReceiptHTTPS(ctx context.Context) error {
	id, err := r.AppendHTTPS(ctx)
	if err != nil {
		return err
	}
	resp, b, err := r.do(ctx, "GET", "/app/transactions/"+id+"/receipt"+aclVersion, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"Ready"`)) {
		return fmt.Errorf("GET receipt %s: %s %s", id, resp.Status, b)
	}
	return nil
}

func (r *LedgerRig) do(ctx context.Context, method, path string, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.https.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.https.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.https.Client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// FsyncFloor is one durable commit's floor on the disk the databases are
// on: a 4 KiB write and fsync (os.File.Sync), on one file (call it from
// one writer).
func FsyncFloor(dir string) (op func() error, closeFn func(), err error) {
	f, err := os.CreateTemp(dir, "fsync-floor-")
	if err != nil {
		return nil, nil, err
	}
	buf := make([]byte, 4096)
	return func() error {
			if _, err := f.WriteAt(buf, 0); err != nil {
				return err
			}
			return f.Sync()
		}, func() {
			f.Close()
			os.Remove(f.Name())
		}, nil
}

// HashFloor is the hashing of one entry: SHA-256 of its contents under a
// salt (the commitment), of its leaf, and of an inner node (tlog stores
// about two hashes an entry), as the log computes them.
func HashFloor() func() error {
	contents := BenchContents(1)
	leaf := make([]byte, 120)
	node := make([]byte, 65)
	return func() error {
		h := sha256.New()
		h.Write(leaf[:32])
		h.Write(contents)
		h.Sum(nil)
		sha256.Sum256(leaf)
		sha256.Sum256(node)
		return nil
	}
}

// SignFloor is one checkpoint's signatures: Ed25519 over the checkpoint
// note and ECDSA P-256 over the ACL root.
func SignFloor() (func() error, error) {
	_, edk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	msg := []byte("bench.kura/ledger\n123456\n" + strings.Repeat("A", 44) + "\n")
	digest := sha256.Sum256(msg)
	return func() error {
		ed25519.Sign(edk, msg)
		_, err := ecdsa.SignASN1(rand.Reader, ek, digest[:])
		return err
	}, nil
}
