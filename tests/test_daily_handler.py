"""The Daily transport's event path with the real daily-python (offline).

A real ``CallClient`` is created (``prepare``) but not joined; SDK callbacks are driven by
calling the transport's real ``DailyHandler`` methods from foreign threads with arguments
shaped like daily-python's, and the transport's reports land in a recording TransportEvents.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from daily_support import FakeAudioData, RecordingEvents, make_transport, on_thread, participant
from daily_support import wait_for as wait_until

pytest.importorskip("daily")


@pytest.fixture
async def prepared():
    events = RecordingEvents()
    t = make_transport()
    t.prepare(events)
    yield t, events
    await t.leave()


async def test_participants_reach_the_bridge_with_names_and_the_bot_is_filtered(prepared) -> None:
    t, events = prepared
    h = t._handler
    bot = participant("botrun", local=True, pid=t.bot_participant_id)
    alice = participant("Alice")
    caller = participant("+15551234567")  # a SIP caller looks like anyone else
    for p in (bot, alice, caller):
        on_thread(h.on_participant_joined, p)
    on_thread(h.on_participant_joined, alice)  # a repeat is not a second join
    await wait_until(lambda: len(events.of("joined")) == 2)
    assert t.bot_participant_id
    assert events.of("joined") == [
        ("joined", alice["id"], "Alice"),
        ("joined", caller["id"], "+15551234567"),
    ]
    assert set(t.remote_participants) == {alice["id"], caller["id"]}
    # Participant events reach the bridge from the SDK's thread (TransportEvents is
    # thread-safe), like their audio (issue 15).
    assert events.threads == {"daily-native-test"}

    renamed = {**alice, "info": {**alice["info"], "userName": "Alice B."}}
    on_thread(h.on_participant_updated, alice)  # same name: nothing to report
    on_thread(h.on_participant_updated, renamed)
    on_thread(h.on_participant_left, caller, "leftCall")
    on_thread(h.on_participant_left, bot, "leftCall")  # never a participant: ignored
    await wait_until(lambda: events.of("left"))
    assert events.of("updated") == [("updated", alice["id"], "Alice B.")]
    assert events.of("left") == [("left", caller["id"], "leftCall")]
    assert events.of("ended") == []  # not a dial-in bot: people leaving does not end it


async def test_update_for_a_participant_never_seen_counts_as_a_join(prepared) -> None:
    t, events = prepared
    bob = participant(None)
    on_thread(t._handler.on_participant_updated, bob)
    await wait_until(lambda: events.of("joined"))
    assert events.of("joined") == [("joined", bob["id"], None)]


async def test_handler_copies_payloads_before_handing_them_over(prepared) -> None:
    t, events = prepared
    p = participant("Carol")
    gate = threading.Event()

    def sdk_thread() -> None:
        t._handler.on_participant_joined(p)
        p["info"]["userName"] = "mutated by the SDK"  # the SDK reuses its objects
        gate.set()

    on_thread(sdk_thread)
    assert gate.is_set()
    await wait_until(lambda: events.of("joined"))
    assert events.of("joined") == [("joined", p["id"], "Carol")]


async def test_renderer_passes_16k_mono_and_survives_bad_audio(prepared) -> None:
    t, events = prepared
    r = t._renderer
    pid = participant("Dee")["id"]
    frame = bytes(range(256)) * 2 + b"\x01\x02" * 64  # 640 bytes = 20 ms at 16 kHz
    on_thread(r, pid, FakeAudioData(frame), "microphone")
    stereo = (b"\x10\x00\x30\x00") * 320  # L=16, R=48 -> mono 32
    on_thread(r, pid, FakeAudioData(stereo, num_channels=2), "microphone")
    on_thread(r, pid, object(), "microphone")  # not AudioData at all: counted, no raise
    on_thread(r, pid, FakeAudioData(memoryview(frame)), "microphone")  # type: ignore[arg-type]
    assert r.bad == 1
    assert [(p, len(b), rate) for p, b, rate in events.audio_frames] == [
        (pid, 640, 16000),
        (pid, 640, 16000),
        (pid, 640, 16000),
    ]
    assert events.audio_frames[0][1] == frame
    assert events.audio_frames[1][1] == b"\x20\x00" * 320
    assert all(type(b) is bytes for _, b, _ in events.audio_frames)


async def test_errors_during_the_call_end_it_with_a_clear_message(prepared) -> None:
    t, events = prepared
    t._joined = True  # as after a successful join (the offline SDK cannot join)
    h = t._handler
    gone = participant("Eve")
    on_thread(h.on_participant_joined, gone)
    on_thread(h.on_participant_left, gone, "leftCall")
    # A failed single request, or one about a participant who just left, is not fatal.
    on_thread(h.on_error, "Error handling startDialout: Dialout(CallState(NotInACall))")
    on_thread(h.on_error, f"Failed to set renderer for {gone['id']}")
    on_thread(h.on_error, "Signalling connection lost: websocket closed")
    await wait_until(lambda: events.of("ended"))
    ((_, reason, error),) = events.of("ended")
    assert reason == "error"
    assert error.startswith("Daily reported an error during the call: Signalling connection")


async def test_unexpected_left_state_is_an_error_but_our_own_leave_is_not(prepared) -> None:
    t, events = prepared
    t._joined = True
    on_thread(t._handler.on_call_state_updated, "left")
    await wait_until(lambda: events.of("ended"))
    ((_, reason, error),) = events.of("ended")
    assert reason == "left" and "no longer in the Daily room" in error

    t2 = make_transport()
    events2 = RecordingEvents()
    t2.prepare(events2)
    t2._joined = True
    await t2.leave()
    t2.on_call_state("left")  # our own leave's state change
    assert events2.of("ended") == []


async def test_callbacks_after_the_loop_closed_are_dropped_not_raised() -> None:
    import asyncio

    from botrun.transports.daily.handler import DailyHandler

    loop = asyncio.new_event_loop()
    loop.close()
    h = DailyHandler(loop, make_transport())
    h.on_participant_joined(participant("late"))
    h.on_error("late error")
    assert h.dropped == 2


async def test_leave_is_idempotent_and_releases_once(prepared) -> None:
    from botrun.transports.daily import sdk

    t, _ = prepared
    before = sdk.live_objects()
    await t.leave()
    await t.leave()
    assert t._client is None and t._released
    assert sdk.live_objects() == before - 2  # the client and its custom audio source


async def test_a_callback_that_cannot_be_handed_over_is_logged_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # issue 15 bug 6: handler failures were counted, never logged
    import asyncio
    import logging

    from botrun.transports.daily.handler import DailyHandler

    h = DailyHandler(asyncio.get_running_loop(), make_transport())
    odd = {"sessionId": "s1", "lock": threading.Lock()}  # cannot be deep-copied
    with caplog.at_level(logging.WARNING, logger="botrun.daily"):
        for _ in range(120):
            h.on_dialin_connected(odd)
    assert h.dropped == 120
    lines = [r.getMessage() for r in caplog.records if "dropped Daily event" in r.getMessage()]
    assert len(lines) == 6  # the first 5 and the 100th
    assert "on_dialin_event (#1): TypeError" in lines[0]
    assert "(#100)" in lines[-1]


async def test_participant_events_reach_the_bridge_in_order_with_their_audio(prepared) -> None:
    """Issue 15: Daily delivers participant events the way Agora does. A leave Daily reports
    after a participant's frame is reported after that frame, and one Daily reports before
    a (late) frame before it: the bridge gets them in Daily's order, from the SDK's thread,
    with no loop pass of the transport's in between (before: joined and left were first
    handed to the loop, so the frames overtook them)."""
    t, events = prepared
    h, render = t._handler, t._renderer
    ann = participant("Ann")
    frame = FakeAudioData(b"\x01\x00" * 320)

    def daily() -> None:  # the SDK's event and audio threads, in the order Daily runs them
        h.on_participant_joined(ann)
        render(ann["id"], frame, "microphone")
        h.on_participant_left(ann, "leftCall")
        render(ann["id"], frame, "microphone")  # a frame already in flight at the leave

    on_thread(daily)
    # The loop has not run since: all of it is already with the bridge, in order.
    assert events.order == [
        ("joined", "daily-native-test"),
        ("audio", "daily-native-test"),
        ("left", "daily-native-test"),
        ("audio", "daily-native-test"),
    ]
    assert events.of("left") == [("left", ann["id"], "leftCall")]
    assert t.remote_participants == {}


async def test_participant_events_share_the_bridges_hand_off_with_the_audio() -> None:
    """Issue 15, through a real hand-off (core/handoff.py) as the bridge uses it: the join,
    the audio and the leave arrive on the loop in one pass, in Daily's order."""
    import asyncio

    from botrun.core.handoff import Handoff

    passes: list[list[tuple[str, str]]] = []

    class HandedOff(RecordingEvents):  # the bridge's TransportEvents: every call one put()
        def __init__(self) -> None:
            super().__init__()
            self.handoff: Handoff[tuple[str, str]] = Handoff(
                asyncio.get_running_loop(), passes.append
            )

        def _rec(self, *item: Any) -> None:
            self.handoff.put((item[0], item[1]))

        def audio(self, participant_id: str, pcm: bytes, sample_rate: int) -> None:
            self.handoff.put(("audio", participant_id))

    events = HandedOff()
    t = make_transport()
    t.prepare(events)
    try:
        ann = participant("Ann")
        frame = FakeAudioData(b"\x01\x00" * 320)

        def daily() -> None:
            t._handler.on_participant_joined(ann)
            t._renderer(ann["id"], frame, "microphone")
            t._handler.on_participant_left(ann, "leftCall")
            t._renderer(ann["id"], frame, "microphone")

        on_thread(daily)
        await wait_until(lambda: sum(len(p) for p in passes) >= 4)
        await asyncio.sleep(0.05)  # anything (wrongly) still to come would show up
    finally:
        await t.leave()
    pid = ann["id"]
    assert passes == [[("joined", pid), ("audio", pid), ("left", pid), ("audio", pid)]]
