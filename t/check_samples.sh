#!/bin/bash
# The samples as a reader runs them (run by `make check` from the build
# directory; bash for its /dev/tcp, which even a minimal machine has):
#   - README.md's first task is samples/first-echo.c's text, verbatim;
#   - first-echo is at most 30 non-blank lines and warning-free with
#     -Wall -Wextra -Werror;
#   - first-echo says where it listens (port 0: the port it got) and echoes;
#   - first-echo keeps serving through a transient accept error (EMFILE)
#     and ends, with a message and a non-zero exit, on any other (EINVAL);
#     accept4 is made to fail by a small LD_PRELOAD shim;
#   - embed answers GET /quit with its reply ("bye"), then exits 0.
set -u
. ./t/testenv.sh

tmp=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; }

# roundtrip PORT TEXT: one line to 127.0.0.1:PORT and its echo back.
roundtrip() {
    local got
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf '%s\n' "$2" >&3
    IFS= read -r -t 10 got <&3
    exec 3>&-
    [ "$got" = "$2" ]
}

# ---- README's first task is first-echo.c's code ---------------------------
awk '/^## A first task/ { s = 1 } s && /^```c$/ { c = 1; next }
     c && /^```$/ { exit } c' "$top_srcdir/README.md" >"$tmp/readme.c"
n=$(wc -l <"$tmp/readme.c")
start=$(grep -nxF -- "$(head -n 1 "$tmp/readme.c")" \
    "$top_srcdir/samples/first-echo.c" | sed -n '1s/:.*//p')
if [ "$n" = 0 ]; then
    fail "README.md: no C block under '## A first task'"
elif [ -z "$start" ] ||
    ! sed -n "$start,$((start + n - 1))p" "$top_srcdir/samples/first-echo.c" |
        cmp -s - "$tmp/readme.c"; then
    fail "README.md's first task is not samples/first-echo.c's text"
else
    echo "ok: README's first task is in samples/first-echo.c"
fi

# ---- first-echo: the reference server on one screen, warning-free --------
n=$(grep -cv '^[[:space:]]*$' "$top_srcdir/samples/first-echo.c")
if [ "$n" -gt 30 ]; then
    fail "samples/first-echo.c has $n non-blank lines (at most 30)"
else
    echo "ok: samples/first-echo.c is $n non-blank lines"
fi
if $CC -std=c11 -Wall -Wextra -Werror -I"$top_srcdir/include" \
    -I"$top_builddir/include" -c -o "$tmp/fe.o" \
    "$top_srcdir/samples/first-echo.c" 2>"$tmp/fe-cc.err"; then
    echo "ok: samples/first-echo.c compiles with -Wall -Wextra -Werror"
else
    fail "samples/first-echo.c with -Wall -Wextra -Werror: $(cat "$tmp/fe-cc.err")"
fi

# ---- first-echo: prints its address, echoes --------------------------------
# The shim: once the file $TIDE_ACCEPT_FAIL exists, accept4 fails with the
# errno written in it.
cat >"$tmp/shim.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags) {
    const char *path = getenv("TIDE_ACCEPT_FAIL");
    FILE *f = path ? fopen(path, "r") : NULL;
    int e = 0;
    if (f != NULL) {
        if (fscanf(f, "%d", &e) != 1)
            e = 0;
        fclose(f);
    }
    if (e > 0) {
        errno = e;
        return -1;
    }
    int (*real)(int, struct sockaddr *, socklen_t *, int) =
        (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT,
                                                                 "accept4");
    return real(fd, sa, len, flags);
}
EOF
if ! $CC -shared -fPIC -o "$tmp/shim.so" "$tmp/shim.c" -ldl; then
    echo "check_samples: cannot build the accept4 shim"
    exit 99
fi

trigger=$tmp/accept-fail
# The shim is not instrumented: AddressSanitizer must not insist on coming
# first.
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
    TIDE_ACCEPT_FAIL=$trigger LD_PRELOAD=$tmp/shim.so \
    ./samples/first-echo 127.0.0.1:0 >"$tmp/fe.out" 2>"$tmp/fe.err" &
fe=$!
pids="$pids $fe"
if ! wait_line "$tmp/fe.err" '^first-echo: listening on 127\.0\.0\.1:[0-9][0-9]*$'; then
    fail "first-echo did not say where it listens: $(cat "$tmp/fe.out" "$tmp/fe.err")"
else
    port=$(sed -n 's/^first-echo: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/fe.err")
    [ "$port" != 0 ] || fail "first-echo printed port 0, not the port it got"
    if roundtrip "$port" "hello first-echo"; then
        echo "ok: first-echo listens on 127.0.0.1:$port and echoes"
    else
        fail "first-echo did not echo"
    fi

    # Transient: descriptors ran out for a while; then it serves again.
    echo 24 >"$trigger" # EMFILE
    exec 4<>"/dev/tcp/127.0.0.1/$port"
    sleep 0.3
    rm -f "$trigger"
    printf 'after EMFILE\n' >&4
    IFS= read -r -t 10 got <&4
    exec 4>&-
    if [ "${got:-}" = "after EMFILE" ] && kill -0 "$fe" 2>/dev/null; then
        echo "ok: first-echo serves again after EMFILE"
    else
        fail "first-echo did not serve after EMFILE: $(cat "$tmp/fe.err")"
    fi

    # Anything else: a message and a non-zero exit, not a loop forever.
    echo 22 >"$trigger" # EINVAL
    exec 4<>"/dev/tcp/127.0.0.1/$port"
    wait_exit "$fe"
    exec 4>&-
    if [ "$st" = running ]; then
        fail "first-echo still running after accept failed with EINVAL"
    elif [ "$st" = 0 ] || ! grep -q '^first-echo: accept: ' "$tmp/fe.err"; then
        fail "first-echo after EINVAL: exit $st, stderr: $(cat "$tmp/fe.err")"
    else
        echo "ok: first-echo exits $st after EINVAL: $(cat "$tmp/fe.err")"
    fi
fi

# ---- embed: GET /quit gets its reply, then embed exits 0 -------------------
./samples/embed/embed 0 0 >"$tmp/embed.out" 2>"$tmp/embed.err" &
em=$!
pids="$pids $em"
if ! wait_line "$tmp/embed.out" '^embed: http on 127\.0\.0\.1:[0-9]'; then
    fail "embed did not say where it listens: $(cat "$tmp/embed.out" "$tmp/embed.err")"
else
    port=$(sed -n 's/^embed: http on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/embed.out")
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET /quit HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&3
    resp=$(timeout 10 cat <&3 | tr -d '\r')
    exec 3>&-
    wait_exit "$em"
    case $resp in
    "HTTP/1.1 200 OK"*bye) echo "ok: embed answered /quit" ;;
    *) fail "embed's reply to /quit: '$resp'" ;;
    esac
    if [ "$st" = 0 ]; then
        echo "ok: embed exited 0 after /quit"
    else
        fail "embed after /quit: exit $st, stderr: $(cat "$tmp/embed.err")"
    fi
fi

exit $failed
