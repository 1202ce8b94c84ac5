#!/usr/bin/env python3
"""t/tls_peer.py: Python's ssl module as the peer of tide's TLS stream
(t/check_tls_peers.sh).

  tls_peer.py server CERT KEY       print "port N", take one connection,
                                    echo until close_notify, answer it
  tls_peer.py client PORT CA HOST N send N bytes (os.urandom) in 64 KiB
                                    blocks, reading each back, compare
                                    their SHA-256, then unwrap
                                    (close_notify)
  tls_peer.py truncate-server CERT KEY
                                    print "port N", take one connection,
                                    send "bye\\n", end the TCP stream
                                    without close_notify
  tls_peer.py truncate PORT CA HOST send 5 bytes, read them back, close the
                                    socket without close_notify
  tls_peer.py verify PORT CA HOST   handshake only: print "verified" or
                                    "refused: REASON" (exit 0 either way)
"""
import hashlib
import os
import socket
import ssl
import sys


def client_ctx(ca):
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


def connect(port, ca, host):
    raw = socket.create_connection(("127.0.0.1", int(port)), timeout=60)
    # one block in flight at a time (main's "client"): without TCP_NODELAY
    # Nagle and delayed ACKs stall every block by 40 ms
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client_ctx(ca).wrap_socket(raw, server_hostname=host)


def main(argv):
    what = argv[1]
    if what == "server":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(argv[2], argv[3])
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        print("port", lsock.getsockname()[1], flush=True)
        raw, _ = lsock.accept()
        raw.settimeout(60)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = ctx.wrap_socket(raw, server_side=True)
        total = 0
        while True:
            data = conn.recv(65536)
            if not data:  # close_notify (ssl raises on a truncation)
                break
            conn.sendall(data)
            total += len(data)
        conn.unwrap()
        print("end", total, flush=True)
        return 0
    if what == "truncate-server":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(argv[2], argv[3])
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        print("port", lsock.getsockname()[1], flush=True)
        raw, _ = lsock.accept()
        raw.settimeout(20)
        conn = ctx.wrap_socket(raw, server_side=True)
        conn.sendall(b"bye\n")
        # end the TCP stream under TLS: FIN without close_notify, then
        # wait for the client to close (so that nothing is reset)
        raw = socket.socket(fileno=conn.detach())
        raw.settimeout(20)  # the descriptor was left non-blocking
        raw.shutdown(socket.SHUT_WR)
        while raw.recv(65536):
            pass
        raw.close()
        print("truncated", flush=True)
        return 0
    if what == "client":
        n = int(argv[5])
        conn = connect(argv[2], argv[3], argv[4])
        # random blocks, compared by their SHA-256: byte-exact and fast.
        # One block in flight at a time: an SSL socket is not to be used
        # by two threads at once (a writer thread and a reader would race
        # on one SSL object), and a block fits in the socket buffers.
        # TCP_NODELAY (connect) keeps the round trips short.
        sent, back = hashlib.sha256(), hashlib.sha256()
        got = 0
        while got < n:
            block = os.urandom(min(65536, n - got))
            sent.update(block)
            conn.sendall(block)
            want = got + len(block)
            while got < want:
                data = conn.recv(want - got)
                if not data:
                    break
                back.update(data)
                got += len(data)
            if got < want:
                break
        conn.unwrap()  # our close_notify, and the server's answer
        if got != n or back.digest() != sent.digest():
            print("echo: got %d of %d bytes, %s" %
                  (got, n, "same" if back.digest() == sent.digest() else "different"))
            return 1
        print("ok", got, flush=True)
        return 0
    if what == "truncate":
        conn = connect(argv[2], argv[3], argv[4])
        conn.sendall(b"12345")
        got = b""
        while len(got) < 5:
            got += conn.recv(5)
        # close the TCP connection under TLS: no close_notify
        raw = socket.socket(fileno=conn.detach())
        raw.shutdown(socket.SHUT_WR)
        raw.close()
        print("truncated", flush=True)
        return 0
    if what == "verify":
        try:
            conn = connect(argv[2], argv[3], argv[4])
            print("verified", flush=True)
            conn.close()
        except ssl.SSLCertVerificationError as e:
            print("refused:", e.verify_message, flush=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
