"""Run the benchmarks: ``python bench/run.py [NAME ...] [--quick]`` (or ``python -m bench.run``).

Every benchmark runs its cases several times, interleaved, and prints one table:
the median (and min-max) of each figure per case, and each subject's ratio to
the stdlib baselines measured in the same run. Everything, each repetition
included, is written as JSON to ``bench/results/latest.json``.

By default the servers (the helper processes) get one CPU and the benchmark
process, which plays the clients, another (``--pin split``): the relay and
latency figures are then the server's, not the clients'. ``--pin same`` puts
everything on one CPU (throughput is then the inverse of the CPU spent per
message on both sides; steadier on a busy machine).

The JSON starts with a summary (``relay``, ``rtt_us``, ``sessions``,
``startup_s``: the shape issue 7 asked for), then every case in detail. A PNG
of the relay figures is written next to it when matplotlib is importable.

Adding a benchmark: a module in ``bench/`` exposing a ``BENCHMARK``
(:class:`bench._harness.Benchmark`), listed in :data:`BENCHMARKS` below.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bus_latency, bus_workers, latency, relay, reliable_send, sessions, startup
from bench._harness import Benchmark, BenchmarkResult, Settings, run_benchmark
from bench._helpers import ROOT
from bench._probe import PIN_MODES, pin, placement
from bench._report import document, machine, table

#: Every benchmark, in the order they run.
BENCHMARKS: tuple[Benchmark, ...] = (
    relay.BENCHMARK,
    latency.BENCHMARK,
    sessions.BENCHMARK,
    startup.BENCHMARK,
    reliable_send.BENCHMARK,
    bus_latency.BENCHMARK,
    bus_workers.BENCHMARK,
)

DEFAULT_OUTPUT = ROOT / "bench" / "results" / "latest.json"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description="Run the trio_udpchat benchmarks."
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="benchmarks to run (default: all; see --list)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one repetition of a smaller workload (a smoke test)"
    )
    parser.add_argument(
        "--repeat", type=_positive, help="repetitions of every case (default 3, 1 with --quick)"
    )
    parser.add_argument("--messages", type=_positive, help="override the message count")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds one repetition of one case may take (default 60)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write the JSON (default bench/results/latest.json)",
    )
    parser.add_argument(
        "--pin",
        choices=PIN_MODES,
        default="split",
        help="split (default): servers get a CPU of their own, clients the other, so the"
        " figures are the server's; same: everything shares one CPU, so msgs/s is"
        " 1 / (CPU per message), steady on a busy machine; none: the OS decides",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def summary(results: Sequence[BenchmarkResult]) -> dict[str, object]:
    """The top of the JSON: each benchmark's own summary entries (the entries of
    benchmarks sharing a key, such as ``bus``, merged into one object)."""
    out: dict[str, object] = {}
    for result in results:
        if result.benchmark.summarize is None:
            continue
        for key, value in result.benchmark.summarize(result).items():
            before = out.get(key)
            if isinstance(before, dict) and isinstance(value, dict):
                value = {**before, **value}
            out[key] = value
    return out


def plot(results: Sequence[BenchmarkResult], path: Path) -> Path | None:
    """A bar chart of deliveries/s per relay and K, if matplotlib is importable."""
    found = [r for r in results if r.benchmark.name == "relay"]
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # an extra: never a dependency
        return None
    if not found:
        return None
    cases = [(c.case.name, c.spread("deliveries_per_s")) for c in found[0].cases]
    shown = [(name, s.median) for name, s in cases if s is not None]
    figure, axes = plt.subplots(figsize=(7, 3.5))
    axes.barh([name for name, _ in shown], [value for _, value in shown])
    axes.set_xlabel("deliveries/s (median)")
    axes.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks; 0 if every case ran, 1 if some failed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    by_name = {bench.name: bench for bench in BENCHMARKS}
    if args.list:
        for bench in BENCHMARKS:
            print(f"{bench.name}: {bench.title.format(**bench.plan(Settings()).params)}")
        return 0
    unknown = [name for name in args.names if name not in by_name]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r} (choose from {', '.join(by_name)})")
    chosen = [by_name[name] for name in args.names] or list(BENCHMARKS)
    mine, helpers = placement(args.pin)
    settings = Settings(
        quick=args.quick,
        repeat=args.repeat or (1 if args.quick else 3),
        messages=args.messages,
        case_timeout=args.timeout,
        pin=args.pin,
        helper_cpus=helpers,
        client_cpus=mine,
    )

    def progress(message: str) -> None:
        print(f"  ... {message}", file=sys.stderr, flush=True)

    environment = machine()  # before we load the machine ourselves
    pin(mine)
    started = time.perf_counter()
    results = []
    for bench in chosen:
        result = run_benchmark(bench, settings, progress)
        results.append(result)
        print("\n" + table(result, settings) + "\n", flush=True)
    elapsed = time.perf_counter() - started

    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    detail = document(results, settings, environment, elapsed)
    output.write_text(json.dumps({**summary(results), **detail}, indent=2) + "\n")
    plotted = plot(results, output.with_name("relay.png"))
    print(f"total {elapsed:.1f} s; results written to {_shown(output)}")
    if plotted is not None:
        print(f"plot of the relay figures: {_shown(plotted)}")
    return 1 if any(result.failed for result in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
