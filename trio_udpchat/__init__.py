"""trio_udpchat: a terminal chat over UDP, built on Trio.

The protocol core is sans-IO (:class:`ServerCore`, :class:`ClientCore`, the
codec in :func:`encode_frame` / :func:`decode_frame_untrusted`); the Trio layer
runs it over a socket (:func:`run_server`, :func:`run_client`).
"""

from typing import TYPE_CHECKING

from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._bus import BusPort as BusPort
    from ._client import ClientCore as ClientCore
    from ._config import Config as Config
    from ._errors import LocalProtocolError as LocalProtocolError
    from ._errors import ProtocolError as ProtocolError
    from ._errors import RemoteProtocolError as RemoteProtocolError
    from ._events import Address as Address
    from ._events import CommandRejected as CommandRejected
    from ._events import Connecting as Connecting
    from ._events import Event as Event
    from ._events import HelpListed as HelpListed
    from ._events import Listening as Listening
    from ._events import MessageDelivered as MessageDelivered
    from ._events import MessageReceived as MessageReceived
    from ._events import MessageTooLong as MessageTooLong
    from ._events import NoRecipient as NoRecipient
    from ._events import NotDelivered as NotDelivered
    from ._events import PeerJoined as PeerJoined
    from ._events import PeerLeft as PeerLeft
    from ._events import PeerMoved as PeerMoved
    from ._events import PendingListed as PendingListed
    from ._events import RoomNotice as RoomNotice
    from ._events import ServerAnswered as ServerAnswered
    from ._events import ServerRefused as ServerRefused
    from ._events import ServerSilent as ServerSilent
    from ._events import SessionLost as SessionLost
    from ._events import SessionStarted as SessionStarted
    from ._events import StatsListed as StatsListed
    from ._membus import MemoryBus as MemoryBus
    from ._run import Terminal as Terminal
    from ._run import run_client as run_client
    from ._run import run_server as run_server
    from ._server import ServerCore as ServerCore
    from ._stats import RoundTrip as RoundTrip
    from ._stats import StatsSummary as StatsSummary
    from ._udp import StartupError as StartupError
    from ._wire import Ack as Ack
    from ._wire import Bye as Bye
    from ._wire import Data as Data
    from ._wire import Frame as Frame
    from ._wire import Hello as Hello
    from ._wire import Reset as Reset
    from ._wire import Welcome as Welcome
    from ._wire import decode_frame_untrusted as decode_frame_untrusted
    from ._wire import encode_frame as encode_frame

#: Each public name and the private module that defines it. A name is imported
#: when first used (PEP 562), so ``python -m trio_udpchat --help`` does not load
#: Trio and the whole protocol just to print the usage.
_WHERE: dict[str, str] = {
    "BusPort": "_bus",
    "ClientCore": "_client",
    "Config": "_config",
    "LocalProtocolError": "_errors",
    "ProtocolError": "_errors",
    "RemoteProtocolError": "_errors",
    "Address": "_events",
    "CommandRejected": "_events",
    "Connecting": "_events",
    "Event": "_events",
    "HelpListed": "_events",
    "Listening": "_events",
    "MessageDelivered": "_events",
    "MessageReceived": "_events",
    "MessageTooLong": "_events",
    "NoRecipient": "_events",
    "NotDelivered": "_events",
    "PeerJoined": "_events",
    "PeerLeft": "_events",
    "PeerMoved": "_events",
    "PendingListed": "_events",
    "RoomNotice": "_events",
    "ServerAnswered": "_events",
    "ServerRefused": "_events",
    "ServerSilent": "_events",
    "SessionLost": "_events",
    "SessionStarted": "_events",
    "StatsListed": "_events",
    "MemoryBus": "_membus",
    "Terminal": "_run",
    "run_client": "_run",
    "run_server": "_run",
    "ServerCore": "_server",
    "RoundTrip": "_stats",
    "StatsSummary": "_stats",
    "StartupError": "_udp",
    "Ack": "_wire",
    "Bye": "_wire",
    "Data": "_wire",
    "Frame": "_wire",
    "Hello": "_wire",
    "Reset": "_wire",
    "Welcome": "_wire",
    "decode_frame_untrusted": "_wire",
    "encode_frame": "_wire",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__all__ = sorted(["__version__", *_WHERE])
