#!/bin/sh
# bench/tls.sh BUILD_DIR: TLS echo, tide-echod --tls-cert against libevent's
# bufferevent_openssl (bench/servers/bufferevent_openssl_echo), in one
# sitting: TLS_ROUNDS rounds, each of 1 and 50 connections (TLS_CONNS) x
# 64 B and 16 KiB messages (TLS_SIZES), each server in turn (the order
# alternates by round), bench/loadgen --tls (plain OpenSSL, ping-pong,
# depth 1) for TLS_SECS seconds after 0.5 s of warm-up. Both servers run
# one thread on CPU 0, the generator on CPU 1 (taskset); both negotiate
# the same protocol and cipher (TLSv1.3, TLS_AES_256_GCM_SHA384 with
# OpenSSL 3's defaults: the table says which). Certificates: t/tls_certs.sh
# (P-256), made in a temporary directory.
#
# It prints a Markdown table: messages per second and the server's CPU
# per message (user + system: the run time of all its threads from
# /proc/PID/task/*/schedstat over the measured window, divided by the
# messages echoed in it), the median of the rounds, and tide's ratio to
# bufferevent_openssl's (CPU below 1: tide spends less).
#
#   TLS_ROUNDS (3)  TLS_SECS (4)  TLS_CONNS ("1 50")  TLS_SIZES ("64 16384")
#
# Exit 0; 1 when something is missing or a run fails.
set -eu

build=${1:?usage: bench/tls.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
rounds=${TLS_ROUNDS:-3}
secs=${TLS_SECS:-4}
conns_list=${TLS_CONNS:-"1 50"}
sizes=${TLS_SIZES:-"64 16384"}
for f in samples/tide-echod bench/loadgen bench/servers/bufferevent_openssl_echo; do
    [ -x "$build/$f" ] || { echo "tls.sh: $build/$f is not built (make bench-build)" >&2; exit 1; }
done
"$build/bench/loadgen" --help | grep -q -- --tls ||
    { echo "tls.sh: bench/loadgen was built without OpenSSL (no --tls)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "tls.sh: openssl(1) is missing (for the certificates)" >&2; exit 1; }

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
    # (set -e: wait's 143 for a killed server must not end the script)
    for p in $pids; do kill "$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }; done
    rm -rf "$tmp"
}
trap 'st=$?; cleanup; exit $st' EXIT
trap 'exit 1' INT TERM

sh "$top/t/tls_certs.sh" "$tmp/certs" || { echo "tls.sh: t/tls_certs.sh failed" >&2; exit 1; }
cert=$tmp/certs/server.pem key=$tmp/certs/server.key

# start NAME CMD...: start a server on CPU 0; sets NAME_pid and NAME_port
start() {
    name=$1; shift
    (pin_bg 0 "$@") >"$tmp/$name.out" 2>"$tmp/$name.err" &
    eval "${name}_pid=$!"
    pids="$pids $!"
    i=0
    until grep -q 'listening on' "$tmp/$name.out"; do
        i=$((i + 1))
        [ $i -le 100 ] || { echo "tls.sh: $name did not start" >&2; cat "$tmp/$name.err" >&2; exit 1; }
        sleep 0.1
    done
    eval "${name}_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/$name.out" | head -n 1)"
}
start bev "$build/bench/servers/bufferevent_openssl_echo" 0 "$cert" "$key"
start tide "$build/samples/tide-echod" --listen 127.0.0.1:0 --quiet \
    --tls-cert "$cert" --tls-key "$key"

# run NAME CONNS SIZE: one measurement, appended to $tmp/NAME-CONNS-SIZE
run() {
    eval "port=\$${1}_port pid=\$${1}_pid"
    pin 1 "$build/bench/loadgen" --tls --port "$port" --conns "$2" \
        --size "$3" --duration "$secs" --warmup 0.5 --server-pid "$pid" \
        --quiet >"$tmp/lg" 2>&1 ||
        { echo "tls.sh: loadgen against $1 failed" >&2; cat "$tmp/lg" >&2; exit 1; }
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$tmp/lg"; }
    echo "$(field msgs_per_s) $(field cpu_us_per_msg) $(field tls) $(field loadgen_cpu_util)" \
        >>"$tmp/$1-$2-$3"
}

r=1
while [ $r -le "$rounds" ]; do
    for c in $conns_list; do
        for s in $sizes; do
            if [ $((r % 2)) -eq 1 ]; then run bev "$c" "$s"; run tide "$c" "$s"
            else run tide "$c" "$s"; run bev "$c" "$s"; fi
        done
    done
    r=$((r + 1))
done

# median FILE COLUMN
median() { awk -v k="$2" '{ print $k }' "$1" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

echo "| conns | size | TLS | bufferevent_openssl msg/s | tide msg/s | bufferevent_openssl CPU µs/msg | tide CPU µs/msg | tide/bev CPU per msg | tide/bev msg/s |"
echo "|--:|--:|---|--:|--:|--:|--:|--:|--:|"
for c in $conns_list; do
    for s in $sizes; do
        b=$tmp/bev-$c-$s t=$tmp/tide-$c-$s
        bm=$(median "$b" 1) tm=$(median "$t" 1) bc=$(median "$b" 2) tc=$(median "$t" 2)
        tls=$(awk 'NR == 1 { print $3 }' "$t")
        echo "| $c | $s | $tls | $bm | $tm | $bc | $tc | $(ratio "$tc" "$bc") | $(ratio "$tm" "$bm") |"
    done
done
echo
echo "Medians of $rounds rounds of ${secs} s; server on CPU 0, loadgen --tls on CPU 1; $(nproc) CPUs, $(openssl version)."
