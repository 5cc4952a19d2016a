"""Where the room passphrase comes from: a file, or the environment; never a flag.

A command-line argument is visible to every user of the machine (``ps``) and
lands in shell history, so there is no ``--key PASSPHRASE``. The file holds the
passphrase as its only line (a trailing newline is not part of it).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import Final

ENV_VAR: Final = "TRIO_UDPCHAT_KEY"
#: Shorter passphrases get a warning: each guess costs an attacker one Argon2id.
RECOMMENDED_LENGTH: Final = 16
#: A key file larger than this is not a passphrase (a wrong path, most likely).
_MAX_FILE: Final = 4096


class PassphraseError(Exception):
    """The passphrase cannot be read, or is empty: a one-line message for the user."""


def read_passphrase(
    key_file: str | None, environ: Mapping[str, str] = os.environ
) -> tuple[bytes | None, list[str]]:
    """The passphrase (``None``: there is none) and warnings worth one line each.

    ``key_file`` wins over the environment variable. Raises :class:`PassphraseError`.
    """
    warnings: list[str] = []
    if key_file is not None:
        secret = _from_file(key_file, warnings)
        where = key_file
    elif ENV_VAR in environ:
        secret = environ[ENV_VAR].encode("utf-8", errors="surrogateescape")
        where = ENV_VAR
    else:
        return None, warnings
    if not secret:
        raise PassphraseError(f"the passphrase in {where} is empty")
    if len(secret) < RECOMMENDED_LENGTH:
        warnings.append(
            f"the passphrase in {where} is short ({len(secret)} bytes): anyone who records"
            f" traffic can try guesses offline; {RECOMMENDED_LENGTH}+ characters"
            " (or five random words) are far safer"
        )
    return secret, warnings


def _from_file(path: str, warnings: list[str]) -> bytes:
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise PassphraseError(f"key file {path!r} is not a regular file")
            data = file.read(_MAX_FILE + 1)
    except OSError as exc:
        raise PassphraseError(f"cannot read key file {path!r}: {exc.strerror}") from None
    if len(data) > _MAX_FILE:
        raise PassphraseError(f"key file {path!r} is too large to be a passphrase")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(f"key file {path!r} is readable by other users (chmod 600 it)")
    first, _, rest = data.partition(b"\n")
    if rest.strip():
        raise PassphraseError(f"key file {path!r} has more than one line")
    return first.removesuffix(b"\r")
