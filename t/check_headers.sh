#!/bin/sh
# Every public header compiles on its own, twice included, with no libevent
# header reachable (see the poison below), as strict C11
# with -Wall -Wextra -pedantic -Werror, and as C++ (c++11, c++17, c++20
# where the compiler knows them) with the same warnings; then
# t/headers/use.c, which expands the macros and inline functions, both ways
# too. Compiles only: nothing is linked or run.
#
# Run by `make check` from the build directory (t/testenv.sh gives the
# compilers configure found). C++ is skipped, with a note, when there is no
# working C++ compiler.
set -eu
. ./t/testenv.sh

warn="-Wall -Wextra -pedantic -Werror"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tide-headers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# No public header includes a libevent header: libevent's layouts are not
# tide's ABI. libevent's headers sit in /usr/include, where no -I can hide
# them, so a poisoned event2/ directory comes first on the include path:
# any #include <event2/...> from a public header fails the compile.
mkdir -p "$tmp/poison/event2"
for h in event.h event_struct.h util.h buffer.h bufferevent.h dns.h http.h \
    listener.h thread.h visibility.h event-config.h keyvalq_struct.h; do
    printf '#error "a public tide header includes <event2/%s>"\n' "$h" \
        >"$tmp/poison/event2/$h"
done
inc="-I$tmp/poison -I$top_srcdir/include -I$top_builddir/include"

pass=0 fail=0
try() { # what, command...
    what=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $what"
        echo "  $*"
        sed 's/^/  | /' "$tmp/out" | head -n 40
    fi
}

cxx_ok=no
cxx_stds=""
if [ -n "$CXX" ] && echo 'int main() { return 0; }' >"$tmp/probe.cc" &&
    $CXX -c -o "$tmp/probe.o" "$tmp/probe.cc" >/dev/null 2>&1; then
    cxx_ok=yes
    for std in c++11 c++17 c++20; do
        $CXX -std=$std -c -o "$tmp/probe.o" "$tmp/probe.cc" >/dev/null 2>&1 &&
            cxx_stds="$cxx_stds $std"
    done
else
    echo "note: no working C++ compiler ($CXX): C++ checks skipped"
fi

headers="tide.h"
for h in "$top_srcdir"/include/tide/*.h "$top_builddir"/include/tide/version.h; do
    [ -f "$h" ] || continue
    case " $headers " in *" tide/${h##*/} "*) continue ;; esac
    headers="$headers tide/${h##*/}"
done

for h in $headers; do
    base=$(echo "$h" | tr '/.' '__')
    printf '#include <%s>\n#include <%s>\nint main(void) { return 0; }\n' \
        "$h" "$h" >"$tmp/$base.c"
    try "$h as C11" $CC -std=c11 $warn $inc -c -o "$tmp/$base.o" "$tmp/$base.c"
    if [ $cxx_ok = yes ]; then
        sed 's/(void)/()/' "$tmp/$base.c" >"$tmp/$base.cc"
        for std in $cxx_stds; do
            try "$h as $std" $CXX -std=$std $warn $inc -c -o "$tmp/$base.o" "$tmp/$base.cc"
        done
    fi
done

use=$top_srcdir/t/headers/use.c
try "headers/use.c as C11" $CC -std=c11 $warn $inc -c -o "$tmp/use.o" "$use"
try "headers/use.c as gnu11" $CC -std=gnu11 $warn $inc -c -o "$tmp/use.o" "$use"
if [ $cxx_ok = yes ]; then
    for std in $cxx_stds; do
        try "headers/use.c as $std" $CXX -x c++ -std=$std $warn $inc -c -o "$tmp/use.o" "$use"
    done
fi

echo "headers ($(echo $headers | wc -w) + use.c; C++:${cxx_stds:- none}): $pass passed, $fail failed"
[ "$fail" = 0 ]
