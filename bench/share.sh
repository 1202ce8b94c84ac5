#!/bin/sh
# bench/share.sh BUILD_DIR: how tide's echo and evhttp callbacks share one
# event_base (bench/servers/shared_loop), under each of tide's knobs.
#
# For each configuration it starts shared_loop, then measures, each for
# SHARE_SECS seconds: echo alone (bench/loadgen, SHARE_CONNS connections,
# 64 B ping-pong), HTTP alone (wrk, one thread, SHARE_CONNS connections),
# then both at once. The server runs on CPU 0, the load generators on
# CPU 1 (taskset). It prints a Markdown table: messages and requests per
# second, and what each keeps of its own rate when they share the loop.
#
#   SHARE_SECS   measured seconds per figure (5)
#   SHARE_CONNS  connections of each load (50)
#   SHARE_CONFIGS  "PRIORITY:BUDGET ..." (default below; BUDGET 0: tide's)
#
# Exit 0; 1 when a tool is missing or a run fails.
set -eu

build=${1:?usage: bench/share.sh BUILD_DIR}
secs=${SHARE_SECS:-5}
conns=${SHARE_CONNS:-50}
configs=${SHARE_CONFIGS:-"same:0 same:8 same:1024 above:0 below:0"}

server=$build/bench/servers/shared_loop
loadgen=$build/bench/loadgen
for f in "$server" "$loadgen"; do
    [ -x "$f" ] || { echo "share.sh: $f is not built (make bench-build)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "share.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }

pin() { # pin CPU CMD...: run CMD on CPU if taskset and the CPU exist
    cpu=$1; shift
    if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then
        taskset -c "$cpu" "$@"
    else
        "$@"
    fi
}

# pin_bg CPU CMD...: pin in the background, the subshell replaced by CMD
# (so that $! is the program's pid: for kill and for /proc)
pin_bg() {
    cpu=$1; shift
    if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then
        exec taskset -c "$cpu" "$@"
    else
        exec "$@"
    fi
}

tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

echo_rate() { # echo_rate PORT: messages per second
    pin 1 "$loadgen" --port "$1" --conns "$conns" --duration "$secs" \
        --warmup 0.5 --quiet >"$tmp/lg" ||
        { echo "share.sh: loadgen failed" >&2; cat "$tmp/lg" >&2; exit 1; }
    sed -n 's/.*msgs_per_s=\([0-9]*\).*/\1/p' "$tmp/lg"
}

http_rate() { # http_rate PORT SECS: requests per second
    pin 1 wrk -t1 -c"$conns" -d"$2"s "http://127.0.0.1:$1/" >"$tmp/wrk" 2>&1 ||
        { echo "share.sh: wrk failed" >&2; cat "$tmp/wrk" >&2; exit 1; }
    awk '/^Requests\/sec:/ { printf "%.0f\n", $2 }' "$tmp/wrk"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

echo "| tide's priority | budget | echo alone msg/s | http alone req/s | echo shared msg/s | http shared req/s | echo keeps | http keeps |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|"
for c in $configs; do
    prio=${c%%:*}
    budget=${c#*:}
    : >"$tmp/ports"
    pin_bg 0 "$server" "$prio" "$budget" >>"$tmp/ports" &
    pid=$!
    i=0
    while [ "$(wc -l <"$tmp/ports")" -lt 2 ]; do
        i=$((i + 1))
        [ $i -le 100 ] || { echo "share.sh: shared_loop did not start" >&2; exit 1; }
        sleep 0.1
    done
    hport=$(sed -n 's/^http //p' "$tmp/ports")
    eport=$(sed -n 's/^echo //p' "$tmp/ports")
    e1=$(echo_rate "$eport")
    h1=$(http_rate "$hport" "$secs")
    # both: wrk runs a second longer on each side of loadgen's window
    pin_bg 1 wrk -t1 -c"$conns" -d"$((secs + 2))"s "http://127.0.0.1:$hport/" \
        >"$tmp/wrk2" 2>&1 &
    wpid=$!
    sleep 0.5
    e2=$(echo_rate "$eport")
    wait "$wpid"
    h2=$(awk '/^Requests\/sec:/ { printf "%.0f\n", $2 }' "$tmp/wrk2")
    kill "$pid"
    wait "$pid" || true
    pid=
    b=$budget
    [ "$b" = 0 ] && b="default"
    echo "| $prio | $b | $e1 | $h1 | $e2 | $h2 | $(ratio "$e2" "$e1") | $(ratio "$h2" "$h1") |"
done
