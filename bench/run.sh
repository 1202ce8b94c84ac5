#!/usr/bin/env bash
# Echo-server benchmark runner.
#
#   bench/run.sh BUILD_DIR [NAME=COMMAND ...]
#   bench/run.sh --analysis     (only copy analysis.md into RESULTS.md)
#
# BUILD_DIR holds the built bench programs, either as automake lays them out
# (BUILD_DIR/bench/loadgen, BUILD_DIR/bench/servers/epoll_echo, ...) or flat
# (BUILD_DIR/loadgen, BUILD_DIR/servers/...; see bench/build.sh).  The four
# anchor servers found there (epoll, libevent, bufferevent, libuv) are always
# run unless BENCH_ANCHORS=0, and so is tide's echo daemon when the tree is
# a tide build tree (BUILD_DIR/samples/tide-echod; unless BENCH_TIDE=0);
# each NAME=COMMAND argument adds one server:
#
#   bench/run.sh build 'other=/path/to/server --port 0'
#
# A server command must listen on the loopback, pick a free port when told
# port 0, and print "listening on ADDR:PORT" on stdout or stderr.
#
# Workloads: 1 conn ping-pong 64 B; 50 conns ping-pong 64 B; 50 conns 16 KiB
# pipelined depth 4; 1000 conns ping-pong 64 B; 10000 idle connections.
# Servers run pinned to one CPU and the load generator to another, in
# alternation (A B C D A B C D ...) for BENCH_ROUNDS rounds, in the order
# epoll, tide, bufferevent, libevent, libuv, then the arguments' servers (so
# that tide runs next to the two it is compared with); each measurement
# gets a fresh server process.  Per round and server it takes:
#   - a throughput pass: msgs/s, round-trip percentiles, server CPU time per
#     message over the measured window only, peak RSS (VmHWM);
#   - in the first BENCH_COUNT_ROUNDS rounds, a counting pass on a fresh
#     server started under malloc_count.so with `perf stat` attached: system
#     calls and heap allocations per message, both counted over exactly the
#     measured window (the load generator toggles perf and signals the
#     malloc counter at the window's edges); these hardly move from round to
#     round, unlike throughput;
#   - for the idle workload, in the first BENCH_IDLE_ROUNDS rounds: RSS
#     before and after the connections were accepted, per connection.
# Ratios to epoll are taken pair by pair within a round; medians reported.
# Many short rounds rather than a few long ones: other programs come and
# go on a shared machine, and the closer in time two measurements are, the
# likelier they saw the same machine.
# Then, once per workload and server, a callgrind pass: the server runs
# under valgrind --tool=callgrind twice, the load generator sends a fixed
# number of messages per connection (two counts), and the difference of the
# instructions over the difference of the messages is the server's
# user-space instructions per message: unlike CPU time, the same from run
# to run on a busy machine.  Last, the microbenchmarks of tide's runtime
# (BUILD_DIR/bench/micro): timed, and counted under callgrind the same way.
#
# Writes RESULTS.md, results.svg, results-raw.tsv, results-callgrind.tsv
# and results-micro.tsv into BENCH_OUT (default: the directory of this
# script).  RESULTS.md ends with analysis.md from this directory, the
# hand-written explanation of the figures.
#
# Settings (environment):
#   BENCH_ROUNDS=6          rounds of alternation
#   BENCH_COUNT_ROUNDS=3    rounds that also count system calls and allocations
#   BENCH_IDLE_ROUNDS=1     rounds of the idle workload
#   BENCH_DURATION=1        measured window of a throughput pass, seconds
#   BENCH_WARMUP=0.5        load before each window, seconds
#   BENCH_COUNT_DURATION=1  measured window of a counting pass, seconds
#   BENCH_IDLE_CONNS=10000  connections of the idle workload
#   BENCH_IDLE_HOLD=1       how long they are held, seconds
#   BENCH_WORKLOADS="pp1 pp50 pipe50 pp1000 idle"   subset to run
#   BENCH_ANCHORS=1         0: run only the servers given as arguments
#   BENCH_TIDE=1            0: leave tide's echo daemon out
#   BENCH_COUNT=1           0: skip the counting passes
#   BENCH_CALLGRIND=1       0: skip the callgrind passes (servers and micro)
#   BENCH_MICRO=1           0: skip the microbenchmarks
#   BENCH_MICRO_RUNS=5      timed runs of each microbenchmark (median)
#   BENCH_TLS=1             0: skip the TLS comparison (bench/tls.sh: tide-echod
#                           --tls-cert against bufferevent_openssl, after the
#                           rest; skipped with a note where OpenSSL is absent)
#   BENCH_SYSCALL_TOOL=     perf or strace (default: perf if it works) or none
#   BENCH_SERVER_CPU=0 BENCH_LOADGEN_CPU=1
#   BENCH_OUT=<script dir>
#   BENCH_COMMIT=           what RESULTS.md says was measured (default: git
#                           describe of this script's tree)
set -u -o pipefail

ROUNDS=${BENCH_ROUNDS:-6}
COUNT_ROUNDS=${BENCH_COUNT_ROUNDS:-3}
IDLE_ROUNDS=${BENCH_IDLE_ROUNDS:-1}
DURATION=${BENCH_DURATION:-1}
WARMUP=${BENCH_WARMUP:-0.5}
COUNT_DURATION=${BENCH_COUNT_DURATION:-1}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
IDLE_HOLD=${BENCH_IDLE_HOLD:-1}
WORKLOADS=${BENCH_WORKLOADS:-pp1 pp50 pipe50 pp1000 idle}
ANCHORS=${BENCH_ANCHORS:-1}
DO_TIDE=${BENCH_TIDE:-1}
DO_COUNT=${BENCH_COUNT:-1}
DO_CALLGRIND=${BENCH_CALLGRIND:-1}
DO_MICRO=${BENCH_MICRO:-1}
MICRO_RUNS=${BENCH_MICRO_RUNS:-5}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
LOADGEN_CPU=${BENCH_LOADGEN_CPU:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${BENCH_OUT:-$HERE}

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# bench/run.sh --analysis: put the current analysis.md into RESULTS.md
# (between its markers), measuring nothing.
if [ "${1:-}" = --analysis ]; then
	f=$OUT/RESULTS.md
	grep -q '^<!-- analysis -->$' "$f" || die "$f has no analysis markers"
	awk -v a="$HERE/analysis.md" '
		/^<!-- analysis -->$/ { print; while ((getline l < a) > 0) print l; skip = 1; next }
		/^<!-- end of analysis -->$/ { skip = 0 }
		!skip' "$f" >"$f.new" && mv "$f.new" "$f"
	exit
fi

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

MICRO=$(find_built micro) || MICRO=

# ------------------------------------------------------------ servers
NAMES=()
declare -A CMD=() SENV=()
add_server() {
	local name=$1 cmd=$2
	[[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad server name '$name' (letters, digits, _ . -)"
	[ -z "${CMD[$name]+x}" ] || die "server '$name' given twice"
	NAMES+=("$name")
	CMD[$name]=$cmd
}
add_anchor() {
	[ "$ANCHORS" = 1 ] || return 0
	local p
	if p=$(find_built "servers/$1_echo"); then
		add_server "$1" "$p 0"
	else
		log "anchor $1_echo not built; skipped"
	fi
}
add_anchor epoll

# tide's echo daemon.  With shared libraries, libtool makes
# samples/tide-echod a wrapper script and puts the program in
# samples/.libs/: run the program itself, with the uninstalled library on
# LD_LIBRARY_PATH, so that the PID measured, LD_PRELOAD and valgrind all
# apply to the daemon and not to a shell.  Built with --disable-shared,
# samples/tide-echod is the program.
is_elf() { [ -f "$1" ] && [ -x "$1" ] && [ "$(head -c 4 "$1" | tail -c 3)" = ELF ]; }
if [ "$DO_TIDE" = 1 ]; then
	TIDE_ECHOD=
	for p in "$BUILD/samples/.libs/tide-echod" "$BUILD/samples/tide-echod"; do
		is_elf "$p" && { TIDE_ECHOD=$p; break; }
	done
	if [ -n "$TIDE_ECHOD" ]; then
		add_server tide "$TIDE_ECHOD --listen 127.0.0.1:0 --quiet"
		[ -d "$BUILD/src/.libs" ] && SENV[tide]="LD_LIBRARY_PATH=$BUILD/src/.libs"
	else
		log "tide-echod not built under $BUILD/samples (make bench builds it); tide skipped"
	fi
fi
add_anchor bufferevent
add_anchor libevent
add_anchor libuv
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
if [ "$DO_CALLGRIND" = 1 ] && ! command -v valgrind >/dev/null; then
	log "valgrind not found (apt-get install valgrind): no instruction counts"
	DO_CALLGRIND=0
fi
if [ "$DO_MICRO" = 1 ] && [ -z "$MICRO" ]; then
	log "micro not built (make bench-build): no microbenchmarks"
	DO_MICRO=0
fi

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
# taskset and bash all exec.  WRAP, if set, is put before the server's
# command (valgrind), and START_WAIT is how long it may take to listen.
WRAP='' START_WAIT=5
start_server() {
	local name=$1; shift
	local out=$TMP/server.out
	: >"$out"
	env ${SENV[$name]:+"${SENV[$name]}"} "$@" taskset -c "$SERVER_CPU" \
		bash -c "exec $WRAP${CMD[$name]}" >"$out" 2>&1 </dev/null &
	SPID=$!
	SPORT=
	local i line
	for ((i = 0; i < START_WAIT * 100; i++)); do
		line=$(grep -m1 -o 'listening on [^ ]*' "$out" 2>/dev/null) && {
			SPORT=${line##*:}
			[[ $SPORT =~ ^[0-9]+$ ]] && return 0
		}
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.01
	done
	if kill -0 "$SPID" 2>/dev/null; then
		log "$name printed no 'listening on ADDR:PORT' within $START_WAIT s:"
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
	for ((i = 0; i < START_WAIT * 40; i++)); do
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

# Messages per connection of the two callgrind runs of each workload:
# enough that the difference dwarfs the noise of start-up and connection
# set-up (the same in both runs), few enough to be quick under valgrind.
declare -A CG_MSGS=(
	[pp1]="2000 12000"
	[pp50]="100 500"
	[pipe50]="20 100"
	[pp1000]="5 25"
)

# callgrind_run W NAME N: the server under callgrind, N messages per
# connection of workload W; sets CGLINE to "instructions messages" (NA NA
# on failure).
callgrind_run() {
	local w=$1 name=$2 n=$3 cg=$TMP/callgrind.out
	CGLINE="NA NA"
	rm -f "$cg"
	WRAP="valgrind --tool=callgrind --callgrind-out-file=$cg " START_WAIT=30
	if start_server "$name"; then
		# shellcheck disable=SC2086
		run_loadgen ${WL_ARGS[$w]} --messages "$n" --warmup 0 --duration 60
		stop_server
	fi
	WRAP='' START_WAIT=5
	[ "$LGRC" = 0 ] && [ -s "$cg" ] || return 0
	local ir
	ir=$(awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$cg")
	[ -n "$ir" ] && CGLINE="$ir $(kv msgs_total)"
}

# callgrind_pass W NAME: sets CG to "ir1 msgs1 ir2 msgs2 ir_per_msg".
callgrind_pass() {
	local w=$1 name=$2 n1 n2 a b
	read -r n1 n2 <<<"${CG_MSGS[$w]}"
	callgrind_run "$w" "$name" "$n1"; a=$CGLINE
	callgrind_run "$w" "$name" "$n2"; b=$CGLINE
	CG="$a $b $(awk -v a="$a" -v b="$b" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		if (x[1] == "NA" || y[1] == "NA" || y[2] - x[2] <= 0) print "NA"
		else printf "%.1f\n", (y[1] - x[1]) / (y[2] - x[2]) }')"
}

# ---------------------------------------------------------------- run
nwl=0 nidle=0
for w in $WORKLOADS; do [ "$w" = idle ] && nidle=1 || nwl=$((nwl + 1)); done
n_count_rounds=$((COUNT_ROUNDS < ROUNDS ? COUNT_ROUNDS : ROUNDS))
n_idle_rounds=$((IDLE_ROUNDS < ROUNDS ? IDLE_ROUNDS : ROUNDS))
est=$(awk -v d="$DURATION" -v w="$WARMUP" -v c="$COUNT_DURATION" -v k="$DO_COUNT" -v h="$IDLE_HOLD" \
	-v r="$ROUNDS" -v cr="$n_count_rounds" -v ir="$n_idle_rounds" -v nw="$nwl" -v ni="$nidle" -v ns="${#NAMES[@]}" \
	-v cg="$DO_CALLGRIND" -v mi="$DO_MICRO" 'BEGIN {
	t = ns * (nw * (r * (d + w + 0.4) + k * cr * (c + w + 0.6)) + ni * ir * (h + 1.5))
	printf "%d", t + cg * nw * ns * 3.5 + mi * (10 + cg * 10) }')
log "servers: ${NAMES[*]}; workloads: $WORKLOADS; $ROUNDS rounds; about $((est / 60)) min $((est % 60)) s"
log "syscalls counted with: $SYSCALL_TOOL; allocations: ${MALLOC_COUNT:-not counted}"
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

for w in $WORKLOADS; do
	for ((round = 1; round <= ROUNDS; round++)); do
		[ "$w" = idle ] && [ "$round" -gt "$IDLE_ROUNDS" ] && break
		for name in "${NAMES[@]}"; do
			if [ "$w" = idle ]; then
				idle_pass "$name"
				row="NA NA NA NA NA NA $HWM 0 NA NA NA NA NA NA NA $ID NA"
				read -r rb ra pc <<<"$ID"
				log "$w round $round $name: RSS $rb -> $ra kB, $pc B/conn"
			else
				throughput_pass "$w" "$name"
				CT="NA NA NA NA NA NA NA"
				[ "$round" -le "$COUNT_ROUNDS" ] && count_pass "$w" "$name"
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

CGRAW=$TMP/callgrind.tsv
printf 'workload\tserver\tir_1\tmsgs_1\tir_2\tmsgs_2\tir_per_msg\n' >"$CGRAW"
if [ "$DO_CALLGRIND" = 1 ]; then
	for w in $WORKLOADS; do
		[ "$w" = idle ] && continue
		for name in "${NAMES[@]}"; do
			callgrind_pass "$w" "$name"
			log "$w callgrind $name: ${CG##* } instructions/msg"
			[[ ${CG##* } == NA ]] && FAILURES=$((FAILURES + 1))
			echo "$w $name $CG" | tr ' ' '\t' >>"$CGRAW"
		done
	done
fi

# Microbenchmarks: timed (pinned like a server), then counted.
MICRORAW=$TMP/micro.tsv
printf 'bench\tops\truns\tns_per_op\tcpu_ns_per_op\tmin_ns\tmax_ns\tir_per_op\n' >"$MICRORAW"
if [ "$DO_MICRO" = 1 ]; then
	log "microbenchmarks: $MICRO_RUNS timed runs each"
	if ! taskset -c "$SERVER_CPU" "$MICRO" --runs "$MICRO_RUNS" >"$TMP/micro.out" 2>"$TMP/micro.err"; then
		log "micro failed:"; sed 's/^/    /' "$TMP/micro.err" | head -10 >&2
		FAILURES=$((FAILURES + 1))
	fi
	while read -r line; do
		b=$(tr ' ' '\n' <<<"$line" | sed -n 's/^bench=//p')
		row=$b
		for k in ops runs ns_per_op cpu_ns_per_op min_ns max_ns; do
			row+=" $(tr ' ' '\n' <<<"$line" | sed -n "s/^$k=//p")"
		done
		ir=NA
		if [ "$DO_CALLGRIND" = 1 ]; then
			# Two fixed counts; what does not depend on the count cancels.
			irs=()
			for n in 1000 11000; do
				rm -f "$TMP/micro.cg"
				v=NA
				if valgrind --tool=callgrind --callgrind-out-file="$TMP/micro.cg" \
					"$MICRO" --count "$n" "$b" >/dev/null 2>"$TMP/micro.err"; then
					v=$(awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$TMP/micro.cg")
				fi
				irs+=("${v:-NA}")
			done
			ir=$(awk -v a="${irs[0]}" -v b="${irs[1]}" \
				'BEGIN { if (a == "NA" || b == "NA") print "NA"; else printf "%.1f\n", (b - a) / 10000 }')
		fi
		log "micro $b: $(tr ' ' '\n' <<<"$line" | sed -n 's/^ns_per_op=//p') ns/op, $ir instructions/op"
		echo "$row $ir" | tr ' ' '\t' >>"$MICRORAW"
	done < <(grep '^bench=' "$TMP/micro.out")
fi

# ------------------------------------------------------------- TLS
# bench/tls.sh's own table (its servers are TLS ones, its load generator
# speaks TLS): it goes into RESULTS.md as it is, before the analysis.
TLS_MD=
if [ "${BENCH_TLS:-1}" = 1 ] && [ "$DO_TIDE" = 1 ]; then
	TLS_MD=$TMP/tls.md
	if [ ! -x "$BUILD/bench/servers/bufferevent_openssl_echo" ]; then
		echo "Not measured: this build has no bench/servers/bufferevent_openssl_echo (configure found no OpenSSL or no libevent_openssl)." >"$TLS_MD"
		log "TLS: skipped (no bufferevent_openssl_echo in this build)"
	else
		log "TLS: bench/tls.sh $BUILD"
		sh "$HERE/tls.sh" "$BUILD" >"$TLS_MD" 2>"$TMP/tls.err" ||
			die "bench/tls.sh failed: $(tail -n 3 "$TMP/tls.err")"
	fi
fi

T_END=$(date +%s)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------- report
mkdir -p "$OUT"
cp "$RAW" "$OUT/results-raw.tsv"
cp "$CGRAW" "$OUT/results-callgrind.tsv"
cp "$MICRORAW" "$OUT/results-micro.tsv"
REPORT_ENV=(
	-v rounds="$ROUNDS" -v duration="$DURATION" -v warmup="$WARMUP"
	-v count_rounds="$n_count_rounds" -v idle_rounds="$n_idle_rounds"
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
	-v idle_conns="$IDLE_CONNS" -v analysis="$HERE/analysis.md"
	-v commit="${BENCH_COMMIT:-$(git -C "$HERE" describe --always --dirty 2>/dev/null || echo unknown)}"
)
awk -F'\t' "${REPORT_ENV[@]}" -f "$HERE/report.awk" "$RAW" "$CGRAW" "$MICRORAW" >"$OUT/RESULTS.md" ||
	die "bench/report.awk failed: $OUT/RESULTS.md is incomplete"
if [ -n "$TLS_MD" ]; then
	awk -v t="$TLS_MD" '
		/^<!-- analysis -->$/ && !done {
			print "## TLS: tide against libevent'"'"'s bufferevent_openssl\n"
			print "`bench/tls.sh`, in this run: tide-echod `--tls-cert` and bench/servers/bufferevent_openssl_echo, one thread each, bench/loadgen `--tls` ping-pong; issue 17'"'"'s goal is tide'"'"'s CPU per message at most 0.8x bufferevent_openssl'"'"'s.\n"
			while ((getline l < t) > 0) print l
			print ""
			done = 1
		}
		{ print }' "$OUT/RESULTS.md" >"$OUT/RESULTS.md.new" && mv "$OUT/RESULTS.md.new" "$OUT/RESULTS.md"
fi

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
