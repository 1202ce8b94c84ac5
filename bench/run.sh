#!/usr/bin/env bash
# Echo-server benchmark runner.
#
#   bench/run.sh BUILD_DIR [NAME=COMMAND ...]
#
# BUILD_DIR holds the built bench programs, either as automake lays them out
# (BUILD_DIR/bench/loadgen, BUILD_DIR/bench/servers/epoll_echo, ...) or flat
# (BUILD_DIR/loadgen, BUILD_DIR/servers/...; see bench/build.sh).  The four
# anchor servers found there (epoll, libevent, bufferevent, libuv) are always
# run unless BENCH_ANCHORS=0; each NAME=COMMAND argument adds one server:
#
#   bench/run.sh build 'tide=build/samples/echod --listen 127.0.0.1:0 --quiet'
#
# A server command must listen on the loopback, pick a free port when told
# port 0, and print "listening on ADDR:PORT" on stdout or stderr.
#
# Workloads: 1 conn ping-pong 64 B; 50 conns ping-pong 64 B; 50 conns 16 KiB
# pipelined depth 4; 1000 conns ping-pong 64 B; 10000 idle connections.
# Servers run pinned to one CPU and the load generator to another, in
# alternation (A B C D A B C D ...) for BENCH_ROUNDS rounds; each measurement
# gets a fresh server process.  Per round and server it takes:
#   - a throughput pass: msgs/s, round-trip percentiles, server CPU time per
#     message over the measured window only, peak RSS (VmHWM);
#   - a counting pass on a fresh server started under malloc_count.so with
#     `perf stat` attached: system calls and heap allocations per message,
#     both counted over exactly the measured window (the load generator
#     toggles perf and signals the malloc counter at the window's edges);
#   - for the idle workload: RSS before and after the connections were
#     accepted, per connection.
# Ratios to epoll are taken pair by pair within a round; medians reported.
#
# Writes RESULTS.md, results.svg and results-raw.tsv into BENCH_OUT (default:
# the directory of this script).
#
# Settings (environment):
#   BENCH_ROUNDS=3          rounds of alternation
#   BENCH_DURATION=2        measured window of a throughput pass, seconds
#   BENCH_WARMUP=0.5        load before each window, seconds
#   BENCH_COUNT_DURATION=1  measured window of a counting pass, seconds
#   BENCH_IDLE_CONNS=10000  connections of the idle workload
#   BENCH_IDLE_HOLD=1       how long they are held, seconds
#   BENCH_WORKLOADS="pp1 pp50 pipe50 pp1000 idle"   subset to run
#   BENCH_ANCHORS=1         0: run only the servers given as arguments
#   BENCH_COUNT=1           0: skip the counting passes
#   BENCH_SYSCALL_TOOL=     perf or strace (default: perf if it works) or none
#   BENCH_SERVER_CPU=0 BENCH_LOADGEN_CPU=1
#   BENCH_OUT=<script dir>
set -u -o pipefail

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-2}
WARMUP=${BENCH_WARMUP:-0.5}
COUNT_DURATION=${BENCH_COUNT_DURATION:-1}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
IDLE_HOLD=${BENCH_IDLE_HOLD:-1}
WORKLOADS=${BENCH_WORKLOADS:-pp1 pp50 pipe50 pp1000 idle}
ANCHORS=${BENCH_ANCHORS:-1}
DO_COUNT=${BENCH_COUNT:-1}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOADGEN_CPU=${BENCH_LOADGEN_CPU:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${BENCH_OUT:-$HERE}

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

[ $# -ge 1 ] || die "usage: run.sh BUILD_DIR [NAME=COMMAND ...]"
INVOCATION="bench/run.sh$(printf ' %q' "$@")"
BUILD=$(cd "$1" && pwd) || die "no directory $1"
shift

# Finds a built program under BUILD in either layout; libtool puts shared
# objects in .libs/.
find_built() {
	local p
	for p in "$BUILD/bench/$1" "$BUILD/$1" "$BUILD/bench/.libs/$1" "$BUILD/.libs/$1"; do
		[ -e "$p" ] && { echo "$p"; return 0; }
	done
	return 1
}

LOADGEN=$(find_built loadgen) || die "no loadgen under $BUILD (build it: bench/build.sh DIR, or make bench)"
MALLOC_COUNT=$(find_built malloc_count.so) || MALLOC_COUNT=

# ------------------------------------------------------------ servers
NAMES=()
declare -A CMD=()
add_server() {
	local name=$1 cmd=$2
	[[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad server name '$name' (letters, digits, _ . -)"
	[ -z "${CMD[$name]+x}" ] || die "server '$name' given twice"
	NAMES+=("$name")
	CMD[$name]=$cmd
}
if [ "$ANCHORS" = 1 ]; then
	for a in epoll:epoll_echo libevent:libevent_echo bufferevent:bufferevent_echo libuv:libuv_echo; do
		if p=$(find_built "servers/${a#*:}"); then
			add_server "${a%%:*}" "$p 0"
		else
			log "anchor ${a#*:} not built; skipped"
		fi
	done
fi
for arg in "$@"; do
	[[ $arg == *=* ]] || die "server argument must be NAME=COMMAND: $arg"
	add_server "${arg%%=*}" "${arg#*=}"
done
[ ${#NAMES[@]} -gt 0 ] || die "no servers to run"

# ------------------------------------------------------------- tools
command -v taskset >/dev/null || die "taskset is missing (util-linux)"
NCPU=$(nproc)
if [ "$SERVER_CPU" -ge "$NCPU" ] || [ "$LOADGEN_CPU" -ge "$NCPU" ]; then
	die "CPUs $SERVER_CPU and $LOADGEN_CPU are not both online ($NCPU CPUs)"
fi

# System calls are counted with perf's syscall tracepoints when they work
# (cheap, and perf can be switched on and off at the window's edges); strace
# -c is the fallback, far more intrusive, so its figures are marked.
SYSCALL_TOOL=${BENCH_SYSCALL_TOOL:-}
SC_EVENTS="raw_syscalls:sys_enter"
for s in read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait epoll_pwait2 epoll_ctl; do
	SC_EVENTS+=",syscalls:sys_enter_$s"
done
if [ "$DO_COUNT" = 1 ] && [ -z "$SYSCALL_TOOL" ]; then
	SYSCALL_TOOL=none
	ls /sys/kernel/tracing/events >/dev/null 2>&1 # tracefs mounts on first access
	perf_help=$(perf stat -h 2>&1 || true)
	if command -v perf >/dev/null && perf stat -x, -e "$SC_EVENTS" -o /dev/null true >/dev/null 2>&1 &&
		[[ $perf_help == *--control* ]]; then
		SYSCALL_TOOL=perf
	elif command -v strace >/dev/null; then
		SYSCALL_TOOL=strace
		log "perf syscall tracepoints unusable; falling back to strace -c (slow: counts are approximate)"
	else
		log "neither perf nor strace works: no system call counts"
	fi
fi
[ "$DO_COUNT" = 1 ] || SYSCALL_TOOL=none
[[ $SYSCALL_TOOL =~ ^(perf|strace|none)$ ]] || die "BENCH_SYSCALL_TOOL: perf, strace or none"
[ "$DO_COUNT" = 0 ] || [ -n "$MALLOC_COUNT" ] || log "malloc_count.so not built: no allocation counts"

# Descriptors: the idle workload needs one per connection in both processes.
want_fds=$((IDLE_CONNS + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
	ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" ||
		die "cannot raise the descriptor limit"
	if [ "$(ulimit -n)" -lt "$want_fds" ]; then
		IDLE_CONNS=$(( $(ulimit -n) - 256 ))
		log "descriptor limit $(ulimit -n): idle workload reduced to $IDLE_CONNS connections"
	fi
fi

TMP=$(mktemp -d /tmp/bench-run.XXXXXX)
SPID='' PERFPID=''
cleanup() {
	[ -n "$PERFPID" ] && kill -INT "$PERFPID" 2>/dev/null
	[ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ helpers

# start_server NAME [ENV=VALUE ...]: starts a fresh server pinned to
# SERVER_CPU; sets SPID and SPORT.  The PID is the server's own: env,
# taskset and bash all exec.
start_server() {
	local name=$1; shift
	local out=$TMP/server.out
	: >"$out"
	env "$@" taskset -c "$SERVER_CPU" bash -c "exec ${CMD[$name]}" >"$out" 2>&1 </dev/null &
	SPID=$!
	SPORT=
	local i line
	for ((i = 0; i < 500; i++)); do
		line=$(grep -m1 -o 'listening on [^ ]*' "$out" 2>/dev/null) && {
			SPORT=${line##*:}
			[[ $SPORT =~ ^[0-9]+$ ]] && return 0
		}
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.01
	done
	if kill -0 "$SPID" 2>/dev/null; then
		log "$name printed no 'listening on ADDR:PORT' within 5 s:"
	else
		log "$name exited at start:"
	fi
	sed 's/^/    /' "$out" | head -20 >&2
	stop_server
	return 1
}

stop_server() {
	[ -n "$SPID" ] || return 0
	kill -TERM "$SPID" 2>/dev/null
	local i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.01
	done
	kill -KILL "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
	SPID=
}

# run_loadgen ARGS...: runs the generator pinned to LOADGEN_CPU against the
# current server; sets LG to its machine-readable line and LGRC to its exit
# status.  Its own alarm bounds it; timeout(1) is a second fence.
run_loadgen() {
	timeout -k 5 120 taskset -c "$LOADGEN_CPU" "$LOADGEN" --port "$SPORT" \
		--server-pid "$SPID" --quiet "$@" >"$TMP/lg.out" 2>"$TMP/lg.err"
	LGRC=$?
	LG=$(grep '^msgs=' "$TMP/lg.out" | tail -1)
	if [ "$LGRC" != 0 ]; then
		log "loadgen failed (exit $LGRC):"
		sed 's/^/    /' "$TMP/lg.err" | head -10 >&2
	fi
}

# kv KEY: a value from the loadgen line in LG, or NA.
kv() {
	local v
	v=$(tr ' ' '\n' <<<"$LG" | sed -n "s/^$1=//p" | head -1)
	echo "${v:-NA}"
}

# div A B: A/B with 4 decimals, NA if either is NA or B is 0.
div() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "NA" || b == "NA" || b + 0 == 0) print "NA"; else printf "%.4f\n", a / b }'
}

# Workload definitions: loadgen arguments and a title.
declare -A WL_ARGS=(
	[pp1]="--conns 1 --size 64 --depth 1"
	[pp50]="--conns 50 --size 64 --depth 1"
	[pipe50]="--conns 50 --size 16384 --depth 4"
	[pp1000]="--conns 1000 --size 64 --depth 1"
	[idle]="--conns $IDLE_CONNS --idle"
)
declare -A WL_TITLE=(
	[pp1]="1 connection, ping-pong, 64 B"
	[pp50]="50 connections, ping-pong, 64 B"
	[pipe50]="50 connections, 16 KiB messages, pipelined depth 4"
	[pp1000]="1000 connections, ping-pong, 64 B"
	[idle]="$IDLE_CONNS idle connections"
)
for w in $WORKLOADS; do
	[ -n "${WL_ARGS[$w]+x}" ] || die "unknown workload '$w' (pp1 pp50 pipe50 pp1000 idle)"
done

RAW=$TMP/raw.tsv
COLS="workload round server msgs_per_s cpu_us_per_msg server_util p50_us p99_us p999_us hwm_kb errors"
COLS+=" sc_per_msg sc_read sc_write sc_epoll_wait sc_epoll_ctl allocs_per_msg frees_per_msg"
COLS+=" rss_before_kb rss_after_kb rss_per_conn_b loadgen_util"
tr ' ' '\t' <<<"$COLS" >"$RAW"
FAILURES=0

# The passes below set globals rather than print, so that they run in this
# shell: the server PID they start stays known to the EXIT trap.

# throughput_pass W NAME: sets TP to the throughput columns.
throughput_pass() {
	local w=$1 name=$2
	TP="NA NA NA NA NA NA NA FAIL" GENUTIL=NA
	start_server "$name" || return 0
	# shellcheck disable=SC2086
	run_loadgen ${WL_ARGS[$w]} --duration "$DURATION" --warmup "$WARMUP"
	stop_server
	[ "$LGRC" = 0 ] || return 0
	TP="$(kv msgs_per_s) $(kv cpu_us_per_msg) $(kv server_cpu_util) $(kv p50_us)"
	TP+=" $(kv p99_us) $(kv p999_us) $(kv server_hwm_kb) $(kv errors)"
	GENUTIL=$(kv loadgen_cpu_util)
}

# count_pass W NAME: sets CT to the per-message system call and allocation
# columns, counted over the measured window only.
count_pass() {
	local w=$1 name=$2
	CT="NA NA NA NA NA NA NA"
	[ "$DO_COUNT" = 1 ] || return 0
	local env=() mc=$TMP/malloc.out
	rm -f "$mc"
	[ -n "$MALLOC_COUNT" ] && env=(LD_PRELOAD="$MALLOC_COUNT" MALLOC_COUNT_OUT="$mc")
	start_server "$name" "${env[@]}" || { CT="NA NA NA NA NA NA FAIL"; return 0; }

	local lgargs=(--duration "$COUNT_DURATION" --warmup "$WARMUP")
	local pout=$TMP/perf.out
	rm -f "$pout" "$TMP/ctl" "$TMP/ack"
	case $SYSCALL_TOOL in
	perf)
		mkfifo "$TMP/ctl" "$TMP/ack"
		taskset -c "$LOADGEN_CPU" perf stat -D -1 --control "fifo:$TMP/ctl,$TMP/ack" -x, \
			-o "$pout" -e "$SC_EVENTS" -p "$SPID" >/dev/null 2>&1 &
		PERFPID=$!
		lgargs+=(--perf-ctl "$TMP/ctl,$TMP/ack")
		;;
	strace)
		# strace cannot be switched at the window's edges: count the
		# whole run, connection setup included, without warmup.
		strace -c -f -p "$SPID" -o "$pout" 2>/dev/null &
		PERFPID=$!
		sleep 0.3
		lgargs=(--duration "$COUNT_DURATION" --warmup 0)
		;;
	esac
	[ -n "$MALLOC_COUNT" ] && lgargs+=(--usr2)
	# shellcheck disable=SC2086
	run_loadgen ${WL_ARGS[$w]} "${lgargs[@]}"
	if [ -n "$PERFPID" ]; then
		kill -INT "$PERFPID" 2>/dev/null
		wait "$PERFPID" 2>/dev/null
		PERFPID=
	fi
	# The counter writes its second line when the server takes the signal.
	local i
	for ((i = 0; i < 100 && ${#MALLOC_COUNT} > 0; i++)); do
		[ "$(wc -l <"$mc" 2>/dev/null || echo 0)" -ge 2 ] && break
		sleep 0.02
	done
	stop_server
	[ "$LGRC" = 0 ] || { CT="NA NA NA NA NA NA FAIL"; return 0; }

	local msgs
	msgs=$(kv msgs)
	[ "$SYSCALL_TOOL" = strace ] && msgs=$(kv msgs_total)
	local sc="NA NA NA NA NA"
	if [ "$SYSCALL_TOOL" = perf ] && [ -s "$pout" ]; then
		sc=$(awk -F, -v m="$msgs" '
			function per(x) { return (m == "NA" || m + 0 == 0) ? "NA" : sprintf("%.4f", x / m) }
			$3 ~ /:sys_enter/ { n[$3] = ($1 ~ /^[0-9]+$/) ? $1 : 0 }
			END {
				rd = n["syscalls:sys_enter_read"] + n["syscalls:sys_enter_readv"] + \
				     n["syscalls:sys_enter_recvfrom"] + n["syscalls:sys_enter_recvmsg"]
				wr = n["syscalls:sys_enter_write"] + n["syscalls:sys_enter_writev"] + \
				     n["syscalls:sys_enter_sendto"] + n["syscalls:sys_enter_sendmsg"]
				ew = n["syscalls:sys_enter_epoll_wait"] + n["syscalls:sys_enter_epoll_pwait"] + \
				     n["syscalls:sys_enter_epoll_pwait2"]
				print per(n["raw_syscalls:sys_enter"]), per(rd), per(wr), per(ew), \
				      per(n["syscalls:sys_enter_epoll_ctl"])
			}' "$pout")
	elif [ "$SYSCALL_TOOL" = strace ] && [ -s "$pout" ]; then
		# strace -c rows: % time, seconds, usecs/call, calls, [errors,] name
		sc=$(awk -v m="$msgs" '
			function per(x) { return (m == "NA" || m + 0 == 0) ? "NA" : sprintf("%.4f", x / m) }
			function calls() { return (NF == 6) ? $4 : $(NF - 1) }
			$NF == "total" { tot = calls() }
			$NF ~ /^(read|readv|recvfrom|recvmsg)$/ { rd += calls() }
			$NF ~ /^(write|writev|sendto|sendmsg)$/ { wr += calls() }
			$NF ~ /^epoll_(wait|pwait|pwait2)$/ { ew += calls() }
			$NF == "epoll_ctl" { ec += calls() }
			END { print per(tot), per(rd), per(wr), per(ew), per(ec) }' "$pout")
	fi
	local al="NA NA"
	if [ -n "$MALLOC_COUNT" ] && [ "$(wc -l <"$mc" 2>/dev/null || echo 0)" -ge 2 ]; then
		al=$(awk -v m="$msgs" '
			function per(x) { return (m == "NA" || m + 0 == 0) ? "NA" : sprintf("%.4f", x / m) }
			function get(k,   i, f) { for (i = 1; i <= NF; i++) { split($i, f, "="); if (f[1] == k) return f[2] } }
			NR == 1 { a0 = get("allocs"); f0 = get("free") }
			NR == 2 { a1 = get("allocs"); f1 = get("free") }
			END { print per(a1 - a0), per(f1 - f0) }' "$mc")
	fi
	CT="$sc $al"
}

# idle_pass NAME: sets ID to the idle-memory columns and HWM.
idle_pass() {
	local name=$1
	ID="NA NA FAIL" HWM=NA
	start_server "$name" || return 0
	# shellcheck disable=SC2086
	run_loadgen ${WL_ARGS[idle]} --duration "$IDLE_HOLD" --connect-timeout 30
	stop_server
	[ "$LGRC" = 0 ] || return 0
	ID="$(kv server_rss_before_kb) $(kv server_rss_after_kb) $(kv rss_per_conn_b)"
	HWM=$(kv server_hwm_kb)
}

# ---------------------------------------------------------------- run
nwl=0 nidle=0
for w in $WORKLOADS; do [ "$w" = idle ] && nidle=1 || nwl=$((nwl + 1)); done
per_pass=$(awk -v d="$DURATION" -v w="$WARMUP" -v c="$COUNT_DURATION" -v k="$DO_COUNT" -v h="$IDLE_HOLD" \
	'BEGIN { printf "%d %d", d + w + 0.4 + k * (c + w + 0.6), h + 1.5 }')
est=$(( (nwl * ${per_pass% *} + nidle * ${per_pass#* }) * ROUNDS * ${#NAMES[@]} ))
log "servers: ${NAMES[*]}; workloads: $WORKLOADS; $ROUNDS rounds; about $((est / 60)) min $((est % 60)) s"
log "syscalls counted with: $SYSCALL_TOOL; allocations: ${MALLOC_COUNT:-not counted}"
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

for w in $WORKLOADS; do
	for ((round = 1; round <= ROUNDS; round++)); do
		for name in "${NAMES[@]}"; do
			if [ "$w" = idle ]; then
				idle_pass "$name"
				row="NA NA NA NA NA NA $HWM 0 NA NA NA NA NA NA NA $ID NA"
				read -r rb ra pc <<<"$ID"
				log "$w round $round $name: RSS $rb -> $ra kB, $pc B/conn"
			else
				throughput_pass "$w" "$name"
				count_pass "$w" "$name"
				row="$TP $CT NA NA NA $GENUTIL"
				read -r mps cpm _ <<<"$TP"
				read -r scm _ _ _ _ apm _ <<<"$CT"
				log "$w round $round $name: $mps msgs/s, $cpm us CPU/msg, $scm syscalls/msg, $apm allocs/msg"
			fi
			[[ $row == *FAIL* ]] && FAILURES=$((FAILURES + 1))
			echo "$w $round $name $row" | tr ' ' '\t' >>"$RAW"
		done
	done
done
T_END=$(date +%s)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------- report
mkdir -p "$OUT"
cp "$RAW" "$OUT/results-raw.tsv"
REPORT_ENV=(
	-v rounds="$ROUNDS" -v duration="$DURATION" -v warmup="$WARMUP"
	-v count_duration="$COUNT_DURATION" -v idle_hold="$IDLE_HOLD"
	-v sctool="$SYSCALL_TOOL" -v malloc="${MALLOC_COUNT:+yes}"
	-v order="${NAMES[*]}" -v workloads="$WORKLOADS"
	-v cpu="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
	-v ncpu="$NCPU" -v kernel="$(uname -r)" -v when="$(date -u '+%Y-%m-%d %H:%M UTC')"
	-v elapsed="$((T_END - T_START))" -v scpu="$SERVER_CPU" -v lcpu="$LOADGEN_CPU"
	-v t_pp1="${WL_TITLE[pp1]}" -v t_pp50="${WL_TITLE[pp50]}" -v t_pipe50="${WL_TITLE[pipe50]}"
	-v t_pp1000="${WL_TITLE[pp1000]}" -v t_idle="${WL_TITLE[idle]}"
	-v cmdline="$INVOCATION"
	-v tmp="$TMP" -v load_start="$LOAD_START" -v load_end="$LOAD_END"
)
awk -F'\t' "${REPORT_ENV[@]}" -f "$HERE/report.awk" "$RAW" >"$OUT/RESULTS.md"

# Chart: gnuplot reads the per-workload medians report.awk left in TMP.
if command -v gnuplot >/dev/null && [ -s "$TMP/chart-msgs.dat" ]; then
	nserv=${#NAMES[@]}
	{
		echo 'set terminal svg size 1000,1050 dynamic font "sans,11" background "white"'
		echo "set output '$OUT/results.svg'"
		echo 'set style data histograms'
		echo 'set style histogram clustered gap 1'
		echo 'set style fill solid 0.85 border -1'
		echo 'set boxwidth 0.9'
		echo 'set grid ytics'
		echo 'set key outside top center horizontal'
		echo 'set yrange [0:*]'
		echo 'set xtics nomirror'
		echo 'set datafile missing "NA"'
		[ -s "$TMP/chart-idle.dat" ] && echo 'set multiplot layout 3,1' || echo 'set multiplot layout 2,1'
		echo "set title 'Throughput (median of $ROUNDS rounds; higher is better)'"
		echo "set ylabel 'messages/s'"
		echo 'set format y "%.0s%c"'
		echo "plot for [i=2:$((nserv + 1))] '$TMP/chart-msgs.dat' using i:xtic(1) title columnheader(i)"
		echo "set title 'Server CPU time per message (median; lower is better)'"
		echo "set ylabel 'CPU µs / message'"
		echo 'set format y "%g"'
		echo "plot for [i=2:$((nserv + 1))] '$TMP/chart-cpu.dat' using i:xtic(1) title columnheader(i)"
		if [ -s "$TMP/chart-idle.dat" ]; then
			echo "set title 'Server memory per idle connection (RSS growth / connections; lower is better)'"
			echo "set ylabel 'bytes / connection'"
			echo "plot for [i=2:$((nserv + 1))] '$TMP/chart-idle.dat' using i:xtic(1) title columnheader(i)"
		fi
		echo 'unset multiplot'
	} >"$TMP/chart.gp"
	gnuplot "$TMP/chart.gp" 2>"$TMP/gnuplot.err" || { log "gnuplot failed:"; cat "$TMP/gnuplot.err" >&2; }
else
	log "gnuplot not found (apt-get install gnuplot-nox): no chart"
fi

log "done in $((T_END - T_START)) s: $OUT/RESULTS.md"
[ "$FAILURES" = 0 ] || { log "$FAILURES measurements failed; see RESULTS.md"; exit 1; }
