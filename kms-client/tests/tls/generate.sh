#!/usr/bin/env bash
# Regenerates the test PKI of tests/tls.rs (test-only keys; never use them elsewhere):
# a CA, a server certificate for kms.test / localhost / 127.0.0.1, a client certificate,
# and an unrelated CA. Valid for 100 years.
set -euo pipefail
cd "$(dirname "$0")"
days=36500
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {
  key "$1-key.pem"
  openssl req -x509 -new -key "$1-key.pem" -days "$days" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem"
}
leaf() {
  key "$1-key.pem"
  openssl req -new -key "$1-key.pem" -subj "/CN=$2" -out "$1.csr"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=$3" "subjectAltName=$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days "$days" \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm "$1.csr" "$1.ext"
}
ca ca "kms-client test CA"
ca other-ca "unrelated test CA"
leaf server "kms.test" serverAuth "DNS:kms.test,DNS:localhost,IP:127.0.0.1"
leaf client "test-service" clientAuth "DNS:test-service"
rm -f ca.srl other-ca-key.pem ca-key.pem
