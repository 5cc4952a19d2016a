"""What a benchmark is, and how its repetitions run.

A :class:`Benchmark` turns the run's :class:`Settings` into a :class:`Plan`: the
parameters it will use and its :class:`Case` list, each case a function that
measures once and returns a :class:`Sample` (named figures). Some cases are
*baselines* (the same job done by the simplest stdlib program); the report shows
each subject's compared figures (the headline first) as ratios against each
baseline **measured in the same run**, so numbers from different machines or
days are never compared.

Repetitions are interleaved (case A, B, C, then A, B, C again) so drift in the
machine's load spreads over every case instead of landing on one.
"""

from __future__ import annotations

import itertools
import statistics
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: Figures of one repetition, by name (``msgs_per_s``, ``wall_s``, ...).
Figures = dict[str, float]


@dataclass(frozen=True, slots=True)
class Settings:
    """How this invocation runs: chosen on the command line."""

    #: Fewer, smaller repetitions (``--quick``): a smoke test of the harness.
    quick: bool = False
    #: Repetitions of every case.
    repeat: int = 3
    #: Overrides a benchmark's message count (``--messages``), if given.
    messages: int | None = None
    #: Longest one repetition of one case may take, in seconds.
    case_timeout: float = 60.0
    #: How processes are placed on CPUs (see ``_probe.PIN_MODES``), and the
    #: CPUs the helper programs (servers, peers) are given; ``None``: any.
    pin: str = "none"
    helper_cpus: frozenset[int] | None = None
    #: The CPUs the benchmark process itself (the clients) runs on; ``None``: any.
    client_cpus: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One repetition of one case: its figures, and raw details kept only in the JSON."""

    figures: Figures
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Case:
    """One thing to measure. ``baseline`` cases are the yardsticks for the subjects."""

    name: str
    label: str
    measure: Callable[[], Sample]
    baseline: bool = False


@dataclass(frozen=True, slots=True)
class Column:
    """A figure shown in the printed table (every figure goes to the JSON anyway)."""

    key: str
    label: str
    #: ``format()`` spec for one value, e.g. ``",.0f"``.
    spec: str = ",.0f"


@dataclass(frozen=True, slots=True)
class Compare:
    """A figure reported as ``subject / baseline`` ratios (or, with ``difference``,
    as ``subject - baseline``: what the subject adds, in the figure's unit)."""

    key: str
    higher_is_better: bool
    difference: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """What a benchmark will run this time: its parameters and its cases."""

    params: dict[str, float | int | str]
    cases: Sequence[Case]
    #: ``(subject, baseline)`` case names to show as ratios; by default every
    #: subject against every baseline.
    ratios: Sequence[tuple[str, str]] | None = None
    #: Why nothing runs this time (a missing program or package), if so: the
    #: benchmark is reported as skipped, with this reason, and has no cases.
    skip: str | None = None
    #: Where this benchmark puts its processes, when it does not follow ``--pin``
    #: as the others do (said in the table instead of the run's placement).
    placement: str | None = None

    def ratio_pairs(self) -> list[tuple[str, str]]:
        """The ``(subject, baseline)`` pairs whose ratios are reported."""
        if self.ratios is not None:
            return list(self.ratios)
        subjects = [case.name for case in self.cases if not case.baseline]
        baselines = [case.name for case in self.cases if case.baseline]
        return [(s, b) for s in subjects for b in baselines]


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A named benchmark: one subject (or more) and the baselines it is judged against."""

    name: str
    #: One sentence: what is measured; ``{name}`` fields are filled from the plan's params.
    title: str
    columns: Sequence[Column]
    #: Figures shown as ratios to the baselines; the first is the headline.
    compare: Sequence[Compare]
    plan: Callable[[Settings], Plan]
    #: Written under the table: what bounds the figures, what to keep in mind.
    notes: Sequence[str] = ()
    #: Its entries of the summary at the top of the JSON (``relay``, ``rtt_us``, ...).
    summarize: Callable[[BenchmarkResult], dict[str, object]] | None = None


@dataclass(frozen=True, slots=True)
class Spread:
    """The median of the repetitions, with their minimum and maximum."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The spread of ``values`` (at least one)."""
        return cls(statistics.median(values), min(values), max(values))

    def as_dict(self) -> dict[str, float]:
        """``{"median": ..., "min": ..., "max": ...}``, as the JSON has it."""
        return {"median": self.median, "min": self.low, "max": self.high}


@dataclass(slots=True)
class CaseResult:
    """Every repetition of one case, and the error that stopped it, if any."""

    case: Case
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None

    def spread(self, key: str) -> Spread | None:
        """The spread of figure ``key`` over the repetitions that report it."""
        values = [s.figures[key] for s in self.samples if key in s.figures]
        return Spread.of(values) if values else None


@dataclass(frozen=True, slots=True)
class Ratio:
    """``subject / baseline`` on one compared figure (``subject - baseline`` if it
    is compared by ``difference``).

    ``median`` is the ratio (difference) of the two medians; ``low``/``high`` span
    the ratios (differences) of the repetitions paired in the order they ran (both
    measured back to back).
    """

    compare: Compare
    subject: str
    baseline: str
    spread: Spread


@dataclass(slots=True)
class BenchmarkResult:
    """A benchmark's plan and what each of its cases measured."""

    benchmark: Benchmark
    plan: Plan
    cases: list[CaseResult]
    elapsed: float

    @property
    def failed(self) -> bool:
        """Whether some case stopped with an error."""
        return any(result.error is not None for result in self.cases)

    def case(self, name: str) -> CaseResult:
        """The result of the case called ``name``."""
        return next(result for result in self.cases if result.case.name == name)

    def ratios(self) -> list[Ratio]:
        """The ratios of every compared figure and pair, where both sides have figures."""
        out: list[Ratio] = []
        if self.plan.skip is not None:  # nothing ran
            return out
        pairs = self.plan.ratio_pairs()
        for compare, (subject, baseline) in itertools.product(self.benchmark.compare, pairs):
            key, minus = compare.key, compare.difference
            top = [s.figures.get(key) for s in self.case(subject).samples]
            bottom = [s.figures.get(key) for s in self.case(baseline).samples]
            paired = [
                t - b if minus else t / b
                for t, b in zip(top, bottom, strict=False)
                if t is not None and b is not None and (minus or b)
            ]
            top_spread = self.case(subject).spread(key)
            bottom_spread = self.case(baseline).spread(key)
            if not paired or top_spread is None or bottom_spread is None:
                continue
            if minus:
                median = top_spread.median - bottom_spread.median
            else:
                median = top_spread.median / bottom_spread.median
            spread = Spread(median, min(paired), max(paired))
            out.append(Ratio(compare, subject, baseline, spread))
        return out


def run_benchmark(
    benchmark: Benchmark, settings: Settings, progress: Callable[[str], None]
) -> BenchmarkResult:
    """Run every case of ``benchmark`` ``settings.repeat`` times, interleaved.

    A case that raises is recorded with its error and not repeated; the others go on.
    A plan that says why it must be skipped runs nothing.
    """
    started = time.perf_counter()
    plan = benchmark.plan(settings)
    if plan.skip is not None:
        progress(f"{benchmark.name}: skipped: {plan.skip}")
    results = [CaseResult(case) for case in plan.cases]
    for repetition in range(1, settings.repeat + 1):
        for result in results:
            if result.error is not None:
                continue
            progress(f"{benchmark.name}: {result.case.name} #{repetition}")
            try:
                result.samples.append(result.case.measure())
            except Exception as exc:  # a broken case must not hide the others' figures
                result.error = "".join(traceback.format_exception_only(exc)).strip()
                progress(f"{benchmark.name}: {result.case.name} failed: {result.error}")
    return BenchmarkResult(benchmark, plan, results, time.perf_counter() - started)
