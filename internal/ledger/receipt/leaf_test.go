package receipt

import (
	"strings"
	"testing"
	"time"
)

func TestLeafRoundTrip(t *testing.T) {
	l := Leaf{Seq: 42, Time: time.UnixMilli(1_800_000_000_123).UTC(), Collection: "keys", Commitment: [32]byte{1}, Claims: [32]byte{2}}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseLeaf(b)
	if err != nil || got != l {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, []byte("ledger/v2\n"), b[:len(b)-1], append(append([]byte(nil), b...), 0)} {
		if _, err := ParseLeaf(bad); err == nil {
			t.Errorf("ParseLeaf(%q) accepted", bad)
		}
	}
	if _, err := (Leaf{Collection: strings.Repeat("x", MaxCollection+1)}).Marshal(); err == nil {
		t.Error("an overlong collection id was marshalled")
	}
}

// FuzzParseLeaf: ParseLeaf never panics and what it accepts marshals
// back to the same bytes.
func FuzzParseLeaf(f *testing.F) {
	b, _ := Leaf{Seq: 1, Time: time.UnixMilli(5).UTC(), Collection: "c"}.Marshal()
	f.Add(b)
	f.Add([]byte("ledger/v1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLeaf(data)
		if err != nil {
			return
		}
		back, err := l.Marshal()
		if err != nil || string(back) != string(data) {
			t.Fatalf("accepted %x, marshals to %x (%v)", data, back, err)
		}
	})
}
