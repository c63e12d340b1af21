"""Client tokens and their stored hashes (`token_hash` in the cluster config).

A token is a secret string a client sends as `Authorization: Bearer TOKEN`; the config
holds only its scrypt hash (hashlib, OpenSSL's scrypt: memory-hard, in the standard
library), `scrypt$N$r$p$SALT$HASH` with the salt and hash in base64, so a leaked config
does not give the tokens away. Pure: no I/O; the caller decides where the slow
verification runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

# ~0.1-0.2 s and 16 MiB per hash on this project's machines: slow for a guesser, and a
# broker verifies each token once (api/http/auth.py keeps what it has verified).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_TOKEN_CHARS = 16
# scrypt needs 128 * N * r bytes; OpenSSL's default cap (32 MiB) must allow what we ask.
_MAXMEM = 64 * 1024 * 1024


class TokenHashError(ValueError):
    """A token_hash that is not one this module wrote."""


def hash_token(token: str, salt: bytes | None = None) -> str:
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"a token needs at least {MIN_TOKEN_CHARS} characters")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = _scrypt(token, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        (
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


def check_token_hash(token_hash: str) -> None:
    """Raises TokenHashError unless `token_hash` is well formed (checked at start-up)."""
    _parse(token_hash)


def verify_token(token: str, token_hash: str) -> bool:
    n, r, p, salt, expected = _parse(token_hash)
    return hmac.compare_digest(_scrypt(token, salt, n, r, p), expected)


def _scrypt(token: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        token.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=HASH_BYTES
    )


def _parse(token_hash: str) -> tuple[int, int, int, bytes, bytes]:
    parts = token_hash.split("$") if isinstance(token_hash, str) else []
    if len(parts) != 6 or parts[0] != "scrypt":
        raise TokenHashError("a token_hash looks like scrypt$N$r$p$SALT$HASH (raftka token hash)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise TokenHashError("a token_hash has a malformed number or base64 part") from None
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * n * r > _MAXMEM:
        raise TokenHashError("a token_hash has scrypt parameters out of range")
    if len(digest) != HASH_BYTES or not salt:
        raise TokenHashError("a token_hash has a salt or hash of the wrong length")
    return n, r, p, salt, digest
