package seal

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kura-project/kura/internal/fault"
)

// Rekeying gives the same root a new unseal key in new shares, so that the
// old shares open nothing afterwards (a custodian left, a share was
// exposed). It goes in two steps, as a root whose only shares were lost in
// transit would be lost with its data:
//
//  1. a threshold of the current shares: the root key is sealed under a
//     new unseal key into root.sealed.next and unseal.json.next, and the
//     new shares are answered; the current shares still unseal;
//  2. a threshold of the new shares, proving they reached their holders:
//     the .next files replace the current ones (root first, metadata
//     last), and from then on only the new shares unseal.
//
// OpenCustody finishes a replacement a crash interrupted and drops a first
// step it cut short.

const nextSuffix = ".next"

// Rekey is a rekey's progress that operators may see.
type Rekey struct {
	Shares, Threshold int  // of the new split
	Progress          int  // shares given toward the current step's threshold
	Verifying         bool // step 2: the new shares exist, awaiting their threshold
}

type rekeyState struct {
	n, m      int
	old       []Share     // step 1: current shares given
	next      *unsealMeta // step 2: the new split, on disk in the .next files
	newShares []Share     // step 2: new shares given
}

func (c *Custody) nextRoot() string { return c.rootFile() + nextSuffix }
func (c *Custody) nextMeta() string { return c.metaFile() + nextSuffix }

// recoverRekey runs at open: a replacement cut short between its two
// renames is finished; a pending step 2 is restored; a step 1 cut short is
// dropped.
func (c *Custody) recoverRekey() error {
	_, rootErr := os.Stat(c.nextRoot())
	mb, metaErr := os.ReadFile(c.nextMeta())
	switch {
	case metaErr == nil && errors.Is(rootErr, os.ErrNotExist):
		// The root was replaced; the metadata was not yet.
		if err := os.Rename(c.nextMeta(), c.metaFile()); err != nil {
			return fmt.Errorf("finish an interrupted rekey: %w", err)
		}
		return syncDir(c.cfg.Dir)
	case metaErr == nil:
		var m unsealMeta
		if err := json.Unmarshal(mb, &m); err != nil || m.Threshold < 2 || len(m.Commitment) == 0 {
			return fmt.Errorf("pending rekey metadata %s is corrupt", c.nextMeta())
		}
		c.rekey = &rekeyState{n: m.Shares, m: m.Threshold, next: &m}
	case rootErr == nil:
		os.Remove(c.nextRoot()) // step 1 wrote the root but not its metadata
	}
	return nil
}

// RekeyStatus reports a rekey in progress, or nil.
func (c *Custody) RekeyStatus() *Rekey {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rekeyStatus()
}

func (c *Custody) rekeyStatus() *Rekey {
	r := c.rekey
	if r == nil {
		return nil
	}
	if r.next != nil {
		return &Rekey{Shares: r.n, Threshold: r.m, Progress: len(r.newShares), Verifying: true}
	}
	return &Rekey{Shares: r.n, Threshold: r.m, Progress: len(r.old)}
}

// RekeyInit begins a rekey to n shares of threshold m.
func (c *Custody) RekeyInit(n, m int) (*Rekey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.cfg.Mode != ModeShares:
		return nil, fault.Bad("", "this instance's root is not unsealed with shares (%s): there is nothing to rekey", c.cfg.Mode)
	case c.meta == nil:
		return nil, fault.Bad("", "kura is not initialised: run `kura operator init`")
	case c.rekey != nil:
		return nil, &fault.Error{Kind: fault.Conflict, Code: "RekeyInProgress", Msg: "a rekey is in progress; finish it, or cancel it with `kura operator rekey --cancel`"}
	case m < 2 || n < m || n > 255:
		return nil, fault.Bad("", "need 2 <= threshold <= shares <= 255, got threshold %d, shares %d", m, n)
	}
	c.rekey = &rekeyState{n: n, m: m}
	return c.rekeyStatus(), nil
}

// RekeyCancel drops a rekey in progress; the current shares stay valid.
func (c *Custody) RekeyCancel() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rekey == nil {
		return fault.Bad("", "no rekey is in progress")
	}
	if c.rootReplaced() {
		// Step 2 replaced the root and failed before the metadata: the
		// rekey can only be finished now, never undone.
		if err := c.finishReplace(); err != nil {
			return err
		}
		return &fault.Error{Kind: fault.Conflict, Code: "RekeyApplied", Msg: "the rekey had already replaced the root: it is now finished, and only the new shares unseal"}
	}
	c.rekey = nil
	for _, f := range []string{c.nextMeta(), c.nextRoot()} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fault.Down("removing the pending rekey failed", err)
		}
	}
	return syncDir(c.cfg.Dir)
}

// RekeyShare takes one share: in step 1 a current one (at the threshold the
// new shares are returned, once), in step 2 a new one (at the new threshold
// the new shares replace the current ones and done is true).
func (c *Custody) RekeyShare(sh Share) (newShares []Share, done bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rekey
	if r == nil {
		return nil, false, fault.Bad("", "no rekey is in progress: start one with `kura operator rekey --init`")
	}
	if c.rootReplaced() { // a step 2 that failed past its first rename
		if err := c.finishReplace(); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	if len(sh.Y) != 32 {
		return nil, false, fault.Bad("share", "holds %d bytes, not the 32 of an unseal key share", len(sh.Y))
	}
	given := &r.old
	if r.next != nil {
		given = &r.newShares
	}
	for _, have := range *given {
		if have.X == sh.X {
			return nil, false, fault.Bad("share", "share %d was already given", sh.X)
		}
	}
	*given = append(*given, sh)
	if r.next == nil {
		if len(r.old) < c.meta.Threshold {
			return nil, false, nil
		}
		shares, err := c.rekeyStep1()
		r.old = nil
		return shares, false, err
	}
	if len(r.newShares) < r.next.Threshold {
		return nil, false, nil
	}
	err = c.rekeyStep2()
	return nil, err == nil, err
}

func (c *Custody) rekeyStep1() ([]Share, error) {
	r := c.rekey
	oldKey, err := Combine(r.old)
	defer clear(oldKey)
	if err != nil || !CheckCommitment(oldKey, c.meta.Commitment) {
		return nil, &fault.Error{Kind: fault.BadInput, Code: "WrongShares", Msg: "the shares do not reconstruct the current unseal key (a wrong or mistyped share?); progress is reset, start again"}
	}
	sealedRoot, err := os.ReadFile(c.rootFile())
	if err != nil {
		return nil, fault.Down("reading the sealed root failed", err)
	}
	rootKey, err := gcmOpen(oldKey, sealedRoot, rootAAD)
	defer clear(rootKey)
	if err != nil {
		return nil, fault.Down("the shares are right but the sealed root does not open with them; see the server log", err)
	}
	newKey := make([]byte, 32)
	defer clear(newKey)
	if _, err := rand.Read(newKey); err != nil {
		return nil, err
	}
	shares, err := Split(newKey, r.n, r.m)
	if err != nil {
		return nil, fault.Bad("", "%v", err)
	}
	ct, err := gcmSeal(newKey, rootKey, rootAAD)
	if err != nil {
		return nil, err
	}
	meta := unsealMeta{Shares: r.n, Threshold: r.m, Commitment: Commitment(newKey)}
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	os.Remove(c.nextRoot())
	os.Remove(c.nextMeta())
	// The metadata last: its presence says the pending root is whole.
	if err := WriteNew(c.nextRoot(), ct); err != nil {
		return nil, fault.Down("writing the rekeyed root failed", err)
	}
	if err := WriteNew(c.nextMeta(), mb); err != nil {
		os.Remove(c.nextRoot())
		return nil, fault.Down("writing the rekeyed metadata failed", err)
	}
	r.next = &meta
	return shares, nil
}

func (c *Custody) rekeyStep2() error {
	r := c.rekey
	newKey, err := Combine(r.newShares)
	defer clear(newKey)
	if err != nil || !CheckCommitment(newKey, r.next.Commitment) {
		r.newShares = nil
		return &fault.Error{Kind: fault.BadInput, Code: "WrongShares", Msg: "the shares do not reconstruct the new unseal key (give the NEW shares from this rekey); progress is reset, start again"}
	}
	// The root first, the metadata last; recoverRekey finishes a crash in
	// between. Each rename is atomic, and the directory is synced after. A
	// retry after a failure past the first rename redoes only the rest.
	if !c.rootReplaced() {
		if err := os.Rename(c.nextRoot(), c.rootFile()); err != nil {
			return fault.Down("replacing the sealed root failed; the current shares still unseal", err)
		}
	}
	return c.finishReplace()
}

// rootReplaced reports whether step 2 renamed the new root into place:
// the pending root is gone (renamed), whether or not the metadata was
// renamed after it.
func (c *Custody) rootReplaced() bool {
	_, rootErr := os.Stat(c.nextRoot())
	return c.rekey != nil && c.rekey.next != nil && errors.Is(rootErr, os.ErrNotExist)
}

// finishReplace puts the pending metadata in place once the root is. Once
// the metadata is renamed the rekey is done, whatever fails after.
func (c *Custody) finishReplace() error {
	if err := syncDir(c.cfg.Dir); err != nil {
		return fault.Down("syncing the seal directory failed; only the new shares unseal the root now: give a new share again to finish", err)
	}
	if _, err := os.Stat(c.nextMeta()); err == nil {
		if err := os.Rename(c.nextMeta(), c.metaFile()); err != nil {
			return fault.Down("replacing the unseal metadata failed; only the new shares unseal the root now: give a new share again (or restart kura) to finish", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fault.Down("reading the pending unseal metadata failed; only the new shares unseal the root now", err)
	}
	c.meta, c.rekey, c.shares = c.rekey.next, nil, nil
	if err := syncDir(c.cfg.Dir); err != nil {
		return fault.Down("the rekey is done (only the new shares unseal the root), but syncing the seal directory failed", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
