#!/bin/sh
# bench/http-pair.sh BUILD_DIR: samples/http-backend (each evhttp request
# served by a tide task that calls a TCP backend) against its callback
# twin samples/http-backend-cb (the same with bufferevents), with one
# tide-echod as the backend, in one sitting: PAIR_ROUNDS rounds, each
# server in turn, wrk with one thread and PAIR_CONNS connections for
# PAIR_SECS seconds. The server runs on CPU 0, wrk on CPU 1 (taskset).
# It prints a Markdown table: requests per second and the server's CPU
# (user + system, from /proc) per request, the median of the rounds, and
# the task server's ratio to the callback one.
#
#   PAIR_ROUNDS (3)  PAIR_SECS (5)  PAIR_CONNS (50)
#
# Exit 0; 1 when something is missing or a run fails.
set -eu

build=${1:?usage: bench/http-pair.sh BUILD_DIR}
rounds=${PAIR_ROUNDS:-3}
secs=${PAIR_SECS:-5}
conns=${PAIR_CONNS:-50}
command -v wrk >/dev/null || { echo "http-pair.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }
for f in samples/tide-echod samples/http-backend/http-backend \
    samples/http-backend/http-backend-cb; do
    [ -x "$build/$f" ] || { echo "http-pair.sh: $build/$f is not built" >&2; exit 1; }
done

pin() {
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
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# wait_for FILE REGEX: until a line of FILE matches (10 s)
wait_for() {
    i=0
    until grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -le 100 ] || { echo "http-pair.sh: no '$2' in $1" >&2; cat "$1" >&2; exit 1; }
        sleep 0.1
    done
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

pin_bg 1 "$build/samples/tide-echod" -l 127.0.0.1:0 >"$tmp/echod" 2>&1 &
pids="$pids $!"
wait_for "$tmp/echod" 'listening on 127\.0\.0\.1:[0-9]'
backend=$(sed -n 's/^echod: listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$tmp/echod" | head -n 1)

tck=$(getconf CLK_TCK)
for name in http-backend http-backend-cb; do
    : >"$tmp/$name.out"
    pin_bg 0 "$build/samples/http-backend/$name" 0 "$backend" >>"$tmp/$name.out" 2>&1 &
    eval "pid_$(echo $name | tr - _)=$!"
    pids="$pids $!"
    wait_for "$tmp/$name.out" '^listening on 127\.0\.0\.1:[0-9]'
    eval "port_$(echo $name | tr - _)=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/$name.out")"
done

: >"$tmp/rows"
r=1
while [ $r -le "$rounds" ]; do
    for name in http-backend http-backend-cb; do
        v=$(echo $name | tr - _)
        eval "pid=\$pid_$v port=\$port_$v"
        c0=$(cpu_ticks "$pid")
        pin 1 wrk -t1 -c"$conns" -d"$secs"s "http://127.0.0.1:$port/abc" >"$tmp/wrk" 2>&1 ||
            { echo "http-pair.sh: wrk failed" >&2; cat "$tmp/wrk" >&2; exit 1; }
        c1=$(cpu_ticks "$pid")
        [ -n "${PAIR_DEBUG:-}" ] && echo "$name pid $pid ticks $c0 $c1" >&2
        awk -v name="$name" -v dc=$((c1 - c0)) -v tck="$tck" '
            /requests in/ { n = $1 }
            /^Requests\/sec:/ { rps = $2 }
            /Non-2xx/ { bad = $NF }
            END {
                if (n == 0 || bad > 0) { print "http-pair.sh: " name ": " n " requests, " bad " not 2xx" > "/dev/stderr"; exit 1 }
                printf "%s %.0f %.2f\n", name, rps, dc * 1e6 / tck / n
            }' "$tmp/wrk" >>"$tmp/rows"
    done
    r=$((r + 1))
done

echo "| server | requests/s (median of $rounds) | server CPU us/request (median) |"
echo "|---|--:|--:|"
for name in http-backend http-backend-cb; do
    rps=$(awk -v n="$name" '$1 == n { print $2 }' "$tmp/rows" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    cpu=$(awk -v n="$name" '$1 == n { print $3 }' "$tmp/rows" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    eval "rps_$(echo $name | tr - _)=$rps cpu_$(echo $name | tr - _)=$cpu"
    echo "| $name | $rps | $cpu |"
done
awk -v a="$rps_http_backend" -v b="$rps_http_backend_cb" -v c="$cpu_http_backend" -v d="$cpu_http_backend_cb" \
    'BEGIN { printf "| task / callback | %.2f | %.2f |\n", a / b, c / d }'
