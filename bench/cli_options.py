"""The click option blocks and output helpers that the `raftka bench` commands share, in
bench/cli.py (the older benchmarks) and bench/perf_cli.py (the load tools and the suite).
Each decorator adds its options in the order listed, as the same stack of `@click.option`
lines would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
import orjson

from raftka.api.settings import FSYNC_POLICIES
from raftka.client.http import DEFAULT_BOOTSTRAP

F = TypeVar("F", bound=Callable[..., Any])


def apply_options(func: F, options: list[Callable[[F], F]]) -> F:
    """Decorate `func` with `options`, the first listed being the first shown."""
    for option in reversed(options):
        func = option(func)
    return func


def output_options(func: F) -> F:
    """`--json` and `--debug`, the last options of every bench command."""
    return apply_options(
        func,
        [
            click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
            click.option("--debug", is_flag=True, help="Show tracebacks."),
        ],
    )


def session_options(func: F) -> F:
    """The broker session timeout and heartbeat of the failover benchmarks' clusters."""
    return apply_options(
        func,
        [
            click.option(
                "--session-timeout-ms", default=9000, show_default=True, type=click.IntRange(500)
            ),
            click.option(
                "--heartbeat-interval-ms",
                default=2000,
                show_default=True,
                type=click.IntRange(100),
            ),
        ],
    )


def rounds_option(default: int, maximum: int) -> Callable[[F], F]:
    return click.option(
        "--rounds", default=default, show_default=True, type=click.IntRange(1, maximum)
    )


def produce_load_options(connections: int) -> Callable[[F], F]:
    """The produce-load options the HTTP benchmarks share."""

    def decorate(func: F) -> F:
        return apply_options(
            func,
            [
                click.option(
                    "--window",
                    "window_s",
                    default=3.0,
                    show_default=True,
                    type=click.FloatRange(0.1, 60),
                    help="Seconds of measured produce load per measurement and round.",
                ),
                click.option(
                    "--warmup",
                    "warmup_s",
                    default=0.5,
                    show_default=True,
                    type=click.FloatRange(0, 60),
                    help="Seconds of unmeasured load before each window.",
                ),
                click.option(
                    "--connections",
                    default=connections,
                    show_default=True,
                    type=click.IntRange(1, 256),
                ),
                click.option(
                    "--records-per-request",
                    default=200,
                    show_default=True,
                    type=click.IntRange(1, 100_000),
                ),
                click.option(
                    "--record-size",
                    default=100,
                    show_default=True,
                    type=click.IntRange(1, 1_000_000),
                    help="Characters per record value.",
                ),
                click.option(
                    "--fsync",
                    default="never",
                    show_default=True,
                    type=click.Choice(FSYNC_POLICIES),
                ),
            ],
        )

    return decorate


def cluster_options(func: F) -> F:
    """How to reach a running cluster, as every client command does (API.md section 1),
    then the output options."""
    func = output_options(func)
    return apply_options(
        func,
        [
            click.option("--topic", required=True, help="An existing topic."),
            click.option(
                "--bootstrap",
                envvar="RAFTKA_BOOTSTRAP",
                default=DEFAULT_BOOTSTRAP,
                show_default=True,
                help="URL of any broker (env RAFTKA_BOOTSTRAP).",
            ),
            click.option("--token", envvar="RAFTKA_TOKEN", default=None, help="Bearer token."),
            click.option("--cacert", default=None, help="CA file for https:// brokers."),
        ],
    )


def echo_json(doc: dict[str, Any]) -> None:
    click.echo(orjson.dumps(doc).decode())


def echo_progress(line: str) -> None:
    """A benchmark's progress line, to stderr."""
    click.echo(line, err=True)


def echo_report(report: Any, as_json: bool, format_report: Callable[[Any], str]) -> None:
    """A benchmark report: one JSON object, or its formatted text."""
    click.echo(orjson.dumps(report.to_json()).decode() if as_json else format_report(report))
