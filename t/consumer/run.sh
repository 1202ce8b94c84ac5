#!/bin/sh
# The consumer test: does an installed tide work for someone who only has
# pkg-config?
#
#   t/consumer/run.sh BUILDDIR
#       install the tide built in BUILDDIR into a temporary directory
#       (make install DESTDIR=...), run the checks below against it, then
#       `make uninstall DESTDIR=...` must leave no file behind. For CI.
#   t/consumer/run.sh --installed PKGCONFIGDIR
#       run the checks against an installation that is already there (the
#       tide.pc in PKGCONFIGDIR). `make installcheck` does this, so `make
#       distcheck` runs it on the tarball's staged installation.
#
# The checks: the headers, both libraries, tide.pc, the man pages and
# tide-echod are installed; t/consumer/consumer.c builds with
# `cc consumer.c $(pkg-config --cflags --libs tide)` and nothing else,
# loads the installed libtide.so, and prints what is expected; and the same
# program links with `pkg-config --static` and -static, so no shared object
# at all is involved.
#
# A DESTDIR installation keeps the configured prefix (/usr/local by
# default) under the temporary root; PKG_CONFIG_SYSROOT_DIR makes
# pkg-config point into it, as it does for a cross-compilation sysroot.
#
# Prints "consumer: N passed, N failed" last; exits non-zero on failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/../.." && pwd)
CC=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tide-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
finish() {
    echo "consumer: $pass passed, $fail failed"
    if [ "$fail" = 0 ]; then exit 0; else exit 1; fi
}

case ${1-} in
--installed)
    [ $# = 2 ] || { echo "usage: $0 --installed PKGCONFIGDIR" >&2; exit 2; }
    build=""
    stage=""
    pcdir=$(cd "$2" && pwd)
    ;;
-* | "")
    echo "usage: $0 BUILDDIR | $0 --installed PKGCONFIGDIR" >&2
    exit 2
    ;;
*)
    [ $# = 1 ] || { echo "usage: $0 BUILDDIR" >&2; exit 2; }
    build=$(cd "$1" && pwd)
    [ -f "$build/tide.pc" ] || { echo "$0: $build is not a configured tide build" >&2; exit 2; }
    stage=$tmp/root
    if make -C "$build" install DESTDIR="$stage" >"$tmp/install.log" 2>&1; then
        ok "make install DESTDIR=..."
    else
        tail -n 40 "$tmp/install.log"
        bad "make install DESTDIR=$stage"
        finish
    fi
    pc=$(find "$stage" -name tide.pc -path '*/pkgconfig/*' | head -n 1)
    [ -n "$pc" ] || { bad "no tide.pc installed"; finish; }
    pcdir=${pc%/*}
    export PKG_CONFIG_SYSROOT_DIR="$stage"
    ;;
esac
export PKG_CONFIG_PATH="$pcdir"
unset PKG_CONFIG_LIBDIR || true
pkg-config --exists tide || { bad "pkg-config does not find tide in $pcdir"; finish; }

# Where things are, as installed (under the temporary root, if any).
var() { echo "$stage$(pkg-config --variable="$1" tide | sed "s|^$stage||")"; }
prefix=$(var prefix)
includedir=$(var includedir)
libdir=$(var libdir)

missing=""
for f in "$includedir/tide.h" "$includedir/tide/version.h" "$libdir/libtide.so" \
    "$libdir/libtide.a"; do
    [ -e "$f" ] || missing="$missing ${f#$stage}"
done
for h in "$top_srcdir"/include/tide/*.h; do
    [ -e "$includedir/tide/${h##*/}" ] || missing="$missing ${includedir#$stage}/tide/${h##*/}"
done
for m in man3/tide.3 man1/tide-echod.1; do
    find "$prefix" -path "*/man/$m" | grep -q . || missing="$missing $m"
done
if [ -z "$missing" ]; then
    ok "installed: tide.h and tide/*.h, libtide.so, libtide.a, tide.pc, tide(3), tide-echod(1)"
else
    bad "not installed:$missing"
fi
if find "$prefix" -type f -name tide-echod -perm -u+x | grep -q .; then
    ok "installed: tide-echod"
else
    bad "not installed: bin/tide-echod"
fi

version=$(pkg-config --modversion tide)
printf '%s\n' \
    "consumer: compiled against tide $version, running tide $version" \
    'consumer: the task read back "hello through a pipe" (20 bytes)' \
    'consumer: ok' >"$tmp/expected"
run() { # what, program
    if "$2" >"$tmp/out" 2>&1 && cmp -s "$tmp/out" "$tmp/expected"; then
        ok "$1: built with pkg-config only, ran, printed what was expected"
    else
        sed 's/^/  got: /' "$tmp/out"
        sed 's/^/  expected: /' "$tmp/expected"
        bad "$1: wrong output or exit status"
    fi
}

# Shared: the program must load the installed libtide.so.
cflags=$(pkg-config --cflags tide)
libs=$(pkg-config --libs tide)
echo "pkg-config --cflags --libs tide: $cflags $libs"
# shellcheck disable=SC2086
if $CC -o "$tmp/consumer" "$here/consumer.c" $cflags $libs 2>"$tmp/cc.log"; then
    LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LD_LIBRARY_PATH
    run shared "$tmp/consumer"
    if ldd "$tmp/consumer" | grep -q "=> $libdir/libtide.so"; then
        ok "shared: loads the installed libtide.so"
    else
        ldd "$tmp/consumer"
        bad "shared: does not load $libdir/libtide.so"
    fi
else
    cat "$tmp/cc.log"
    bad "shared: $CC consumer.c \$(pkg-config --cflags --libs tide)"
fi

# Static: everything tide needs must come from `pkg-config --static`
# (Requires.private, Libs.private).
libs=$(pkg-config --static --libs tide)
echo "pkg-config --static --libs tide: $libs"
# shellcheck disable=SC2086
if $CC -static -o "$tmp/consumer-static" "$here/consumer.c" $cflags $libs 2>"$tmp/cc.log"; then
    run static "$tmp/consumer-static"
else
    cat "$tmp/cc.log"
    bad "static: $CC -static consumer.c \$(pkg-config --static --cflags --libs tide)"
fi

# Uninstall must remove every file install put there.
if [ -n "$build" ]; then
    if make -C "$build" uninstall DESTDIR="$stage" >"$tmp/uninstall.log" 2>&1; then
        left=$(find "$stage" -type f -o -type l)
        if [ -z "$left" ]; then
            ok "make uninstall removed every file"
        else
            bad "make uninstall left: $(echo $left | sed "s|$stage||g")"
        fi
    else
        tail -n 20 "$tmp/uninstall.log"
        bad "make uninstall DESTDIR=..."
    fi
fi
finish
