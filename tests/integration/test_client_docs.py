"""Every ```python example of docs/client.md runs, in order, against a real cluster."""

import contextlib
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from raftka.api.launcher import Cluster

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
DOC_BOOTSTRAP = "http://127.0.0.1:9091"
EXAMPLE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def examples() -> list[str]:
    return EXAMPLE.findall(DOC.read_text(encoding="utf-8"))


def test_the_doc_has_examples_that_use_the_documented_bootstrap() -> None:
    assert len(examples()) >= 5
    assert all(DOC_BOOTSTRAP in code for code in examples())


def test_every_example_of_the_client_doc_runs(cluster_factory: Callable[..., Cluster]) -> None:
    cluster = cluster_factory(voters=1)
    cluster.start_all()
    cluster.wait_ready()
    url = cluster.brokers[1].url
    for i, code in enumerate(examples()):
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(
                    compile(code.replace(DOC_BOOTSTRAP, url), f"client.md example {i}", "exec"),
                    {"__name__": "__main__"},
                )  # noqa: S102
        except Exception:
            pytest.fail(f"example {i} of docs/client.md failed:\n{code}\noutput:\n{out.getvalue()}")
    # The examples' records are all there: 1 + 1000 + 1 from the producer, 11 from asyncio.
    total = sum(p["high_watermark"] for p in cluster.get(1, "/v1/topics/orders")["partitions"])
    assert total == 1013
