"""Development sessions: ``nox`` runs the tests; ``nox -s lint typecheck docs`` the rest.

``fuzz`` and ``bench`` are opt-in: name them to run them.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

#: Keep in step with pyproject's ``test`` extra. Sphinx is there because
#: tests/test_docs.py builds the documentation (it skips without Sphinx);
#: coredis because tests/test_redisbus.py runs the Redis bus.
TEST_DEPS = [
    "pytest>=8",
    "pytest-trio>=0.8",
    "hypothesis>=6.100",
    "pexpect>=4.8",
    "sphinx>=7",
    "coredis>=6.9,<7",
]


def _install(session: nox.Session, *extra: str) -> None:
    session.install("-e", ".", *TEST_DEPS, *extra)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest arguments after ``--``)."""
    _install(session)
    session.run("pytest", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Run the Hypothesis tests with many more examples (the ``fuzz`` profile)."""
    _install(session)
    session.run("pytest", "--hypothesis-profile=fuzz", "-m", "not e2e", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks (opt-in); prints a table and writes bench/results/latest.json.

    The ``redis`` extra (coredis) is for the bus benchmarks, which also need
    ``redis-server`` on the PATH; without either they are skipped, saying why."""
    session.install("-e", ".[redis]")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package, tests, docs extension and this file with ``mypy --strict``."""
    _install(session, "mypy", "nox", "types-docutils")
    session.run("mypy", "--strict")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx documentation, warnings as errors."""
    _install(session)
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
