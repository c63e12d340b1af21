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
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from raftka.api.console import ClusterAccess
from raftka.api.settings import FSYNC_POLICIES
from raftka.client.aio import Admin, RaftkaError
from raftka.client.http import DEFAULT_BOOTSTRAP

F = TypeVar("F", bound=Callable[..., Any])
TABLE_WIDTH_CHARS = 140  # the benchmark tables' width when stdout is not a terminal
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
    """--bootstrap, --token and --cacert, handed to the command as one `access`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs["access"] = ClusterAccess(
            kwargs.pop("bootstrap"), kwargs.pop("token"), kwargs.pop("cacert")
        )
        return func(*args, **kwargs)

    command = click.option(
        "--bootstrap",
        envvar="RAFTKA_BOOTSTRAP",
        default=DEFAULT_BOOTSTRAP,
        show_default=True,
        help="URL of any broker (env RAFTKA_BOOTSTRAP).",
    )(wrapper)
    command = click.option(
        "--token", envvar="RAFTKA_TOKEN", default=None, help="Bearer token (env RAFTKA_TOKEN)."
    )(command)
    command = click.option(
        "--cacert",
        default=None,
        type=click.Path(exists=True, dir_okay=False),
        help="CA file to verify the brokers' TLS certificates with.",
    )(command)
    return click.option("--debug", is_flag=True, help="Show tracebacks.")(command)  # type: ignore[return-value]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def call(access: ClusterAccess, method: Callable[[Admin], Awaitable[T]]) -> T:
    """One request through an admin client that lives for this call only."""

    async def go() -> T:
        async with Admin(access.bootstrap, **access.credentials) as admin:
            return await method(admin)

    result: T = asyncio.run(go())
    return result


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    from raftka.api.dev import run_dev

    sys.exit(run(run_dev(brokers, base_port, data_dir)))


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
@click.option("--id", "broker_id", required=True, type=int)
@click.option("--data-dir", default=None, type=click.Path(path_type=Path))
@handles_errors
def broker(config_path: Path, broker_id: int, data_dir: Path | None) -> None:
    """Run one broker process."""
    from raftka.api.server import run_broker
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
    access: ClusterAccess,
    debug: bool,
) -> None:
    """Create a topic."""
    config = _parse_config_pairs(pairs)
    if min_insync_replicas is not None:
        config["min_insync_replicas"] = min_insync_replicas

    created = call(access, lambda c: c.create_topic(name, partitions, replication_factor, config))
    click.echo(f"created topic {created['name']} with {len(created['partitions'])} partitions")


@topic.command("list")
@client_options
@handles_errors
def topic_list(access: ClusterAccess, debug: bool) -> None:
    """List topic names."""

    for name in call(access, lambda c: c.list_topics()):
        click.echo(name)


@topic.command("describe")
@click.argument("name")
@client_options
@handles_errors
def topic_describe(name: str, access: ClusterAccess, debug: bool) -> None:
    """Show a topic's partitions, leaders, ISR and offsets."""
    from raftka.api.tables import print_topic

    print_topic(call(access, lambda c: c.describe_topic(name)))


@topic.command("delete")
@click.argument("name")
@client_options
@handles_errors
def topic_delete(name: str, access: ClusterAccess, debug: bool) -> None:
    """Delete a topic and all its records."""

    call(access, lambda c: c.delete_topic(name))
    click.echo(f"deleted topic {name}")


@cli.command()
@click.argument("topic_name", metavar="TOPIC")
@click.option("--acks", default="all", show_default=True, type=click.Choice(["0", "1", "all"]))
@click.option("--key-separator", default=None, help="Split each line into key SEP value.")
@client_options
@handles_errors
def produce(
    topic_name: str, acks: str, key_separator: str | None, access: ClusterAccess, debug: bool
) -> None:
    """Produce one record per line of stdin."""
    from raftka.api.console import produce_lines

    run(produce_lines(access, topic_name, acks, key_separator, sys.stdin))


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
    access: ClusterAccess,
    debug: bool,
) -> None:
    """Print records as JSON lines."""
    from raftka.api.console import consume_records

    run(consume_records(access, topic_name, from_beginning, max_records, group))


@cli.group()
def cluster() -> None:
    """Cluster-wide views."""


@cluster.command("status")
@client_options
@handles_errors
def cluster_status(access: ClusterAccess, debug: bool) -> None:
    """Brokers, controller, Raft term and every partition's leader and ISR."""
    from raftka.api.tables import fetch_status, print_status

    print_status(run(fetch_status(access)))


@cli.group()
def group() -> None:
    """Consumer groups."""


@group.command("describe")
@click.argument("name")
@client_options
@handles_errors
def group_describe(name: str, access: ClusterAccess, debug: bool) -> None:
    """A group's state, generation, members with their assignment, and lag per partition."""
    from raftka.api.console import fetch_group, print_group

    print_group(run(fetch_group(access, name)))


@cli.group()
def acl() -> None:
    """Users and their ACLs (managed in the cluster config)."""


@acl.command("list")
@click.option(
    "--config",
    "config_path",
    envvar="RAFTKA_CONFIG",
    default="./data/cluster.toml",
    show_default=True,
    type=click.Path(path_type=Path),
    help="The cluster config (env RAFTKA_CONFIG); raftka dev writes data/cluster.toml.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@handles_errors
def acl_list(config_path: Path, as_json: bool, debug: bool) -> None:
    """Users and what each may do; none: the cluster is open to anyone who reaches it."""
    from raftka.api.acl import acl_table
    from raftka.api.settings import load_config
    from raftka.api.tables import print_acls

    table = acl_table(load_config(config_path).security.users)
    if as_json:
        click.echo(orjson.dumps({"users": table}).decode())
    else:
        print_acls(table)


@cli.group()
def token() -> None:
    """Client tokens."""


@token.command("hash")
@click.argument("token_text", metavar="[TOKEN]", required=False)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@handles_errors
def token_hash(token_text: str | None, debug: bool) -> None:
    """Print the token_hash for a [[users]] entry (the token from stdin without TOKEN).
    Make a token with e.g. `openssl rand -base64 32`."""
    from raftka.api.tokens import hash_token

    text = token_text if token_text is not None else sys.stdin.readline().strip()
    click.echo(hash_token(text))


@cli.group()
def bench() -> None:
    """Benchmarks on real broker processes."""


@bench.command("controller-failover")
@click.option("--runs", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--session-timeout-ms", default=9000, show_default=True, type=click.IntRange(500))
@click.option("--heartbeat-interval-ms", default=2000, show_default=True, type=click.IntRange(100))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@handles_errors
def bench_controller_failover(
    runs: int, session_timeout_ms: int, heartbeat_interval_ms: int, as_json: bool, debug: bool
) -> None:
    """SIGKILL the controller of a fresh 3-broker cluster; time the recovery."""
    from raftka.api.bench import run_controller_failover, summarize

    settings = {
        "broker_session_timeout_ms": session_timeout_ms,
        "broker_heartbeat_interval_ms": heartbeat_interval_ms,
    }
    results = run_controller_failover(runs, settings)
    summary = summarize(results)
    if as_json:
        click.echo(orjson.dumps({**settings, **summary}).decode())
        return
    for i, r in enumerate(results, 1):
        click.echo(
            f"run {i}: new controller {r.new_controller_s:.2f} s, "
            f"partitions re-led {r.partitions_re_led_s:.2f} s"
        )
    click.echo(
        f"median: new controller {summary['new_controller_median_s']:.2f} s, "
        f"partitions re-led {summary['partitions_re_led_median_s']:.2f} s "
        f"(session timeout {session_timeout_ms} ms, heartbeat {heartbeat_interval_ms} ms)"
    )


@bench.command("failover")
@click.option("--runs", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--cases",
    default="kill,pause,hog",
    show_default=True,
    help="Comma-separated faults to measure: kill, pause, hog.",
)
@click.option(
    "--pause",
    "pause_s",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.1, 60),
    help="Seconds a leader stays SIGSTOPped.",
)
@click.option(
    "--hog",
    "hog_s",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.1, 60),
    help="Seconds of busy loops on a leader's CPU.",
)
@click.option(
    "--hogs", default=1, show_default=True, type=click.IntRange(1, 64), help="Busy-loop processes."
)
@click.option(
    "--settle",
    "settle_s",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0, 60),
    help="Seconds observed after a pause or hog ends.",
)
@click.option("--session-timeout-ms", default=9000, show_default=True, type=click.IntRange(500))
@click.option("--heartbeat-interval-ms", default=2000, show_default=True, type=click.IntRange(100))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@handles_errors
def bench_failover(
    runs: int,
    cases: str,
    pause_s: float,
    hog_s: float,
    hogs: int,
    settle_s: float,
    session_timeout_ms: int,
    heartbeat_interval_ms: int,
    as_json: bool,
    debug: bool,
) -> None:
    """Kill, pause or starve a partition leader; time acks=all unavailability and fencing."""
    from raftka.api.bench_failover import (
        FailoverOptions,
        default_settings,
        format_report,
        run_failover_bench,
    )

    options = FailoverOptions(
        runs=runs,
        cases=tuple(c.strip() for c in cases.split(",") if c.strip()),
        pause_s=pause_s,
        hog_s=hog_s,
        hogs=hogs,
        settle_s=settle_s,
    )
    settings = {
        **default_settings(),
        "broker_session_timeout_ms": session_timeout_ms,
        "broker_heartbeat_interval_ms": heartbeat_interval_ms,
    }
    report = run_failover_bench(options, settings, progress=lambda line: click.echo(line, err=True))
    click.echo(orjson.dumps(report.to_json()).decode() if as_json else format_report(report))


def produce_load_options(connections: int) -> Callable[[F], F]:
    """The produce-load options the HTTP benchmarks share."""

    def decorate(func: F) -> F:
        options = [
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
                "--fsync", default="never", show_default=True, type=click.Choice(FSYNC_POLICIES)
            ),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


@bench.command("replication")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(1, 100))
@produce_load_options(connections=4)
@click.option(
    "--workloads",
    default="single,rf1,rf3-acks1,rf3-acks-all",
    show_default=True,
    help="Comma-separated: single (a 1-broker cluster, RF=1), rf1, rf3-acks1, rf3-acks-all "
    "(a 3-broker cluster).",
)
@click.option(
    "--cpus",
    default="shared",
    show_default=True,
    type=click.Choice(["shared", "leader", "none"]),
    help="shared: brokers on one CPU, client on another; leader: the loaded leader alone, "
    "the rest on another; none: not pinned.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@handles_errors
def bench_replication(
    rounds: int,
    window_s: float,
    warmup_s: float,
    connections: int,
    records_per_request: int,
    record_size: int,
    fsync: str,
    workloads: str,
    cpus: str,
    as_json: bool,
    debug: bool,
) -> None:
    """Produce throughput and latency: RF=1 vs RF=3 acks=1 vs RF=3 acks=all."""
    from raftka.api.bench_replication import (
        ReplicationOptions,
        format_report,
        run_replication_bench,
    )

    options = ReplicationOptions(
        rounds=rounds,
        window_s=window_s,
        warmup_s=warmup_s,
        connections=connections,
        records_per_request=records_per_request,
        record_size=record_size,
        fsync=fsync,
        workloads=tuple(w.strip() for w in workloads.split(",") if w.strip()),
        cpus=cpus,
    )
    report = run_replication_bench(options, progress=lambda line: click.echo(line, err=True))
    click.echo(orjson.dumps(report.to_json()).decode() if as_json else format_report(report))


@bench.command("metadata")
@click.option("--partitions", default=10_000, show_default=True, type=click.IntRange(0, 1_000_000))
@click.option(
    "--replication-factor",
    default=1,
    show_default=True,
    type=click.IntRange(1, 3),
    help="Of the existing partitions (each replica holds one open file).",
)
@click.option("--rounds", default=200, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--cluster-secret/--no-cluster-secret",
    default=False,
    show_default=True,
    help="Run the cluster with a secret (Raft password, signed broker calls).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@handles_errors
def bench_metadata(
    partitions: int,
    replication_factor: int,
    rounds: int,
    cluster_secret: bool,
    as_json: bool,
    debug: bool,
) -> None:
    """Create, write to and delete a small topic, again and again, next to many partitions."""
    from raftka.api.bench_metadata import MetadataOptions, format_report, run_metadata_bench

    options = MetadataOptions(
        partitions=partitions,
        replication_factor=replication_factor,
        rounds=rounds,
        cluster_secret=cluster_secret,
    )
    report = run_metadata_bench(options, progress=lambda line: click.echo(line, err=True))
    click.echo(orjson.dumps(report.to_json()).decode() if as_json else format_report(report))


@bench.command("http")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(1, 100))
@produce_load_options(connections=8)
@click.option(
    "--fetch-records",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(1, 100_000_000),
    help="Top the log up to this many records before the fetch passes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@handles_errors
def bench_http(
    rounds: int,
    window_s: float,
    warmup_s: float,
    connections: int,
    records_per_request: int,
    record_size: int,
    fsync: str,
    fetch_records: int,
    as_json: bool,
    debug: bool,
) -> None:
    """Produce and fetch over HTTP: one raftka broker vs a bare aiohttp server."""
    from raftka.api.bench_http import BenchOptions, format_report, run_http_bench

    options = BenchOptions(
        rounds=rounds,
        window_s=window_s,
        warmup_s=warmup_s,
        connections=connections,
        records_per_request=records_per_request,
        record_size=record_size,
        fsync=fsync,
        fetch_records=fetch_records,
    )
    report = run_http_bench(options, progress=lambda line: click.echo(line, err=True))
    click.echo(orjson.dumps(report.to_json()).decode() if as_json else format_report(report))


@bench.command("groups")
@click.option("--brokers", default=3, show_default=True, type=click.IntRange(3, 9))
@click.option(
    "--members", default=100, show_default=True, type=click.IntRange(1, 1000), help="Committers."
)
@click.option(
    "--partitions",
    default=100,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Partitions of the committers' topic.",
)
@click.option(
    "--duration",
    "duration_s",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1, 600),
    help="Seconds of counted commits per run.",
)
@click.option("--runs", default=3, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--session-timeout-ms",
    default=3000,
    show_default=True,
    type=click.IntRange(1000, 60_000),
    help="Session timeout of the rebalance group's members.",
)
@click.option(
    "--direct",
    is_flag=True,
    help="Committers talk to the group's coordinator instead of to every broker in turn.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@handles_errors
def bench_groups(
    brokers: int,
    members: int,
    partitions: int,
    duration_s: float,
    runs: int,
    session_timeout_ms: int,
    direct: bool,
    as_json: bool,
    debug: bool,
) -> None:
    """Offset commits/s from many group members, and a killed member's rebalance time."""
    from rich.console import Console

    from raftka.api.bench_groups import GroupsOptions, report_tables, run_groups_bench

    options = GroupsOptions(
        brokers=brokers,
        members=members,
        partitions=partitions,
        duration_s=duration_s,
        runs=runs,
        session_timeout_ms=session_timeout_ms,
        direct=direct,
    )
    report = run_groups_bench(options, progress=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(orjson.dumps(report.to_json()).decode())
        return
    console = Console(width=max(Console().width, TABLE_WIDTH_CHARS))
    for renderable in report_tables(report):
        console.print(renderable)


@cli.group()
def chaos() -> None:
    """The chaos harness: faults against a cluster, and the verdict on what happened."""


@chaos.command("run")
@click.option("--brokers", default=5, show_default=True, type=click.IntRange(1, 20))
@click.option(
    "--duration", "duration_s", default=60.0, show_default=True, type=click.FloatRange(1, 86_400)
)
@click.option("--seed", type=int, default=None, help="Same seed, same fault schedule.")
@click.option(
    "--faults",
    default="kill,pause,partition,latency",
    show_default=True,
    help="Comma-separated fault kinds: kill, pause, partition, latency.",
)
@click.option("--acks", default="all", show_default=True, type=click.Choice(["0", "1", "all"]))
@click.option("--topic-partitions", default=3, show_default=True, type=click.IntRange(1, 1000))
@click.option("--rf", default=3, show_default=True, type=click.IntRange(1, 20))
@click.option(
    "--report",
    "report_dir",
    default="chaos-report",
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def chaos_run(
    brokers: int,
    duration_s: float,
    seed: int | None,
    faults: str,
    acks: str,
    topic_partitions: int,
    rf: int,
    report_dir: Path,
    debug: bool,
) -> None:
    """Run a cluster of its own under faults, check the history, write a report.

    Exits 0 when every invariant holds, 1 on a violation, 2 when the run could not be done.
    """
    from raftka.chaos.runner import EXIT_NOT_RUN, RunConfig
    from raftka.chaos.runner import run as run_chaos

    kinds = tuple(k.strip() for k in faults.split(",") if k.strip())
    unknown = sorted(set(kinds) - {"kill", "pause", "partition", "latency"})
    if unknown or rf > brokers:
        problem = f"unknown fault kinds {unknown}" if unknown else "--rf exceeds --brokers"
        click.echo(f"raftka: error: {problem}", err=True)
        sys.exit(EXIT_NOT_RUN)
    config = RunConfig(
        report_dir=report_dir,
        brokers=brokers,
        duration_s=duration_s,
        seed=seed,
        faults=kinds,
        acks=acks,
        topic_partitions=topic_partitions,
        rf=rf,
    )
    try:
        code, report = run_chaos(config, lambda line: click.echo(line, err=True))
    except Exception:
        if debug:
            raise
        click.echo("raftka: error: the chaos run crashed (use --debug)", err=True)
        sys.exit(EXIT_NOT_RUN)
    if report is not None:
        from rich.console import Console

        from raftka.chaos.report import verdict_table

        Console().print(verdict_table(report))
        click.echo(f"report: {report_dir / 'report.html'}")
    sys.exit(code)


@chaos.command("check")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def chaos_check(directory: Path, debug: bool) -> None:
    """Check DIRECTORY/history.jsonl again and rewrite report.json and report.html there.

    Exits 0 when every invariant holds, 1 on a violation, 2 when the history cannot be
    read (or the report cannot be written).
    """
    from rich.console import Console

    from raftka.chaos.checker import check
    from raftka.chaos.history import HISTORY_FILE, HistoryError, read_history
    from raftka.chaos.report import REPORT_JSON, verdict_table, write_report

    try:
        history = read_history(directory / HISTORY_FILE)
        seed = history.run_info().get("seed")
        if seed is None and (directory / REPORT_JSON).is_file():
            seed = orjson.loads((directory / REPORT_JSON).read_bytes()).get("seed")
        report = write_report(directory, history, check(history), seed=seed)
    except (OSError, HistoryError, orjson.JSONDecodeError) as exc:
        if debug:
            raise
        click.echo(f"raftka: error: {directory / HISTORY_FILE}: {exc}", err=True)
        sys.exit(2)
    Console().print(verdict_table(report))
    verdict = "every invariant holds" if report["ok"] else "INVARIANTS VIOLATED"
    click.echo(f"{verdict}; report: {directory / 'report.html'}")
    sys.exit(0 if report["ok"] else 1)


def main() -> None:
    cli(prog_name="raftka")
