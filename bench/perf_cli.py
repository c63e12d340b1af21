"""`raftka bench produce|consume|e2e|suite`: the click commands of the load tools and the
standard suite (bench/cli.py adds them to the `bench` group).

Figures go to stdout (a readable summary, or one JSON object with `--json`); the progress
bar and the suite's round lines go to stderr. The work lives in load.py, e2e.py and
suite.py; this module only parses options and prints.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import click

from raftka.api.cli.main import handles_errors
from raftka.bench.cli_options import cluster_options, echo_json, output_options

ACKS_CHOICE = click.Choice(["0", "1", "all"])


@click.command("produce")
@cluster_options
@click.option("--records", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--record-size", default=100, show_default=True, type=click.IntRange(1), help="Bytes."
)
@click.option(
    "--batch", default=200, show_default=True, type=click.IntRange(1), help="Records/request."
)
@click.option("--acks", default="1", show_default=True, type=ACKS_CHOICE)
@click.option(
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Connections, each with one request in flight, spread over the partitions.",
)
@click.option(
    "--via",
    default=None,
    help="Send every request to this broker URL (it forwards them) instead of the leaders.",
)
@handles_errors
def produce(
    topic: str,
    bootstrap: str,
    token: str | None,
    cacert: str | None,
    as_json: bool,
    debug: bool,
    records: int,
    record_size: int,
    batch: int,
    acks: str,
    concurrency: int,
    via: str | None,
) -> None:
    """Produce N records straight to the partitions' leaders; records/s, MB/s, latency."""
    from raftka.bench.load import ProduceSpec
    from raftka.bench.load import produce as run_produce
    from raftka.bench.progress import progress_bar
    from raftka.bench.targets import describe, leader_targets

    spec = ProduceSpec(records, record_size, batch, acks, concurrency)
    views = asyncio.run(describe(bootstrap, topic, token=token, cacert=cacert))
    targets = leader_targets(topic, views, via=via, token=token, cacert=cacert)
    with progress_bar(f"produce {topic}", records) as update:
        result = asyncio.run(run_produce(targets, spec, update))
    if as_json:
        echo_json({"topic": topic, **dataclasses.asdict(spec), **dataclasses.asdict(result)})
        return
    lat = result.latency
    click.echo(
        f"{result.records:,} records sent, {result.records_per_s:,.0f} records/s "
        f"({result.mb_per_s:.2f} MB/s), {result.requests:,} requests of {batch} records, "
        f"latency p50 {lat.p50_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms, max {lat.max_ms:.1f} ms"
        + (f", {result.errors} errors retried" if result.errors else "")
    )


@click.command("consume")
@cluster_options
@click.option(
    "--max-bytes",
    default=1024 * 1024,
    show_default=True,
    type=click.IntRange(1),
    help="Bytes per fetch.",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Connections; one partition's log is split between them when they outnumber it.",
)
@handles_errors
def consume(
    topic: str,
    bootstrap: str,
    token: str | None,
    cacert: str | None,
    as_json: bool,
    debug: bool,
    max_bytes: int,
    concurrency: int,
) -> None:
    """Fetch every partition from its log start to its high watermark; records/s, MB/s."""
    from raftka.bench.load import consume as run_consume
    from raftka.bench.progress import progress_bar
    from raftka.bench.targets import describe, leader_targets

    views = asyncio.run(describe(bootstrap, topic, token=token, cacert=cacert))
    targets = leader_targets(topic, views, token=token, cacert=cacert)
    bounds = [(v.log_start_offset, v.high_watermark) for v in views]
    with progress_bar(f"consume {topic}", sum(b - a for a, b in bounds)) as update:
        result = asyncio.run(run_consume(targets, bounds, concurrency, max_bytes, update))
    if as_json:
        echo_json({"topic": topic, "max_bytes": max_bytes, **dataclasses.asdict(result)})
        return
    click.echo(
        f"{result.records:,} records read in {result.fetches:,} fetches, "
        f"{result.records_per_s:,.0f} records/s ({result.mb_per_s:.1f} MB/s)"
    )


@click.command("e2e")
@cluster_options
@click.option(
    "--rate", required=True, type=click.IntRange(1, 1_000_000), help="Records per second."
)
@click.option(
    "--duration", "duration_s", default=10.0, show_default=True, type=click.FloatRange(0.1)
)
@click.option(
    "--record-size", default=100, show_default=True, type=click.IntRange(1), help="Bytes."
)
@click.option("--acks", default="all", show_default=True, type=ACKS_CHOICE)
@click.option("--linger-ms", default=5, show_default=True, type=click.IntRange(0, 10_000))
@handles_errors
def e2e(
    topic: str,
    bootstrap: str,
    token: str | None,
    cacert: str | None,
    as_json: bool,
    debug: bool,
    rate: int,
    duration_s: float,
    record_size: int,
    acks: str,
    linger_ms: int,
) -> None:
    """Produce at a fixed rate and read back: produce-to-consume latency p50/p99/p999."""
    from raftka.bench.e2e import E2ESpec, end_to_end
    from raftka.bench.progress import progress_bar

    spec = E2ESpec(rate, duration_s, record_size, acks, linger_ms)
    with progress_bar(f"e2e {topic}", spec.records) as update:
        result = asyncio.run(
            end_to_end(bootstrap, topic, spec, token=token, cacert=cacert, progress=update)
        )
    if as_json:
        echo_json({"topic": topic, **dataclasses.asdict(spec), **dataclasses.asdict(result)})
        return
    lat, ack = result.latency, result.ack_latency
    click.echo(
        f"{result.received:,} of {result.sent:,} records read back, sent at "
        f"{result.sent_per_s:,.0f} records/s; latency p50 {lat.p50_ms:.1f} ms, "
        f"p99 {lat.p99_ms:.1f} ms, p999 {lat.p999_ms:.1f} ms, max {lat.max_ms:.1f} ms "
        f"(acknowledged: p50 {ack.p50_ms:.1f} ms, p99 {ack.p99_ms:.1f} ms)"
    )


@click.command("suite")
@click.option(
    "--rounds", default=5, show_default=True, type=click.IntRange(1, 100), help="At most."
)
@click.option(
    "--quick",
    is_flag=True,
    help="One short round (one window pair, 100,000 records to consume, 2 s of e2e); does not "
    "write the docs unless --docs is given.",
)
@click.option(
    "--time-budget",
    "time_budget_s",
    default=420.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds: no round is started that would end past it (the first always runs).",
)
@click.option("--window", "window_s", type=click.FloatRange(0.05, 600), help="Produce window, s.")
@click.option(
    "--slices",
    type=click.IntRange(1, 100),
    help="Alternating window pairs per compared workload and round [default: 3].",
)
@click.option("--warmup", "warmup_s", type=click.FloatRange(0, 600), help="Warm-up, s.")
@click.option(
    "--consume-records", type=click.IntRange(1), help="Records in the log the consume pass reads."
)
@click.option("--e2e-rate", type=click.IntRange(1, 1_000_000), help="Records/s of the e2e run.")
@click.option("--e2e-duration", "e2e_duration_s", type=click.FloatRange(0.1, 600), help="s.")
@click.option(
    "--docs",
    "docs_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The markdown file whose suite section is replaced [default: docs/benchmarks.md].",
)
@click.option("--no-docs", is_flag=True, help="Write no file.")
@output_options
@handles_errors
def suite(
    rounds: int,
    quick: bool,
    time_budget_s: float,
    window_s: float | None,
    slices: int | None,
    warmup_s: float | None,
    consume_records: int | None,
    e2e_rate: int | None,
    e2e_duration_s: float | None,
    docs_path: Path | None,
    no_docs: bool,
    as_json: bool,
    debug: bool,
) -> None:
    """Start clusters and a bare aiohttp baseline; run the standard workloads side by side,
    print each figure, its ratio and its goal, and write the table to docs/benchmarks.md."""
    import sys

    from raftka.bench.progress import progress_bar
    from raftka.bench.report import format_table, replace_section
    from raftka.bench.suite import (
        CLUSTERS,
        QUICK,
        SuiteOptions,
        SuiteProgress,
        format_section,
        run_suite,
    )

    chosen: dict[str, Any] = {**(QUICK if quick else {}), "time_budget_s": time_budget_s}
    if not quick:
        chosen["rounds"] = rounds
    given = {
        "window_s": window_s,
        "slices": slices,
        "warmup_s": warmup_s,
        "consume_records": consume_records,
        "e2e_rate": e2e_rate,
        "e2e_duration_s": e2e_duration_s,
    }
    chosen.update({k: v for k, v in given.items() if v is not None})
    options = SuiteOptions(**chosen)
    if docs_path is None and not quick:
        docs_path = Path("docs/benchmarks.md")
    if no_docs:
        docs_path = None
    if docs_path is not None and not docs_path.parent.is_dir():
        raise ValueError(f"{docs_path.parent} is not a directory (run from the repository root)")

    steps = iter(range(options.rounds * len(CLUSTERS) + 1))
    with progress_bar("suite", options.rounds * len(CLUSTERS)) as bar:
        report = run_suite(
            options,
            SuiteProgress(stage=lambda text: bar.stage(text, next(steps)), line=bar.log),
        )
    command = "raftka bench " + " ".join(sys.argv[sys.argv.index("suite") :])
    if docs_path is not None:
        document = docs_path.read_text() if docs_path.exists() else "# Benchmarks\n"
        docs_path.write_text(replace_section(document, format_section(report, command)))
        click.echo(f"wrote the table to {docs_path}", err=True)
    if as_json:
        echo_json(dataclasses.asdict(report))
        return
    click.echo(format_table(report.rows))


COMMANDS = (produce, consume, e2e, suite)
