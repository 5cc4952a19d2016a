"""Benchmark ``startup``: ``python -m trio_udpchat --help`` against ``python -c "import trio"``.

Both as fresh subprocesses of the same interpreter, wall time from spawn to
exit; the difference is what our package adds on top of importing Trio.
"""

from __future__ import annotations

import subprocess
import sys
import time
from functools import partial

from ._harness import Benchmark, BenchmarkResult, Case, Column, Compare, Plan, Sample, Settings
from ._helpers import ROOT

#: Runs per repetition (the fastest is kept: start-up noise only ever adds).
RUNS = 5


def measure(argv: list[str], timeout: float) -> Sample:
    """The fastest of :data:`RUNS` runs of ``argv``, in seconds."""
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=timeout)
        best = min(best, time.perf_counter() - started)
    return Sample({"wall_s": best})


def plan(settings: Settings) -> Plan:
    """Our CLI's help, and Trio's import as the baseline."""
    timeout = settings.case_timeout
    return Plan(
        params={"runs": RUNS},
        cases=[
            Case(
                "cli_help",
                "python -m trio_udpchat --help",
                partial(measure, [sys.executable, "-m", "trio_udpchat", "--help"], timeout),
            ),
            Case(
                "import_trio",
                'python -c "import trio"',
                partial(measure, [sys.executable, "-c", "import trio"], timeout),
                baseline=True,
            ),
        ],
    )


def summarize(result: BenchmarkResult) -> dict[str, object]:
    """The ``startup_s`` entry of the JSON summary (medians)."""
    out: dict[str, object] = {}
    for case in result.cases:
        spread = case.spread("wall_s")
        out[case.case.name] = None if spread is None else spread.median
    return {"startup_s": out}


BENCHMARK = Benchmark(
    name="startup",
    title="start-up wall time, best of {runs} runs per repetition",
    columns=[Column("wall_s", "wall s", ".3f")],
    compare=[Compare("wall_s", higher_is_better=False)],
    plan=plan,
    summarize=summarize,
)
