"""trio_udpchat: a terminal chat over UDP, built on Trio.

The protocol core is sans-IO (:class:`ServerCore`, :class:`ClientCore`, the
codec in :func:`encode_frame` / :func:`decode_frame_untrusted`); the Trio layer
runs it over a socket (:func:`run_server`, :func:`run_client`).
"""

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
from ._version import __version__ as __version__
from ._wire import Ack as Ack
from ._wire import Bye as Bye
from ._wire import Data as Data
from ._wire import Frame as Frame
from ._wire import Hello as Hello
from ._wire import Reset as Reset
from ._wire import Welcome as Welcome
from ._wire import decode_frame_untrusted as decode_frame_untrusted
from ._wire import encode_frame as encode_frame

__all__ = [
    "Ack",
    "Address",
    "BusPort",
    "Bye",
    "ClientCore",
    "CommandRejected",
    "Connecting",
    "Config",
    "Data",
    "Event",
    "Frame",
    "Hello",
    "HelpListed",
    "Listening",
    "LocalProtocolError",
    "MemoryBus",
    "MessageDelivered",
    "MessageReceived",
    "MessageTooLong",
    "NoRecipient",
    "NotDelivered",
    "PeerJoined",
    "PeerLeft",
    "PeerMoved",
    "PendingListed",
    "ProtocolError",
    "RemoteProtocolError",
    "RoomNotice",
    "Reset",
    "RoundTrip",
    "ServerAnswered",
    "ServerCore",
    "ServerRefused",
    "ServerSilent",
    "SessionLost",
    "SessionStarted",
    "StartupError",
    "StatsListed",
    "StatsSummary",
    "Terminal",
    "Welcome",
    "__version__",
    "decode_frame_untrusted",
    "encode_frame",
    "run_client",
    "run_server",
]
