#!/usr/bin/env bash
# Two amphi edges side by side, under load at the same time: CPU per
# delivered part and part latency for two builds or two settings, measured
# under the same host conditions.
#
#   A_ENV="AMPHI_EDGE_CONNECTIONS=loops" B_ENV="AMPHI_EDGE_CONNECTIONS=goroutines" \
#     N=1000 ROUNDS=3 bench/sidebyside.sh
#   A_AMPHI=bin/amphi B_AMPHI=/tmp/amphi-last bench/sidebyside.sh
#
# Why: on these shared VMs the host's speed drifts by a fifth within
# minutes, more than a change worth measuring, so points run one after
# the other compare the host as much as the builds. Here one origin (the
# demo) and edges A and B share the servers' CPUs, one P each, and each
# edge gets N listeners from its own generator on the generator's CPUs,
# both generators started together; each edge's CPU time is read from
# /proc over the same seconds.
#
# A_AMPHI, B_AMPHI: the binaries (default $AMPHI, default bin/amphi);
# A_ENV, B_ENV: variable assignments for each edge; N (listeners per
# edge, default 1000), ROUNDS (3), DURATION (20s), RAMP (5s), MIX (the
# loadtest's default mix), PRESET (low).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

AMPHI=${AMPHI:-bin/amphi}
A_AMPHI=${A_AMPHI:-$AMPHI} B_AMPHI=${B_AMPHI:-$AMPHI}
A_ENV=${A_ENV:-} B_ENV=${B_ENV:-}
N=${N:-1000} ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-20s} RAMP=${RAMP:-5s}
MIX=${MIX:-ll=0.8,hint=0.1,legacy=0.1} PRESET=${PRESET:-low}
log() { echo "$(basename "$0"): $*" >&2; }
for b in "$A_AMPHI" "$B_AMPHI"; do
	[ -x "$b" ] || { log "$b is not an executable (go build -o bin/amphi ./cmd/amphi)"; exit 1; }
done
command -v jq >/dev/null || { log "needs jq"; exit 1; }
split_cpus
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

ORIGIN_PORT=$(free_port) A_PORT=$(free_port) B_PORT=$(free_port)
GOMAXPROCS=1 taskset -c "$srv_cpus" "$AMPHI" demo --preset "$PRESET" --listen "127.0.0.1:$ORIGIN_PORT" \
	--log-level warn --data "$WORK/data" >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
# edge NAME BINARY ENV PORT: start an edge; sets EDGE_PID.
edge() {
	# shellcheck disable=SC2086 # ENV is a list of assignments
	env GOMAXPROCS=1 $3 taskset -c "$srv_cpus" "$2" edge --listen "127.0.0.1:$4" \
		--upstream "http://127.0.0.1:$ORIGIN_PORT" --log-level warn >"$WORK/$1.log" 2>&1 &
	EDGE_PID=$!
	PIDS+=("$EDGE_PID")
}
edge a "$A_AMPHI" "$A_ENV" "$A_PORT"; A_PID=$EDGE_PID
edge b "$B_AMPHI" "$B_ENV" "$B_PORT"; B_PID=$EDGE_PID
for port in "$A_PORT" "$B_PORT"; do
	ok=
	for _ in $(seq 200); do
		curl -fs -o /dev/null "http://127.0.0.1:$port/live/demo/audio.m3u8" && { ok=1; break; }
		sleep 0.1
	done
	[ -n "$ok" ] || { log "an edge did not come up"; cat "$WORK"/*.log >&2; exit 1; }
done
sleep 8 # a few segments, for the legacy listeners
log "A: $A_AMPHI ${A_ENV:-(no settings)}; B: $B_AMPHI ${B_ENV:-(no settings)}; $N listeners each"

TICK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
row() { # row SIDE ROUND TICKS
	jq -r --arg side "$1" --arg r "$2" --argjson t "$3" --argjson hz "$TICK" '
		((.total.requests.part // 0) + (.total.requests.hinted_part // 0)) as $p
		| "| \($r) | \($side) | \(.total.part_latency.p50_ms) | \(.total.part_latency.p99_ms) | \(.total.part_latency_after_ramp.p99_ms) | \(.total.stalls) | \(.total.errors_total) | \($p) | \($t / $hz) | \(if $p > 0 then ($t / $hz / $p * 1e7 | round) / 10 else "-" end) |"' \
		"$WORK/$1-$2.json"
}
echo "| round | edge | part p50 ms | part p99 ms | p99 after ramp | stalls | errors | parts | edge CPU-s | edge CPU µs/part |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in $(seq "$ROUNDS"); do
	sleep 2 # let the previous round's connections close
	a0=$(ticks "$A_PID") b0=$(ticks "$B_PID")
	gens=()
	for side in A B; do
		port=$A_PORT
		[ "$side" = B ] && port=$B_PORT
		taskset -c "$gen_cpus" "$AMPHI" loadtest "http://127.0.0.1:$port/live/demo/index.m3u8" --listeners "$N" \
			--duration "$DURATION" --ramp "$RAMP" --mix "$MIX" --json "$WORK/$side-$r.json" \
			>"$WORK/$side-$r.txt" 2>&1 &
		gens+=($!)
	done
	for g in "${gens[@]}"; do
		wait "$g" || { log "a loadtest failed"; tail -5 "$WORK"/[AB]-"$r".txt >&2; exit 1; }
	done
	a1=$(ticks "$A_PID") b1=$(ticks "$B_PID")
	row A "$r" $((a1 - a0))
	row B "$r" $((b1 - b0))
done
