"""The printed table and the JSON document of a benchmark run."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata

from ._harness import BenchmarkResult, Settings, Spread
from ._helpers import ROOT

_DASH = "-"
SCHEMA = 1


def _cell(spread: Spread | None, spec: str, unit: str = "") -> str:
    """``median (min-max)``, or just the value when every repetition agreed."""
    if spread is None:
        return _DASH
    median = format(spread.median, spec) + unit
    if spread.low == spread.high:
        return median
    return f"{median} ({format(spread.low, spec)}-{format(spread.high, spec)})"


def _grid(rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Aligned columns: the first ``left`` flush left, the others flush right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i < left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _placement(settings: Settings) -> str:
    if settings.pin == "none" or settings.helper_cpus is None:
        return "as the OS schedules"
    cpus = ",".join(map(str, sorted(settings.helper_cpus)))
    if settings.pin == "same":
        return f"all on CPU {cpus} (--pin same)"
    return f"servers on CPU {cpus}, clients on another (--pin split)"


def table(result: BenchmarkResult, settings: Settings) -> str:
    """The benchmark's figures, one column per case, then its ratios and notes."""
    bench = result.benchmark
    if result.plan.skip is not None:
        return f"{bench.name}: skipped: {result.plan.skip}"
    reps = settings.repeat
    lines = [
        f"{bench.name}: {bench.title.format(**result.plan.params)}",
        f"{reps} repetition{'s' if reps != 1 else ''}, interleaved; "
        + ("median (min-max)" if reps > 1 else "one value each")
        + f"; CPUs: {result.plan.placement or _placement(settings)}; {result.elapsed:.1f} s",
        "",
    ]
    header = ["", *(r.case.name + (" (baseline)" if r.case.baseline else "") for r in result.cases)]
    rows = [header]
    for column in bench.columns:
        cells = [_cell(r.spread(column.key), column.spec) for r in result.cases]
        if any(cell != _DASH for cell in cells):
            rows.append([column.label, *cells])
    lines += ["  " + line for line in _grid(rows)]
    ratios = result.ratios()
    if ratios:
        labels = {c.key: c.label for c in bench.columns}
        differences = any(r.compare.difference for r in ratios)
        lines += [
            "",
            f"  ratios{' and differences' if differences else ''} to the baselines, this run:",
        ]
        ratio_rows = [
            [
                f"{labels.get(r.compare.key, r.compare.key)}"
                f" ({'higher' if r.compare.higher_is_better else 'lower'} is better)",
                f"{r.subject} {'-' if r.compare.difference else '/'} {r.baseline}",
                _cell(r.spread, "+,.0f") if r.compare.difference else _cell(r.spread, ".2f", "x"),
            ]
            for r in ratios
        ]
        lines += ["    " + line for line in _grid(ratio_rows, left=2)]
    lines += ["", *(f"  {r.case.name}: {r.case.label}" for r in result.cases)]
    lines += [f"  {note}" for note in bench.notes]
    lines += [f"  FAILED {r.case.name}: {r.error}" for r in result.cases if r.error]
    return "\n".join(lines)


def _git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, object]:
    """Where the figures come from: interpreter, machine, versions, load."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": list(load) if load else None,
        "trio": _version("trio"),
        "trio_udpchat": _version("trio-udpchat"),
        "git_commit": _git_commit(),
    }


def _spread(spread: Spread | None) -> dict[str, float] | None:
    return None if spread is None else spread.as_dict()


def document(
    results: Sequence[BenchmarkResult],
    settings: Settings,
    environment: dict[str, object],
    elapsed: float,
) -> dict[str, object]:
    """The JSON document: settings, environment, and every benchmark's cases and ratios."""
    benchmarks: dict[str, object] = {}
    for result in results:
        bench = result.benchmark
        skipped = {} if result.plan.skip is None else {"skipped": result.plan.skip}
        cases: dict[str, object] = {}
        for r in result.cases:
            keys = sorted({key for sample in r.samples for key in sample.figures})
            cases[r.case.name] = {
                "label": r.case.label,
                "baseline": r.case.baseline,
                "error": r.error,
                "summary": {key: _spread(r.spread(key)) for key in keys},
                "runs": [{"figures": s.figures, "details": s.details} for s in r.samples],
            }
        placed = {} if result.plan.placement is None else {"placement": result.plan.placement}
        benchmarks[bench.name] = {
            **skipped,
            **placed,
            "title": bench.title.format(**result.plan.params),
            "params": result.plan.params,
            "headline": bench.compare[0].key if bench.compare else None,
            "compare": [
                {
                    "key": c.key,
                    "higher_is_better": c.higher_is_better,
                    **({"difference": True} if c.difference else {}),
                }
                for c in bench.compare
            ],
            "elapsed_s": result.elapsed,
            "cases": cases,
            "ratios": [
                {
                    "key": r.compare.key,
                    "subject": r.subject,
                    "baseline": r.baseline,
                    **({"difference": True} if r.compare.difference else {}),
                    **(_spread(r.spread) or {}),
                }
                for r in result.ratios()
            ],
        }
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": {
            "quick": settings.quick,
            "repeat": settings.repeat,
            "messages": settings.messages,
            "case_timeout_s": settings.case_timeout,
            "pin": settings.pin,
            "helper_cpus": None if settings.helper_cpus is None else sorted(settings.helper_cpus),
        },
        "environment": environment,
        "elapsed_s": elapsed,
        "benchmarks": benchmarks,
    }
