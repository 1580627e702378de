"""Pacing (issue 15): every limit is a rate with even spacing shared by all
workers, the minute/hour/day windows stay as caps, and per_second joins them.

Each test runs on both stores, with two `mailcast serve` processes sharing
one database (so the pace is shared across workers, not per process), and
reads the spacing from the sink's receive times.  Waits are for states (the
sink's count); the asserts are properties of the receive times with
tolerances for a loaded machine, never durations of the test itself.
"""

import contextlib
import re
import signal
import time

import pytest

from campaignhelp import Tenant, wait_until
from deliveryhelp import delivery_args, max_in_window, messages, unique_domain
from harness import OPERATOR_KEY, Server, create_database, module_server

BURST = 3
BIG = {"per_hour": 10000000, "per_day": 100000000}


@pytest.fixture
def pair(request, store, sink, tmp_path):
    """Two serving processes on one fresh database."""
    url, drop = create_database(request, store, tmp_path)
    servers = []
    try:
        for i in range(2):
            srv = Server(tmp_path / f"w{i}", url, OPERATOR_KEY,
                         delivery_args(sink.url, "--pacing-burst", str(BURST)), name=f"w{i}")
            srv.start()
            servers.append(srv)
        yield servers
    finally:
        for srv in servers:
            srv.stop()
        drop()


def campaign(t, n, dom):
    lst = t.make_list(n, domain=dom)
    return t.create(recipient_list_id=lst["id"])


def one_worker(request, store, sink, *extra):
    """One serving process (burst 1) on a fresh database of its own (a context manager)."""
    return contextlib.contextmanager(module_server)(
        request, store, request.getfixturevalue("tmp_path_factory"),
        delivery_args(sink.url, "--pacing-burst", "1", *extra), name="w")


def sending_paced(srv, sink, n, tag, first):
    """A tenant of srv paced at 10 a second sends a campaign of n to a domain of
    its own; returns (tenant, campaign, domain) once `first` have arrived."""
    t = Tenant(srv)
    t.set_rate_limits(per_second=10, per_minute=100000, **BIG)
    dom = unique_domain(tag)
    c = campaign(t, n, dom)
    t.do(c["id"], "send")
    assert sink.wait_count(first, 30, lambda m: m.rcpt_tos[0].endswith(dom)) >= first
    return t, c, dom


def freeze(srv, seconds):
    """Stops srv for seconds (SIGSTOP): a loop starved of CPU.  The length is
    the stimulus, not a wait for a state."""
    srv.send_signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        srv.send_signal(signal.SIGCONT)


def reslots(srv):
    """Paced messages this server sent back for new slots (/metrics)."""
    text = srv.get("/metrics", headers=srv.op).text
    return int(re.search(r"^mailcast_paced_reslots_total (\d+)$", text, re.M).group(1))


def times_of(sink, dom, n, timeout):
    got = sink.wait_count(n, timeout, lambda m: m.rcpt_tos[0].endswith(dom))
    assert got == n, f"{got} of {n} arrived"
    # When mailcast sent each envelope (the kernel's receive time), not when
    # this process got round to it: see smtpsink.py.
    return sorted(m.sent for m in sink.messages_for_domain(dom))


@pytest.mark.slow(69)
def test_600_a_minute_is_one_every_100ms_and_never_over_the_minute(pair, sink):
    """660 messages at 600/min from two workers: 1-second windows hold at
    most 10 + burst (+2 for timer jitter), no 60-second window over 600, and
    the pace is close to the rate.  The minute's window stays a cap, counted
    over 60 s plus a margin (store_claim.c), so once a minute the sender
    waits about 2 s (up to 3 allowed) for the window to free: that is the one pause
    allowed, not the burst-then-idle pattern of windows alone."""
    t = Tenant(pair[0])
    t.set_rate_limits(per_minute=600, **BIG)
    dom = unique_domain("pace600")
    c = campaign(t, 660, dom)
    t.do(c["id"], "send")
    times = times_of(sink, dom, 660, 150)
    per_s = max_in_window(times, 1.0)
    per_min = max_in_window(times, 60.0)
    gaps = sorted(b - a for a, b in zip(times, times[1:]))[-2:]
    rate = (len(times) - 1) / (times[-1] - times[0])
    print("max per second", per_s, "max per minute", per_min, "largest gaps", gaps,
          "rate", round(rate, 2))
    assert per_s <= 10 + BURST + 2
    assert per_min <= 600
    assert gaps[-1] < 3.0 and gaps[-2] < 1.0  # the cap's pause measured 1.6-2.3 s
    assert rate >= 8.0  # 10 a second with room for a loaded machine; bench/ measures it


@pytest.mark.slow(10)
def test_per_second_paces_alone(pair, sink):
    t = Tenant(pair[1])
    t.set_rate_limits(per_second=4, per_minute=100000, **BIG)
    assert t.server.get(f"{t.base}/rate-limits", headers=t.server.op).json()["per_second"] == 4
    dom = unique_domain("pace4s")
    c = campaign(t, 40, dom)
    t.do(c["id"], "send")
    times = times_of(sink, dom, 40, 60)
    assert max_in_window(times, 1.0) <= 4 + BURST + 2
    assert max_in_window(times, 2.0) <= 8 + BURST + 2
    # 40 at 4 a second, after the burst: about 9 s, never the 40 at once.
    assert times[-1] - times[0] >= (40 - BURST - 1) / 4 * 0.9


@pytest.mark.slow(9)
def test_campaign_limit_is_paced_too(pair, sink):
    t = Tenant(pair[0])
    t.set_rate_limits(enabled=False)
    dom = unique_domain("pacecamp")
    lst = t.make_list(20, domain=dom)
    c = t.create(recipient_list_id=lst["id"], rate_limit_per_minute=120)  # one per 500 ms
    t.do(c["id"], "send")
    times = times_of(sink, dom, 20, 60)
    assert max_in_window(times, 1.0) <= 2 + BURST + 2
    assert times[-1] - times[0] >= (20 - BURST - 1) * 0.5 * 0.9


@pytest.mark.slow(9)
def test_a_stalled_worker_gets_new_slots_rather_than_bursting(request, store, sink):
    """A worker frozen (SIGSTOP) while it holds paced messages finds their
    slots past when it wakes: they must not leave together, but go back for
    new slots (delivery.c, turn_of), attempts unspent, and leave at the pace.
    The stop stands for a loop starved of CPU; its length is the stimulus,
    not a wait for a state."""
    with one_worker(request, store, sink) as srv:
        # A second's worth of slots (the pacing horizon) is held in the worker by now.
        _, c, dom = sending_paced(srv, sink, 50, "stall", 8)
        freeze(srv, 2.5)
        times = times_of(sink, dom, 50, 60)
        assert reslots(srv) >= 1
        assert {m["attempts"] for m in messages(srv, c["id"]).values()} == {1}
    stall = max(b - a for a, b in zip(times, times[1:]))
    assert stall >= 2.0, stall  # the stop happened while messages were due
    # Before the fix the held ones left together when it woke: 10 at once.
    assert max_in_window(times, 0.5) <= 5 + 1 + 2, sorted(times)
    assert max_in_window(times, 1.0) <= 10 + 1 + 2, sorted(times)


def test_messages_late_twice_go_anyway_but_spaced(request, store, sink):
    """Frozen twice, 0.3 s apart: the first stop's late messages go back for
    new slots and, being all that is left, are claimed again at once; the
    second stop makes them late again, and a message late twice goes anyway
    (a loop always late must still send) but one interval after the last
    one forced through, not all together (delivery.c, forced_next)."""
    with one_worker(request, store, sink) as srv:
        # The other ten (the pacing horizon's second) are held by now.
        _, c, dom = sending_paced(srv, sink, 18, "twice", 8)
        freeze(srv, 2.5)
        time.sleep(0.3)  # the gap between the stops is the stimulus too
        freeze(srv, 2.5)
        times = times_of(sink, dom, 18, 60)
        assert reslots(srv) >= 5
        assert {m["attempts"] for m in messages(srv, c["id"]).values()} == {1}
    # Two slots in 0.2 s at 10 a second, the burst and jitter: 4 at most.
    # Before the spacing the forced ones left within milliseconds of each other.
    assert max_in_window(times, 0.2) <= 4, sorted(times)


def test_a_relay_that_stalls_gets_no_burst_when_it_recovers(pair, sink):
    """The relay stops answering for 1.5 s while two workers pace one
    tenant at 10 a second.  The messages whose slots pass meanwhile must not
    wait in the SMTP pools' queues and leave together when it answers again,
    nor leave late on both workers at once (each at the full rate): they
    park, and those that miss their slots go back for new ones (delivery.c,
    turn_of).  Measured by when mailcast started each transaction (the
    kernel's receive time at the sink), so the sink's own stall moves
    nothing."""
    _, c, dom = sending_paced(pair[1], sink, 60, "stallrelay", 10)
    sink.freeze(1.5)
    times = times_of(sink, dom, 60, 60)
    assert {m["attempts"] for m in messages(pair[1], c["id"]).values()} == {1}
    stall = max(b - a for a, b in zip(times, times[1:]))
    assert stall >= 1.0, stall  # the relay's stall held back what was due
    # Before the fix 20 and more left in the second after it.
    assert max_in_window(times, 1.0) <= 10 + BURST + 2, sorted(times)


def test_paced_mail_keeps_its_pace_beside_a_flood_of_unlimited_mail(request, store, sink):
    """One tenant floods the relay with unlimited mail (the SMTP pool's queue
    never empties) while another is paced at 20 a second: a paced job waits
    behind the queued unpaced ones, and the paced messages behind it park
    (delivery.c, turn_of), yet they keep their pace: the queue is short
    (fill), so they do not miss their slots and go back for new ones."""
    with one_worker(request, store, sink, "--smtp-connections", "2") as srv:
        flood, paced = Tenant(srv), Tenant(srv)
        flood.set_rate_limits(enabled=False)
        paced.set_rate_limits(per_second=20, per_minute=100000, **BIG)
        fdom, pdom = unique_domain("flood"), unique_domain("beside")
        fc = campaign(flood, 8000, fdom)
        pc = campaign(paced, 40, pdom)
        flood.do(fc["id"], "send")
        assert sink.wait_count(200, 60, lambda m: m.rcpt_tos[0].endswith(fdom)) >= 200
        paced.do(pc["id"], "send")
        times = times_of(sink, pdom, 40, 60)
        flooded = len(sink.messages_for_domain(fdom))
        assert {m["attempts"] for m in messages(srv, pc["id"]).values()} == {1}
        left = reslots(srv)
    assert flooded < 8000, "the flood ended before the paced mail did: nothing was tested"
    rate = (len(times) - 1) / (times[-1] - times[0])
    print("paced rate beside the flood", round(rate, 2), "re-slotted", left)
    assert max_in_window(times, 1.0) <= 20 + 1 + 2, sorted(times)
    # 20 measured alone; a loaded machine's late messages give up their slots
    # (38.9 for 50 a second beside the full suite), waiting behind the flood
    # would cost far more.
    assert rate >= 0.7 * 20, (rate, left)


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_pause_and_cancel_hold_back_messages_already_claimed_for_their_slots(
        request, store, sink, action):
    """A paced worker holds about a second of messages claimed for their
    slots (the pacing horizon).  Paused or cancelled, the campaign's held
    messages go back unsent, attempts unspent, within a poll (delivery.c,
    held_check_ask), not at their slots: before, the horizon's ten went
    after the pause at 10 a second.  Resumed, every message arrives once."""
    with one_worker(request, store, sink) as srv:
        t, c, dom = sending_paced(srv, sink, 40, action, 5)
        t.do(c["id"], action)
        at_stop = len(sink.messages_for_domain(dom))
        # Settled: nothing of the campaign is claimed any more.
        wait_until(lambda: all(m["status"] != "sending"
                               for m in messages(srv, c["id"]).values()), 20,
                   what="no message of the campaign claimed")
        after = len(sink.messages_for_domain(dom))
        rows = messages(srv, c["id"]).values()
        sent = sum(1 for m in rows if m["status"] == "sent")
        assert sent == after, (sent, after)
        # One slot's message may have been on its way when the check ran.
        assert after - at_stop <= 2, (at_stop, after)
        assert {m["attempts"] for m in rows if m["status"] != "sent"} == {0}
        if action == "cancel":
            assert {m["status"] for m in rows} == {"sent", "cancelled"}
            return
        t.do(c["id"], "resume")
        got = sink.wait_count(40, 60, lambda m: m.rcpt_tos[0].endswith(dom))
        assert got == 40
        assert sorted(m.rcpt_tos[0] for m in sink.messages_for_domain(dom)) == sorted(
            m for m in messages(srv, c["id"]))
