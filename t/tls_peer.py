#!/usr/bin/env python3
"""t/tls_peer.py: Python's ssl module as the peer of tide's TLS stream
(t/check_tls_peers.sh).

  tls_peer.py server CERT KEY       print "port N", take one connection,
                                    echo until close_notify, answer it
  tls_peer.py client PORT CA HOST N send N bytes (os.urandom) while
                                    reading them back,
                                    compare their SHA-256, then unwrap
                                    (close_notify)
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
import threading


def client_ctx(ca):
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


def connect(port, ca, host):
    raw = socket.create_connection(("127.0.0.1", int(port)), timeout=60)
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
    if what == "client":
        n = int(argv[5])
        conn = connect(argv[2], argv[3], argv[4])
        # random blocks, compared by their SHA-256: byte-exact and fast
        sent = hashlib.sha256()

        def writer():
            off = 0
            while off < n:
                block = os.urandom(min(65536, n - off))
                sent.update(block)
                conn.sendall(block)
                off += len(block)

        t = threading.Thread(target=writer)
        t.start()
        got, back = 0, hashlib.sha256()
        while got < n:
            data = conn.recv(65536)
            if not data:
                break
            back.update(data)
            got += len(data)
        t.join()
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
