"""The heap settled once per process before the first call's audio flows (core/heap.py):
a full garbage collection otherwise walks every object the imports made while holding the
GIL, and every call's voice stalls for it (benchmarks/bridge.py showed 75 ms gaps in every
call at once)."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from botrun.core import heap
from botrun.core.bridge import Bridge
from botrun.core.config import config_from_dict
from botrun.core.errors import TransportError
from botrun.core.transport import Transport, TransportEvents


class FakeGC:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def collect(self) -> int:
        self.log.append("collect")
        return 0

    def freeze(self) -> None:
        self.log.append("freeze")


class NoRoom(Transport):
    name = "noroom"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @property
    def bot_participant_id(self) -> str | None:
        return None

    async def join(self, events: TransportEvents) -> None:
        self.log.append("join")
        raise TransportError("no such room")

    async def leave(self) -> None: ...

    def write_audio(self, pcm: bytes) -> None: ...


async def test_the_first_call_in_a_process_settles_the_heap_before_it_joins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    monkeypatch.setattr(heap, "_settled", False)
    monkeypatch.setattr(heap, "gc", FakeGC(log))
    for _ in range(2):
        summary = await Bridge(NoRoom(log), config_from_dict({})).run()
        assert summary.error is not None  # (the join failed: the call ended at once)
    assert log == ["collect", "freeze", "join", "join"]


def test_settle_leaves_a_full_collection_only_what_came_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heap, "_settled", False)
    before = len(gc.get_objects())
    assert heap.settle() is True
    assert gc.get_freeze_count() >= before * 0.9  # what existed is out of the collector's way
    assert len(gc.get_objects(generation=2)) < before * 0.05
    made_after: list[Any] = [[i] for i in range(1000)]
    assert len(gc.get_objects()) >= len(made_after)  # new objects are still collected
    assert heap.settle() is False  # once per process


async def test_a_session_with_events_only_still_reaches_the_bridge() -> None:
    """A plugin's session need not have run_events (docs/backends.md): the bridge reads
    events() then."""
    from botrun.core.protocol import SessionReady

    class EventsOnly:
        stats = None

        async def start(self) -> None: ...

        async def events(self) -> Any:
            yield SessionReady("s-1")

    bridge = Bridge(NoRoom([]), config_from_dict({}))
    seen: list[Any] = []
    bridge._emit = seen.append  # type: ignore[method-assign]
    bridge.client = EventsOnly()  # type: ignore[assignment]
    await bridge._run_session(bridge.client)  # type: ignore[arg-type]
    assert bridge._session_ready
    assert [getattr(e, "state", None) for e in seen] == ["ready"]


def test_serve_taking_twilio_calls_in_process_settles_as_it_starts(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that hosts many calls settles before the first exists: no call's state
    is frozen for good. (A Bridge.run after it does not settle again.)"""
    from botrun.bots.serve.cli import build

    log: list[str] = []
    monkeypatch.setattr(heap, "_settled", False)
    monkeypatch.setattr(heap, "gc", FakeGC(log))
    monkeypatch.chdir(tmp_path)
    for name in ("DAILY_API_KEY", "BOTRUN_API_TOKEN", "DAILY_DIALIN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "twilio-auth-token-0123456789")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC0123456789")
    monkeypatch.setenv("PUBLIC_URL", "https://bots.example.com")
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "test-agent-key-0123456789")
    build("0.0.0.0", 0, None, 1, 60.0, None)
    assert log == ["collect", "freeze"]
    assert heap.settle() is False
