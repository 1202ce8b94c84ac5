#!/bin/bash
# samples/http-backend (an evhttp server whose handler is a tide task
# calling a TCP backend) and its callback twin, with real HTTP clients
# (curl, and python3's http.client), against tide-echod as the backend:
#   - each replies 200 with the URI the backend echoed, for each request;
#   - 40 concurrent requests all get their own URI back;
#   - with the backend gone, the reply is 502;
#   - the task server with a 2 s delay: a client that leaves mid-wait is
#     dropped and the server keeps serving (the next request is answered);
#   - GET /quit replies "bye" and the server exits 0.
set -u
. ./t/testenv.sh

if ! command -v curl >/dev/null; then
    echo "SKIP: no curl"
    exit 77
fi
tmp=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; }

./samples/tide-echod -l 127.0.0.1:0 >"$tmp/echod.out" 2>&1 &
echod=$!
pids="$pids $echod"
wait_line "$tmp/echod.out" 'listening on 127\.0\.0\.1:[0-9]' ||
    { echo "FAIL: tide-echod did not start"; exit 1; }
backend=$(sed -n 's/^echod: listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' \
    "$tmp/echod.out" | head -n 1)

# start NAME PROG ARGS...: run PROG, set port to where it listens.
start() {
    local name=$1
    shift
    "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pid=$!
    pids="$pids $pid"
    if ! wait_line "$tmp/$name.out" '^listening on 127\.0\.0\.1:[0-9]'; then
        fail "$name did not say where it listens: $(cat "$tmp/$name.err")"
        return 1
    fi
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' \
        "$tmp/$name.out")
}

# quit NAME: GET /quit answers bye, then the server exits 0.
quit() {
    local resp
    resp=$(curl -s -m 10 "http://127.0.0.1:$port/quit")
    [ "$resp" = bye ] || fail "$1: /quit answered '$resp'"
    wait_exit "$pid"
    [ "$st" = 0 ] || fail "$1: exit status $st after /quit"
}

for prog in http-backend http-backend-cb; do
    start "$prog" "./samples/http-backend/$prog" 0 "$backend" || continue
    ok=1
    for u in /a /hello/world "/x?y=1"; do
        got=$(curl -s -m 10 -w ' %{http_code}' "http://127.0.0.1:$port$u")
        [ "$got" = "$u
 200" ] || { fail "$prog: GET $u: '$got'"; ok=0; }
    done
    [ $ok = 1 ] && echo "ok: $prog replies with what the backend echoed"
    cpids=
    for i in $(seq 40); do
        curl -s -m 20 -o "$tmp/c$i" "http://127.0.0.1:$port/c$i" &
        cpids="$cpids $!"
    done
    wait $cpids
    bad=0
    for i in $(seq 40); do
        [ "$(cat "$tmp/c$i" 2>/dev/null)" = "/c$i" ] || bad=$((bad + 1))
    done
    if [ $bad = 0 ]; then
        echo "ok: $prog answered 40 concurrent requests"
    else
        fail "$prog: $bad of 40 concurrent requests got a wrong reply"
    fi
    quit "$prog" && echo "ok: $prog quit on /quit"
done

# A backend that is gone: 502.
for prog in http-backend http-backend-cb; do
    start "$prog-nobackend" "./samples/http-backend/$prog" 0 127.0.0.1:1 ||
        continue
    code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$port/z")
    [ "$code" = 502 ] && echo "ok: $prog answers 502 without a backend" ||
        fail "$prog without a backend answered $code"
    quit "$prog-nobackend"
done

# A client that leaves while the task sleeps: the server serves on.
if start delay ./samples/http-backend/http-backend 0 "$backend" 2000; then
    python3 - "$port" <<'PY' || fail "python client: $?"
import http.client, socket, sys, time
port = int(sys.argv[1])
for i in range(5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/gone%d" % i)
    time.sleep(0.05)
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
time.sleep(0.3)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/stay")
r = c.getresponse()
body = r.read()
assert r.status == 200 and body == b"/stay\n", (r.status, body)
PY
    if kill -0 "$pid" 2>/dev/null; then
        echo "ok: clients left mid-wait and the server kept serving"
    else
        fail "http-backend died after clients left mid-wait"
    fi
    quit delay
fi

exit $failed
