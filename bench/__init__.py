"""Benchmarks for trio_udpchat, run by ``nox -s bench`` or ``python bench/run.py``.

Layout, so the harness can grow one benchmark module at a time:

* ``run.py``: the command line: picks benchmarks, runs them, prints the table, writes JSON.
* ``_harness.py``: what a benchmark is (cases, columns, ratios) and how repetitions run.
* ``_report.py``: the printed table and the JSON document (``bench/results/latest.json``).
* ``_helpers.py``: helper programs in subprocesses, started and stopped with bounded waits.
* ``_probe.py``: OS readings (kernel UDP drops), CPU pinning, a hard time limit.
* ``_stdlib.py``: baselines written with the blocking stdlib ``socket`` module.
* ``_chat_server.py``: the real trio_udpchat server as a helper program (answers probes).
* ``_relays.py``: minimal blocking-stdlib and asyncio relays (the relay baselines).
* ``_members.py``: lightweight room members and sender for the relay benchmark.
* ``relay.py``, ``latency.py``, ``sessions.py``, ``startup.py``: issue 7's benchmarks.
* ``reliable_send.py``: one client, the reliable path, vs the stdlib baselines.

Nothing here is imported by the package or the tests.
"""
