#!/usr/bin/env bash
# makeclip.sh regenerates clip.aac, the audio looped by `amphi demo`.
#
# The clip is a spoken sentence (espeak-ng), then one second of a 440 Hz
# tone so the loop point is easy to hear and latency easy to judge, then a
# short silence. It is encoded as ADTS AAC-LC, 48 kHz, mono, 64 kb/s with
# ffmpeg's native encoder in bit-exact mode, so the output depends only on
# the espeak-ng and ffmpeg versions.
#
# Usage: ./makeclip.sh   (writes clip.aac next to this script)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

text="This is amphi, a live audio test broadcast. If you can hear this, low latency HLS works."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

espeak-ng -v en-us -s 160 -w "$tmp/speech.wav" "$text"

# The tone uses the sine source's default amplitude of 1/8 (-18 dBFS peak,
# about -21 dB RMS), roughly as loud as the speech; short fades avoid clicks.

ffmpeg -nostdin -hide_banner -loglevel error -y \
	-fflags +bitexact \
	-i "$tmp/speech.wav" \
	-filter_complex "\
[0:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=mono[speech];\
sine=frequency=440:sample_rate=48000:duration=1,\
afade=t=in:duration=0.01,afade=t=out:start_time=0.99:duration=0.01,\
aformat=sample_fmts=fltp:channel_layouts=mono[tone];\
anullsrc=sample_rate=48000:channel_layout=mono,atrim=duration=0.5,\
aformat=sample_fmts=fltp:channel_layouts=mono[silence];\
[speech][tone][silence]concat=n=3:v=0:a=1[out]" \
	-map '[out]' \
	-map_metadata -1 \
	-c:a aac -profile:a aac_low -b:a 64k -ar 48000 -ac 1 \
	-flags:a +bitexact \
	-f adts clip.aac
