#!/usr/bin/env bash
# CFLAGS and pkg-config's output are word lists, split on purpose:
# shellcheck disable=SC2086,SC2046
# Builds the load generator, the anchor servers and malloc_count.so without
# autotools, into OUTDIR laid out as the automake build lays them out
# (OUTDIR/bench/loadgen, OUTDIR/bench/servers/*), so run.sh takes either.
#
#   bench/build.sh /tmp/bench-build
#
# CC and CFLAGS are honoured.  The libuv server is skipped when pkg-config
# does not know libuv.
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
src=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-gcc}
CFLAGS=${CFLAGS:--O2 -g -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Werror}

mkdir -p "$out/bench/servers"
set -x
$CC $CFLAGS -o "$out/bench/loadgen" "$src/loadgen.c"
$CC $CFLAGS -fPIC -shared -o "$out/bench/malloc_count.so" "$src/malloc_count.c"
$CC $CFLAGS -o "$out/bench/servers/epoll_echo" "$src/servers/epoll_echo.c"
$CC $CFLAGS $(pkg-config --cflags libevent_core) -o "$out/bench/servers/libevent_echo" \
	"$src/servers/libevent_echo.c" $(pkg-config --libs libevent_core)
$CC $CFLAGS $(pkg-config --cflags libevent_core) -o "$out/bench/servers/bufferevent_echo" \
	"$src/servers/bufferevent_echo.c" $(pkg-config --libs libevent_core)
set +x
if pkg-config --exists libuv; then
	set -x
	$CC $CFLAGS $(pkg-config --cflags libuv) -o "$out/bench/servers/libuv_echo" \
		"$src/servers/libuv_echo.c" $(pkg-config --libs libuv)
else
	echo "build.sh: libuv not found (apt-get install libuv1-dev); skipping libuv_echo" >&2
fi
