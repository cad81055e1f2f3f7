package collateral_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-project/kura/internal/attest/collateral"
	"github.com/kura-project/kura/internal/store"
	"github.com/kura-project/kura/internal/store/sqlite"
)

// letters is a toy vendor: an item "k:v" is filed as kind "toy", key k;
// "pinned" is skipped; anything else is refused.
type letters struct{}

func (letters) Classify(der []byte) (store.Collateral, error) {
	if string(der) == "pinned" {
		return store.Collateral{}, collateral.ErrSkip
	}
	k, _, ok := bytes.Cut(der, []byte(":"))
	if !ok {
		return store.Collateral{}, errors.New("not a toy item")
	}
	return store.Collateral{Kind: "toy", Key: string(k), DER: der}, nil
}

func pemOf(items ...string) []byte {
	var b strings.Builder
	for _, it := range items {
		b.WriteString("-----BEGIN TOY-----\n")
		b.WriteString(base64Std(it))
		b.WriteString("\n-----END TOY-----\n")
	}
	return []byte(b.String())
}

// TestCache: import is all or nothing, skipped items are accepted, Cached
// serves from memory for TTL by the injected clock and rereads after it,
// and a Put through the cache applies at once.
func TestCache(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "kura.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Unix(1_800_000_000, 0)
	c := collateral.New(st, letters{}, func() time.Time { return now })
	decoded := 0
	count := func(items []store.Collateral) int { decoded++; return len(items) }

	if _, err := c.Import(ctx, pemOf("a:1", "garbage"), "TOY"); err == nil || !strings.Contains(err.Error(), "item 2") {
		t.Fatalf("import with a bad item: %v", err)
	}
	if items, _ := c.Get(ctx, "toy", "a"); len(items) != 0 {
		t.Fatalf("a refused import stored %d items", len(items))
	}
	if _, err := c.Import(ctx, pemOf("a:1"), "CERTIFICATE"); err == nil || !strings.Contains(err.Error(), `"TOY" is not collateral here`) {
		t.Errorf("a PEM type the vendor does not take: %v", err)
	}
	if n, err := c.Import(ctx, pemOf("a:1", "pinned"), "TOY"); err != nil || n != 1 {
		t.Fatalf("import: %d, %v", n, err)
	}
	if n, err := collateral.Cached(ctx, c, "toy", "a", count); err != nil || n != 1 {
		t.Fatalf("cached read: %d, %v", n, err)
	}
	decodes := decoded
	// Another node files an item behind this cache's back.
	if err := st.PutCollateral(ctx, store.Collateral{Kind: "toy", Key: "a", DER: []byte("a:2")}); err != nil {
		t.Fatal(err)
	}
	if n, _ := collateral.Cached(ctx, c, "toy", "a", count); n != 1 || decoded != decodes {
		t.Errorf("within the TTL the memory answer is served, not read or decoded again: %d items, %d decodes", n, decoded-decodes)
	}
	now = now.Add(collateral.TTL)
	if n, _ := collateral.Cached(ctx, c, "toy", "a", count); n != 2 {
		t.Errorf("after the TTL the store is read again: %d items", n)
	}
	// A Put through the cache applies at once.
	if err := c.Put(ctx, []byte("a:3")); err != nil {
		t.Fatal(err)
	}
	if n, _ := collateral.Cached(ctx, c, "toy", "a", count); n != 3 {
		t.Errorf("after a Put: %d items", n)
	}
	if err := c.Put(ctx, []byte("pinned")); err != nil {
		t.Errorf("a skipped Put: %v", err)
	}
	if _, err := c.Import(ctx, nil); err == nil {
		t.Error("an empty file was accepted")
	}
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
