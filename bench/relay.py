"""Benchmark ``relay``: one sender, K room members, 100-byte messages; deliveries per second.

Subjects: the real server (``_chat_server.py``: ``run_server`` with all its
protocol work: decode, room, a reliable queue per member, encode, acks in and
out), plain and with a passphrase (``trio_udpchat_key``: the room key
:data:`~bench._chat_server.BENCH_KEY`, every session frame sealed by its
sender and opened by its receiver, so once per member per message at the
server). Baselines, in
the same run: a blocking stdlib relay and an asyncio one (``_relays.py``: no
protocol at all). The members and the sender are the lightweight ones of
``_members.py``, all in this process, which counts the deliveries.

Placement matters on 2 cores: the relay under test gets a core of its own
(``--pin split``, the default), the members the other. The server's CPU per
delivery is read from ``/proc`` and shown too: it does not depend on placement.
"""

from __future__ import annotations

from functools import partial

from ._chat_server import BENCH_KEY
from ._harness import (
    Benchmark,
    BenchmarkResult,
    Case,
    Column,
    Compare,
    Plan,
    Sample,
    Settings,
)
from ._helpers import Helper
from ._members import (
    ChatMember,
    ChatSender,
    Member,
    RawMember,
    RawSender,
    Sender,
    blast,
    settle,
)
from ._probe import process_cpu_s
from ._stdlib import payload

SIZE = 100
#: Messages outstanding (sent, not yet at all K members): enough to keep any of
#: the relays busy, few enough that no socket buffer overflows.
WINDOW = 16
#: Deliveries per repetition (messages x K), and in a quick run.
DELIVERIES = 200_000
QUICK_DELIVERIES = 20_000
KS = (10, 100)

IMPLS = {
    "trio_udpchat": "run_server (subprocess), the reliable room protocol",
    "trio_udpchat_key": "the same with a passphrase (sealed frames)",
    "trio_udpchat_unbundled": "trio_udpchat with Config(bundle=False): one datagram per"
    " message per member, as in a room too quiet for bundles",
    "stdlib_blocking": "blocking recvfrom + K sendto, no protocol",
    "asyncio": "asyncio DatagramProtocol, datagram_received -> K transport.sendto",
}
BASELINES = ("stdlib_blocking", "asyncio")
#: The implementations in the JSON summary (issue 7's shape); every case is in the detail.
SUMMARY_IMPLS = ("trio_udpchat", "trio_udpchat_key", "stdlib_blocking", "asyncio")


def texts(messages: int) -> list[str]:
    """``messages`` distinct texts of :data:`SIZE` bytes (a number, then filler)."""
    filler = payload(SIZE).decode("ascii")
    return [f"{i:08d}{filler}"[:SIZE] for i in range(messages)]


def measure(
    impl: str, k: int, deliveries: int, timeout: float, cpus: frozenset[int] | None
) -> Sample:
    """One repetition: a fresh relay process, K fresh members, one blast."""
    messages = max(deliveries // k, 1)
    key = BENCH_KEY if impl == "trio_udpchat_key" else None
    if impl.startswith("trio_udpchat"):
        options = () if key is None else ("--keyed",)
        if impl == "trio_udpchat_unbundled":
            options = ("--no-bundle",)
        helper = Helper(
            "_chat_server",
            "--max-seconds",
            str(timeout + 60),
            "--max-sessions",
            str(k + 8),
            *options,
            cpus=cpus,
        )
    else:
        helper = Helper("_relays", impl.removeprefix("stdlib_"), "--max-seconds", "600", cpus=cpus)
    with helper:
        relay = ("127.0.0.1", helper.port)
        members: list[Member]
        sender: Sender
        if impl.startswith("trio_udpchat"):
            chat_members = [ChatMember(relay, f"member{i}", key) for i in range(k)]
            chat_sender = ChatSender(relay, "sender", texts(messages), key)
            settle([*chat_members, chat_sender])  # joins and presence notices, acked
            members, sender, sender_sock = list(chat_members), chat_sender, chat_sender.sock
            before = helper.probe()
        else:
            members = [RawMember(relay) for _ in range(k)]
            raw_sender = RawSender(relay, payload(SIZE))
            sender, sender_sock = raw_sender, raw_sender.sock
        cpu_before = process_cpu_s(helper.pid)
        result = blast(sender, sender_sock, members, messages, WINDOW, timeout)
        cpu_after = process_cpu_s(helper.pid)
        if impl.startswith("trio_udpchat"):
            after = helper.probe()
            reported = stat(after, "deliveries") - stat(before, "deliveries")
            sent = stat(after, "datagrams_out") - stat(before, "datagrams_out")
            report = helper.finish()
        else:
            sender_sock.send(b"STOP")
            report = helper.finish()
            reported = float(str(report.get("deliveries", 0)))
    if result.delivered != result.expected:
        raise RuntimeError(
            f"{result.expected - result.delivered} of {result.expected} deliveries never arrived"
        )
    figures = {
        "deliveries_per_s": result.delivered / result.wall_s,
        "wall_s": result.wall_s,
        "lost_by_server": reported - result.delivered,
        "members_cpu_share": result.cpu_s / result.wall_s,
    }
    if cpu_before is not None and cpu_after is not None:
        figures["server_cpu_us"] = (cpu_after - cpu_before) / result.delivered * 1e6
    if impl.startswith("trio_udpchat"):  # a minimal relay sends one per delivery
        figures["datagrams_out_per_delivery"] = sent / result.delivered
    return Sample(figures, {"server": report, "reported_deliveries": reported})


def stat(probe: dict[str, object], key: str) -> float:
    """Counter ``key`` of the server's ``stats`` in a probe answer (0 if absent)."""
    stats = probe.get("stats")
    value = stats.get(key, 0) if isinstance(stats, dict) else 0
    return float(value) if isinstance(value, int | float) else 0.0


def _name(impl: str, k: int) -> str:
    return f"{impl} k={k}"


def plan(settings: Settings) -> Plan:
    """Every implementation at every K; ratios only between cases of the same K."""
    deliveries = settings.messages or (QUICK_DELIVERIES if settings.quick else DELIVERIES)
    impls = list(IMPLS)
    cases = [
        Case(
            _name(impl, k),
            f"{IMPLS[impl]}; K={k}",
            partial(measure, impl, k, deliveries, settings.case_timeout, settings.helper_cpus),
            baseline=impl in BASELINES,
        )
        for k in KS
        for impl in impls
    ]
    ratios = [
        (_name(impl, k), _name(base, k))
        for k in KS
        for impl in impls
        if impl not in BASELINES
        for base in BASELINES
    ]
    return Plan(
        params={"deliveries": deliveries, "size": SIZE, "window": WINDOW},
        cases=cases,
        ratios=ratios,
    )


def summarize(result: BenchmarkResult) -> dict[str, object]:
    """The ``relay`` entries of the JSON summary, with the passphrase row's status."""
    rows: list[dict[str, object]] = []
    for k in KS:
        for impl in SUMMARY_IMPLS:
            name = _name(impl, k)
            found = [r for r in result.cases if r.case.name == name]
            spread = found[0].spread("deliveries_per_s") if found else None
            row: dict[str, object] = {"impl": impl, "k": k, "deliveries_per_s": None}
            if spread is not None:
                row["deliveries_per_s"] = {
                    "median": spread.median,
                    "min": spread.low,
                    "max": spread.high,
                }
            elif found and found[0].error:
                row["status"] = f"failed: {found[0].error}"
            rows.append(row)
    return {"relay": rows}


BENCHMARK = Benchmark(
    name="relay",
    title="one sender, K room members, {size}-byte messages, {deliveries:,} deliveries"
    " per repetition, {window} messages outstanding",
    columns=[
        Column("deliveries_per_s", "deliveries/s", ",.0f"),
        Column("server_cpu_us", "relay CPU us/delivery", ",.2f"),
        Column("wall_s", "wall s", ".2f"),
        Column("datagrams_out_per_delivery", "datagrams out per delivery", ".3f"),
        Column("lost_by_server", "lost by the relay", ",.0f"),
        Column("members_cpu_share", "members' CPU share", ".2f"),
    ],
    compare=[
        Compare("deliveries_per_s", higher_is_better=True),
        Compare("server_cpu_us", higher_is_better=False),
    ],
    plan=plan,
    notes=[
        "Targets (issue 7): trio_udpchat >= 0.8x stdlib_blocking at both K and >= 1.2x"
        " asyncio; with a passphrase >= 0.5x stdlib_blocking.",
        "lost by the relay: deliveries the relay reports minus those counted at the"
        " members (0: none lost).",
        "members' CPU share near 1.00 means the members, not the relay, set the pace.",
        "datagrams out per delivery: what our server sent (Data to members, acks to the"
        " sender) per message a member counted; below 1 when bundles carry several"
        " messages (a minimal relay sends one datagram per delivery).",
    ],
    summarize=summarize,
)
