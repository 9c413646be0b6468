#!/usr/bin/env python3
"""An independent implementation of envelope v1, written from SPEC §3 alone, that checks
kms-server/tests/vectors/envelope_v1*.json. Uses only the standard library and the
`cryptography` package's AESGCMSIV (OpenSSL).

    python3 tools/verify_vectors.py [vectors-dir]
"""
import hashlib
import hmac
import json
import struct
import sys
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def u16(n: int) -> bytes:
    if n > 0xFFFF:
        raise ValueError("length over 65535")
    return struct.pack(">H", n)


def tenant_keys(root: bytes, salt: bytes, tenant: str, version: int):
    t = tenant.encode()
    okm = hkdf_sha256(root, salt, b"hygo-kms/v1/tenant-key" + u16(len(t)) + t + struct.pack(">I", version), 64)
    return okm[:32], okm[32:]


def canonical_context(tenant: str, context: dict) -> bytes:
    t = tenant.encode()
    pairs = sorted((k.encode(), v.encode()) for k, v in context.items())  # bytes sort = memcmp
    out = u16(len(t)) + t + u16(len(pairs))
    for k, v in pairs:
        out += u16(len(k)) + k + u16(len(v)) + v
    return out


def tfp(tenant: str) -> bytes:
    return hashlib.sha256(b"hygo-kms/v1/tenant-id" + tenant.encode()).digest()[:8]


def seal(root, salt, tenant, version, context, nonce, plaintext) -> bytes:
    enc_key, commit_key = tenant_keys(root, salt, tenant, version)
    ctx = canonical_context(tenant, context)
    header = b"\x01\x01" + struct.pack(">I", version) + tfp(tenant) + nonce
    commitment = hmac.new(commit_key, b"hygo-kms/v1/commit" + header + ctx, hashlib.sha256).digest()
    aad = b"hygo-kms/v1/aad" + header + commitment + ctx
    return header + commitment + AESGCMSIV(enc_key).encrypt(nonce, plaintext, aad)


def open_envelope(root, salt, tenant, key_version, context, env) -> str:
    if len(env) < 74 or env[0] != 1 or env[1] != 1 or struct.unpack(">I", env[2:6])[0] == 0:
        return "malformed"
    header, commitment, body = env[:26], env[26:58], env[58:]
    if header[6:14] != tfp(tenant):
        return "cross_tenant"
    enc_key, commit_key = tenant_keys(root, salt, tenant, key_version)
    ctx = canonical_context(tenant, context)
    expected = hmac.new(commit_key, b"hygo-kms/v1/commit" + header + ctx, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, commitment):
        return "authentication"
    try:
        AESGCMSIV(enc_key).decrypt(header[14:26], body, b"hygo-kms/v1/aad" + header + commitment + ctx)
    except InvalidTag:
        return "authentication"
    return "opened"


def main() -> int:
    d = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent / "kms-server/tests/vectors")
    h = bytes.fromhex
    valid = json.loads((d / "envelope_v1.json").read_text())
    invalid = json.loads((d / "envelope_v1_invalid.json").read_text())
    failures = 0
    for v in valid:
        got = seal(h(v["root_key"]), h(v["salt"]), v["tenant_id"], v["key_version"], v["context"], h(v["nonce"]), h(v["plaintext"]))
        if got != h(v["envelope"]):
            failures += 1
            print("MISMATCH", v.get("comment"))
    for v in invalid:
        got = open_envelope(h(v["root_key"]), h(v["salt"]), v["open_tenant_id"], v["key_version"], v["open_context"], h(v["envelope"]))
        if got != v["error"]:
            failures += 1
            print("WRONG RESULT", v.get("comment"), got, "expected", v["error"])
    print(f"{len(valid) + len(invalid) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
