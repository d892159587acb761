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
// Each string has two candidate slots, from two parts of one hash, so that
// two hot strings that share one slot do not evict each other on every
// request (with one slot each, two of the allocation test's nine strings
// shared a slot in 13 tables of 1,000, and its requests allocated on every
// parse; with two, in none of 1,000). A slot holds the last string stored
// in it; a miss only costs the allocation it would have cost anyway.
// Strings are immutable, so sharing one between requests is safe whatever a
// handler keeps.
type internTable struct {
	seed  maphash.Seed
	slots [internSlots]atomic.Pointer[string]
}

func newInternTable() *internTable { return &internTable{seed: maphash.MakeSeed()} }

// get returns b as a string, shared with earlier requests when one of them
// carried the same bytes.
func (t *internTable) get(b []byte) string {
	if len(b) > maxIntern {
		return string(b)
	}
	h := maphash.Bytes(t.seed, b)
	first, second := &t.slots[h&(internSlots-1)], &t.slots[(h>>32)&(internSlots-1)]
	p := first.Load()
	if p != nil && *p == string(b) {
		return *p
	}
	if q := second.Load(); q != nil && *q == string(b) {
		return *q
	}
	s := string(b)
	if p == nil {
		first.Store(&s)
	} else {
		second.Store(&s) // the first slot's string keeps its place
	}
	return s
}
