"""Run the CLI's ``--workers`` supervisor on plain ``server --worker-index I`` workers.

``python tests/workers_driver.py PORT COUNT [FLAG...]``: what ``server --workers
COUNT`` does once it has checked the port, minus the ``--bus`` it insists on
(the bus is not part of what tests/test_workers.py checks). Logs at ``-v``, so
the test learns each worker's process id.
"""

from __future__ import annotations

import sys

from trio_udpchat._launch import run_workers
from trio_udpchat._verbosity import configure_logging


def main(port: int, count: int, flags: list[str]) -> int:
    """Supervise ``count`` workers on ``port``; the exit status."""
    configure_logging(1)
    server = [sys.executable, "-m", "trio_udpchat", "server", f"--port={port}"]
    argvs = [[*server, f"--worker-index={index}", *flags] for index in range(1, count + 1)]
    return run_workers(argvs, ("127.0.0.1", port))


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]))
