"""`raftka chaos run|check`: the chaos harness's command line. Registered with the `raftka`
command through the `raftka.commands` entry point, so api/ never imports chaos/."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson


@click.group()
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
