package seal

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/kura-project/kura/internal/fault"
)

// Mode is how a root is opened.
type Mode int

const (
	// ModeShares is the software root unsealed by operators with Shamir
	// shares of its unseal key (`kura operator init` / `unseal`).
	ModeShares Mode = iota + 1
	// ModeKeyFile is the software root opened with an unseal key file.
	ModeKeyFile
	// ModePKCS11 is a root key held in an HSM.
	ModePKCS11
)

func (m Mode) String() string {
	switch m {
	case ModeShares:
		return "software (Shamir shares)"
	case ModeKeyFile:
		return "software (unseal key file)"
	case ModePKCS11:
		return "pkcs11"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// The files of a software root, in CustodyConfig.Dir.
const (
	RootFileName = "root.sealed"
	MetaFileName = "unseal.json"
)

// CustodyConfig says where the root is and how it opens.
type CustodyConfig struct {
	Mode Mode
	Dir  string // holds root.sealed and unseal.json (software roots)
	// KeyFile is the unseal key (ModeKeyFile). CreateKey makes it when
	// missing (development only).
	KeyFile   string
	CreateKey bool
	PKCS11    PKCS11Config // ModePKCS11
	// Existing says the store already holds data sealed under a root: a
	// missing root is then lost, never replaced by a new one.
	Existing bool
}

// Custody holds a root until it is open: the share configuration written at
// init and the shares operators have submitted so far. Safe for concurrent
// use.
type Custody struct {
	cfg CustodyConfig

	mu     sync.Mutex
	shares []Share
	meta   *unsealMeta
	rekey  *rekeyState // nil: no rekey in progress
	closer io.Closer   // the HSM root
}

// unsealMeta is written at init beside the sealed root: how many shares,
// the threshold, and a commitment that tells a correct reconstruction from a
// wrong one (the shares alone cannot).
type unsealMeta struct {
	Shares     int    `json:"shares"`
	Threshold  int    `json:"threshold"`
	Commitment []byte `json:"commitment"`
}

// ErrRootMissing refuses to make a new root over sealed data: the data would
// not open under it, and starting anyway would hide the loss.
var ErrRootMissing = errors.New("the database holds data sealed under a root, but seal/root.sealed is missing from the data directory: restore it (kura creates a root only for an empty database; a new installation whose first start failed can instead be started again from an empty data directory)")

// OpenCustody opens the root when its mode lets it open by itself (a key
// file, an HSM) and returns its Sealer; with ModeShares it returns a nil
// Sealer, and operators unseal it through Init or Unseal.
func OpenCustody(cfg CustodyConfig) (*Custody, *Sealer, error) {
	c := &Custody{cfg: cfg}
	switch cfg.Mode {
	case ModePKCS11:
		p := cfg.PKCS11
		p.NoCreate = p.NoCreate || cfg.Existing
		root, err := OpenPKCS11Root(p)
		if err != nil {
			return nil, nil, err
		}
		c.closer = root
		return c, New(root), nil
	case ModeKeyFile:
		if _, err := os.Stat(c.rootFile()); errors.Is(err, os.ErrNotExist) && cfg.Existing {
			return nil, nil, ErrRootMissing
		}
		s, err := OpenKeyFile(cfg.Dir, cfg.KeyFile, true, cfg.CreateKey)
		if err != nil {
			return nil, nil, err
		}
		return c, s, nil
	case ModeShares:
		// A rekey a crash interrupted is finished (or dropped) first, so
		// that the metadata read next is the one the root is sealed for.
		if err := c.recoverRekey(); err != nil {
			return nil, nil, err
		}
		b, err := os.ReadFile(c.metaFile())
		if errors.Is(err, os.ErrNotExist) {
			return c, nil, nil // not initialised yet
		}
		if err != nil {
			return nil, nil, fmt.Errorf("unseal metadata: %w", err)
		}
		var m unsealMeta
		if err := json.Unmarshal(b, &m); err != nil || m.Threshold < 2 || len(m.Commitment) == 0 {
			return nil, nil, fmt.Errorf("unseal metadata %s is corrupt", c.metaFile())
		}
		c.meta = &m
		return c, nil, nil
	}
	return nil, nil, fmt.Errorf("unknown seal mode %d", int(cfg.Mode))
}

// OpenKeyFile opens the software root in dir with the unseal key in
// keyFile. With create, a missing root is made (and with createKey, a
// missing key file too); without, both must exist: tools that only read use
// that.
func OpenKeyFile(dir, keyFile string, create, createKey bool) (*Sealer, error) {
	if keyFile == "" {
		return nil, errors.New("no unseal key configured")
	}
	rootFile := filepath.Join(dir, RootFileName)
	if createKey {
		if _, err := LoadOrCreateKeyFile(keyFile); err != nil {
			return nil, fmt.Errorf("dev unseal key: %w", err)
		}
	}
	if !create {
		if _, err := os.Stat(rootFile); err != nil {
			return nil, fmt.Errorf("sealed root: %w", err)
		}
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("unseal key: %w", err)
	}
	defer clear(key)
	root, err := OpenSoftwareRoot(rootFile, key)
	if err != nil {
		return nil, err
	}
	return New(root), nil
}

func (c *Custody) metaFile() string { return filepath.Join(c.cfg.Dir, MetaFileName) }
func (c *Custody) rootFile() string { return filepath.Join(c.cfg.Dir, RootFileName) }

// Mode is the custody's mode.
func (c *Custody) Mode() Mode { return c.cfg.Mode }

// Status is the unseal state that operators may see.
type Status struct {
	Mode        Mode
	Initialized bool
	Shares      int // ModeShares once initialised
	Threshold   int
	Progress    int    // shares submitted toward the threshold
	Rekey       *Rekey // a rekey in progress, or nil
}

// Status reports the custody's state.
func (c *Custody) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Mode: c.cfg.Mode, Initialized: c.meta != nil || c.cfg.Mode != ModeShares, Rekey: c.rekeyStatus()}
	if c.meta != nil {
		st.Shares, st.Threshold, st.Progress = c.meta.Shares, c.meta.Threshold, len(c.shares)
	}
	return st
}

// Init creates the software root of a fresh installation: a new 256-bit
// unseal key split into n shares of threshold m. The shares are returned
// once and never stored; the root is open afterwards.
func (c *Custody) Init(n, m int) ([]Share, *Sealer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.cfg.Mode != ModeShares:
		return nil, nil, fault.Bad("", "this instance's root is not unsealed with shares (%s)", c.cfg.Mode)
	case c.meta != nil:
		return nil, nil, &fault.Error{Kind: fault.Conflict, Code: "AlreadyInitialized", Msg: "kura is already initialised; unseal it with `kura operator unseal`"}
	case m < 2 || n < m || n > 255:
		return nil, nil, fault.Bad("", "need 2 <= threshold <= shares <= 255, got threshold %d, shares %d", m, n)
	case c.cfg.Existing:
		return nil, nil, &fault.Error{Kind: fault.Conflict, Code: "AlreadyInitialized", Msg: "the database holds data sealed under an earlier root whose seal files are missing; restore seal/root.sealed and seal/unseal.json (kura creates a root only for an empty database; a new installation whose first start failed can instead be started again from an empty data directory)"}
	}
	if _, err := os.Stat(c.rootFile()); err == nil {
		return nil, nil, &fault.Error{Kind: fault.Conflict, Code: "AlreadyInitialized", Msg: "a sealed root already exists in the data directory but its unseal metadata is missing; restore seal/unseal.json"}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, err
	}
	defer clear(key)
	shares, err := Split(key, n, m)
	if err != nil {
		return nil, nil, fault.Bad("", "%v", err)
	}
	root, err := OpenSoftwareRoot(c.rootFile(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create the root: %w", err)
	}
	meta := unsealMeta{Shares: n, Threshold: m, Commitment: Commitment(key)}
	b, err := json.Marshal(meta)
	if err == nil {
		err = WriteNew(c.metaFile(), b)
	}
	if err != nil {
		// Nothing is sealed under the new root yet: remove it so that init
		// can be retried, rather than leaving a root whose shares were
		// never handed out.
		os.Remove(c.metaFile())
		os.Remove(c.rootFile())
		return nil, nil, fmt.Errorf("write unseal metadata: %w", err)
	}
	c.meta = &meta
	return shares, New(root), nil
}

// Unseal takes one share. Below the threshold it returns a nil Sealer; at
// the threshold the shares are combined and checked against the
// commitment: wrong shares are refused and forgotten, so operators start
// again.
func (c *Custody) Unseal(sh Share) (*Sealer, error) {
	c.mu.Lock()
	if c.meta == nil {
		c.mu.Unlock()
		return nil, fault.Bad("", "kura is not initialised (or unseals without shares)")
	}
	// Shares of one split all carry the 32-byte unseal key's length; a
	// share of something else is refused now rather than spoiling the set.
	if len(sh.Y) != 32 {
		c.mu.Unlock()
		return nil, fault.Bad("share", "holds %d bytes, not the 32 of an unseal key share", len(sh.Y))
	}
	for _, have := range c.shares {
		if have.X == sh.X {
			c.mu.Unlock()
			return nil, fault.Bad("share", "share %d was already given", sh.X)
		}
	}
	c.shares = append(c.shares, sh)
	if len(c.shares) < c.meta.Threshold {
		c.mu.Unlock()
		return nil, nil
	}
	key, err := Combine(c.shares)
	c.shares = nil
	meta := *c.meta
	c.mu.Unlock()
	defer clear(key)
	if err != nil || !CheckCommitment(key, meta.Commitment) {
		return nil, &fault.Error{Kind: fault.BadInput, Code: "WrongShares", Msg: "the shares do not reconstruct the unseal key (a wrong or mistyped share?); progress is reset, start again"}
	}
	if _, err := os.Stat(c.rootFile()); err != nil {
		return nil, fault.Down("the shares are right but the sealed root file is missing from the data directory; restore seal/root.sealed", err)
	}
	root, err := OpenSoftwareRoot(c.rootFile(), key)
	if err != nil {
		return nil, fault.Down("the unseal key is right but the sealed root does not open; see the server log", err)
	}
	return New(root), nil
}

// Close closes the HSM session, if there is one.
func (c *Custody) Close() error {
	c.mu.Lock()
	cl := c.closer
	c.closer = nil
	c.mu.Unlock()
	if cl != nil {
		return cl.Close()
	}
	return nil
}
