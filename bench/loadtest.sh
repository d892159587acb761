#!/usr/bin/env bash
# Load-test an amphi origin directly and through nginx (proxy_cache with
# proxy_cache_lock) with `amphi loadtest`, and print one table.
#
#   bench/loadtest.sh                   # N = 500 2000 5000, 20 s per point
#   LISTENERS="500 1000" DURATION=10s bench/loadtest.sh
#
# Environment: AMPHI (an amphi binary; default: go build ./cmd/amphi),
# LISTENERS, DURATION, RAMP, MIX, PRESET (the demo's, default low),
# TARGETS (default "origin nginx edge"), EDGE_AMPHI (the edge's binary,
# default AMPHI), EDGE_BASE (a second edge binary measured as "edge-base"),
# WARMUP (an unrecorded first point, default 10s; 0: none), KEEP=1 (keep
# the work directory).
# Needs go, curl, jq and nginx (installed with apt-get when missing).
# Everything listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail

LISTENERS=${LISTENERS:-"500 2000 5000"}
TARGETS=${TARGETS:-"origin nginx edge"}
PRESET=${PRESET:-low}
DURATION=${DURATION:-20s}
RAMP=${RAMP:-5s}
MIX=${MIX:-ll=0.8,hint=0.1,legacy=0.1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

log() { printf 'loadtest.sh: %s\n' "$*" >&2; }

need() {
	command -v "$1" >/dev/null && return
	log "installing $2"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; } >/dev/null
}
need jq jq
need curl curl
need nginx nginx-light

WORK=$(mktemp -d "$( [ -d /dev/shm ] && echo /dev/shm || echo /tmp )/amphi-loadtest.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "${KEEP:-}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [ -z "${AMPHI:-}" ]; then
	AMPHI=$WORK/amphi
	log "building amphi"
	(cd "$ROOT" && go build -o "$AMPHI" ./cmd/amphi)
fi
"$AMPHI" loadtest --help >/dev/null 2>&1 || { log "$AMPHI has no loadtest command"; exit 1; }

free_port() {
	local p
	for p in $(shuf -i 20000-29999 -n 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	log "no free port"; exit 1
}
ORIGIN_PORT=$(free_port)
NGINX_PORT=$(free_port)
EDGE_PORT=$(free_port)

# --- origin -----------------------------------------------------------------
"$AMPHI" demo --preset "$PRESET" --listen "127.0.0.1:$ORIGIN_PORT" --log-level warn --data "$WORK/data" \
	>"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
PIDS+=("$ORIGIN_PID")
ORIGIN_URL=http://127.0.0.1:$ORIGIN_PORT/live/demo/index.m3u8
log "origin pid $ORIGIN_PID on $ORIGIN_PORT; waiting for 4 segments (legacy listeners start 3 s behind live)"
for _ in $(seq 100); do
	n=$(curl -fs "http://127.0.0.1:$ORIGIN_PORT/live/demo/audio.m3u8" 2>/dev/null | grep -c '^#EXTINF' || true)
	[ "${n:-0}" -ge 4 ] && break
	sleep 0.2
done
[ "${n:-0}" -ge 4 ] || { log "origin did not come up"; cat "$WORK/origin.log" >&2; exit 1; }

# --- nginx ------------------------------------------------------------------
# One worker: the origin and the generator share the machine with it. Only
# requests that went to the origin ($upstream_addr set) are logged: that is
# how origin requests are counted behind nginx (the origin has no metric).
mkdir -p "$WORK/nginx/cache" "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
user $(id -un) $(id -gn);
worker_processes 1;
worker_rlimit_nofile 30000;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 15000; }
http {
    log_format upstream '\$upstream_cache_status \$status \$request_uri';
    map \$upstream_addr \$went_upstream { "" 0; default 1; }
    access_log $WORK/nginx/upstream.log upstream if=\$went_upstream;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    proxy_cache_path $WORK/nginx/cache levels=1:2 keys_zone=hls:32m max_size=1g inactive=2m use_temp_path=off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 1024;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=16384;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache hls;
            proxy_cache_key \$uri\$is_args\$args;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 5s;
            proxy_cache_lock_age 5s;
            proxy_read_timeout 10s;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>>"$WORK/nginx/error.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
NGINX_URL=http://127.0.0.1:$NGINX_PORT/live/demo/index.m3u8
for _ in $(seq 50); do curl -fs -o /dev/null "$NGINX_URL" && break; sleep 0.1; done
curl -fs -o /dev/null "$NGINX_URL" || { log "nginx did not come up"; cat "$WORK/nginx/error.log" >&2; exit 1; }
log "nginx pid $NGINX_PID on $NGINX_PORT"

# --- amphi edge ----------------------------------------------------------------
# start_edge BINARY PORT NAME: an edge in front of the origin; sets EDGE_PID.
start_edge() {
	"$1" edge --listen "127.0.0.1:$2" --upstream "http://127.0.0.1:$ORIGIN_PORT" --log-level warn \
		>"$WORK/$3.log" 2>&1 &
	EDGE_PID=$!
	PIDS+=("$EDGE_PID")
	local url=http://127.0.0.1:$2/live/demo/index.m3u8
	for _ in $(seq 50); do curl -fs -o /dev/null "$url" && break; sleep 0.1; done
	curl -fs -o /dev/null "$url" || { log "$3 did not come up"; cat "$WORK/$3.log" >&2; exit 1; }
	log "$3 pid $EDGE_PID on $2"
}
start_edge "${EDGE_AMPHI:-$AMPHI}" "$EDGE_PORT" edge
EDGE_URL=http://127.0.0.1:$EDGE_PORT/live/demo/index.m3u8
# EDGE_BASE=/path/to/amphi adds an "edge-base" column: another build of the
# edge (the last commit, say) measured in the same run.
if [ -n "${EDGE_BASE:-}" ]; then
	BASE_PORT=$(free_port)
	BASE_EDGE_PID_SAVE=$EDGE_PID
	start_edge "$EDGE_BASE" "$BASE_PORT" edge-base
	BASE_PID=$EDGE_PID
	EDGE_PID=$BASE_EDGE_PID_SAVE
	BASE_URL=http://127.0.0.1:$BASE_PORT/live/demo/index.m3u8
	TARGETS="$TARGETS edge-base"
fi
# The edge counts its upstream requests itself.
edge_upstream() {
	curl -fs "http://127.0.0.1:$1/metrics" |
		awk '/^amphi_edge_upstream_requests_total/ {s += $2} END {print s + 0}'
}

# --- process accounting -----------------------------------------------------
TICK=$(getconf CLK_TCK)
# The pids of a process and its children (nginx: master and worker).
tree() { echo "$1"; pgrep -P "$1" || true; }
cpu_ticks() { # utime+stime, summed over the tree
	local t=0 p
	for p in $(tree "$1"); do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}
reset_peak() { local p; for p in $(tree "$1"); do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done; }
peak_kib() { # VmHWM summed over the tree
	local k=0 p v
	for p in $(tree "$1"); do
		v=$(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
		k=$((k + ${v:-0}))
	done
	echo "$k"
}

# --- the points ---------------------------------------------------------------
ROWS=$WORK/rows.tsv
: >"$ROWS"
# A first point ran measurably worse than the same point later in the run,
# whatever the target (the machine settling after start-up): an unrecorded
# warm-up point goes first.
if [ "${WARMUP:-10s}" != 0 ]; then
	log "warm-up: ${LISTENERS%% *} listeners on the origin for ${WARMUP:-10s}"
	"$AMPHI" loadtest "$ORIGIN_URL" --listeners "${LISTENERS%% *}" --duration "${WARMUP:-10s}" --ramp 2s \
		--mix "$MIX" >/dev/null 2>&1 || true
fi
for target in $TARGETS; do
	url=$ORIGIN_URL cache_pid=$NGINX_PID edge_port=
	[ "$target" = nginx ] && url=$NGINX_URL
	[ "$target" = edge ] && url=$EDGE_URL cache_pid=$EDGE_PID edge_port=$EDGE_PORT
	[ "$target" = edge-base ] && url=$BASE_URL cache_pid=$BASE_PID edge_port=$BASE_PORT
	for n in $LISTENERS; do
		log "$target, $n listeners, $DURATION (ramp $RAMP)"
		sleep 2 # let the previous point's connections close
		o0=$(cpu_ticks "$ORIGIN_PID"); g0=$(cpu_ticks "$cache_pid")
		up0=$(wc -l <"$WORK/nginx/upstream.log" 2>/dev/null || echo 0)
		[ -n "$edge_port" ] && up0=$(edge_upstream "$edge_port")
		reset_peak "$ORIGIN_PID"; reset_peak "$cache_pid"
		json=$WORK/$target-$n.json
		status=0
		"$AMPHI" loadtest "$url" --listeners "$n" --duration "$DURATION" --ramp "$RAMP" --mix "$MIX" \
			--json "$json" >"$WORK/$target-$n.txt" 2>"$WORK/$target-$n.progress" || status=$?
		o1=$(cpu_ticks "$ORIGIN_PID"); g1=$(cpu_ticks "$cache_pid")
		load=$(cut -d' ' -f1 /proc/loadavg) # other work on the machine shows here
		up1=$(wc -l <"$WORK/nginx/upstream.log" 2>/dev/null || echo 0)
		[ -n "$edge_port" ] && up1=$(edge_upstream "$edge_port")
		if [ ! -s "$json" ]; then
			log "loadtest failed (exit $status):"; tail -5 "$WORK/$target-$n.progress" >&2
			continue
		fi
		elapsed=$(jq .elapsed_s "$json")
		if [ "$target" != origin ]; then
			origin_rps=$(jq -n --argjson a "$up0" --argjson b "$up1" --argjson e "$elapsed" '($b-$a)/$e | floor')
			nginx_cpu=$(jq -n --argjson a "$g0" --argjson b "$g1" --argjson t "$TICK" '(($b-$a)/$t*100|round)/100')
			nginx_rss=$(($(peak_kib "$cache_pid") / 1024))
		else
			origin_rps=$(jq '.total.requests_per_s.total | floor' "$json")
			nginx_cpu=-; nginx_rss=-
		fi
		# CPU per delivered part: the cache's (or, direct, the origin's) CPU
		# over the parts the listeners received (part + hinted_part).
		if [ "$target" = origin ]; then per=$o0:$o1; else per=$g0:$g1; fi
		us_part=$(jq --argjson a "${per%%:*}" --argjson b "${per##*:}" --argjson t "$TICK" '
			((.total.requests.part // 0) + (.total.requests.hinted_part // 0)) as $parts
			| if $parts > 0 then (($b-$a)/$t/$parts*1e6|round) else "-" end' "$json")
		origin_cpu=$(jq -n --argjson a "$o0" --argjson b "$o1" --argjson t "$TICK" '(($b-$a)/$t*100|round)/100')
		origin_rss=$(($(peak_kib "$ORIGIN_PID") / 1024))
		jq -r --arg target "$target" --arg ocpu "$origin_cpu" --arg orss "$origin_rss" \
			--arg orps "$origin_rps" --arg ncpu "$nginx_cpu" --arg nrss "$nginx_rss" --arg load "$load" --arg uspart "$us_part" '
			[ $target, .listeners,
			  (.total.part_latency.p50_ms // "-"), (.total.part_latency.p99_ms // "-"),
			  (.total.time_to_first_audio.p99_ms // "-"),
			  "\(.total.stalls) (\(.total.stall_ratio * 1000 | round / 10)%)",
			  .total.errors_total, (.total.requests_per_s.total | floor), $orps,
			  $ocpu, $orss, $ncpu, $nrss, $uspart,
			  "\(.generator.cpu_s) (\(.generator.cores))", $load ] | @tsv' "$json" >>"$ROWS"
	done
done

echo "| target | N | part p50 ms | part p99 ms | TTFA p99 ms | stalls (time) | errors | req/s | origin req/s | origin CPU-s | origin peak RSS MiB | cache CPU-s | cache peak RSS MiB | server CPU µs/part | generator CPU-s (cores) | load avg |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
sed 's/\t/ | /g; s/^/| /; s/$/ |/' "$ROWS"
echo
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); points of $DURATION, ramp $RAMP, mix $MIX; CPU-s over each point"
