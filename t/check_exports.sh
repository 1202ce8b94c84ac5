#!/bin/sh
# Only tide_ symbols may leave the library: everything else is compiled with
# hidden visibility, and public prototypes carry TIDE_EXTERN. Fails if the
# shared library exports (or the static one defines as global) a symbol that
# does not start with tide_.
#
# Run by `make check` from the build directory.
set -eu
. ./t/testenv.sh

la=src/libtide.la
[ -f "$la" ] || { echo "check_exports: $la not built" >&2; exit 99; }
dlname=$(sed -n "s/^dlname='\(.*\)'$/\1/p" "$la")
oldlib=$(sed -n "s/^old_library='\(.*\)'$/\1/p" "$la")

# Names the linker itself may define in any shared object, and those that
# instrumentation adds beside each global (AddressSanitizer's
# __odr_asan.<name>, in a sanitizer build such as CI's).
linker_syms='^(_init|_fini|_edata|_end|__bss_start|_DYNAMIC|_GLOBAL_OFFSET_TABLE_|__dso_handle)$'
instr_syms='^(__odr_asan[._]|__asan_|__ubsan_|__tsan_|__msan_|__sancov_|__llvm_|__gcov_)'

status=0
checked=0

# nm -B prints "value type name" (no value for undefined symbols).
defined_names() {
    awk 'NF >= 3 && $2 ~ /^[A-Zuvi]$/ { print $3 }'
}

if [ -n "$dlname" ]; then
    so=src/.libs/$dlname
    [ -f "$so" ] || { echo "check_exports: $so missing" >&2; exit 99; }
    names=$($NM -D --defined-only "$so" | defined_names | sed 's/@.*//' | sort -u)
    n=$(printf '%s\n' "$names" | grep -c '^tide_' || true)
    bad=$(printf '%s\n' "$names" | grep -v '^tide_' | grep -Ev "$linker_syms" |
        grep -Ev "$instr_syms" || true)
    if [ -n "$bad" ]; then
        echo "FAIL: $so exports symbols outside the tide_ namespace:"
        printf '  %s\n' $bad
        status=1
    else
        echo "ok: $so exports $n symbols, all tide_*"
    fi
    [ "$n" -gt 0 ] || { echo "FAIL: $so exports no tide_ symbol at all"; status=1; }

    # Both ways against the headers: every function (or object) declared TIDE_EXTERN
    # is exported (one without TIDE_EXTERN would be hidden), and nothing is
    # exported that no public header declares.
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/tide-exports.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    # tide/tls.h's functions exist only in a build with OpenSSL.
    headers="$top_srcdir/include/tide.h"
    for h in "$top_srcdir"/include/tide/*.h; do
        [ "${h##*/}" != tls.h ] || [ "${TIDE_HAVE_TLS:-0}" = 1 ] || continue
        headers="$headers $h"
    done
    awk '
        /^TIDE_EXTERN/ { buf = ""; want = 1 }
        want { buf = buf " " $0 }
        want && index(buf, "(") {
            sub(/[ \t]*\(.*/, "", buf)
            n = split(buf, w, /[ \t*]+/)
            print w[n]
            want = 0
        }
        want && index(buf, ";") { # an object: TIDE_EXTERN extern T name;
            sub(/[ \t]*;.*/, "", buf)
            n = split(buf, w, /[ \t*]+/)
            print w[n]
            want = 0
        }' $headers |
        sort -u >"$tmp/declared"
    printf '%s\n' "$names" | grep '^tide_' | sort -u >"$tmp/exported"
    hidden=$(comm -23 "$tmp/declared" "$tmp/exported")
    extra=$(comm -13 "$tmp/declared" "$tmp/exported")
    if [ -n "$hidden" ]; then
        echo "FAIL: declared TIDE_EXTERN in include/ but not exported by $so:"
        printf '  %s\n' $hidden
        status=1
    fi
    if [ -n "$extra" ]; then
        echo "FAIL: exported by $so but declared in no public header:"
        printf '  %s\n' $extra
        status=1
    fi
    [ -n "$hidden$extra" ] ||
        echo "ok: the $(wc -l <"$tmp/declared") functions declared TIDE_EXTERN are exactly those exported"
    checked=$((checked + 1))
fi

# A static library cannot hide anything: every global symbol it defines
# ends up in the program that links it, so keep those in tide's namespace
# too (internal ones are tide__*).
if [ -n "$oldlib" ]; then
    a=src/.libs/$oldlib
    [ -f "$a" ] || { echo "check_exports: $a missing" >&2; exit 99; }
    names=$($NM -g --defined-only "$a" 2>/dev/null | defined_names | sort -u)
    names=$(printf '%s\n' "$names" | grep -Ev "$instr_syms" || true)
    bad=$(printf '%s\n' "$names" | grep -v '^tide_' | grep -v '^$' || true)
    if [ -n "$bad" ]; then
        echo "FAIL: $a defines global symbols outside the tide_ namespace:"
        printf '  %s\n' $bad
        status=1
    else
        echo "ok: $a defines $(printf '%s\n' "$names" | grep -c .) global symbols, all tide_*"
    fi
    checked=$((checked + 1))
fi

if [ "$checked" = 0 ]; then
    echo "SKIP: neither a shared nor a static library was built"
    exit 77
fi
exit $status
