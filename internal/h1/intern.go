package h1

import (
	"hash/maphash"
	"sync/atomic"
)

const (
	// internSlots is the size of a Server's intern table: a power of two,
	// far more than the request targets and header lines live at once for
	// a few hundred broadcasts.
	internSlots = 1024
	// maxIntern bounds what is interned: longer strings are rare and
	// seldom repeat.
	maxIntern = 256
)

// internTable shares the strings of request targets and header lines
// across requests and connections. Listeners of a broadcast ask for the
// same blocking playlist and the same part within milliseconds, with the
// same Host, User-Agent and Accept-Encoding lines, so nearly every request
// finds its strings here and parsing it allocates nothing: at 15,000
// requests/s the head's copy was most of the edge's garbage, and each
// collection cycle lands on some part's delivery.
//
// The table is two-way set-associative: each string hashes to a bucket of
// two slots, and a miss replaces the one used less recently, so two hot
// strings that share a bucket both stay. (Direct-mapped, two of the
// allocation test's nine strings shared a slot in 13 tables of 1,000 and
// evicted each other on every parse; production's hot lines collide the
// same way.) A miss only costs the allocation it would have cost anyway.
// Strings are immutable, so sharing one between requests is safe whatever a
// handler keeps.
type internTable struct {
	seed    maphash.Seed
	buckets [internSlots / 2]internBucket
}

type internBucket struct {
	slots  [2]atomic.Pointer[string]
	victim atomic.Uint32 // the slot a miss replaces: the one not used last
}

func newInternTable() *internTable { return &internTable{seed: maphash.MakeSeed()} }

// get returns b as a string, shared with earlier requests when one of them
// carried the same bytes.
func (t *internTable) get(b []byte) string {
	if len(b) > maxIntern {
		return string(b)
	}
	bk := &t.buckets[maphash.Bytes(t.seed, b)&(internSlots/2-1)]
	for i := range bk.slots {
		if p := bk.slots[i].Load(); p != nil && *p == string(b) {
			if other := uint32(1 - i); bk.victim.Load() != other {
				bk.victim.Store(other) // only when it changes: hot hits stay reads
			}
			return *p
		}
	}
	s := string(b)
	v := bk.victim.Load() & 1
	bk.slots[v].Store(&s)
	bk.victim.Store(1 - v)
	return s
}
