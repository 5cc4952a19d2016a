"""Stateless handshake cookies (``_cookie``) and the replay window (``_replay``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.core_helpers import seeded
from trio_udpchat._cookie import CookieJar
from trio_udpchat._replay import ReplayWindow

A = ("192.0.2.1", 40001)


def test_a_cookie_lives_between_one_and_two_rotations() -> None:
    jar = CookieJar(seeded(1), rotation=120.0)
    cookie = jar.make(A, 7, 119.0)  # late in epoch 0
    assert jar.check(A, 7, cookie, 120.0)  # epoch 1: still accepted
    assert not jar.check(A, 7, cookie, 240.0)  # epoch 2: the secret is gone
    early = jar.make(A, 7, 240.0)  # early in epoch 2
    assert jar.check(A, 7, early, 479.9)
    assert not jar.check(A, 7, early, 480.0)


def test_secrets_rotate_and_only_two_are_kept() -> None:
    jar = CookieJar(seeded(2), rotation=120.0)
    cookies = {jar.make(A, 7, epoch * 120.0) for epoch in range(50)}
    assert len(cookies) == 50  # a new secret each epoch
    assert len(jar._secrets) <= 2


def test_cookies_differ_by_address_port_nonce_and_server() -> None:
    jar, other = CookieJar(seeded(3), 120.0), CookieJar(seeded(4), 120.0)
    cookie = jar.make(A, 7, 0.0)
    assert cookie != jar.make(("192.0.2.1", 40002), 7, 0.0)
    assert cookie != jar.make(("192.0.2.2", 40001), 7, 0.0)
    assert cookie != jar.make(A, 8, 0.0)
    assert not other.check(A, 7, cookie, 0.0)


@given(st.binary(min_size=16, max_size=16))
def test_a_guessed_cookie_fails(guess: bytes) -> None:
    jar = CookieJar(seeded(5), 120.0)
    real = jar.make(A, 1, 0.0)
    assert jar.check(A, 1, guess, 0.0) == (guess == real)


def test_replay_window_accepts_each_number_once() -> None:
    window = ReplayWindow(8)
    assert [window.accept(pn) for pn in (0, 2, 1, 2, 0, 10, 3, 2, 9, 10)] == [
        True, True, True, False, False, True, True, False, True, False,
    ]  # fmt: skip
    assert window.highest == 10


@given(st.lists(st.integers(0, 3000), max_size=200), st.integers(1, 64))
def test_replay_window_matches_a_model(numbers: list[int], size: int) -> None:
    window = ReplayWindow(size)
    seen: set[int] = set()
    highest = -1
    for pn in numbers:
        expected = pn not in seen and pn > highest - size
        assert window.accept(pn) == expected
        if expected:
            seen.add(pn)
            highest = max(highest, pn)


def test_a_huge_jump_does_not_build_a_huge_number() -> None:
    window = ReplayWindow(1024)
    window.accept(0)
    assert window.accept(2**40)
    assert window._bits.bit_length() <= 1024
    assert not window.accept(0)
