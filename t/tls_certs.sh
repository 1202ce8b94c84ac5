#!/bin/sh
# t/tls_certs.sh DIR: make the certificates the TLS tests use, in DIR, with
# openssl(1); nothing here is committed, least of all a key. P-256 keys
# (fast to make). What DIR holds afterwards:
#   ca.pem ca.key             a test CA, "tide test CA"
#   server.pem server.key     localhost / 127.0.0.1, signed by the CA
#   expired.pem expired.key   the same names, signed by the CA, expired
#                             yesterday (x509 -days -1: notAfter < now)
#   self.pem self.key         localhost, self-signed (no CA trusts it)
#   client.pem client.key     a client certificate, signed by the CA
# Exit status 0, or openssl's failure (its output on stderr).
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
log=openssl.log
: >"$log"
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>>"$log"; }
run() { "$@" >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }; }

newkey ca.key
run openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=tide test CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >client.ext

# sign NAME CN DAYS EXT: NAME.key and NAME.pem, signed by the CA
sign() {
    newkey "$1.key"
    run openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
    run openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -days "$3" -extfile "$4" -out "$1.pem"
    rm -f "$1.csr"
}
sign server localhost 2 server.ext
sign expired localhost -1 server.ext
sign client "tide test client" 2 client.ext
newkey self.key
run openssl req -x509 -new -key self.key -out self.pem -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1
