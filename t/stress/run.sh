#!/bin/sh
# t/stress/run.sh: stress the echo daemon on loopback with t/stress/echoload.
#
#   run.sh --echod PATH --load PATH [--conns N] [--soak-secs N]
#          [--misbehave-secs N] [--only NAME] [--valgrind]
#          [--libtool CMD]
#
# Runs, each against a fresh daemon on 127.0.0.1 (port 0: it prints the
# port it got), bounded in connections and time:
#   conns      --conns (default 10000) connections open at once, several
#              byte-exact round trips each; the daemon's RSS per connection
#   misbehave  slow readers, slow writers, resets mid-stream, half-closes
#              beside well-behaved clients; RSS stays bounded
#   soak       --soak-secs (default 15) of churning mixed traffic; RSS
#              sampled every second stays flat after warm-up
#   flood      a daemon limited to 64 descriptors gets 1000 connections: it
#              must back off (low CPU) and serve new clients afterwards
#   valgrind   (with --valgrind) the daemon under valgrind memcheck through
#              libtool --mode=execute: 1,000 connections, then the
#              misbehaving clients for 5 s; a memory error or a definite
#              leak at its exit fails the run
# Each daemon must then stop cleanly on SIGTERM (exit status 0).
# Prints a closing "stress: N passed, N failed".
set -u
echod="" load="" conns=10000 soak=15 misbehave=10 only="" libtool=libtool valgrind=no
while [ $# -gt 0 ]; do
    case $1 in
    --echod) echod=$2; shift 2 ;;
    --load) load=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --soak-secs) soak=$2; shift 2 ;;
    --misbehave-secs) misbehave=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --valgrind) valgrind=yes; shift ;;
    --libtool) libtool=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$echod" ] && [ -n "$load" ] || { echo "usage: run.sh --echod PATH --load PATH" >&2; exit 2; }

tmp=$(mktemp -d)
daemon_pid=""
cleanup() {
    [ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# As many descriptors as allowed, for the daemon and the load.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# start_daemon NOFILE [valgrind]: start echod, set daemon_pid and addr.
start_daemon() {
    nofile=$1
    : >"$tmp/out"
    (
        [ "$nofile" != max ] && ulimit -n "$nofile"
        if [ "${2:-}" = valgrind ]; then
            # shellcheck disable=SC2086
            exec $libtool --mode=execute valgrind -q --error-exitcode=99 \
                --leak-check=full --errors-for-leak-kinds=definite \
                --show-leak-kinds=definite "$echod" -l 127.0.0.1:0 -q
        fi
        exec "$echod" -l 127.0.0.1:0 -q
    ) >"$tmp/out" 2>"$tmp/err" &
    daemon_pid=$!
    addr=""
    i=0
    while [ $i -lt 300 ]; do
        addr=$(sed -n 's/^echod: listening on //p' "$tmp/out" | head -n 1)
        [ -n "$addr" ] && break
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$addr" ]; then
        echo "stress: the daemon did not start"
        cat "$tmp/err"
        return 1
    fi
    # the libtool wrapper execs the real binary: $! is the daemon itself
    echo "stress: daemon pid $daemon_pid listening on $addr (descriptors: $nofile)"
}

# stop_daemon: SIGTERM, then it must exit 0 within the drain timeout.
stop_daemon() {
    kill -TERM "$daemon_pid" 2>/dev/null
    i=0
    while kill -0 "$daemon_pid" 2>/dev/null && [ $i -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$daemon_pid" 2>/dev/null; then
        echo "stress: the daemon did not stop on SIGTERM"
        kill -KILL "$daemon_pid"
        wait "$daemon_pid" 2>/dev/null
        daemon_pid=""
        return 1
    fi
    wait "$daemon_pid"
    st=$?
    daemon_pid=""
    if [ $st != 0 ]; then
        echo "stress: the daemon exited with status $st"
        tail -n 20 "$tmp/err"
        return 1
    fi
    return 0
}

passed=0 failed=0
run() { # name nofile echoload-args...
    name=$1 nofile=$2
    shift 2
    [ -n "$only" ] && [ "$only" != "$name" ] && return 0
    echo "stress: --- $name ---"
    ok=1
    how=""
    [ "$name" = valgrind ] && how=valgrind
    if start_daemon "$nofile" $how; then
        "$load" --addr "$addr" --pid "$daemon_pid" "$@" || ok=0
        # the daemon's own counters (SIGUSR1 prints them to stderr)
        kill -USR1 "$daemon_pid" 2>/dev/null
        sleep 0.3
        counters=$(grep 'connections .* open' "$tmp/err" | tail -n 1)
        echo "stress: daemon says: ${counters#echod: }"
        if [ "$name" = flood ]; then
            backoffs=$(echo "$counters" | sed -n 's/.*accept backoffs \([0-9]*\).*/\1/p')
            if [ "${backoffs:-0}" -eq 0 ]; then
                echo "stress: flood: the daemon never ran out of descriptors"
                ok=0
            fi
        fi
        stop_daemon || ok=0
    else
        ok=0
    fi
    if [ $ok = 1 ]; then
        passed=$((passed + 1))
        echo "stress: $name passed"
    else
        failed=$((failed + 1))
        echo "stress: $name FAILED"
        tail -n 20 "$tmp/err"
    fi
}

run conns max --mode conns --conns "$conns" --rounds 5 --size 100 --timeout 300
run misbehave max --mode misbehave --secs "$misbehave" --size 2000 \
    --max-rss-mb 64 --timeout $((misbehave + 60))
run soak max --mode soak --secs "$soak" --conns 200 --size 4000 \
    --max-growth-kb 2048 --timeout $((soak + 60))
run flood 64 --mode flood --conns 1000 --hold-ms 2000 --max-cpu 25 --timeout 120
if [ "$valgrind" = yes ]; then
    command -v valgrind >/dev/null || { echo "stress: valgrind not installed"; exit 1; }
    run valgrind max --mode conns --conns 1000 --rounds 3 --size 100 \
        --timeout 300
    [ -z "$only" ] || [ "$only" = valgrind ] && {
        # the same daemon kind again, for the misbehaving clients
        run valgrind max --mode misbehave --secs 5 --size 2000 \
            --max-rss-mb 100000 --timeout 120
    }
fi

echo "stress: $passed passed, $failed failed"
[ $failed = 0 ]
