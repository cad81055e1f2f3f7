package snp

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kura-project/kura/internal/p384"
)

// fastKeys holds the precomputed form of hot endorsement keys (see package
// p384): a report verifies about 3.4 times faster with it; it costs about 1.3
// verifications to build and p384.TableBytes to hold. Every guest on a chip
// reports under the same VCEK, so a busy fleet has few hot keys.
//
// Tables are keyed by the public key, not tied to the verifier's cache of
// endorsements, so they survive that cache being cleared. A key earns a
// table once it has verified fastKeyAfter reports. When all places are
// taken, only a table idle for longer than idle makes room; busy ones are
// never displaced, so a fleet with more active chips than places does not
// rebuild tables in a cycle. A key turned away tries again after retry.
type fastKeys struct {
	max   int
	idle  time.Duration
	retry time.Duration
	// epoch anchors the times kept below as offsets from it: with a
	// monotonic clock reading (time.Now), a step of the wall clock moves
	// nothing.
	epoch time.Time

	mu     sync.RWMutex
	tables map[[32]byte]*fastTable // by SHA-256 of the uncompressed public key
}

type fastTable struct {
	key      *p384.Key
	lastUsed atomic.Int64 // f.at of the latest report it verified
}

// fastKeyState is an endorsement's progress towards a table.
type fastKeyState struct {
	id      [32]byte
	uses    atomic.Int64 // reports verified without a table
	nextTry atomic.Int64 // f.at before which no build is tried; 0: never tried
}

const (
	defaultFastKeys     = 128 // ~16 MiB of tables at most (~400k heap objects)
	defaultFastKeyIdle  = time.Minute
	defaultFastKeyRetry = 10 * time.Second
	fastKeyAfter        = 2 // verified reports before a key earns its table
)

func newFastKeys() *fastKeys {
	return &fastKeys{max: defaultFastKeys, idle: defaultFastKeyIdle, retry: defaultFastKeyRetry,
		epoch: time.Now(), tables: map[[32]byte]*fastTable{}}
}

// at is now as an offset from the epoch.
func (f *fastKeys) at(now time.Time) int64 { return int64(now.Sub(f.epoch)) }

// fastKeyID names a public key for the table map.
func fastKeyID(pub *ecdsa.PublicKey) [32]byte {
	b, err := pub.Bytes()
	if err != nil {
		return [32]byte{} // never matches a table: NewKey refuses such a key
	}
	return sha256.Sum256(b)
}

// verify checks r's signature with pub, through a table when pub has one.
func (f *fastKeys) verify(st *fastKeyState, r *Report, pub *ecdsa.PublicKey, now time.Time) error {
	f.mu.RLock()
	t := f.tables[st.id]
	f.mu.RUnlock()
	if t != nil {
		if err := checkSignatureWith(r, t.key.Verify); err != nil {
			return err // a forged report does not keep a table busy
		}
		touch(&t.lastUsed, f.at(now))
		return nil
	}
	if err := checkSignature(r, pub); err != nil {
		return err
	}
	if st.uses.Add(1) < fastKeyAfter {
		return nil
	}
	// One attempt per retry period, even when reports arrive concurrently.
	next, at := st.nextTry.Load(), f.at(now)
	if (next == 0 || at >= next) && st.nextTry.CompareAndSwap(next, at+int64(f.retry)) {
		f.build(st, pub, now)
	}
	return nil
}

// touch raises *last to t; a late request with an earlier time never moves
// it back, so it cannot make a busy table look idle.
func touch(last *atomic.Int64, t int64) {
	for {
		old := last.Load()
		if t <= old || last.CompareAndSwap(old, t) {
			return
		}
	}
}

// build gives st's key a table if a place is free or can be freed. The
// cheap check comes first, so a key that would be turned away costs no
// build; the table is installed under the lock with the check repeated.
func (f *fastKeys) build(st *fastKeyState, pub *ecdsa.PublicKey, now time.Time) {
	if f.max <= 0 {
		return
	}
	f.mu.RLock()
	_, have := f.tables[st.id]
	_, room := f.place(now)
	f.mu.RUnlock()
	if have || !room {
		return
	}
	k, err := p384.NewKey(pub)
	if err != nil {
		// Unreachable for a key that just verified a report; without a table
		// the key still verifies the standard way.
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, have := f.tables[st.id]; have {
		return
	}
	victim, room := f.place(now)
	if !room {
		return
	}
	if victim != nil {
		delete(f.tables, *victim)
	}
	t := &fastTable{key: k}
	t.lastUsed.Store(f.at(now))
	f.tables[st.id] = t
}

// place reports whether a table can be added at now, and which one must go
// for it (nil: a place is free). f.mu must be held.
func (f *fastKeys) place(now time.Time) (*[32]byte, bool) {
	if len(f.tables) < f.max {
		return nil, true
	}
	var victim [32]byte
	oldest := int64(0)
	found := false
	for id, t := range f.tables {
		if u := t.lastUsed.Load(); !found || u < oldest {
			victim, oldest, found = id, u, true
		}
	}
	if !found || f.at(now)-oldest < int64(f.idle) {
		return nil, false
	}
	return &victim, true
}

// has reports whether pub holds a table (for tests).
func (f *fastKeys) has(pub *ecdsa.PublicKey) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.tables[fastKeyID(pub)] != nil
}
