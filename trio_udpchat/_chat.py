"""The chat messages carried inside a session's reliable stream, and their bytes.

Each reliable message is one chat message: a kind byte, then fields. Strings
are a u32 length and UTF-8; times are f64 seconds since the Unix epoch (the
server's clock; clients show them in local time)::

    kind                     code  fields
    client to server
      Join                   0x10  name str, since f64,   first message of a session;
                                   token u64              history newer than ``since``
                                                          only (negative: all of it);
                                                          token: the same for every
                                                          session of one client run
                                                          (0: none), so a client that
                                                          moves between servers of one
                                                          room keeps its name quietly
      Say                    0x11  text str               to the room
      Act                    0x12  text str               /me
      Whisper                0x13  to str, text str       /msg
      Rename                 0x14  name str               /nick
      AskWho                 0x15  -                      /who
      Quit                   0x16  reason str             /quit (the session's Bye follows)
    server to client
      Said                   0x20  sender str, text str,  a message; kind 0 say, 1 act,
                                   time f64, kind u8,     2 private, 3 the operator's reply
                                   history u8             to you; history 1: a replay
      Presence               0x21  what u8, name str,     0 joined, 1 left, 2 renamed
                                   detail str, time f64   (detail: reason, or the new name)
      Roster                 0x22  count u16, then each:  /who; idle in seconds, u32;
                                   name str, idle u32,    server: where the member is
                                   operator u8,           when the room spans servers
                                   server str             (empty: the one you are on)
      Refused                0x23  why u8, text str       0 name, 1 room full, 2 slow down,
                                                          3 no such member, 4 other
      Named                  0x24  name str               your name in the room is now this
      Notice                 0x25  text str               news about the room itself (the
                                                          link to other servers)

Anything else, or trailing bytes, is a :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, TypeAlias, TypeVar

from ._errors import LocalProtocolError, RemoteProtocolError

_E = TypeVar("_E", bound="IntEnum")
_U8: Final = struct.Struct("!B")
_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_F64: Final = struct.Struct("!d")
_U64: Final = struct.Struct("!Q")


class SaidKind(IntEnum):
    """How a :class:`Said` message was said."""

    SAY = 0
    ACT = 1
    PRIVATE = 2
    REPLY = 3  # the operator's plain line to the client that spoke last


class PresenceKind(IntEnum):
    """What a :class:`Presence` notice reports."""

    JOINED = 0
    LEFT = 1
    RENAMED = 2


class RefusedWhy(IntEnum):
    """Why a :class:`Refused` came back."""

    NAME = 0
    ROOM_FULL = 1
    SLOW_DOWN = 2
    NO_SUCH_MEMBER = 3
    OTHER = 4


@dataclass(frozen=True, slots=True)
class Join:
    """Client: I am ``name`` (empty: name me by my address). ``since``: the time of the
    newest message I have seen, so a rejoin replays only the history I missed."""

    name: str
    since: float = -1.0
    token: int = 0


@dataclass(frozen=True, slots=True)
class Say:
    """Client: ``text`` to the room."""

    text: str


@dataclass(frozen=True, slots=True)
class Act:
    """Client: the action ``text`` (``/me``)."""

    text: str


@dataclass(frozen=True, slots=True)
class Whisper:
    """Client: ``text`` to ``to`` only."""

    to: str
    text: str


@dataclass(frozen=True, slots=True)
class Rename:
    """Client: call me ``name`` from now on."""

    name: str


@dataclass(frozen=True, slots=True)
class AskWho:
    """Client: who is here?"""


@dataclass(frozen=True, slots=True)
class Quit:
    """Client: I am leaving, because ``reason`` (may be empty)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Said:
    """Server: ``sender`` said ``text`` at ``time``."""

    sender: str
    text: str
    time: float
    kind: SaidKind = SaidKind.SAY
    history: bool = False


@dataclass(frozen=True, slots=True)
class Presence:
    """Server: ``name`` joined, left (``detail``: why) or was renamed (``detail``: to)."""

    what: PresenceKind
    name: str
    detail: str
    time: float


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One line of /who."""

    name: str
    idle: int
    operator: bool = False
    server: str = ""


@dataclass(frozen=True, slots=True)
class Roster:
    """Server: who is here."""

    entries: tuple[RosterEntry, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    """Server: your last request was not done; ``text`` says why and what to do."""

    why: RefusedWhy
    text: str


@dataclass(frozen=True, slots=True)
class Named:
    """Server: your name in the room is now ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Server: news about the room itself, such as the link to other servers."""

    text: str


ClientMessage: TypeAlias = Join | Say | Act | Whisper | Rename | AskWho | Quit
ServerMessage: TypeAlias = Said | Presence | Roster | Refused | Named | Notice
ChatMessage: TypeAlias = ClientMessage | ServerMessage

_CODES: Final[dict[type[ChatMessage], int]] = {
    Join: 0x10,
    Say: 0x11,
    Act: 0x12,
    Whisper: 0x13,
    Rename: 0x14,
    AskWho: 0x15,
    Quit: 0x16,
    Said: 0x20,
    Presence: 0x21,
    Roster: 0x22,
    Refused: 0x23,
    Named: 0x24,
    Notice: 0x25,
}


def _str(value: str) -> bytes:
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"text is not encodable as UTF-8: {exc}") from None
    return _U32.pack(len(data)) + data


def _time(time: float) -> bytes:
    if not math.isfinite(time):
        raise LocalProtocolError(f"time {time} is not a finite number")
    return _F64.pack(time)


def encode_chat(message: ChatMessage) -> bytes:
    """The bytes of ``message``. Raises :class:`LocalProtocolError` on bad fields."""
    parts = [_U8.pack(_CODES[type(message)])]
    match message:
        case Join(name=name, since=since, token=token):
            if not 0 <= token < 2**64:
                raise LocalProtocolError(f"token {token} does not fit 64 bits")
            parts += [_str(name), _time(since), _U64.pack(token)]
        case Say(text=text) | Act(text=text) | Rename(name=text):
            parts.append(_str(text))
        case Quit(reason=text) | Named(name=text) | Notice(text=text):
            parts.append(_str(text))
        case Whisper(to=to, text=text):
            parts += [_str(to), _str(text)]
        case AskWho():
            pass
        case Said(sender=sender, text=text, time=time, kind=kind, history=history):
            parts += [_str(sender), _str(text), _time(time), _U8.pack(kind)]
            parts.append(_U8.pack(history))
        case Presence(what=what, name=name, detail=detail, time=time):
            parts += [_U8.pack(what), _str(name), _str(detail), _time(time)]
        case Roster(entries=entries):
            if len(entries) > 0xFFFF:
                raise LocalProtocolError(f"a roster of {len(entries)} entries is over 65535")
            parts.append(_U16.pack(len(entries)))
            for entry in entries:
                idle = min(max(entry.idle, 0), 2**32 - 1)
                parts += [_str(entry.name), _U32.pack(idle), _U8.pack(entry.operator)]
                parts.append(_str(entry.server))
        case Refused(why=why, text=text):
            parts += [_U8.pack(why), _str(text)]
    return b"".join(parts)


class _Reader:
    """Reads fields off untrusted bytes; any shortfall is a RemoteProtocolError."""

    __slots__ = ("_at", "_data")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def _take(self, size: int) -> bytes:
        end = self._at + size
        if end > len(self._data):
            raise RemoteProtocolError("chat message is truncated", reason="chat-truncated")
        chunk = self._data[self._at : end]
        self._at = end
        return chunk

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self._take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self._take(8))[0])

    def f64(self) -> float:
        (value,) = _F64.unpack(self._take(8))
        if not math.isfinite(value):
            raise RemoteProtocolError("time is not a finite number", reason="chat-malformed")
        return float(value)

    def str(self) -> str:
        size = self.u32()
        try:
            return self._take(size).decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError("chat text is not UTF-8", reason="bad-utf8") from None

    def flag(self) -> bool:
        value = self.u8()
        if value > 1:
            raise RemoteProtocolError(f"flag {value} is not 0 or 1", reason="chat-malformed")
        return bool(value)

    def enum(self, kind: type[_E]) -> _E:
        value = self.u8()
        try:
            return kind(value)
        except ValueError:
            raise RemoteProtocolError(
                f"{value} is not a {kind.__name__}", reason="chat-malformed"
            ) from None

    def done(self) -> None:
        if self._at != len(self._data):
            raise RemoteProtocolError("chat message has trailing bytes", reason="chat-malformed")


def decode_chat_untrusted(data: bytes) -> ChatMessage:
    """Parse one chat message; raises :class:`RemoteProtocolError` and nothing else."""
    read = _Reader(data)
    code = read.u8()
    message: ChatMessage
    if code == 0x10:
        message = Join(read.str(), read.f64(), read.u64())
    elif code == 0x11:
        message = Say(read.str())
    elif code == 0x12:
        message = Act(read.str())
    elif code == 0x13:
        message = Whisper(read.str(), read.str())
    elif code == 0x14:
        message = Rename(read.str())
    elif code == 0x15:
        message = AskWho()
    elif code == 0x16:
        message = Quit(read.str())
    elif code == 0x20:
        message = Said(read.str(), read.str(), read.f64(), read.enum(SaidKind), read.flag())
    elif code == 0x21:
        what = read.enum(PresenceKind)
        message = Presence(what, read.str(), read.str(), read.f64())
    elif code == 0x22:
        count = read.u16()
        message = Roster(
            tuple(
                RosterEntry(read.str(), read.u32(), read.flag(), read.str()) for _ in range(count)
            )
        )
    elif code == 0x23:
        message = Refused(read.enum(RefusedWhy), read.str())
    elif code == 0x24:
        message = Named(read.str())
    elif code == 0x25:
        message = Notice(read.str())
    else:
        raise RemoteProtocolError(f"unknown chat message {code:#04x}", reason="chat-type")
    read.done()
    return message
