package segmenter_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/amphi-live/amphi/segmenter"
)

// fuzzConfigs are picked by the fuzzer; "tiny" slides its window within a
// fraction of a second so that short inputs reach removal.
var fuzzConfigs = []segmenter.Config{
	segmenter.Presets["low"],
	segmenter.Presets["balanced"],
	segmenter.Presets["scale"],
	{PartDuration: 20 * time.Millisecond, SegmentDuration: 40 * time.Millisecond, Window: 3},
}

// Ops of the fuzz program, read from the input one byte at a time.
const (
	opDiscontinuity = 0xFF
	opEnd           = 0xFE
	opRepeat        = 0xFD // next byte n: write the last access unit 4n more times
	// Otherwise the low 6 bits are the length of the access unit that
	// follows; bit 0x40 keeps it in the batch with the next one.
	opBatch = 0x40
)

// FuzzWrite feeds arbitrary bytes as AAC frames or Opus packets, with
// discontinuities and an end, and checks that the segmenter never panics and
// that every update it publishes keeps the structural rules: every playlist
// renders and parses, parts never exceed PART-TARGET, timestamps run on,
// every referenced name is downloadable and no name is reused.
func FuzzWrite(f *testing.F) {
	aac20 := bytes.Repeat([]byte{4, 0x21, 0x10, 0x04, 0x60}, 10)
	f.Add(aac20, false, uint8(0))
	f.Add(append([]byte{1, 0xFC, opRepeat, 200, opDiscontinuity, 1, 0xFC, opRepeat, 50}, opEnd), true, uint8(0))
	f.Add([]byte{1, 0xFC, opRepeat, 255, opRepeat, 255, opRepeat, 255}, true, uint8(1))
	f.Add([]byte{1, 0xE0, opRepeat, 100, 2, 0xFB, 0x06, opRepeat, 60, 1, 0x58, opRepeat, 40}, true, uint8(0))
	f.Add([]byte{2, 0xFB, 63, 1, 0xFB, 2, 0xFB, 0, 0, 1, 0xF9, opRepeat, 80}, true, uint8(2))
	f.Add([]byte{1, 0xF0, opRepeat, 30, opDiscontinuity, opDiscontinuity, 1, 0xF0, opRepeat, 30, opEnd, 1, 0xF0}, true, uint8(3))
	f.Add([]byte{0x41, 0xAA, 0x41, 0xBB, 0, 0x41, 0xCC, 1, 0xDD, opRepeat, 255, opDiscontinuity, 1, 1, opRepeat, 100, opEnd}, false, uint8(3))
	f.Add([]byte{opEnd}, false, uint8(0))
	f.Add([]byte{opDiscontinuity, 1, 7, opRepeat, 255}, false, uint8(2))

	f.Fuzz(func(t *testing.T, data []byte, isOpus bool, cfgIdx uint8) {
		if len(data) > 4096 {
			return
		}
		st := aac48k
		if isOpus {
			st = opus48k
		}
		cfg := fuzzConfigs[int(cfgIdx)%len(fuzzConfigs)]
		s, rec := newSegmenter(t, cfg, st.codec())

		var accepted [][]byte // access units the segmenter took, in order
		var batch [][]byte
		var last []byte
		ended := false
		budget := 1500 // access units per run, to keep each run short
		flush := func() {
			if len(batch) == 0 {
				return
			}
			var err error
			if isOpus {
				err = s.WriteOpus(0, batch)
			} else {
				err = s.WriteAAC(0, batch)
			}
			switch {
			case ended:
				require.ErrorIs(t, err, segmenter.ErrEnded)
			case err == nil:
				for _, au := range batch {
					if len(au) > 0 {
						accepted = append(accepted, au)
					}
				}
			default:
				// Opus only: the packet that does not fit is refused,
				// and so is everything after it in the batch. Batches of
				// Opus are single packets, so nothing else was taken.
				require.True(t, isOpus, "AAC frame refused: %v", err)
				require.Len(t, batch, 1)
			}
			batch = nil
		}
		write := func(au []byte) {
			batch = append(batch, au)
			if isOpus {
				flush() // one packet per write: acceptance is then exact
			}
		}

		for i := 0; i < len(data); {
			op := data[i]
			i++
			switch op {
			case opDiscontinuity:
				flush()
				// The publisher was away; an hour is more than any input
				// here holds, so a re-anchored PDT can only move forward.
				rec.clock.now = rec.clock.now.Add(time.Hour)
				err := s.Discontinuity()
				if ended {
					require.ErrorIs(t, err, segmenter.ErrEnded)
				} else {
					require.NoError(t, err)
				}
			case opEnd:
				flush()
				s.End()
				ended = true
			case opRepeat:
				if i >= len(data) || last == nil {
					continue
				}
				n := min(4*int(data[i]), budget)
				i++
				budget -= n
				for range n {
					write(last)
				}
				flush()
			default:
				if budget == 0 {
					continue
				}
				budget--
				n := min(int(op&0x3F), len(data)-i)
				au := bytes.Clone(data[i : i+n])
				i += n
				last = au
				write(au)
				if op&opBatch == 0 {
					flush()
				}
			}
		}
		flush()
		if len(rec.updates) == 0 {
			return
		}

		c := newChecker(t, st, s, rec.prefix(t))
		c.lenient = true
		c.expectAU = func(n int) []byte {
			require.Less(t, n, len(accepted), "more access units in parts than were accepted")
			return accepted[n]
		}
		c.checkAll(rec.updates)
		if ended {
			require.True(t, c.prev.Ended, "the last update after End is the ended playlist")
			require.Equal(t, len(accepted), c.nextAU, "every accepted access unit is in a part")
		}
	})
}
