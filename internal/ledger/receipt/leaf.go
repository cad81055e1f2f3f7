package receipt

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// leafTag opens every leaf: a version, so that the format can change
// without an old leaf ever reading as a new one.
const leafTag = "ledger/v1\n"

// MaxCollection bounds a collection id (ACL's collectionId).
const MaxCollection = 256

// Leaf is what the log commits to for one entry (the reference design,
// ledger.md §6.2): its position, its time, its collection and a salted
// commitment to its contents. The contents themselves are not in the
// leaf, so a proof for one entry, or the log's public tiles, reveal
// nothing of any entry's contents; the salt is given out with the entry.
type Leaf struct {
	Seq        uint64
	Time       time.Time // kept to the millisecond
	Collection string
	Commitment [32]byte // SHA-256(salt || contents)
	Claims     [32]byte // digest of application claims; zero: none
}

// Commit is the commitment to contents under salt.
func Commit(salt [32]byte, contents []byte) [32]byte {
	h := sha256.New()
	h.Write(salt[:])
	h.Write(contents)
	var c [32]byte
	h.Sum(c[:0])
	return c
}

// Marshal is the leaf's canonical bytes.
func (l Leaf) Marshal() ([]byte, error) {
	if len(l.Collection) > MaxCollection || !utf8.ValidString(l.Collection) {
		return nil, fmt.Errorf("ledger: collection id must be UTF-8 of at most %d bytes", MaxCollection)
	}
	b := make([]byte, 0, len(leafTag)+8+8+2+len(l.Collection)+64)
	b = append(b, leafTag...)
	b = binary.BigEndian.AppendUint64(b, l.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(l.Time.UnixMilli()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(l.Collection)))
	b = append(b, l.Collection...)
	b = append(b, l.Commitment[:]...)
	b = append(b, l.Claims[:]...)
	return b, nil
}

var errLeaf = errors.New("ledger: not a v1 leaf")

// ParseLeaf reads a leaf's canonical bytes; it is the inverse of Marshal.
func ParseLeaf(b []byte) (Leaf, error) {
	var l Leaf
	if len(b) < len(leafTag)+18 || string(b[:len(leafTag)]) != leafTag {
		return l, errLeaf
	}
	b = b[len(leafTag):]
	l.Seq = binary.BigEndian.Uint64(b)
	ms := binary.BigEndian.Uint64(b[8:])
	if ms > 1<<62 {
		return l, fmt.Errorf("%w: time out of range", errLeaf)
	}
	l.Time = time.UnixMilli(int64(ms)).UTC()
	n := int(binary.BigEndian.Uint16(b[16:]))
	b = b[18:]
	if n > MaxCollection || len(b) != n+64 {
		return l, fmt.Errorf("%w: length", errLeaf)
	}
	l.Collection = string(b[:n])
	if !utf8.ValidString(l.Collection) {
		return l, fmt.Errorf("%w: collection id is not UTF-8", errLeaf)
	}
	copy(l.Commitment[:], b[n:])
	copy(l.Claims[:], b[n+32:])
	return l, nil
}
