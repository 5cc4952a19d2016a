"""The sans-IO core stays sans-IO: checked by parsing the source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_udpchat"

#: The protocol core: stdlib only, time and randomness passed in.
CORE_MODULES = (
    "_errors",
    "_config",
    "_wire",
    "_crypto",
    "_cookie",
    "_replay",
    "_sealed",
    "_plaintext",
    "_events",
    "_safe",
    "_budget",
    "_names",
    "_chat",
    "_bus",
    "_rtt",
    "_stats",
    "_reliable",
    "_session",
    "_endpoint",
    "_room",
    "_envelope",
    "_roombus",
    "_membus",
    "_server",
    "_client",
)
#: Modules no core module may reach: the Trio layer and the CLI.
#: (``_commands`` parses typed lines for ``_run``: the terminal's business, not the protocol's.)
UPPER_MODULES = frozenset(
    {
        "_udp",
        "_batch",
        "_run",
        "_cli",
        "_launch",
        "_terminal",
        "_render",
        "_commands",
        "_colour",
        "_lineeditor",
        "_jsonout",
        "_logfile",
        "_verbosity",
        "_passphrase",
        "_workers",
        "_redisbus",
    }
)
#: Modules outside both layers: re-exports, the entry point, the version string.
OTHER_MODULES = frozenset({"__init__", "__main__", "_version"})
#: Top-level packages the core may not import (I/O, clocks, event loops).
FORBIDDEN_IMPORTS = frozenset({"trio", "socket", "time", "asyncio", "select"})


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """Dotted names an import brings in; relative ones keep their leading dots.

    ``from ._udp import bind`` gives ``._udp.bind``; ``from . import _run`` gives ``._run``.
    """
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = "." * node.level + (node.module + "." if node.module else "")
    return [base + alias.name for alias in node.names]


def _import_violation(name: str) -> bool:
    parts = name.lstrip(".").split(".")
    if name.startswith("."):
        inside = parts
    elif parts[0] in FORBIDDEN_IMPORTS:
        return True
    else:
        inside = parts[1:] if parts[0] == "trio_udpchat" else []
    return bool(inside) and inside[0] in UPPER_MODULES


def violations(source: str) -> list[str]:
    """What in ``source`` a core module must not do."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found += [f"imports {name}" for name in _imported(node) if _import_violation(name)]
        elif isinstance(node, ast.Name) and node.id in {"print", "__import__"}:
            found.append(f"uses {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr == "import_module":
            found.append("uses importlib.import_module")
    return found


def _module_source(name: str) -> str:
    return (PACKAGE / f"{name}.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", CORE_MODULES)
def test_core_module_exists(name: str) -> None:
    assert (PACKAGE / f"{name}.py").is_file()


def test_every_module_is_classified() -> None:
    # A new module must be put in a layer here, or its imports go unchecked.
    found = {path.stem for path in PACKAGE.glob("*.py")}
    assert found == set(CORE_MODULES) | UPPER_MODULES | OTHER_MODULES


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_every_module_parses(path: Path) -> None:
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("name", CORE_MODULES)
def test_core_module_is_sans_io(name: str) -> None:
    assert violations(_module_source(name)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import trio",
        "import trio.lowlevel",
        "from trio import sleep",
        "import socket as s",
        "from time import monotonic",
        "import asyncio",
        "import select",
        "from ._udp import bind",
        "from . import _run",
        "from ._cli import main",
        "from trio_udpchat._terminal import Terminal",
        "from trio_udpchat import _render",
        "from ._commands import parse_line",
        "import trio_udpchat._udp",
        "print('hi')",
        "def f():\n    import time\n",
        "out = print",
        "__import__('trio')",
        "import importlib\nimportlib.import_module('socket')",
    ],
)
def test_checker_catches(source: str) -> None:
    # The checker itself must see each kind of violation, or the test above proves nothing.
    assert violations(source)


@pytest.mark.parametrize(
    "source",
    [
        "import struct\nfrom collections import Counter",
        "from ._wire import encode_frame",
        "from . import _wire",
        "from trio_udpchat._events import Event",
        "import timeit",
        "import socketserver",
        "from .time_utils import x",
        "printer = 1",
    ],
)
def test_checker_allows(source: str) -> None:
    assert violations(source) == []


# -- the package's public names, and what the command line loads ------------------------


def test_every_public_name_resolves_to_its_module_s_object() -> None:
    import importlib

    import trio_udpchat

    # The names mypy sees (the TYPE_CHECKING imports) are the names loaded on use.
    source = ast.parse(_module_source("__init__"))
    [typing_only] = [node for node in source.body if isinstance(node, ast.If)]
    typed = {
        alias.asname: f"{'.' * node.level}{node.module}"
        for node in typing_only.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == {name: f".{module}" for name, module in trio_udpchat._WHERE.items()}
    assert set(trio_udpchat._WHERE) | {"__version__"} == set(trio_udpchat.__all__)
    for name, module in trio_udpchat._WHERE.items():
        defined = getattr(importlib.import_module(f"trio_udpchat.{module}"), name)
        assert getattr(trio_udpchat, name) is defined
    assert set(trio_udpchat.__all__) <= set(dir(trio_udpchat))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        trio_udpchat.nothing_here  # noqa: B018 - the attribute access is the test


def test_parsing_the_command_line_loads_neither_trio_nor_the_protocol() -> None:
    # --help and usage errors should cost no more than Python and argparse: the
    # run's modules come with _launch, once the arguments are good.
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from trio_udpchat._cli import build_parser\n"
        "build_parser().parse_args(['server', '--port', '0'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('trio', 'nacl', 'coredis')"
        " or m in ('trio_udpchat._server', 'trio_udpchat._run', 'trio_udpchat._launch')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
