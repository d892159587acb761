package demo

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/stretchr/testify/require"
)

const sampleRate = 48000

// frameDuration is the length of one AAC frame at 48 kHz, 21.333… ms.
const frameDuration = samplesPerFrame * time.Second / sampleRate

// ptsOf is the exact timestamp of frame i at 48 kHz, for small i.
func ptsOf(i int) time.Duration {
	return time.Duration(i) * samplesPerFrame * time.Second / sampleRate
}

// write is one recorded WriteAAC call.
type write struct {
	pts      time.Duration
	aus      [][]byte
	at, done time.Duration // when the call started and returned, since t0
}

// recorder is a Writer that records every call. It can stall (sleep) in
// one call, to make the source fall behind, and fail in one call.
type recorder struct {
	t0       time.Time
	stallAt  int // index of the call that sleeps for stallFor; -1: none
	stallFor time.Duration
	failAt   int // index of the call that returns errBoom; -1: none
	writes   []write
}

var errBoom = errors.New("boom")

// maxWrites bounds the calls a recorder accepts, so that a source stuck
// writing without waiting fails the test instead of hanging it.
const maxWrites = 10_000

func newRecorder() *recorder {
	return &recorder{t0: time.Now(), stallAt: -1, failAt: -1}
}

func (r *recorder) WriteAAC(pts time.Duration, aus [][]byte) error {
	i := len(r.writes)
	if i >= maxWrites {
		return errors.New("too many writes")
	}
	at := time.Since(r.t0)
	if i == r.stallAt {
		time.Sleep(r.stallFor)
	}
	r.writes = append(r.writes, write{pts: pts, aus: aus, at: at, done: time.Since(r.t0)})
	if i == r.failAt {
		return errBoom
	}
	return nil
}

// runFor runs s with w for d of (fake) time, then cancels it and returns
// what Run returned. It must be called inside a synctest bubble.
func runFor(ctx context.Context, s *Source, w Writer, d time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, w) }()
	time.Sleep(d)
	synctest.Wait() // let Run write everything due at exactly d
	cancel()
	return <-errc
}

func TestSourceRun(t *testing.T) {
	embedded, err := parseClip(defaultClip)
	require.NoError(t, err)
	clipFrames := len(embedded.aus)
	require.Less(t, ptsOf(clipFrames), 10*time.Second, "clip must loop within the test")

	tests := []struct {
		name     string
		stallAt  int
		stallFor time.Duration
	}{
		{name: "real time", stallAt: -1},
		{name: "catches up after stall", stallAt: 10, stallFor: 500 * time.Millisecond},
		{name: "stall across loop point", stallAt: clipFrames - 3, stallFor: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newRecorder()
				rec.stallAt, rec.stallFor = tt.stallAt, tt.stallFor

				err := runFor(t.Context(), &Source{}, rec, 10*time.Second)
				require.ErrorIs(t, err, context.Canceled)

				want := float64(10*time.Second) / float64(frameDuration) // 468.75
				require.InDelta(t, want, len(rec.writes), 2)
				require.Greater(t, len(rec.writes), clipFrames, "no loop boundary crossed")

				for i, w := range rec.writes {
					require.Len(t, w.aus, 1, "write %d", i)
					require.NotEmpty(t, w.aus[0], "write %d", i)
					require.Equal(t, embedded.aus[i%clipFrames], w.aus[0], "write %d is out of order", i)
					require.Equal(t, ptsOf(i), w.pts, "write %d", i)

					wantAt := w.pts // on time, or as soon as the previous write returned
					if i > 0 {
						prev := rec.writes[i-1]
						require.Greater(t, w.pts, prev.pts, "write %d", i)
						require.InDelta(t, frameDuration, w.pts-prev.pts, 1, "write %d", i)
						wantAt = max(wantAt, prev.done)
					}
					require.Equal(t, wantAt, w.at, "write %d at wrong time", i)
				}

				// Across the loop point the clip restarts with continuing timestamps.
				last, next := rec.writes[clipFrames-1], rec.writes[clipFrames]
				require.Equal(t, embedded.aus[0], next.aus[0])
				require.Equal(t, ptsOf(clipFrames), next.pts)
				require.InDelta(t, frameDuration, next.pts-last.pts, 1)
			})
		})
	}
}

func TestSourceRunWriterError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		rec.failAt = 3

		err := runFor(t.Context(), &Source{}, rec, time.Second)
		require.ErrorIs(t, err, errBoom)
		require.NotErrorIs(t, err, context.Canceled)
		require.Len(t, rec.writes, 4, "Run must stop at the first failed write")
	})
}

func TestSourceRunCanceledBeforeStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		rec := newRecorder()
		require.ErrorIs(t, (&Source{}).Run(ctx, rec), context.Canceled)
		require.Empty(t, rec.writes)
	})
}

func TestSourceConfig(t *testing.T) {
	tests := []struct {
		name string
		clip []byte
	}{
		{name: "embedded clip", clip: nil},
		{name: "explicit clip", clip: defaultClip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := (&Source{Clip: tt.clip}).Config()
			require.NoError(t, err)
			require.Equal(t, mpeg4audio.ObjectTypeAACLC, conf.Type)
			require.Equal(t, sampleRate, conf.SampleRate)
			require.Equal(t, uint8(1), conf.ChannelConfig)
		})
	}
}

func TestEmbeddedClip(t *testing.T) {
	c, err := parseClip(defaultClip)
	require.NoError(t, err)
	d := ptsOf(len(c.aus))
	require.GreaterOrEqual(t, d, 6*time.Second)
	require.LessOrEqual(t, d, 10*time.Second)
	require.Less(t, len(defaultClip), 100_000)
}

// remux re-encodes the embedded clip after letting mutate change its packets.
func remux(t testing.TB, mutate func(i int, pkt *mpeg4audio.ADTSPacket)) []byte {
	t.Helper()
	var pkts mpeg4audio.ADTSPackets
	require.NoError(t, pkts.Unmarshal(defaultClip))
	for i, pkt := range pkts {
		mutate(i, pkt)
	}
	buf, err := pkts.Marshal()
	require.NoError(t, err)
	return buf
}

func TestSourceInvalidClip(t *testing.T) {
	tests := []struct {
		name    string
		clip    []byte
		wantErr string
	}{
		{
			name:    "empty",
			clip:    []byte{},
			wantErr: "clip is empty",
		},
		{
			name:    "garbage",
			clip:    []byte("this is not an ADTS stream, not even close"),
			wantErr: "not a valid ADTS AAC stream",
		},
		{
			name:    "truncated",
			clip:    defaultClip[:len(defaultClip)-5],
			wantErr: "not a valid ADTS AAC stream",
		},
		{
			name:    "trailing garbage",
			clip:    append(append([]byte{}, defaultClip...), "junk junk"...),
			wantErr: "not a valid ADTS AAC stream",
		},
		{
			name: "sample rate changes",
			clip: remux(t, func(i int, pkt *mpeg4audio.ADTSPacket) {
				if i == 5 {
					pkt.SampleRate = 44100
				}
			}),
			wantErr: "clip changes configuration at ADTS packet 5: object type 2, 44100 Hz",
		},
		{
			name: "channels change",
			clip: remux(t, func(i int, pkt *mpeg4audio.ADTSPacket) {
				if i == 1 {
					pkt.ChannelConfig = 2
				}
			}),
			wantErr: "clip changes configuration at ADTS packet 1",
		},
		{
			name: "PCE channel layout",
			clip: remux(t, func(_ int, pkt *mpeg4audio.ADTSPacket) {
				// Marshal would derive the configuration from the count.
				pkt.ChannelConfig, pkt.ChannelCount = 0, 0 //nolint:staticcheck
			}),
			wantErr: "channel configuration 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Source{Clip: tt.clip}

			conf, err := s.Config()
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, conf)

			rec := newRecorder()
			require.ErrorContains(t, s.Run(t.Context(), rec), tt.wantErr)
			require.Empty(t, rec.writes)
		})
	}
}

func TestSamplesToDuration(t *testing.T) {
	const year = 365 * 24 * time.Hour
	tests := []struct {
		name    string
		samples int64
		rate    int64
		want    time.Duration
	}{
		{name: "zero", samples: 0, rate: 48000, want: 0},
		{name: "one frame", samples: 1024, rate: 48000, want: 21_333_333},
		{name: "two frames", samples: 2048, rate: 48000, want: 42_666_666},
		{name: "one second", samples: 48000, rate: 48000, want: time.Second},
		{name: "44.1 kHz frame", samples: 1024, rate: 44100, want: 23_219_954},
		{name: "a century", samples: 48000 * int64(100*year/time.Second), rate: 48000, want: 100 * year},
		{
			name:    "a century and one frame",
			samples: 48000*int64(100*year/time.Second) + 1024,
			rate:    48000,
			want:    100*year + 21_333_333,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, samplesToDuration(tt.samples, tt.rate))
		})
	}
}

func FuzzParseClip(f *testing.F) {
	var pkts mpeg4audio.ADTSPackets
	require.NoError(f, pkts.Unmarshal(defaultClip))
	firstPacket := defaultClip[:7+len(pkts[0].AU)]

	f.Add(defaultClip)
	f.Add(firstPacket)
	f.Add(firstPacket[:7])
	f.Add(defaultClip[:len(defaultClip)-1])
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xf1})
	f.Add([]byte{0xff, 0xf1, 0x50, 0x80, 0x00, 0x1f, 0xfc, 0x00})
	f.Add([]byte("garbage, not ADTS at all"))
	f.Add(remux(f, func(i int, pkt *mpeg4audio.ADTSPacket) {
		if i == 1 {
			pkt.SampleRate = 44100
		}
	}))

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseClip(data)
		if err != nil {
			require.Nil(t, c)
			return
		}
		require.NotEmpty(t, c.aus)
		require.Positive(t, c.config.SampleRate)
		require.NotZero(t, c.config.ChannelConfig)
		for i, au := range c.aus {
			require.NotEmpty(t, au, "AU %d", i)
		}
	})
}
