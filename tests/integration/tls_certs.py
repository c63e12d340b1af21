"""A test CA and a broker certificate for 127.0.0.1, made with the openssl command exactly
as docs/security.md shows."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

# The commands of docs/security.md, "A test CA with openssl" ({d}: the folder).
OPENSSL_STEPS = [
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30"
    " -subj /CN=raftka-test-CA -keyout {d}/ca-key.pem -out {d}/ca.pem"
    " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    " -subj /CN=raftka-broker -keyout {d}/broker-key.pem -out {d}/broker.csr",
    "openssl x509 -req -in {d}/broker.csr -CA {d}/ca.pem -CAkey {d}/ca-key.pem"
    " -CAcreateserial -days 30 -out {d}/broker.pem -extfile {d}/broker.ext",
]
BROKER_EXTENSIONS = """basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True, slots=True)
class Certificates:
    ca: Path  # what clients pass as --cacert / cacert=
    chain: Path  # tls_cert: the broker's certificate, then the CA's
    key: Path  # tls_key


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broker.ext").write_text(BROKER_EXTENSIONS)
    for step in OPENSSL_STEPS:
        subprocess.run(step.format(d=folder).split(), check=True, capture_output=True)
    chain = folder / "broker-chain.pem"
    chain.write_text((folder / "broker.pem").read_text() + (folder / "ca.pem").read_text())
    return Certificates(folder / "ca.pem", chain, folder / "broker-key.pem")
