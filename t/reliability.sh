#!/bin/sh
# t/reliability.sh: the reliability runs that need more than `make check`.
#
#   t/reliability.sh valgrind        the suite under valgrind memcheck
#                                    (make check-valgrind in build/)
#   t/reliability.sh tsan            the suite built with -fsanitize=thread
#                                    (build-tsan/, gcc's libtsan)
#   t/reliability.sh fuzz [SECS]     libFuzzer (clang) on each harness of
#                                    t/fuzz for SECS seconds (default 30),
#                                    seeded with the committed corpus
#   t/reliability.sh fuzz-merge [SECS]  fuzz, then merge what was found into
#                                    t/fuzz/corpus (minimised): commit it
#   t/reliability.sh stress [--soak-secs N] [--conns N]
#                                    the echo daemon under load (make
#                                    check-stress in build/)
#   t/reliability.sh long            the long runs: soak under fault
#                                    injection (1M operations), stress with a
#                                    60 s soak, fuzzing 300 s per harness
#
# Build directories live beside the source tree, as .ci/test's do
# (build/ is shared with `.ci/test`, plain -O2 -g), or under
# $TIDE_BUILD_ROOT if set. Each run prints a
# closing "<what>: N passed, N failed" line and exits non-zero on failure.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
root=${TIDE_BUILD_ROOT:-$top}
jobs=$(nproc 2>/dev/null || echo 2)
what=${1:-}
[ $# -gt 0 ] && shift

configure_in() { # dir, then configure arguments
    dir=$1
    shift
    cd "$top"
    [ -x configure ] || autoreconf -fi >/dev/null
    mkdir -p "$dir"
    cd "$dir"
    [ -f Makefile ] || "$top/configure" -q "$@"
}

plain_build() {
    configure_in "$root/build" --enable-werror CFLAGS="-O2 -g"
    make -j"$jobs" >/dev/null
}

case $what in
valgrind)
    command -v valgrind >/dev/null || { echo "valgrind: not installed" >&2; exit 1; }
    plain_build
    # valgrind fixes the descriptor limit at the value the program starts
    # with; a login's soft limit (1024 on Debian) is below what
    # check_echod's 1000-connection test needs: raise it to the hard one.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    make -j"$jobs" check-valgrind
    ;;

tsan)
    # gcc's ThreadSanitizer (libtsan2 comes with gcc). libevent itself is
    # not instrumented; tide's cross-thread paths (remote wakes through the
    # executor's mutex and eventfd, echod's notify_t) are.
    configure_in "$root/build-tsan" --enable-werror CC=gcc \
        CFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread"
    make -j"$jobs" >/dev/null
    status=0
    # TSan runs the suite 5-30 times slower. The tests' own watchdogs
    # (t/testutil.h) see the TSan build and scale themselves by 10 (so do
    # their TCase timeouts); CK_TIMEOUT_MULTIPLIER stretches Check's
    # timeouts in the programs that do not use testutil.h too.
    # TIDE_TEST_SLOWDOWN=N in the environment overrides the factor of the
    # watchdogs (a loaded machine).
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
    CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-10} \
        make -j"$jobs" check >/dev/null 2>&1 || status=$?
    passed=0 failed=0
    for trs in $(find t -name '*.trs' | sort); do
        log=${trs%.trs}.log
        res=$(sed -n 's/^:test-result: //p' "$trs")
        grep -h '^[0-9]*%: Checks:' "$log" | sed "s|^|${trs%.trs}: |" || true
        if [ "$res" = PASS ] || [ "$res" = SKIP ]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            echo "---- ${trs%.trs} ($res) ----"
            tail -n 60 "$log"
        fi
    done
    if grep -l 'ThreadSanitizer' $(find t -name '*.log') 2>/dev/null; then
        echo "tsan: reports above"
        failed=$((failed + 1))
    fi
    [ "$status" != 0 ] && [ "$failed" = 0 ] && failed=1
    echo "tsan: $passed passed, $failed failed"
    [ "$failed" = 0 ]
    ;;

fuzz|fuzz-merge)
    secs=${1:-30}
    command -v clang >/dev/null || { echo "fuzz: clang not installed" >&2; exit 1; }
    san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
    configure_in "$root/build-fuzz" CC=clang \
        CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $san" \
        LDFLAGS="$san"
    make -j"$jobs" src/libtide-internal.la include/tide/version.h >/dev/null
    libs="src/.libs/libtide-internal.a $(pkg-config --libs libevent_core libevent_extra) -lpthread"
    inc="-D_GNU_SOURCE -I$top/include -Iinclude -I$top/src -I$top/t -I$top/samples/echod"
    passed=0 failed=0
    for name in addr line lencodec echod_args; do
        extra=""
        [ "$name" = echod_args ] && extra="$top/samples/echod/options.c"
        bin=fuzz-$name
        # shellcheck disable=SC2086
        clang -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer $san $inc \
            "$top/t/fuzz/fuzz_$name.c" $extra $libs -o "$bin"
        work=corpus-$name
        mkdir -p "$work" artifacts
        log=fuzz-$name.log
        if ./"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
               -artifact_prefix=artifacts/"$name"- \
               "$work" "$top/t/fuzz/corpus/$name" >"$log" 2>&1; then
            passed=$((passed + 1))
            echo "fuzz $name: $(grep -E '^#[0-9]+' "$log" | tail -n 1 | tr -s ' \t' ' ')"
        else
            failed=$((failed + 1))
            echo "---- fuzz $name FAILED (crash input in $PWD/artifacts/) ----"
            tail -n 60 "$log"
        fi
        if [ "$what" = fuzz-merge ]; then
            ./"$bin" -merge=1 "$top/t/fuzz/corpus/$name" "$work" >/dev/null 2>&1
            echo "fuzz $name: corpus now $(ls "$top/t/fuzz/corpus/$name" | wc -l) files"
        fi
    done
    echo "fuzz: $passed passed, $failed failed"
    [ "$failed" = 0 ]
    ;;

stress)
    plain_build
    make -j"$jobs" samples/tide-echod t/stress/echoload >/dev/null
    make check-stress STRESS_FLAGS="$*"
    ;;

long)
    plain_build
    make -j"$jobs" t/fault/check_soak t/stress/echoload samples/tide-echod >/dev/null
    make check-long
    "$0" fuzz 300
    ;;

*)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
