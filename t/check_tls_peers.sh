#!/bin/sh
# tide's TLS stream against peers nobody here wrote: openssl s_server and
# s_client (OpenSSL's own programs) and Python's ssl module, with
# certificates made now (t/tls_certs.sh). t/tls_peer is tide's side.
#   - Python echo server, tide client: 64 MiB echoed byte-exact, close_notify
#   - tide echo server, Python client: 64 MiB (SHA-256 compared), the
#     client's close_notify is end of stream (the server's read: 0)
#   - a Python client closing TCP without close_notify: tide's server read
#     is -ECONNABORTED (-103); a Python server doing so: tide's client's
#     read too
#   - s_server -rev, tide client: a line each way
#   - tide client against s_server with the wrong host name, a self-signed
#     and an expired certificate: -EKEYREJECTED (-129)
#   - tide greeting server, s_client verifying (-verify_return_error):
#     the greeting arrives, "Verify return code: 0 (ok)"
#   - Python's verifying client refuses tide serving self-signed and
#     expired certificates
# Skipped (77) without OpenSSL in the build, openssl(1) or python3.
set -eu
. ./t/testenv.sh
[ "$TIDE_HAVE_TLS" = 1 ] || { echo "SKIP: tide was built without OpenSSL"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: no openssl program"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
peer=./t/tls_peer
py="python3 $top_srcdir/t/tls_peer.py"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tide-tls-peers.XXXXXX")
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
sh "$top_srcdir/t/tls_certs.sh" "$tmp/c"
c=$tmp/c
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; sed 's/^/  | /' "$tmp"/*.out 2>/dev/null | tail -n 20; }

# start NAME CMD...: run CMD in the background, output in $tmp/NAME.out;
# wait for its "port N" line: $port
start() {
    name=$1
    shift
    timeout 30 "$@" >"$tmp/$name.out" 2>&1 &
    last=$!
    pids="$pids $last"
    wait_line "$tmp/$name.out" '^port ' || { echo "no port from $name"; cat "$tmp/$name.out"; exit 1; }
    port=$(sed -n 's/^port //p' "$tmp/$name.out" | head -n 1)
}
# a free port for s_server (which prints none): bind 0, close, reuse
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# s_server on a free port, waiting until it accepts (another try on a new
# port if someone took that one between free_port and s_server's bind)
s_server() { # NAME CERT-NAME
    for _ in 1 2 3; do
        port=$(free_port)
        timeout 30 openssl s_server -accept "127.0.0.1:$port" -cert "$c/$2.pem" \
            -key "$c/$2.key" -naccept 1 -rev >"$tmp/$1.out" 2>&1 </dev/null &
        last=$!
        pids="$pids $last"
        wait_line "$tmp/$1.out" '^ACCEPT' && return 0
        kill "$last" 2>/dev/null || true
    done
    echo "s_server did not start"
    cat "$tmp/$1.out"
    exit 1
}
MiB64=$((64 * 1024 * 1024))

# 1. Python echo server, tide client, 64 MiB
start pysrv $py server "$c/server.pem" "$c/server.key"
if timeout 30 $peer client "$port" "$c/ca.pem" localhost echo $MiB64 >"$tmp/cli.out" 2>&1 &&
    grep -q "^ok $MiB64\$" "$tmp/cli.out"; then
    wait_exit "$last"
    if [ "$st" = 0 ] && grep -q "^end $MiB64\$" "$tmp/pysrv.out"; then
        ok "tide client, Python server: 64 MiB echoed byte-exact, close_notify both ways"
    else bad "Python server after the echo (exit $st)"; fi
else bad "tide client against the Python echo server"; fi
rm -f "$tmp"/*.out

# 2. tide echo server, Python client, 64 MiB
start tidesrv $peer server "$c/server.pem" "$c/server.key" echo
if timeout 30 $py client "$port" "$c/ca.pem" localhost $MiB64 >"$tmp/py.out" 2>&1 &&
    grep -q "^ok $MiB64\$" "$tmp/py.out"; then
    wait_exit "$last"
    if [ "$st" = 0 ] && grep -q '^end 0$' "$tmp/tidesrv.out"; then
        ok "tide server, Python client: 64 MiB echoed byte-exact, close_notify is end of stream"
    else bad "tide server after the echo (exit $st)"; fi
else bad "Python client against the tide echo server"; fi
rm -f "$tmp"/*.out

# 3. truncation
start tidesrv $peer server "$c/server.pem" "$c/server.key" echo
timeout 20 $py truncate "$port" "$c/ca.pem" localhost >"$tmp/py.out" 2>&1 || true
wait_exit "$last"
if grep -q '^end -103$' "$tmp/tidesrv.out"; then
    ok "Python client closing without close_notify: tide server reads -ECONNABORTED"
else bad "truncation by the Python client"; fi
rm -f "$tmp"/*.out

# 3b. truncation the other way: a Python server ends TCP without
# close_notify; tide's client reads the greeting, then -ECONNABORTED
start pysrv $py truncate-server "$c/server.pem" "$c/server.key"
timeout 20 $peer client "$port" "$c/ca.pem" localhost drain >"$tmp/cli.out" 2>&1 || true
wait_exit "$last"
if grep -q '^end -103$' "$tmp/cli.out" && grep -q '^truncated$' "$tmp/pysrv.out"; then
    ok "Python server closing without close_notify: tide client reads -ECONNABORTED"
else bad "truncation by the Python server"; fi
rm -f "$tmp"/*.out

# 4. s_server -rev, tide client
s_server ssrv server
if timeout 20 $peer client "$port" "$c/ca.pem" localhost rev >"$tmp/cli.out" 2>&1 &&
    grep -q '^ok$' "$tmp/cli.out"; then
    ok "tide client, openssl s_server -rev: verified, a line each way, close_notify"
else bad "tide client against s_server"; fi
kill "$last" 2>/dev/null || true
rm -f "$tmp"/*.out

# 5. refusals by the tide client, s_server presenting the certificate
for case in "server wrong.example" "self localhost" "expired localhost"; do
    set -- $case
    s_server ssrv "$1"
    timeout 20 $peer client "$port" "$c/ca.pem" "$2" hs >"$tmp/cli.out" 2>&1 || true
    if grep -q '^handshake -129$' "$tmp/cli.out"; then
        ok "tide client refuses s_server's $1 certificate for $2: $(sed -n 's/^reason //p' "$tmp/cli.out")"
    else bad "tide client accepted s_server's $1 certificate for $2"; fi
    kill "$last" 2>/dev/null || true
    rm -f "$tmp"/*.out
done

# 6. s_client, verifying, against tide's greeting server
start tidesrv $peer server "$c/server.pem" "$c/server.key" greet
timeout 20 openssl s_client -connect "127.0.0.1:$port" -CAfile "$c/ca.pem" \
    -servername localhost -verify_hostname localhost -verify_return_error \
    -ign_eof </dev/null >"$tmp/sc.out" 2>&1 || true
wait_exit "$last"
if grep -q '^hello from tide$' "$tmp/sc.out" &&
    grep -q 'Verify return code: 0 (ok)' "$tmp/sc.out" && [ "$st" = 0 ]; then
    ok "openssl s_client, verifying, against the tide server: greeting received"
else bad "s_client against the tide server (server exit $st)"; fi
rm -f "$tmp"/*.out

# 7. Python's verifying client refuses tide serving bad certificates
for cert in self expired; do
    start tidesrv $peer server "$c/$cert.pem" "$c/$cert.key" echo
    timeout 20 $py verify "$port" "$c/ca.pem" localhost >"$tmp/py.out" 2>&1 || true
    wait_exit "$last"
    if grep -q '^refused:' "$tmp/py.out"; then
        ok "Python refuses tide's $cert certificate: $(sed -n 's/^refused: //p' "$tmp/py.out")"
    else bad "Python accepted tide's $cert certificate"; fi
    rm -f "$tmp"/*.out
done

echo "tls peers: $pass passed, $fail failed"
[ "$fail" = 0 ]
