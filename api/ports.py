"""Free TCP ports on 127.0.0.1 for brokers started by tests and tools.

Ports are drawn below Linux's ephemeral range (32768+): a port the OS might hand to an
outgoing connection can be taken between choosing it and a broker binding it.
"""

import random
import socket

PORT_MIN = 20_000
PORT_MAX = 32_000
ATTEMPTS_PER_PORT = 100


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were all bindable together a moment ago."""
    rng = random.Random()
    held: list[socket.socket] = []
    try:
        for _ in range(count * ATTEMPTS_PER_PORT):
            if len(held) == count:
                break
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", rng.randrange(PORT_MIN, PORT_MAX)))
            except OSError:
                s.close()
                continue
            held.append(s)
        if len(held) < count:
            raise OSError(f"found only {len(held)} of {count} free ports")
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()
