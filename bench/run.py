"""Run the benchmarks: ``python bench/run.py [NAME ...] [--quick]`` (or ``python -m bench.run``).

Every benchmark runs its cases several times, interleaved, and prints one table:
the median (and min-max) of each figure per case, and each subject's ratio to
the stdlib baselines measured in the same run. Everything, each repetition
included, is written as JSON to ``bench/results/latest.json``.

By default the benchmark and its helper processes share one CPU (``--pin same``):
on loopback, throughput is then the inverse of the CPU spent per message on both
sides, which is what code changes move, and it does not swing with where the
scheduler happens to put the processes (on 2 cores it otherwise flips between
"one core, taking turns" and "two cores, overlapping", a factor of 2).

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

from bench import reliable_send
from bench._harness import Benchmark, Settings, run_benchmark
from bench._helpers import ROOT
from bench._probe import PIN_MODES, pin, placement
from bench._report import document, machine, table

#: Every benchmark, in the order they run.
BENCHMARKS: tuple[Benchmark, ...] = (reliable_send.BENCHMARK,)

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
        default="same",
        help="same (default): this process and its servers share one CPU, so msgs/s is"
        " 1 / (CPU per message), steady on a busy machine; split: servers get a CPU of"
        " their own (parallel, but sensitive to other load); none: the OS decides",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


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
    output.write_text(
        json.dumps(document(results, settings, environment, elapsed), indent=2) + "\n"
    )
    print(f"total {elapsed:.1f} s; results written to {_shown(output)}")
    return 1 if any(result.failed for result in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
