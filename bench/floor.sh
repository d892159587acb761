#!/usr/bin/env bash
# The floor under amphi's figures: what a delivered LL-HLS part costs on
# this machine's loopback with nothing but the kernel in the way (bench/floor:
# one epoll thread per side, raw system calls, pre-built messages), and
# amphi's origin and edge driven by the same listeners. The servers and the
# listeners are pinned as bench/loadtest.sh pins a server and the generator.
#
#   bench/floor.sh                              # N = 2000 5000, 15 s each
#   LISTENERS="500 2000 5000" DURATION=20s PIN=0 bench/floor.sh
#
# Each N runs each server in SERVERS against the same epoll listeners:
# "loop" (one epoll thread), "goroutines" (a goroutine per connection over
# Go's poller, as amphi's h1 server runs), "coro" (the goroutine server's
# code per connection run as coroutines of an epoll loop, as amphi's
# generator runs its listeners; not in the default set), "origin" (amphi
# demo --preset low, followed through /live/demo/audio.m3u8) and "edge" (an
# amphi edge in front of that origin). Every line gives the server's CPU per delivered part and
# the listeners' spread: how long after the first listener each one got a
# part.
#
# Environment: LISTENERS, DURATION, RAMP (latency is recorded after it),
# SERVERS (default "loop goroutines origin edge"), PIN (1, the default:
# servers on the first half of the CPUs, listeners on the other half; 0:
# wherever the kernel puts them), PROCS (GOMAXPROCS for amphi, default 1, as
# in loadtest.sh), FLOOR and AMPHI (built binaries; default: go build).
# Needs curl. Listens on 127.0.0.1 only.
set -euo pipefail

LISTENERS=${LISTENERS:-"2000 5000"}
DURATION=${DURATION:-15s}
RAMP=${RAMP:-5s}
PIN=${PIN:-1}
PROCS=${PROCS:-1}
SERVERS=${SERVERS:-"loop goroutines origin edge"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

WORK=$(mktemp -d)
PIDS=()
stop_all() {
	for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

if [ -z "${FLOOR:-}" ]; then
	FLOOR=$WORK/floor
	(cd "$ROOT" && go build -o "$FLOOR" ./bench/floor)
fi
case " $SERVERS " in *" origin "* | *" edge "*)
	if [ -z "${AMPHI:-}" ]; then
		AMPHI=$WORK/amphi
		(cd "$ROOT" && go build -o "$AMPHI" ./cmd/amphi)
	fi
	if [ "$PROCS" != 0 ]; then export GOMAXPROCS=$PROCS; fi
	;;
esac

SRV=() GEN=()
if [ "$PIN" = 1 ]; then
	split_cpus
	SRV=(taskset -c "$srv_cpus") GEN=(taskset -c "$gen_cpus")
fi

wait_up() { # URL LOG: wait until URL answers 200
	for _ in $(seq 100); do curl -fs -o /dev/null "$1" && return; sleep 0.1; done
	echo "floor.sh: $1 did not come up" >&2; cat "$2" >&2; exit 1
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

for n in $LISTENERS; do
	for mode in $SERVERS; do
		port=$(free_port)
		args=(-connect "127.0.0.1:$port" -conns "$n" -duration "$DURATION" -ramp "$RAMP")
		case $mode in
		loop | goroutines | coro)
			flags=()
			[ "$mode" = goroutines ] && flags=(-goroutines)
			[ "$mode" = coro ] && flags=(-coro)
			"${SRV[@]}" "$FLOOR" -serve "127.0.0.1:$port" "${flags[@]}" >"$WORK/server.out" &
			server=$!
			PIDS+=("$server")
			for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
			;;
		origin | edge)
			"${SRV[@]}" "$AMPHI" demo --preset low --listen "127.0.0.1:$port" --log-level warn \
				--data "$WORK/data-$n-$mode" >"$WORK/origin.log" 2>&1 &
			server=$!
			PIDS+=("$server")
			wait_up "http://127.0.0.1:$port/live/demo/audio.m3u8" "$WORK/origin.log"
			if [ "$mode" = edge ]; then
				eport=$(free_port)
				"${SRV[@]}" "$AMPHI" edge --listen "127.0.0.1:$eport" --upstream "http://127.0.0.1:$port" \
					--log-level warn >"$WORK/edge.log" 2>&1 &
				server=$!
				PIDS+=("$server")
				wait_up "http://127.0.0.1:$eport/live/demo/audio.m3u8" "$WORK/edge.log"
				args[1]=127.0.0.1:$eport
			fi
			sleep 2 # a few parts into the broadcast
			args+=(-hls /live/demo/audio.m3u8)
			;;
		*) echo "floor.sh: unknown server $mode" >&2; exit 1 ;;
		esac
		t0=$(ticks "$server")
		client=$("${GEN[@]}" "$FLOOR" "${args[@]}")
		t1=$(ticks "$server")
		stop_all
		parts=$(sed -E 's/.*parts ([0-9]+),.*/\1/' <<<"$client")
		us=$(awk -v a="$t0" -v b="$t1" -v t="$TICK" -v p="$parts" 'BEGIN { printf "%.1f", (b - a) / t / (p > 0 ? p : 1) * 1e6 }')
		echo "N=$n $mode server: $us µs per part (CPU from /proc, $((t1 - t0)) ticks)"
		echo "N=$n $mode $client"
		if [ -s "$WORK/server.out" ]; then echo "N=$n $mode $(cat "$WORK/server.out")"; fi
		: >"$WORK/server.out"
	done
done
