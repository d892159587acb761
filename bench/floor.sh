#!/usr/bin/env bash
# The floor under amphi's figures: what a delivered LL-HLS part costs on
# this machine's loopback with nothing but the kernel in the way (bench/floor:
# one epoll thread per side, raw system calls, pre-built messages). The
# server and the listeners are pinned as bench/loadtest.sh pins a server and
# the generator, so "µs per part" reads against its "server CPU µs/part" and
# the generator's CPU.
#
#   bench/floor.sh                              # N = 2000 5000, 15 s each
#   LISTENERS="500 2000 5000" DURATION=20s PIN=0 bench/floor.sh
#
# Each N runs each server in SERVERS: "loop" (one epoll thread) and
# "goroutines" (a goroutine per connection over Go's poller, as amphi's h1
# server runs), against the same epoll listeners.
#
# Environment: LISTENERS, DURATION, RAMP (latency is recorded after it),
# SERVERS (default "loop goroutines"),
# PIN (1, the default: server on the first half of the CPUs, listeners on
# the other half; 0: wherever the kernel puts them), FLOOR (a built
# bench/floor binary; default: go build). Listens on 127.0.0.1 only.
set -euo pipefail

LISTENERS=${LISTENERS:-"2000 5000"}
DURATION=${DURATION:-15s}
RAMP=${RAMP:-5s}
PIN=${PIN:-1}
SERVERS=${SERVERS:-"loop goroutines"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

WORK=$(mktemp -d)
SERVER=
cleanup() {
	if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; fi
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${FLOOR:-}" ]; then
	FLOOR=$WORK/floor
	(cd "$ROOT" && go build -o "$FLOOR" ./bench/floor)
fi

SRV=() GEN=()
if [ "$PIN" = 1 ]; then
	cpus=()
	IFS=, read -ra ranges <<<"$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)"
	for r in "${ranges[@]}"; do
		for ((c = ${r%-*}; c <= ${r#*-}; c++)); do cpus+=("$c"); done
	done
	half=$((${#cpus[@]} / 2))
	[ "$half" -ge 1 ] || { echo "floor.sh: PIN=1 needs two CPUs or more" >&2; exit 1; }
	SRV=(taskset -c "$(IFS=,; echo "${cpus[*]:0:half}")")
	GEN=(taskset -c "$(IFS=,; echo "${cpus[*]:half}")")
fi

free_port() {
	local p
	for p in $(shuf -i 20000-29999 -n 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	echo "floor.sh: no free port" >&2; exit 1
}

for n in $LISTENERS; do
	for mode in $SERVERS; do
		args=()
		case $mode in
		loop) ;;
		goroutines) args=(-goroutines) ;;
		*) echo "floor.sh: unknown server $mode" >&2; exit 1 ;;
		esac
		port=$(free_port)
		"${SRV[@]}" "$FLOOR" -serve "127.0.0.1:$port" "${args[@]}" >"$WORK/server.out" &
		SERVER=$!
		for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
		echo "N=$n $mode $("${GEN[@]}" "$FLOOR" -connect "127.0.0.1:$port" -conns "$n" -duration "$DURATION" -ramp "$RAMP")"
		kill -INT "$SERVER"
		wait "$SERVER" || true
		SERVER=
		echo "N=$n $mode $(cat "$WORK/server.out")"
	done
done
