"""The client's transition table (``_client.TRANSITIONS``) against the code.

The documentation's state table is generated from ``TRANSITIONS``; here every
row is driven on a real :class:`ClientCore`: it must start in the row's state and
end in the row's next state, and every row must have a driver (and every driver
a row), so the table can neither miss an edge we test nor list one we do not.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.core_helpers import (
    SERVER,
    connect,
    drain,
    feed,
    frames_out,
    make_client,
    run_timers,
    start,
)
from trio_udpchat._client import TRANSITIONS, ClientCore, Transition
from trio_udpchat._wire import NO_COOKIE, Bye, Challenge, Denied, Hello, Reset, Welcome

SESSION = 7
COOKIE = bytes(range(16))
SALT = bytes(range(16, 32))

#: A core in the row's state, and the input that should move it.
Setup = tuple[ClientCore, Callable[[ClientCore], None]]


def _connecting(*, keyed: bool = False) -> tuple[ClientCore, int]:
    client = make_client(keyed=keyed)
    return client, start(client)


def _connected() -> ClientCore:
    client = make_client()
    connect(client, SESSION)
    return client


def idle_start() -> Setup:
    def act(client: ClientCore) -> None:
        client.start(0.0)
        [(hello, _)] = frames_out(client, 0.0)
        assert isinstance(hello, Hello)
        assert hello.cookie == NO_COOKIE

    return make_client(), act


def hello_due() -> Setup:
    client, nonce = _connecting()

    def act(client: ClientCore) -> None:
        due = client.get_timer()
        assert due is not None
        client.handle_timer(due)
        assert frames_out(client, due) == [(Hello(nonce), SERVER)]

    return client, act


def challenged() -> Setup:
    client, nonce = _connecting()

    def act(client: ClientCore) -> None:
        feed(client, Challenge(nonce, COOKIE), SERVER, 0.1)
        assert frames_out(client, 0.1) == [(Hello(nonce, COOKIE), SERVER)]

    return client, act


def challenge_disagrees() -> Setup:
    client, nonce = _connecting()  # no passphrase, and the server has one

    def act(client: ClientCore) -> None:
        feed(client, Challenge(nonce, COOKIE, SALT), SERVER, 0.1)
        assert client.refusal is not None
        assert drain(client, 0.1) == []

    return client, act


def denied() -> Setup:
    client, nonce = _connecting(keyed=True)

    def act(client: ClientCore) -> None:
        feed(client, Denied(nonce), SERVER, 0.1)
        assert client.refusal is not None

    return client, act


def welcomed() -> Setup:
    client, nonce = _connecting()

    def act(client: ClientCore) -> None:
        feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 0.1)

    return client, act


def reset() -> Setup:
    def act(client: ClientCore) -> None:
        feed(client, Reset(SESSION), SERVER, 1.0)
        [(hello, _)] = frames_out(client, 1.0)
        assert isinstance(hello, Hello)

    return _connected(), act


def out_of_retries() -> Setup:
    def act(client: ClientCore) -> None:
        client.send_text("x", 1.0)
        drain(client, 1.0)
        run_timers(client, until=1.0 + client.config.give_up_after + 1.0)

    return _connected(), act


def close_idle() -> Setup:
    return make_client(), lambda client: client.close(0.0)


def close_connecting() -> Setup:
    client, _ = _connecting()
    return client, lambda client: client.close(0.5)


def close_connected() -> Setup:
    def act(client: ClientCore) -> None:
        client.close(1.0)
        [(bye, _)] = frames_out(client, 1.0)
        assert isinstance(bye, Bye)

    return _connected(), act


DRIVERS: dict[tuple[str, str], Callable[[], Setup]] = {
    ("idle", "start()"): idle_start,
    ("connecting", "timer: a hello is due"): hello_due,
    ("connecting", "Challenge with our nonce"): challenged,
    ("connecting", "Challenge that disagrees on the passphrase"): challenge_disagrees,
    ("connecting", "Denied with our nonce (with a passphrase)"): denied,
    ("connecting", "Welcome with our nonce"): welcomed,
    ("connected", "Reset of our session"): reset,
    ("connected", "timer: a packet ran out of retries"): out_of_retries,
    ("idle", "close()"): close_idle,
    ("connecting", "close()"): close_connecting,
    ("connected", "close()"): close_connected,
}


def test_every_row_has_a_driver_and_every_driver_a_row() -> None:
    rows = [(t.state, t.trigger) for t in TRANSITIONS]
    assert len(rows) == len(set(rows)), "a (state, trigger) pair is listed twice"
    assert set(rows) == set(DRIVERS)


@pytest.mark.parametrize("row", TRANSITIONS, ids=lambda t: f"{t.state}: {t.trigger}")
def test_the_code_follows_the_row(row: Transition) -> None:
    client, act = DRIVERS[row.state, row.trigger]()
    assert client.state == row.state
    act(client)
    assert client.state == row.next


def test_every_state_is_reached_and_closed_is_final() -> None:
    assert {t.next for t in TRANSITIONS} >= {"connecting", "connected", "closed", "idle"}
    assert all(t.state != "closed" for t in TRANSITIONS)
