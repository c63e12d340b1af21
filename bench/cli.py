"""`raftka bench ...`: the benchmarks' command line. Registered with the `raftka` command
through the `raftka.commands` entry point, so api/ never imports bench/."""

from __future__ import annotations

import click

from raftka.api.cli.main import handles_errors
from raftka.bench.cli_options import (
    echo_json,
    echo_progress,
    echo_report,
    output_options,
    produce_load_options,
    rounds_option,
    session_options,
)
from raftka.bench.perf_cli import COMMANDS as PERF_COMMANDS

TABLE_WIDTH_CHARS = 140  # the benchmark tables' width when stdout is not a terminal


@click.group()
def bench() -> None:
    """Benchmarks on real broker processes."""


@bench.command("controller-failover")
@click.option("--runs", default=5, show_default=True, type=click.IntRange(1, 100))
@session_options
@output_options
@handles_errors
def bench_controller_failover(
    runs: int, session_timeout_ms: int, heartbeat_interval_ms: int, as_json: bool, debug: bool
) -> None:
    """SIGKILL the controller of a fresh 3-broker cluster; time the recovery."""
    from raftka.bench.controller_failover import run_controller_failover, summarize

    settings = {
        "broker_session_timeout_ms": session_timeout_ms,
        "broker_heartbeat_interval_ms": heartbeat_interval_ms,
    }
    results = run_controller_failover(runs, settings)
    summary = summarize(results)
    if as_json:
        echo_json({**settings, **summary})
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
@session_options
@output_options
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
    from raftka.bench.failover import (
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
    report = run_failover_bench(options, settings, progress=echo_progress)
    echo_report(report, as_json, format_report)


@bench.command("replication")
@rounds_option(default=5, maximum=100)
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
@output_options
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
    from raftka.bench.replication import (
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
    report = run_replication_bench(options, progress=echo_progress)
    echo_report(report, as_json, format_report)


@bench.command("metadata")
@click.option("--partitions", default=10_000, show_default=True, type=click.IntRange(0, 1_000_000))
@click.option(
    "--replication-factor",
    default=1,
    show_default=True,
    type=click.IntRange(1, 3),
    help="Of the existing partitions (each replica holds one open file).",
)
@rounds_option(default=200, maximum=100_000)
@click.option(
    "--cluster-secret/--no-cluster-secret",
    default=False,
    show_default=True,
    help="Run the cluster with a secret (Raft password, signed broker calls).",
)
@output_options
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
    from raftka.bench.metadata import MetadataOptions, format_report, run_metadata_bench

    options = MetadataOptions(
        partitions=partitions,
        replication_factor=replication_factor,
        rounds=rounds,
        cluster_secret=cluster_secret,
    )
    report = run_metadata_bench(options, progress=echo_progress)
    echo_report(report, as_json, format_report)


@bench.command("http")
@rounds_option(default=5, maximum=100)
@produce_load_options(connections=8)
@click.option(
    "--fetch-records",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(1, 100_000_000),
    help="Top the log up to this many records before the fetch passes.",
)
@output_options
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
    from raftka.bench.http import BenchOptions, format_report, run_http_bench

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
    report = run_http_bench(options, progress=echo_progress)
    echo_report(report, as_json, format_report)


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
@output_options
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

    from raftka.bench.groups import GroupsOptions, report_tables, run_groups_bench

    options = GroupsOptions(
        brokers=brokers,
        members=members,
        partitions=partitions,
        duration_s=duration_s,
        runs=runs,
        session_timeout_ms=session_timeout_ms,
        direct=direct,
    )
    report = run_groups_bench(options, progress=echo_progress)
    if as_json:
        echo_json(report.to_json())
        return
    console = Console(width=max(Console().width, TABLE_WIDTH_CHARS))
    for renderable in report_tables(report):
        console.print(renderable)


# The load tools and the standard suite of issue 15 (bench/perf_cli.py).
for command in PERF_COMMANDS:
    bench.add_command(command)
