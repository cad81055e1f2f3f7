package ledger

import (
	"bytes"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// hashCache keeps tree hashes this process knows committed: those of the
// batches it committed and those it read outside any transaction. A
// stored hash never changes, so a cached one is always the log's; the
// store stays untrusted all the same (every proof is checked against a
// signed root before it is served). Hashes read inside a transaction are
// never cached: they may be another change's, not yet committed, that
// could still roll back.
//
// Two generations bound it: when the young one is full it becomes the
// old one, and hashes read from the old one move back to the young.
type hashCache struct {
	mu         sync.Mutex
	young, old map[int64]tlog.Hash
}

// hashCacheGen is the hashes a generation holds (about 5 MB).
const hashCacheGen = 1 << 16

func (c *hashCache) get(idx int64) (tlog.Hash, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.young[idx]; ok {
		return h, true
	}
	h, ok := c.old[idx]
	if ok {
		c.putLocked(idx, h)
	}
	return h, ok
}

func (c *hashCache) put(first int64, hs []tlog.Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range hs {
		c.putLocked(first+int64(i), h)
	}
}

func (c *hashCache) putLocked(idx int64, h tlog.Hash) {
	if c.young == nil || len(c.young) >= hashCacheGen {
		c.old, c.young = c.young, make(map[int64]tlog.Hash, hashCacheGen)
	}
	c.young[idx] = h
}

// cachedReader reads hashes from the cache, then from st; with keep, what
// it reads from st is cached (st is outside any transaction).
type cachedReader struct {
	c    *hashCache
	st   tlog.HashReader
	keep bool
}

func (r cachedReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var ask []int64
	var at []int
	for i, idx := range indexes {
		if h, ok := r.c.get(idx); ok {
			out[i] = h
			continue
		}
		ask = append(ask, idx)
		at = append(at, i)
	}
	if len(ask) == 0 {
		return out, nil
	}
	got, err := r.st.ReadHashes(ask)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = got[j]
		if r.keep {
			r.c.put(ask[j], got[j:j+1])
		}
	}
	return out, nil
}

// recentRecords keeps the records of the last batches this process
// committed, by seq modulo its size: a receipt asked for just after its
// append (the common case) needs no read of the entry.
type recentRecords struct {
	mu   sync.Mutex
	ring [recentSize]Record
	have [recentSize]bool
}

const recentSize = 1 << 13

// recentMaxContents is the largest contents kept: the ring holds at most
// recentSize of them (32 MiB), never a caller's large body.
const recentMaxContents = 4 << 10

func (c *recentRecords) put(recs []Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		i := r.Leaf.Seq % recentSize
		if len(r.Contents) > recentMaxContents {
			c.have[i] = false // read from the store, checked, when asked
			continue
		}
		r.Contents = bytes.Clone(r.Contents) // not the caller's buffer
		c.ring[i], c.have[i] = r, true
	}
}

func (c *recentRecords) get(seq int64) (Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := uint64(seq) % recentSize
	if !c.have[i] || c.ring[i].Leaf.Seq != uint64(seq) {
		return Record{}, false
	}
	r := c.ring[i]
	r.Contents = bytes.Clone(r.Contents) // a caller may change what it gets
	return r, true
}
