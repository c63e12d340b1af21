"""TLS contexts of a broker: the one it serves HTTPS with, and the one it calls other
brokers with. Built once at start-up from the cluster config's files.

A broker trusts, for its calls to other brokers, the certificates in its own `tls_cert`
file beyond the first (a full chain: the broker's certificate, then its CA) and the
`tls_client_ca` file; with `tls_client_ca` it also presents its own certificate, since
the other brokers then ask for one (mutual TLS).
"""

from __future__ import annotations

import ssl

from raftka.api.settings import Security


def server_ssl_context(security: Security) -> ssl.SSLContext | None:
    if security.tls_cert is None or security.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(security.tls_cert, security.tls_key)
    if security.tls_client_ca is not None:
        context.load_verify_locations(cafile=security.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_ssl_context(security: Security) -> ssl.SSLContext | None:
    """For broker-to-broker calls; None without TLS (plain HTTP)."""
    if security.tls_cert is None or security.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(cafile=security.tls_cert)
    if security.tls_client_ca is not None:
        context.load_verify_locations(cafile=security.tls_client_ca)
        context.load_cert_chain(security.tls_cert, security.tls_key)
    return context
