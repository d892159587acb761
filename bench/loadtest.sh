#!/usr/bin/env bash
# Load-test an amphi origin directly, through nginx (proxy_cache with
# proxy_cache_lock), through Varnish and through an amphi edge with
# `amphi loadtest`, and print one table.
#
#   bench/loadtest.sh                   # N = 500 2000 5000, 20 s per point
#   LISTENERS="500 1000" DURATION=10s bench/loadtest.sh
#   TARGETS="origin nginx edge varnish ats" bench/loadtest.sh  # and ATS
#
# Environment: AMPHI (an amphi binary; default: go build ./cmd/amphi),
# LISTENERS, DURATION, RAMP, MIX, PRESET (the demo's, default low),
# TARGETS (default "origin nginx edge varnish"; "ats" adds Apache Traffic
# Server), EDGE_AMPHI (the edge's binary, default AMPHI), EDGE_BASE (a second
# edge binary measured as "edge-base"), VARNISH_OPTS (more varnishd arguments,
# e.g. "-p rush_exponent=3"), WARMUP (an unrecorded first point, default 10s;
# 0: none), ROUNDS (how many times each point runs, default 1; with more, a
# table of medians comes first), PROCS (GOMAXPROCS for amphi's processes,
# default 1; 0 leaves Go's default of one per CPU), PIN (1, the default:
# the servers on the first half of the CPUs, the generator on the other
# half; 0: wherever the kernel puts them), KEEP=1 (keep the work directory).
# Needs go, curl, jq, nginx and, when in TARGETS, varnish and trafficserver
# (installed with apt-get when missing).
# Everything listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail

LISTENERS=${LISTENERS:-"500 2000 5000"}
TARGETS=${TARGETS:-"origin nginx edge varnish"}
PRESET=${PRESET:-low}
DURATION=${DURATION:-20s}
RAMP=${RAMP:-5s}
MIX=${MIX:-ll=0.8,hint=0.1,legacy=0.1}
ROUNDS=${ROUNDS:-1}
PROCS=${PROCS:-1}
PIN=${PIN:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

log() { printf 'loadtest.sh: %s\n' "$*" >&2; }

need() {
	command -v "$1" >/dev/null && return
	log "installing $2"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; } >/dev/null
}
need jq jq
need curl curl
need nginx nginx-light
wants() { case " $TARGETS " in *" $1 "*) return 0 ;; esac; return 1; }
if wants varnish; then need varnishd varnish; fi
if wants ats; then need traffic_server trafficserver; fi

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
# One P for each amphi process (origin, edges, generator), as nginx runs one
# worker: the server under test and the generator then each have about one
# of the machine's cores. With Go's default, every process starts a P per
# CPU, and on two CPUs four busy Ps contend: the runtime's spinning and
# hand-offs cost 10-15 % more CPU per part, and at 5,000 listeners that
# tipped both over into stalls (bench/README.md).
if [ "$PROCS" != 0 ]; then export GOMAXPROCS=$PROCS; fi
# PIN=1: the servers (origin, caches, edges) run on the first half of the
# CPUs this script may use and the generator on the other half, as if on
# machines of their own. Unpinned, the edge once made 7,300 epoll waits a
# second against 440 pinned, and the generator spent 40 % more CPU on the
# same requests: most likely the two shared one core at times, each waking
# for nearly every message (bench/README.md, "Pinned CPUs").
SRV=() GEN=() pinned="not pinned"
if [ "$PIN" = 1 ]; then
	need taskset util-linux
	split_cpus
	SRV=(taskset -c "$srv_cpus") GEN=(taskset -c "$gen_cpus")
	pinned="servers on CPUs $srv_cpus, generator on CPUs $gen_cpus"
fi

ORIGIN_PORT=$(free_port)
NGINX_PORT=$(free_port)
EDGE_PORT=$(free_port)
VARNISH_PORT=$(free_port)
ATS_PORT=$(free_port)

# wait_up URL NAME TRIES LOG...: wait until URL answers (TRIES tenths of a
# second), else show the logs and stop.
wait_up() {
	local url=$1 name=$2 tries=$3
	shift 3
	for _ in $(seq "$tries"); do curl -fs -o /dev/null "$url" && return; sleep 0.1; done
	curl -fs -o /dev/null "$url" && return
	log "$name did not come up"; cat "$@" >&2; exit 1
}

# --- origin -----------------------------------------------------------------
"${SRV[@]}" "$AMPHI" demo --preset "$PRESET" --listen "127.0.0.1:$ORIGIN_PORT" --log-level warn --data "$WORK/data" \
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
"${SRV[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>>"$WORK/nginx/error.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
NGINX_URL=http://127.0.0.1:$NGINX_PORT/live/demo/index.m3u8
wait_up "$NGINX_URL" nginx 50 "$WORK/nginx/error.log"
log "nginx pid $NGINX_PID on $NGINX_PORT"

# --- varnish ------------------------------------------------------------------
# Varnish (when in TARGETS), foreground, in its own instance directory, as the
# invoking user (-j none: no jail users or directory ownership to set up).
# Identical misses wait on the object's waiting list for the one fetch; the
# origin's Cache-Control (LLHLS.md §4) makes every response cacheable, which
# is what lets Varnish coalesce them (§5). Parameters, for thousands of
# keep-alive listeners holding blocking requests on two cores:
#   timeout_idle=75           keep-alive like nginx's keepalive_timeout 75s
#   thread_pools=2            one per CPU
#   thread_pool_min=500       per pool: a part's request storm finds threads
#                             ready instead of waiting for them to be bred
#   thread_pool_max=5000      per pool (the default): room for the largest point
#   thread_queue_limit=10000  a storm beyond the threads queues; it is not
#                             dropped (a dropped HTTP/1 request is a dropped
#                             connection)
#   rush_exponent=2147483647  wake every waiter the moment a fill lands, not
#                             3, then 9, 27… as each finishes (the default 3);
#                             its largest value (an int in the waiting list code)
#   first_byte_timeout=15     the origin holds a blocking request up to ~3
#                             target durations (and the VCL's backend says so too)
#   listen_depth=16384        nginx's backlog (the kernel caps both at somaxconn)
#   http_gzip_support=off     the origin gzips playlists when asked and sends
#                             Vary: Accept-Encoding, so Varnish keeps the variant
#                             it was sent and passes it through, as nginx does;
#                             with it on, Varnish fetches gzip and inflates it
#                             for every listener that does not ask for gzip
#                             (the generator never does)
if wants varnish; then
	mkdir -p "$WORK/varnish"
	cat >"$WORK/varnish/default.vcl" <<EOF
vcl 4.1;
import std;

backend origin {
    .host = "127.0.0.1";
    .port = "$ORIGIN_PORT";
    .connect_timeout = 1s;
    .first_byte_timeout = 15s;
    .between_bytes_timeout = 15s;
}

sub vcl_recv {
    # One object per request whatever the order of _HLS_msn, _HLS_part and
    # _HLS_skip (the query string stays in the key and goes to the origin).
    set req.url = std.querysort(req.url);
    # At most two variants for the origin's Vary: Accept-Encoding.
    if (req.http.Accept-Encoding ~ "gzip") {
        set req.http.Accept-Encoding = "gzip";
    } else {
        unset req.http.Accept-Encoding;
    }
    # Players send no cookies; a stray one must not turn the stream into pass.
    unset req.http.Cookie;
}

sub vcl_backend_response {
    # TTLs are the origin's Cache-Control (LLHLS.md §4), applied by the
    # built-in code after this. No grace and no keep: an expired playlist is
    # fetched again (its waiters coalesced), never served stale.
    set beresp.grace = 0s;
    set beresp.keep = 0s;
}
EOF
	(
		ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
		# shellcheck disable=SC2086 # VARNISH_OPTS is a list of arguments
		exec "${SRV[@]}" varnishd -F -j none -n "$WORK/varnish" -a "127.0.0.1:$VARNISH_PORT" -T 127.0.0.1:0 \
			-f "$WORK/varnish/default.vcl" -s malloc,256m \
			-p timeout_idle=75 -p thread_pools=2 -p thread_pool_min=500 -p thread_pool_max=5000 \
			-p thread_queue_limit=10000 -p rush_exponent=2147483647 -p first_byte_timeout=15 -p listen_depth=16384 \
			-p http_gzip_support=off ${VARNISH_OPTS:-}
	) >"$WORK/varnish.log" 2>&1 &
	VARNISH_PID=$!
	PIDS+=("$VARNISH_PID")
	VARNISH_URL=http://127.0.0.1:$VARNISH_PORT/live/demo/index.m3u8
	wait_up "$VARNISH_URL" varnish 100 "$WORK/varnish.log"
	log "varnish pid $VARNISH_PID on $VARNISH_PORT"
fi
# Varnish counts its backend requests itself.
varnish_upstream() {
	varnishstat -n "$WORK/varnish" -1 -f MAIN.backend_req | awk '{print $2 + 0}'
}

# --- Apache Traffic Server -----------------------------------------------------
# ATS (when in TARGETS): traffic_server alone (no traffic_manager), with every
# directory (config, cache, logs, runtime) under $WORK/ats through a runroot
# file, as the invoking user (user_id #-1: no switch; ATS refuses "root" but
# not this). It coalesces misses with read-while-writer, which needs these
# (LLHLS.md §5; ATS's "Reducing Origin Server Requests"):
#   cache.enable_read_while_writer=1        readers join a fill in progress
#   http.cache.open_write_fail_action=5     a request that loses the write
#                                           lock retries the read (no plugin)
#   http.cache.max_open_read_retries=300    … every open_read_retry_time=10 ms,
#   http.cache.open_read_retry_time=10      3 s: a blocking request the
#                                           origin holds up to ~3 target
#                                           durations stays coalesced
#   cache.read_while_writer_retry.delay=10  the poll once the writer is found
#   cache.read_while_writer.max_retries=200 (default 50 ms, 10 tries)
#   http.background_fill_active_timeout=0,  a fill survives its first client
#   http.background_fill_completed_threshold=0
#   cache.max_doc_size=0                    no size limit (read-while-writer needs it)
#   http.cache.cache_urls_that_look_dynamic=1  cache URLs with a query string
# Also: the cachekey plugin sorts the query into the key (as the VCL's
# querysort), keep-alive 75 s like nginx, two net threads (one per CPU), a
# 256 MiB RAM cache over a 256 MiB cache file, error log only; origin
# requests come from the stats_over_http plugin (/_stats).
if wants ats; then
	ats=$WORK/ats
	mkdir -p "$ats/etc" "$ats/cache" "$ats/log" "$ats/run" "$ats/var"
	cp -r /etc/trafficserver/. "$ats/etc/" # the packaged defaults: ip_allow.yaml, body_factory…
	cat >"$ats/runroot.yaml" <<EOF
prefix: $ats
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/sbin
sysconfdir: $ats/etc
datadir: $ats/var
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: $ats/var
runtimedir: $ats/run
logdir: $ats/log
cachedir: $ats/cache
EOF
	cat >"$ats/etc/records.config" <<EOF
CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.crash_log_helper STRING NULL
CONFIG proxy.config.http.server_ports STRING $ATS_PORT:ip-in=127.0.0.1
CONFIG proxy.config.exec_thread.autoconfig INT 1
CONFIG proxy.config.exec_thread.autoconfig.scale FLOAT 1.0
CONFIG proxy.config.accept_threads INT 1
CONFIG proxy.config.task_threads INT 2
CONFIG proxy.config.net.connections_throttle INT 30000
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.reverse_proxy.enabled INT 1
CONFIG proxy.config.http.keep_alive_no_activity_timeout_in INT 75
CONFIG proxy.config.http.transaction_no_activity_timeout_out INT 15
CONFIG proxy.config.http.cache.http INT 1
CONFIG proxy.config.http.cache.cache_urls_that_look_dynamic INT 1
CONFIG proxy.config.http.cache.required_headers INT 2
CONFIG proxy.config.http.cache.when_to_revalidate INT 0
CONFIG proxy.config.cache.enable_read_while_writer INT 1
CONFIG proxy.config.cache.read_while_writer_retry.delay INT 10
CONFIG proxy.config.cache.read_while_writer.max_retries INT 200
CONFIG proxy.config.http.cache.open_write_fail_action INT 5
CONFIG proxy.config.http.cache.max_open_read_retries INT 300
CONFIG proxy.config.http.cache.open_read_retry_time INT 10
CONFIG proxy.config.http.background_fill_active_timeout INT 0
CONFIG proxy.config.http.background_fill_completed_threshold FLOAT 0.0
CONFIG proxy.config.cache.max_doc_size INT 0
CONFIG proxy.config.cache.ram_cache.size INT 268435456
CONFIG proxy.config.http.insert_response_via_str INT 0
CONFIG proxy.config.log.logging_enabled INT 1
CONFIG proxy.config.diags.debug.enabled INT 0
EOF
	echo "$ats/cache 256M" >"$ats/etc/storage.config"
	echo "map http://127.0.0.1:$ATS_PORT/ http://127.0.0.1:$ORIGIN_PORT/ @plugin=cachekey.so @pparam=--sort-params=true" \
		>"$ats/etc/remap.config"
	echo "stats_over_http.so" >"$ats/etc/plugin.config"
	(
		ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
		TS_RUNROOT=$ats/runroot.yaml exec "${SRV[@]}" traffic_server
	) >"$WORK/ats.log" 2>&1 &
	ATS_PID=$!
	PIDS+=("$ATS_PID")
	ATS_URL=http://127.0.0.1:$ATS_PORT/live/demo/index.m3u8
	wait_up "$ATS_URL" ats 200 "$WORK/ats.log" "$ats/log/diags.log"
	log "ats pid $ATS_PID on $ATS_PORT"
fi
# ATS counts its origin requests itself (in stats that lag up to 5 s).
ats_upstream() {
	curl -fs "http://127.0.0.1:$ATS_PORT/_stats" | jq -r '.global."proxy.process.http.outgoing_requests" | tonumber'
}

# --- amphi edge ----------------------------------------------------------------
# start_edge BINARY PORT NAME: an edge in front of the origin; sets EDGE_PID.
start_edge() {
	"${SRV[@]}" "$1" edge --listen "127.0.0.1:$2" --upstream "http://127.0.0.1:$ORIGIN_PORT" --log-level warn \
		>"$WORK/$3.log" 2>&1 &
	EDGE_PID=$!
	PIDS+=("$EDGE_PID")
	local url=http://127.0.0.1:$2/live/demo/index.m3u8
	wait_up "$url" "$3" 50 "$WORK/$3.log"
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
	# Right after the edge: the points after Varnish's and ATS's ran
	# measurably worse (their thousands of threads, memory and load linger).
	case " $TARGETS " in
	*" edge "*) TARGETS=$(echo " $TARGETS " | sed 's/ edge / edge edge-base /; s/^ //; s/ $//') ;;
	*) TARGETS="$TARGETS edge-base" ;;
	esac
fi
# The edge counts its upstream requests itself.
edge_upstream() {
	curl -fs "http://127.0.0.1:$1/metrics" |
		awk '/^amphi_edge_upstream_requests_total/ {s += $2} END {print s + 0}'
}

# --- process accounting -----------------------------------------------------
TICK=$(getconf CLK_TCK)
# The pids of a process and its children (nginx: master and worker; varnishd:
# manager and cache child).
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

# upstream_count TARGET EDGE_PORT: the requests TARGET has sent to the origin
# so far: nginx's upstream log, Varnish's, ATS's and the edge's own counters.
upstream_count() {
	case $1 in
	varnish) varnish_upstream ;;
	ats) ats_upstream ;;
	edge | edge-base) edge_upstream "$2" ;;
	*) wc -l <"$WORK/nginx/upstream.log" 2>/dev/null || echo 0 ;;
	esac
}

# --- the points ---------------------------------------------------------------
ROWS=$WORK/rows.tsv
: >"$ROWS"
# A first point ran measurably worse than the same point later in the run,
# whatever the target (the machine settling after start-up): an unrecorded
# warm-up point goes first.
if [ "${WARMUP:-10s}" != 0 ]; then
	log "warm-up: ${LISTENERS%% *} listeners on the origin for ${WARMUP:-10s}"
	"${GEN[@]}" "$AMPHI" loadtest "$ORIGIN_URL" --listeners "${LISTENERS%% *}" --duration "${WARMUP:-10s}" --ramp 2s \
		--mix "$MIX" >/dev/null 2>&1 || true
fi
# point TARGET N: one loadtest run, its row appended to $ROWS.TARGET.
point() {
	local target=$1 n=$2
	url=$ORIGIN_URL cache_pid=$NGINX_PID edge_port=
	[ "$target" = nginx ] && url=$NGINX_URL
	[ "$target" = varnish ] && url=$VARNISH_URL cache_pid=$VARNISH_PID
	[ "$target" = ats ] && url=$ATS_URL cache_pid=$ATS_PID
	[ "$target" = edge ] && url=$EDGE_URL cache_pid=$EDGE_PID edge_port=$EDGE_PORT
	[ "$target" = edge-base ] && url=$BASE_URL cache_pid=$BASE_PID edge_port=$BASE_PORT
	log "$target, $n listeners, $DURATION (ramp $RAMP), round $round of $ROUNDS"
	sleep 2 # let the previous point's connections close
	o0=$(cpu_ticks "$ORIGIN_PID"); g0=$(cpu_ticks "$cache_pid")
	up0=$(upstream_count "$target" "$edge_port")
	reset_peak "$ORIGIN_PID"; reset_peak "$cache_pid"
	json=$WORK/$target-$n-$round.json
	status=0
	"${GEN[@]}" "$AMPHI" loadtest "$url" --listeners "$n" --duration "$DURATION" --ramp "$RAMP" --mix "$MIX" \
		--json "$json" >"$WORK/$target-$n-$round.txt" 2>"$WORK/$target-$n-$round.progress" || status=$?
	o1=$(cpu_ticks "$ORIGIN_PID"); g1=$(cpu_ticks "$cache_pid")
	load=$(cut -d' ' -f1 /proc/loadavg) # other work on the machine shows here
	[ "$target" = ats ] && sleep 6 # ATS adds its threads' counts to its stats every 5 s
	up1=$(upstream_count "$target" "$edge_port")
	if [ ! -s "$json" ]; then
		log "loadtest failed (exit $status):"; tail -5 "$WORK/$target-$n-$round.progress" >&2
		return
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
		  (.total.part_latency_after_ramp.p99_ms // "-"),
		  (.total.time_to_first_audio.p99_ms // "-"),
		  "\(.total.stalls) (\(.total.stall_ratio * 1000 | round / 10)%)",
		  .total.errors_total, (.total.requests_per_s.total | floor), $orps,
		  $ocpu, $orss, $ncpu, $nrss, $uspart,
		  "\(.generator.cpu_s) (\(.generator.cores))", $load ] | @tsv' "$json" >>"$ROWS.$target"
}

# The origin, nginx and the edges are measured N by N, each N's points back
# to back, in an order that rotates from one N to the next: whichever point
# goes first has the quietest machine (a point after an overloaded one,
# nginx's at 5,000 listeners say, runs measurably worse), and a fixed order
# gave that to the same column every time. Varnish and ATS go last, each
# through every N: the points after theirs ran measurably worse (their
# thousands of threads and their memory linger; the load average stays high
# for a minute).
light=() heavy=()
for target in $TARGETS; do
	case $target in varnish | ats) heavy+=("$target") ;; *) light+=("$target") ;; esac
done
# With ROUNDS > 1 the whole sequence repeats, the rotation carrying on, so
# each column takes each place in the order in turn.
i=0
for round in $(seq "$ROUNDS"); do
	for n in $LISTENERS; do
		for k in "${!light[@]}"; do
			point "${light[$(((k + i) % ${#light[@]}))]}" "$n"
		done
		i=$((i + 1))
	done
done
for target in "${heavy[@]}"; do
	for round in $(seq "$ROUNDS"); do
		for n in $LISTENERS; do point "$target" "$n"; done
	done
done
for target in $TARGETS; do
	[ -f "$ROWS.$target" ] && sort -s -t$'\t' -k2,2n "$ROWS.$target" >>"$ROWS"
done

# medians: per target and N, the median of each figure over the rounds
# (the lower middle one for an even count), with the p99's range and the
# largest stall count beside it.
if [ "$ROUNDS" -gt 1 ]; then
	echo "Medians over $ROUNDS rounds:"
	echo
	echo "| target | N | part p50 ms | part p99 ms | p99 min | p99 max | p99 after ramp | TTFA p99 ms | stalls (max) | errors (sum) | server CPU µs/part | generator CPU-s |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	# From the rows: 3 p50, 4 p99, 5 p99 after the ramp, 6 TTFA p99,
	# 7 stalls ("N (x%)"), 8 errors, 15 µs/part, 16 generator CPU-s
	# ("s (cores)").
	awk -F'\t' '
		function med(col,   k, n, v, i, j, t, x) {
			n = 0
			for (k = 1; k <= cnt[key]; k++) { x = val[key, k, col]; if (x != "-") v[++n] = x + 0 }
			if (n == 0) return "-"
			for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
			return v[int((n + 1) / 2)]
		}
		function ext(col, hi,   k, x, r) {
			r = ""
			for (k = 1; k <= cnt[key]; k++) {
				x = val[key, k, col]; if (x == "-") continue
				if (r == "" || (hi && x + 0 > r + 0) || (!hi && x + 0 < r + 0)) r = x
			}
			return r == "" ? "-" : r
		}
		{ sub(/ .*/, "", $7); sub(/ .*/, "", $16)
		  key = $1 SUBSEP $2; if (!(key in cnt)) order[++nk] = key
		  cnt[key]++; for (c = 1; c <= NF; c++) val[key, cnt[key], c] = $c; tgt[key] = $1; lis[key] = $2 }
		END {
			for (o = 1; o <= nk; o++) {
				key = order[o]; errs = 0
				for (k = 1; k <= cnt[key]; k++) errs += val[key, k, 8]
				printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s (%s) | %d | %s | %s |\n", tgt[key], lis[key],
					med(3), med(4), ext(4, 0), ext(4, 1), med(5), med(6), med(7), ext(7, 1), errs, med(15), med(16)
			}
		}' "$ROWS"
	echo
	echo "Every point:"
	echo
fi

echo "| target | N | part p50 ms | part p99 ms | p99 after ramp | TTFA p99 ms | stalls (time) | errors | req/s | origin req/s | origin CPU-s | origin peak RSS MiB | cache CPU-s | cache peak RSS MiB | server CPU µs/part | generator CPU-s (cores) | load avg |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
sed 's/\t/ | /g; s/^/| /; s/$/ |/' "$ROWS"
echo
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); points of $DURATION, ramp $RAMP, mix $MIX; GOMAXPROCS ${GOMAXPROCS:-default} for amphi; $pinned; CPU-s over each point"
