#!/bin/sh
# The layers of src/ (doc/design.md): core, sync, reactor, task, io, net, fs,
# libevent, tls, each using
# only the layers before it. Core knows futures, wakers, tasks and the
# executor, nothing of descriptors, timers, signals or DNS: the layers above
# attach their state through tide__exec_attach. This fails when a source
# includes a header of a later layer (internal or public), or when core
# names a type or function of another layer.
#
# Run by `make check` from the build directory, or by hand from anywhere.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top/src"

rank() { # layer -> its place in the order
    case $1 in
    core) echo 0 ;; sync) echo 1 ;; reactor) echo 2 ;; task) echo 3 ;; io) echo 4 ;; net) echo 5 ;; fs) echo 6 ;; libevent) echo 7 ;; tls) echo 8 ;;
    *) echo 99 ;;
    esac
}
# the layer a header belongs to: internal "x/internal.h", public "tide/y.h"
header_layer() {
    case $1 in
    core/* | tide/core.h | tide/error.h | tide/version.h) echo core ;;
    sync/* | tide/sync.h) echo sync ;;
    reactor/* | tide/fd.h | tide/time.h | tide/signal.h) echo reactor ;;
    task/* | tide/task.h) echo task ;;
    io/* | tide/io.h) echo io ;;
    net/* | tide/net.h) echo net ;;
    fs/* | tide/fs.h) echo fs ;;
    libevent/* | tide/libevent.h) echo libevent ;;
    tls/* | tide/tls.h) echo tls ;;
    tide.h) echo tls ;; # the umbrella includes everything
    *) echo "" ;;
    esac
}

fail=0 checked=0
for f in */*.c */*.h; do
    layer=${f%%/*}
    own=$(rank "$layer")
    # "..." and <tide...> includes
    for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]\([^">]*\)[">].*/\1/p' "$f"); do
        hl=$(header_layer "$h")
        [ -n "$hl" ] || continue
        checked=$((checked + 1))
        if [ "$(rank "$hl")" -gt "$own" ]; then
            echo "FAIL: src/$f ($layer) includes $h ($hl, a later layer)"
            fail=$((fail + 1))
        fi
    done
done

# Core names nothing of the layers above it (comments aside).
for f in core/*.c core/*.h; do
    hits=$(sed 's://.*$::; s:/\*.*\*/::g' "$f" |
        grep -nE 'struct tide_fd\b|tide_fd_t|tide__fd_|tide_sleep|tide_signal|evdns|tide_stream|tide__reactor|tide__timers' || true)
    if [ -n "$hits" ]; then
        echo "FAIL: src/$f names another layer's types:"
        echo "$hits" | sed 's/^/  | /'
        fail=$((fail + 1))
    fi
done

echo "layers: $checked includes checked, $fail failed"
[ "$fail" = 0 ]
