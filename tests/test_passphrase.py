"""Reading the room passphrase from a file or the environment (``_passphrase``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trio_udpchat._passphrase import ENV_VAR, PassphraseError, read_passphrase

LONG = "correct horse battery staple"


def _key_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> str:
    path = tmp_path / "key"
    path.write_bytes(content)
    path.chmod(mode)
    return str(path)


def test_none_without_file_or_variable() -> None:
    assert read_passphrase(None, {}) == (None, [])


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n", b"\n\n"])
def test_the_file_holds_one_line(tmp_path: Path, ending: bytes) -> None:
    path = _key_file(tmp_path, LONG.encode() + ending)
    assert read_passphrase(path, {}) == (LONG.encode(), [])


def test_the_file_wins_over_the_environment(tmp_path: Path) -> None:
    path = _key_file(tmp_path, b"from the file, long enough\n")
    secret, _ = read_passphrase(path, {ENV_VAR: "from the environment"})
    assert secret == b"from the file, long enough"


def test_the_environment_variable(tmp_path: Path) -> None:
    assert read_passphrase(None, {ENV_VAR: "pässphrase ünicode ok"}) == (
        "pässphrase ünicode ok".encode(),
        [],
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n", "empty"),
        (b"one\ntwo\n", "more than one line"),
        (b"x" * 5000, "too large"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(PassphraseError, match=message):
        read_passphrase(_key_file(tmp_path, content), {})


def test_missing_file_and_directory_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(PassphraseError, match="cannot read key file"):
        read_passphrase(str(tmp_path / "missing"), {})
    with pytest.raises(PassphraseError, match=r"not a regular file|cannot read"):
        read_passphrase(str(tmp_path), {})


def test_an_empty_variable_is_an_error() -> None:
    with pytest.raises(PassphraseError, match="empty"):
        read_passphrase(None, {ENV_VAR: ""})


def test_warnings_for_a_short_passphrase_and_an_open_file(tmp_path: Path) -> None:
    path = _key_file(tmp_path, b"short\n", mode=0o644)
    secret, warnings = read_passphrase(path, {})
    assert secret == b"short"
    assert len(warnings) == 2
    assert any("readable by other users" in warning for warning in warnings)
    assert any("short" in warning for warning in warnings)
    assert os.stat(path).st_mode & 0o777 == 0o644  # only warned, never changed
