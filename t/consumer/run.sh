#!/bin/sh
# t/consumer/run.sh BUILDDIR: install the tide built in BUILDDIR into a
# temporary directory (make install DESTDIR=...), then build
# t/consumer/consumer.c the way a user of the installed library would,
# through `pkg-config --cflags --libs tide` and nothing else, run it and
# check what it prints. Then the same with `pkg-config --static` and
# -static (no shared library involved), then `make uninstall` must leave no
# file behind.
#
# The installed tree keeps the prefix BUILDDIR was configured with
# (/usr/local by default) under the temporary root; PKG_CONFIG_SYSROOT_DIR
# makes pkg-config point into it, as it does for a cross sysroot.
#
# Prints "consumer: N passed, N failed" last; exits non-zero on failure.
set -eu
[ $# = 1 ] || { echo "usage: $0 BUILDDIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
[ -f "$build/tide.pc" ] || { echo "$0: $build is not a configured tide build" >&2; exit 2; }
CC=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tide-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/root

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
finish() {
    echo "consumer: $pass passed, $fail failed"
    if [ "$fail" = 0 ]; then exit 0; else exit 1; fi
}

if ! make -C "$build" install DESTDIR="$stage" >"$tmp/install.log" 2>&1; then
    tail -n 40 "$tmp/install.log"
    bad "make install DESTDIR=$stage"
    finish
fi
ok "make install DESTDIR=..."

# What must be installed, relative to the configured prefix.
pc=$(find "$stage" -name tide.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || { bad "no tide.pc installed"; finish; }
export PKG_CONFIG_PATH="${pc%/*}" PKG_CONFIG_SYSROOT_DIR="$stage"
unset PKG_CONFIG_LIBDIR || true
includedir=$stage$(pkg-config --variable=includedir tide | sed "s|^$stage||")
libdir=$stage$(pkg-config --variable=libdir tide | sed "s|^$stage||")
missing=""
for f in "$includedir/tide.h" "$includedir/tide/error.h" "$includedir/tide/core.h" \
    "$includedir/tide/version.h" "$libdir/libtide.so" "$libdir/libtide.a"; do
    [ -e "$f" ] || missing="$missing ${f#$stage}"
done
src=$(sed -n "s/^top_srcdir='\(.*\)'$/\1/p" "$build/t/testenv.sh" 2>/dev/null || true)
if [ -n "$src" ]; then
    for h in "$src"/include/tide/*.h; do
        [ -e "$includedir/tide/${h##*/}" ] || missing="$missing ${includedir#$stage}/tide/${h##*/}"
    done
fi
mandir=$(find "$stage" -type d -name man -path '*/share/man' | head -n 1)
[ -n "$mandir" ] && [ -e "$mandir/man3/tide.3" ] || missing="$missing man3/tide.3"
[ -n "$mandir" ] && [ -e "$mandir/man1/tide-echod.1" ] || missing="$missing man1/tide-echod.1"
if [ -z "$missing" ]; then
    ok "installed: headers, libtide.so, libtide.a, tide.pc, man pages"
else
    bad "not installed:$missing"
fi
if find "$stage" -type f -name tide-echod -perm -u+x | grep -q .; then
    ok "installed: tide-echod"
else
    bad "not installed: bin/tide-echod"
fi

version=$(pkg-config --modversion tide)
expect() { # version
    printf '%s\n' \
        "consumer: compiled against tide $1, running tide $1" \
        'consumer: the task read back "hello through a pipe" (20 bytes)' \
        'consumer: ok'
}
expect "$version" >"$tmp/expected"

# Shared: the program must load the installed libtide.so.
cflags=$(pkg-config --cflags tide)
libs=$(pkg-config --libs tide)
echo "pkg-config --cflags --libs tide: $cflags $libs"
# shellcheck disable=SC2086
if $CC -o "$tmp/consumer" "$here/consumer.c" $cflags $libs 2>"$tmp/cc.log"; then
    if LD_LIBRARY_PATH="$libdir" "$tmp/consumer" >"$tmp/out" 2>&1 &&
        cmp -s "$tmp/out" "$tmp/expected"; then
        ok "shared: built with pkg-config only, ran, printed what was expected"
    else
        cat "$tmp/out"
        bad "shared: wrong output or exit status (expected the lines above to be:)"
        cat "$tmp/expected"
    fi
    if LD_LIBRARY_PATH="$libdir" ldd "$tmp/consumer" | grep -q "$libdir/libtide.so"; then
        ok "shared: uses the installed libtide.so"
    else
        bad "shared: does not load $libdir/libtide.so"
    fi
else
    cat "$tmp/cc.log"
    bad "shared: $CC consumer.c \$(pkg-config --cflags --libs tide)"
fi

# Static: everything tide needs must come from `pkg-config --static`
# (Requires.private, Libs.private); -static links no shared object at all.
libs=$(pkg-config --static --libs tide)
echo "pkg-config --static --libs tide: $libs"
# shellcheck disable=SC2086
if $CC -static -o "$tmp/consumer-static" "$here/consumer.c" $cflags $libs 2>"$tmp/cc.log"; then
    if "$tmp/consumer-static" >"$tmp/out" 2>&1 && cmp -s "$tmp/out" "$tmp/expected"; then
        ok "static: built with pkg-config --static only, ran, printed what was expected"
    else
        cat "$tmp/out"
        bad "static: wrong output or exit status"
    fi
else
    cat "$tmp/cc.log"
    bad "static: $CC -static consumer.c \$(pkg-config --static --cflags --libs tide)"
fi

# Uninstall must remove every file install put there.
if make -C "$build" uninstall DESTDIR="$stage" >"$tmp/uninstall.log" 2>&1; then
    left=$(find "$stage" -type f -o -type l)
    if [ -z "$left" ]; then
        ok "make uninstall removed everything"
    else
        bad "make uninstall left: $(echo $left | sed "s|$stage||g")"
    fi
else
    tail -n 20 "$tmp/uninstall.log"
    bad "make uninstall"
fi
finish
