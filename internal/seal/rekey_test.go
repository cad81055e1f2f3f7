package seal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kura-project/kura/internal/fault"
)

// unsealWith opens a fresh custody of dir (a restart) and gives it shares;
// it returns the sealer, or the error of the last share.
func unsealWith(t *testing.T, dir string, shares ...Share) (*Sealer, error) {
	t.Helper()
	c, _, err := OpenCustody(CustodyConfig{Mode: ModeShares, Dir: dir, Existing: true})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	var s *Sealer
	for _, sh := range shares {
		if s, err = c.Unseal(sh); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func opens(t *testing.T, s *Sealer, sealed []byte) bool {
	t.Helper()
	if s == nil {
		return false
	}
	got, err := s.Open(sealed, []byte("aad"))
	return err == nil && bytes.Equal(got, []byte("secret"))
}

// TestRekey: new shares for the same root; the old ones open nothing once
// the new ones are verified; a restart in either step, a crash between the
// replacing renames, wrong shares and a cancel all leave a root that opens.
func TestRekey(t *testing.T) {
	dir := t.TempDir()
	c, _, err := OpenCustody(CustodyConfig{Mode: ModeShares, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	old, s, err := c.Init(3, 2)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := s.Seal([]byte("secret"), []byte("aad"))

	if _, _, err := c.RekeyShare(old[0]); fault.Of(err) != fault.BadInput {
		t.Errorf("share without a rekey: %v", err)
	}
	if _, err := c.RekeyInit(1, 2); fault.Of(err) != fault.BadInput {
		t.Errorf("threshold above shares: %v", err)
	}
	if _, err := c.RekeyInit(5, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RekeyInit(5, 3); fault.Of(err) != fault.Conflict {
		t.Errorf("second rekey: %v", err)
	}
	// Step 1 with a wrong share: refused, progress reset.
	if _, _, err := c.RekeyShare(old[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.RekeyShare(Share{X: 9, Y: make([]byte, 32)}); err == nil {
		t.Fatal("a wrong share reconstructed the key")
	}
	if st := c.Status().Rekey; st == nil || st.Progress != 0 || st.Verifying {
		t.Errorf("after wrong shares: %+v", st)
	}
	c.RekeyShare(old[1])
	fresh, done, err := c.RekeyShare(old[2])
	if err != nil || done || len(fresh) != 5 {
		t.Fatalf("step 1: %d shares, done %v, %v", len(fresh), done, err)
	}
	// Until verified, the old shares unseal and the rekey survives a restart.
	if s, err := unsealWith(t, dir, old[0], old[2]); err != nil || !opens(t, s, sealed) {
		t.Fatalf("old shares before verification: %v", err)
	}
	c, _, err = OpenCustody(CustodyConfig{Mode: ModeShares, Dir: dir, Existing: true})
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Status().Rekey; st == nil || !st.Verifying || st.Threshold != 3 {
		t.Fatalf("pending rekey after a restart: %+v", st)
	}
	// Step 2: old shares are not the new ones.
	c.RekeyShare(old[0])
	c.RekeyShare(old[1])
	if _, _, err := c.RekeyShare(old[2]); err == nil {
		t.Fatal("old shares verified the new split")
	}
	for i, sh := range fresh[1:4] {
		_, done, err = c.RekeyShare(sh)
		if err != nil || done != (i == 2) {
			t.Fatalf("step 2 share %d: done %v, %v", i, done, err)
		}
	}
	if c.Status().Rekey != nil || c.Status().Threshold != 3 || c.Status().Shares != 5 {
		t.Errorf("after the rekey: %+v", c.Status())
	}
	if s, err := unsealWith(t, dir, old...); err == nil || s != nil {
		t.Error("old shares unseal after the rekey")
	}
	if s, err := unsealWith(t, dir, fresh[4], fresh[0], fresh[2]); err != nil || !opens(t, s, sealed) {
		t.Fatalf("new shares: %v", err)
	}
	for _, f := range []string{RootFileName + nextSuffix, MetaFileName + nextSuffix} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
}

// TestRekeyCrashes: a crash between the two renames is finished at the
// next open; a first step cut short (root written, metadata not) is
// dropped; a cancel restores the old shares.
func TestRekeyCrashes(t *testing.T) {
	setup := func(t *testing.T) (string, []Share, []Share, []byte, *Custody) {
		dir := t.TempDir()
		c, _, _ := OpenCustody(CustodyConfig{Mode: ModeShares, Dir: dir})
		old, s, err := c.Init(2, 2)
		if err != nil {
			t.Fatal(err)
		}
		sealed, _ := s.Seal([]byte("secret"), []byte("aad"))
		c.RekeyInit(2, 2)
		c.RekeyShare(old[0])
		fresh, _, err := c.RekeyShare(old[1])
		if err != nil {
			t.Fatal(err)
		}
		return dir, old, fresh, sealed, c
	}
	t.Run("between the renames", func(t *testing.T) {
		dir, old, fresh, sealed, _ := setup(t)
		if err := os.Rename(filepath.Join(dir, RootFileName+nextSuffix), filepath.Join(dir, RootFileName)); err != nil {
			t.Fatal(err)
		}
		if s, err := unsealWith(t, dir, fresh...); err != nil || !opens(t, s, sealed) {
			t.Fatalf("new shares after an interrupted replacement: %v", err)
		}
		if s, err := unsealWith(t, dir, old...); err == nil || s != nil {
			t.Error("old shares after an interrupted replacement")
		}
	})
	t.Run("step 1 cut short", func(t *testing.T) {
		dir, old, _, sealed, _ := setup(t)
		os.Remove(filepath.Join(dir, MetaFileName+nextSuffix))
		if s, err := unsealWith(t, dir, old...); err != nil || !opens(t, s, sealed) {
			t.Fatalf("old shares: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, RootFileName+nextSuffix)); err == nil {
			t.Error("a half-written rekey was kept")
		}
	})
	t.Run("cancel", func(t *testing.T) {
		dir, old, fresh, sealed, c := setup(t)
		if err := c.RekeyCancel(); err != nil {
			t.Fatal(err)
		}
		if c.Status().Rekey != nil {
			t.Error("cancelled rekey still shown")
		}
		if s, err := unsealWith(t, dir, old...); err != nil || !opens(t, s, sealed) {
			t.Fatalf("old shares after cancel: %v", err)
		}
		if s, err := unsealWith(t, dir, fresh...); err == nil || s != nil {
			t.Error("cancelled shares unseal")
		}
	})
}

// TestForget: a forgotten software root wraps and unwraps nothing.
func TestForget(t *testing.T) {
	root, err := OpenSoftwareRoot(filepath.Join(t.TempDir(), "root.sealed"), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := New(root)
	sealed, _ := s.Seal([]byte("secret"), []byte("aad"))
	if !s.Forget() {
		t.Fatal("a software root was not forgotten")
	}
	if _, err := s.Open(sealed, []byte("aad")); err == nil {
		t.Error("opened after Forget")
	}
	if _, err := s.Seal([]byte("x"), nil); err == nil {
		t.Error("sealed after Forget")
	}
}

// TestRekeyStep2Failure: a step 2 that failed after replacing the root can
// only be finished: a cancel finishes it (and says so), a retry too.
func TestRekeyStep2Failure(t *testing.T) {
	for _, finish := range []string{"cancel", "retry", "both renamed"} {
		t.Run(finish, func(t *testing.T) {
			dir := t.TempDir()
			c, _, _ := OpenCustody(CustodyConfig{Mode: ModeShares, Dir: dir})
			old, s, err := c.Init(2, 2)
			if err != nil {
				t.Fatal(err)
			}
			sealed, _ := s.Seal([]byte("secret"), []byte("aad"))
			c.RekeyInit(2, 2)
			c.RekeyShare(old[0])
			fresh, _, err := c.RekeyShare(old[1])
			if err != nil {
				t.Fatal(err)
			}
			// As if step 2 renamed the root, then failed.
			if err := os.Rename(filepath.Join(dir, RootFileName+nextSuffix), filepath.Join(dir, RootFileName)); err != nil {
				t.Fatal(err)
			}
			switch finish {
			case "both renamed": // as if step 2 also renamed the metadata, then failed syncing
				if err := os.Rename(filepath.Join(dir, MetaFileName+nextSuffix), filepath.Join(dir, MetaFileName)); err != nil {
					t.Fatal(err)
				}
				if err := c.RekeyCancel(); fault.Of(err) != fault.Conflict {
					t.Fatalf("cancel after both renames: %v", err)
				}
			case "cancel":
				if err := c.RekeyCancel(); fault.Of(err) != fault.Conflict {
					t.Fatalf("cancel after the root was replaced: %v", err)
				}
			case "retry":
				if _, done, err := c.RekeyShare(fresh[0]); err != nil || !done {
					t.Fatalf("retry: done %v, %v", done, err)
				}
			}
			if c.Status().Rekey != nil {
				t.Error("rekey still pending")
			}
			if s, err := unsealWith(t, dir, fresh...); err != nil || !opens(t, s, sealed) {
				t.Fatalf("new shares: %v", err)
			}
		})
	}
}
