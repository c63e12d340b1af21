"""The `raftka` command line (also `python -m raftka`).

Every command fails with one human line on stderr and a non-zero exit; `--debug` shows
the traceback. Client commands reach the cluster through `--bootstrap` or
`RAFTKA_BOOTSTRAP`.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable, Coroutine
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from raftka.client.aio import Admin, RaftkaError
from raftka.client.http import DEFAULT_BOOTSTRAP

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _fail(message: str, debug: bool) -> None:
    if debug:
        raise
    click.echo(f"raftka: error: {message}", err=True)
    sys.exit(1)


def handles_errors(func: F) -> F:
    """One line on stderr instead of a traceback, unless --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = kwargs.get("debug") or (click.get_current_context().find_root().params.get("debug"))
        try:
            return func(*args, **kwargs)
        except RaftkaError as exc:
            _fail(f"{exc.message} ({exc.code})", bool(debug))
        except (OSError, ValueError) as exc:
            _fail(str(exc) or type(exc).__name__, bool(debug))
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def client_options(func: F) -> F:
    func = click.option(
        "--bootstrap",
        envvar="RAFTKA_BOOTSTRAP",
        default=DEFAULT_BOOTSTRAP,
        show_default=True,
        help="URL of any broker (env RAFTKA_BOOTSTRAP).",
    )(func)
    return click.option("--debug", is_flag=True, help="Show tracebacks.")(func)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def call(bootstrap: str, method: Callable[[Admin], Awaitable[T]]) -> T:
    """One request through an admin client that lives for this call only."""

    async def go() -> T:
        async with Admin(bootstrap) as admin:
            return await method(admin)

    result: T = asyncio.run(go())
    return result


TOOLS_ENTRY_POINTS = "raftka.commands"


class CommandsWithTools(click.Group):
    """The built-in commands plus the tools that register under the `raftka.commands`
    entry points (`chaos`, `bench`): those packages import api/, so api/ must not import
    them; each is loaded only when named."""

    def _tools(self) -> dict[str, EntryPoint]:
        return {ep.name: ep for ep in entry_points(group=TOOLS_ENTRY_POINTS)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._tools()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and (tool := self._tools().get(cmd_name)) is not None:
            loaded: click.Command = tool.load()
            return loaded
        return command


@click.group(cls=CommandsWithTools, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def cli(debug: bool) -> None:
    """raftka: a Kafka-style streaming platform over HTTP/JSON, with Raft metadata."""


@cli.command()
@click.option("--brokers", default=3, show_default=True, type=click.IntRange(1, 99))
@click.option("--base-port", default=9091, show_default=True, type=click.IntRange(1024, 55000))
@click.option("--data-dir", default="./data", show_default=True, type=click.Path(path_type=Path))
@handles_errors
def dev(brokers: int, base_port: int, data_dir: Path) -> None:
    """Run a local cluster of N brokers in the foreground (Ctrl-C stops it)."""
    from raftka.api.cli.dev import run_dev

    sys.exit(run(run_dev(brokers, base_port, data_dir)))


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
@click.option("--id", "broker_id", required=True, type=int)
@click.option("--data-dir", default=None, type=click.Path(path_type=Path))
@handles_errors
def broker(config_path: Path, broker_id: int, data_dir: Path | None) -> None:
    """Run one broker process."""
    from raftka.api.http.server import run_broker
    from raftka.api.settings import load_config

    run_broker(load_config(config_path), broker_id, data_dir)


@cli.group()
def topic() -> None:
    """Create, list, describe and delete topics."""


def _parse_config_pairs(pairs: tuple[str, ...]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--config")
        try:
            config[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            config[key] = raw
    return config


@topic.command("create")
@click.argument("name")
@click.option("--partitions", default=1, show_default=True, type=int)
@click.option("--replication-factor", default=1, show_default=True, type=int)
@click.option("--min-insync-replicas", default=None, type=int)
@click.option("--config", "pairs", multiple=True, metavar="KEY=VALUE")
@client_options
@handles_errors
def topic_create(
    name: str,
    partitions: int,
    replication_factor: int,
    min_insync_replicas: int | None,
    pairs: tuple[str, ...],
    bootstrap: str,
    debug: bool,
) -> None:
    """Create a topic."""
    config = _parse_config_pairs(pairs)
    if min_insync_replicas is not None:
        config["min_insync_replicas"] = min_insync_replicas

    created = call(
        bootstrap, lambda c: c.create_topic(name, partitions, replication_factor, config)
    )
    click.echo(f"created topic {created['name']} with {len(created['partitions'])} partitions")


@topic.command("list")
@client_options
@handles_errors
def topic_list(bootstrap: str, debug: bool) -> None:
    """List topic names."""

    for name in call(bootstrap, lambda c: c.list_topics()):
        click.echo(name)


@topic.command("describe")
@click.argument("name")
@client_options
@handles_errors
def topic_describe(name: str, bootstrap: str, debug: bool) -> None:
    """Show a topic's partitions, leaders, ISR and offsets."""
    from raftka.api.cli.tables import print_topic

    print_topic(call(bootstrap, lambda c: c.describe_topic(name)))


@topic.command("delete")
@click.argument("name")
@client_options
@handles_errors
def topic_delete(name: str, bootstrap: str, debug: bool) -> None:
    """Delete a topic and all its records."""

    call(bootstrap, lambda c: c.delete_topic(name))
    click.echo(f"deleted topic {name}")


@cli.command()
@click.argument("topic_name", metavar="TOPIC")
@click.option("--acks", default="all", show_default=True, type=click.Choice(["0", "1", "all"]))
@click.option("--key-separator", default=None, help="Split each line into key SEP value.")
@client_options
@handles_errors
def produce(
    topic_name: str, acks: str, key_separator: str | None, bootstrap: str, debug: bool
) -> None:
    """Produce one record per line of stdin."""
    from raftka.api.cli.console import produce_lines

    run(produce_lines(bootstrap, topic_name, acks, key_separator, sys.stdin))


@cli.command()
@click.argument("topic_name", metavar="TOPIC")
@click.option("--group", default=None, help="Consume as a member of this consumer group.")
@click.option("--from-beginning", is_flag=True, help="Start at the earliest offset, not the end.")
@click.option("--max-records", default=None, type=click.IntRange(min=1))
@client_options
@handles_errors
def consume(
    topic_name: str,
    group: str | None,
    from_beginning: bool,
    max_records: int | None,
    bootstrap: str,
    debug: bool,
) -> None:
    """Print records as JSON lines."""
    from raftka.api.cli.console import consume_records

    run(consume_records(bootstrap, topic_name, from_beginning, max_records, group))


@cli.group()
def cluster() -> None:
    """Cluster-wide views."""


@cluster.command("status")
@client_options
@handles_errors
def cluster_status(bootstrap: str, debug: bool) -> None:
    """Brokers, controller, Raft term and every partition's leader and ISR."""
    from raftka.api.cli.tables import fetch_status, print_status

    print_status(run(fetch_status(bootstrap)))


@cli.group()
def group() -> None:
    """Consumer groups."""


@group.command("describe")
@click.argument("name")
@client_options
@handles_errors
def group_describe(name: str, bootstrap: str, debug: bool) -> None:
    """A group's state, generation, members with their assignment, and lag per partition."""
    from raftka.api.cli.console import fetch_group, print_group

    print_group(run(fetch_group(bootstrap, name)))


def main() -> None:
    cli(prog_name="raftka")
