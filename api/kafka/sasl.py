"""SASL/PLAIN on the Kafka listener (RFC 4616): the client sends
`authzid NUL username NUL password` in a SaslAuthenticate request (or, after a v0
SaslHandshake, as a bare size-prefixed frame). The username is a `[[users]]` name and
the password that user's token. Pure: parsing only; the token is checked by the HTTP
side's Authenticator (api/http/auth.py).
"""

from __future__ import annotations

from dataclasses import dataclass

PLAIN = "PLAIN"
MECHANISMS = (PLAIN,)
# RFC 4616 bounds each field to 255 octets; a token longer than that is no token of ours.
MAX_PLAIN_FIELD_BYTES = 255


class SaslError(ValueError):
    """A SASL exchange that cannot succeed: the client is refused and disconnected."""


@dataclass(frozen=True, slots=True)
class PlainCredentials:
    username: str
    password: str


def parse_plain(message: bytes) -> PlainCredentials:
    parts = bytes(message).split(b"\x00")
    if len(parts) != 3:
        raise SaslError("a PLAIN message is authzid NUL username NUL password")
    authzid, username, password = parts
    if not username or not password:
        raise SaslError("PLAIN needs a username and a password (the user's token)")
    if any(len(p) > MAX_PLAIN_FIELD_BYTES for p in parts):
        raise SaslError(f"a PLAIN field is longer than {MAX_PLAIN_FIELD_BYTES} bytes")
    if authzid and authzid != username:
        raise SaslError("PLAIN may not authorize as another user than it authenticates")
    try:
        return PlainCredentials(username.decode(), password.decode())
    except UnicodeDecodeError:
        raise SaslError("PLAIN username and password are UTF-8") from None
