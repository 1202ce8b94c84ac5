#!/bin/sh
# What libtide.so links, and that it shares one libevent with an
# application linked with libevent-2.1 (doc/design.md, "Linking"):
#
#  1. DT_NEEDED is within the documented set: libevent_core-2.1,
#     libevent_extra-2.1 and libc (libpthread where the C library keeps it
#     apart; a sanitizer's runtime in an instrumented build), and OpenSSL's
#     libssl.so.3 and libcrypto.so.3 exactly when the TLS stream was built
#     (TIDE_HAVE_TLS=1: both required; 0: neither allowed); never
#     libevent-2.1 (the all-in-one library) nor libevent_pthreads or
#     libevent_openssl; and each libevent or OpenSSL library listed
#     provides symbols libtide uses (none is linked for nothing).
#  2. Every libevent symbol libtide uses is also defined by libevent-2.1,
#     so that an application's libevent-2.1 can stand for both.
#  3. t/linking/mixed.c, linked with libtide and libevent-2.1, runs tide on
#     the base libevent-2.1 made, and with every relocation bound at load
#     (LD_BIND_NOW), no libevent symbol binds to two libraries: every
#     object's references to one name, libevent_core's and
#     libevent_extra's own included, resolve to one definition (so each
#     libevent function runs from one copy, with one copy of its state).
#     Run twice: in the link order (libevent-2.1 first: everything binds
#     to it) and with libevent_core preloaded ahead of it (the core's
#     names bind to libevent_core), unless the build is instrumented (a
#     sanitizer runtime must come first).
#
# Run by `make check` from the build directory. Exit 77 (skip) without
# readelf, ldd, or libevent-2.1's pkg-config file.
set -eu
. ./t/testenv.sh

la=src/libtide.la
[ -f "$la" ] || { echo "check_linking: $la not built" >&2; exit 99; }
dlname=$(sed -n "s/^dlname='\(.*\)'$/\1/p" "$la")
[ -n "$dlname" ] || { echo "check_linking: no shared library built: skipped"; exit 77; }
so=src/.libs/$dlname
READELF=${READELF:-readelf}
for tool in "$READELF" ldd; do
    command -v "$tool" >/dev/null || { echo "check_linking: no $tool: skipped"; exit 77; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tide-linking.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# 1. DT_NEEDED.
"$READELF" -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' >"$tmp/needed"
allowed='libevent_core-2\.1\.so\.[0-9]+|libevent_extra-2\.1\.so\.[0-9]+|libc\.so\.[0-9]+|libpthread\.so\.[0-9]+'
# OpenSSL only with the TLS stream (configure's --with-openssl found it)
ssl_libs=
[ "$TIDE_HAVE_TLS" = 1 ] && ssl_libs="libssl libcrypto"
for lib in $ssl_libs; do allowed="$allowed|$lib\.so\.3"; done
allowed="^($allowed)\$"
sanitizer='^(libasan|libubsan|libtsan|liblsan|libclang_rt\.[a-z_]+)(-[a-z0-9_]+)?\.so(\.[0-9]+)*$'
extra=$(grep -Ev "$allowed" "$tmp/needed" | grep -Ev "$sanitizer" || true)
if [ -z "$extra" ]; then
    ok "DT_NEEDED of $so: $(tr '\n' ' ' <"$tmp/needed")"
else
    bad "DT_NEEDED of $so has more than doc/design.md's set:" $extra
fi
for lib in libevent_core libevent_extra; do
    grep -q "^$lib-2\.1\.so\." "$tmp/needed" || bad "$so does not link $lib-2.1"
done
for lib in $ssl_libs; do
    grep -q "^$lib\.so\.3\$" "$tmp/needed" ||
        bad "$so is built with TLS (TIDE_HAVE_TLS=1) but does not link $lib.so.3"
done

# Where the dynamic linker finds them for libtide.so.
ldd "$so" >"$tmp/ldd"
path_of() { sed -n "s|^[[:space:]]*$1-2\.1\.so\.[0-9]* => \([^ ]*\) .*|\1|p" "$tmp/ldd"; }
core=$(path_of libevent_core)
extra_so=$(path_of libevent_extra)
[ -n "$core" ] && [ -n "$extra_so" ] || { cat "$tmp/ldd"; bad "ldd does not find libevent_core/libevent_extra"; }

$NM -D --undefined-only "$so" | awk '{ print $NF }' | sed 's/@.*//' | sort -u >"$tmp/undef"
defined() { $NM -D --defined-only "$1" | awk '{ print $NF }' | sed 's/@.*//' | sort -u; }
if [ -n "$core" ] && [ -n "$extra_so" ]; then
    defined "$core" >"$tmp/core.def"
    defined "$extra_so" >"$tmp/extra.def"
    comm -12 "$tmp/undef" "$tmp/core.def" >"$tmp/from-core"
    comm -12 "$tmp/undef" "$tmp/extra.def" >"$tmp/from-extra"
    for part in core extra; do
        n=$(wc -l <"$tmp/from-$part")
        if [ "$n" -gt 0 ]; then
            ok "libtide uses $n symbols of libevent_$part ($(head -n 3 "$tmp/from-$part" | tr '\n' ' ')...)"
        else
            bad "libtide links libevent_$part but uses none of its symbols"
        fi
    done
fi

# OpenSSL's libraries, when linked, each provide symbols libtide uses.
for lib in $ssl_libs; do
    p=$(sed -n "s|^[[:space:]]*$lib\.so\.3 => \([^ ]*\) .*|\1|p" "$tmp/ldd")
    if [ -z "$p" ]; then
        bad "ldd does not find $lib.so.3"
        continue
    fi
    defined "$p" | comm -12 "$tmp/undef" - >"$tmp/from-$lib"
    n=$(wc -l <"$tmp/from-$lib")
    if [ "$n" -gt 0 ]; then
        ok "TLS built: libtide uses $n symbols of $lib.so.3 ($(head -n 3 "$tmp/from-$lib" | tr '\n' ' ')...)"
    else
        bad "libtide links $lib.so.3 but uses none of its symbols"
    fi
done

# 2 and 3 need libevent-2.1 as an application would link it.
if ! pkg-config --exists libevent 2>/dev/null; then
    echo "check_linking: no libevent.pc (libevent-2.1): the mixed checks skipped"
    echo "check_linking: $pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
fi
# shellcheck disable=SC2086
if ! $CC $CFLAGS -std=c11 -I"$top_srcdir/include" -I"$top_builddir/include" \
    $(pkg-config --cflags libevent) -o "$tmp/mixed" "$top_srcdir/t/linking/mixed.c" \
    $LDFLAGS "$top_builddir/$so" $(pkg-config --libs libevent) \
    -Wl,-rpath,"$top_builddir/src/.libs" 2>"$tmp/cc.log"; then
    cat "$tmp/cc.log"
    bad "t/linking/mixed.c does not build with libtide and libevent-2.1"
    echo "check_linking: $pass passed, $fail failed"
    exit 1
fi
ldd "$tmp/mixed" >"$tmp/mixed.ldd"
all=$(sed -n 's|^[[:space:]]*libevent-2\.1\.so\.[0-9]* => \([^ ]*\) .*|\1|p' "$tmp/mixed.ldd")
if [ -n "$all" ] && [ -n "$core" ] && [ -n "$extra_so" ]; then
    ok "one process loads libevent-2.1 ($all), libevent_core and libevent_extra"
    defined "$all" >"$tmp/all.def"
    missing=$(cat "$tmp/from-core" "$tmp/from-extra" | sort -u | comm -23 - "$tmp/all.def")
    if [ -z "$missing" ]; then
        ok "libevent-2.1 defines every libevent symbol libtide uses"
    else
        bad "symbols libtide uses that libevent-2.1 lacks:" $missing
    fi
else
    cat "$tmp/mixed.ldd"
    bad "mixed does not load libevent-2.1, libevent_core and libevent_extra"
fi

# run WHAT [PRELOAD]: run mixed with every relocation bound at load, and
# check each libevent name (one libevent-2.1 defines) binds to one library.
run_mixed() {
    what=$1
    if ! env LD_BIND_NOW=1 LD_DEBUG=bindings ${2:+LD_PRELOAD=$2} "$tmp/mixed" \
        >"$tmp/out" 2>"$tmp/debug"; then
        cat "$tmp/out"
        grep -v 'binding file\|^[[:space:]]*[0-9]*:[[:space:]]*$' "$tmp/debug" | tail -n 20
        bad "$what: mixed failed"
        return
    fi
    ok "$what: $(cat "$tmp/out")"
    # "binding file FROM [0] to TO [0]: normal symbol `NAME'"
    sed -n "s/.*binding file \([^ ]*\) \[[0-9]*\] to \([^ ]*\) \[[0-9]*\]: [a-z]* symbol \`\([^']*\)'.*/\3 \2 \1/p" \
        "$tmp/debug" | sed 's/@[^ ]*//' | sort -u >"$tmp/bindings"
    awk 'NR == FNR { ev[$1] = 1; next } ($1 in ev)' "$tmp/all.def" "$tmp/bindings" \
        >"$tmp/ev-bindings"
    n=$(wc -l <"$tmp/ev-bindings")
    twice=$(awk '{ print $1, $2 }' "$tmp/ev-bindings" | sort -u | awk '{ print $1 }' | uniq -d)
    from_core=$(grep -c " $core\$" "$tmp/ev-bindings" || true)
    [ -n "$core" ] || from_core=0
    if [ "$n" -gt 0 ] && [ -z "$twice" ] && [ "$from_core" -gt 0 ]; then
        targets=$(awk '{ print $2 }' "$tmp/ev-bindings" | sort | uniq -c | awk '{ printf "%s %s; ", $1, $2 }')
        ok "$what: $n bindings of libevent names ($from_core from libevent_core's own code), each name to one library: $targets"
    else
        [ -z "$twice" ] || grep -E "^($(echo $twice | tr ' ' '|')) " "$tmp/ev-bindings" | head -n 20
        bad "$what: $n libevent bindings, $from_core from libevent_core, names bound to two libraries: ${twice:-none}"
    fi
}
if [ -f "$tmp/all.def" ]; then
    run_mixed "link order"
    case " $CFLAGS $LDFLAGS " in
    *-fsanitize=*) echo "check_linking: instrumented build: the preloaded run skipped" ;;
    *) run_mixed "libevent_core preloaded" "$core" ;;
    esac
fi
echo "check_linking: $pass passed, $fail failed"
[ "$fail" = 0 ]
