package seal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kura-project/kura/internal/fault"
)

// TestCustodyShares walks the share mode through init, a restart, partial
// progress, refusals that keep or reset progress, and a good unseal.
func TestCustodyShares(t *testing.T) {
	dir := t.TempDir()
	c, s, err := OpenCustody(CustodyConfig{Mode: ModeShares, Dir: dir})
	if err != nil || s != nil {
		t.Fatalf("open fresh: %v, sealer %v", err, s)
	}
	if st := c.Status(); st.Initialized || st.Mode != ModeShares {
		t.Fatalf("fresh status %+v", st)
	}
	if _, err := c.Unseal(Share{X: 1, Y: make([]byte, 32)}); fault.Of(err) != fault.BadInput {
		t.Errorf("unseal before init: %v", err)
	}
	for _, bad := range [][2]int{{3, 4}, {5, 1}, {300, 3}} {
		if _, _, err := c.Init(bad[0], bad[1]); fault.Of(err) != fault.BadInput {
			t.Errorf("init %v: %v", bad, err)
		}
	}
	shares, s, err := c.Init(5, 3)
	if err != nil || s == nil || len(shares) != 5 {
		t.Fatalf("init: %v (%d shares)", err, len(shares))
	}
	sealed, _ := s.Seal([]byte("secret"), []byte("aad"))
	if _, _, err := c.Init(5, 3); fault.Of(err) != fault.Conflict {
		t.Errorf("second init: %v", err)
	}

	// A restart reads the metadata and waits for shares.
	c, s, err = OpenCustody(CustodyConfig{Mode: ModeShares, Dir: dir, Existing: true})
	if err != nil || s != nil {
		t.Fatalf("reopen: %v", err)
	}
	if st := c.Status(); !st.Initialized || st.Threshold != 3 || st.Shares != 5 || st.Progress != 0 {
		t.Fatalf("status after restart %+v", st)
	}
	if s, err := c.Unseal(shares[0]); err != nil || s != nil {
		t.Fatalf("first share: %v", err)
	}
	if _, err := c.Unseal(shares[0]); fault.Of(err) != fault.BadInput {
		t.Errorf("same share twice: %v", err)
	}
	if _, err := c.Unseal(Share{X: 9, Y: make([]byte, 16)}); fault.Of(err) != fault.BadInput {
		t.Errorf("short share: %v", err)
	}
	if c.Status().Progress != 1 {
		t.Errorf("refused shares changed progress: %+v", c.Status())
	}
	// A share of another split spoils the reconstruction: refused, reset.
	foreign, _ := Split(make([]byte, 32), 5, 3)
	c.Unseal(shares[1])
	if _, err := c.Unseal(foreign[2]); err == nil {
		t.Fatal("a foreign share unsealed")
	} else if e, _ := fault.As(err); e.Code != "WrongShares" {
		t.Errorf("foreign share: %v", err)
	}
	if c.Status().Progress != 0 {
		t.Errorf("progress not reset after wrong shares: %+v", c.Status())
	}
	for i, sh := range shares[2:] {
		s, err = c.Unseal(sh)
		if err != nil {
			t.Fatalf("share %d: %v", i, err)
		}
	}
	if s == nil {
		t.Fatal("threshold reached but sealed")
	}
	if got, err := s.Open(sealed, []byte("aad")); err != nil || string(got) != "secret" {
		t.Errorf("the unsealed root does not open what init's root sealed: %v", err)
	}
}

// TestCustodyRefusesToReplaceALostRoot: with data sealed before, a missing
// root is an error in key-file mode and init refuses in share mode.
func TestCustodyRefusesToReplaceALostRoot(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(t.TempDir(), "k")
	os.WriteFile(key, make([]byte, 32), 0o600)
	if _, _, err := OpenCustody(CustodyConfig{Mode: ModeKeyFile, Dir: dir, KeyFile: key, Existing: true}); err != ErrRootMissing {
		t.Errorf("key file, root missing over existing data: %v", err)
	}
	c, s, err := OpenCustody(CustodyConfig{Mode: ModeKeyFile, Dir: dir, KeyFile: key})
	if err != nil || s == nil {
		t.Fatalf("key file, fresh: %v", err)
	}
	if _, _, err := c.Init(5, 3); fault.Of(err) != fault.BadInput {
		t.Errorf("init in key-file mode: %v", err)
	}
	c, _, _ = OpenCustody(CustodyConfig{Mode: ModeShares, Dir: t.TempDir(), Existing: true})
	if _, _, err := c.Init(5, 3); fault.Of(err) != fault.Conflict {
		t.Errorf("init over existing data: %v", err)
	}
}
