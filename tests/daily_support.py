"""Helpers for the Daily transport tests: a recording TransportEvents, SDK-shaped payloads,
and a way to build a DailyTransport from plain options."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botrun.transports.daily.transport import DailyOptions, DailyTransport

ROOM = "https://botrun-test.daily.co/test-room"


@dataclass
class RecordingEvents:
    """A TransportEvents that records every call with the thread it came from."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    audio_frames: list[tuple[str, bytes, int]] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)
    #: Every call's kind and thread name, audio included, in the order they came.
    order: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _rec(self, *item: Any) -> None:
        with self._lock:
            self.calls.append(item)
            self.threads.add(threading.current_thread().name)
            self.order.append((item[0], threading.current_thread().name))

    def participant_joined(self, participant_id: str, name: str | None = None) -> None:
        self._rec("joined", participant_id, name)

    def participant_updated(self, participant_id: str, name: str | None = None) -> None:
        self._rec("updated", participant_id, name)

    def participant_left(self, participant_id: str, reason: str = "") -> None:
        self._rec("left", participant_id, reason)

    def audio(self, participant_id: str, pcm: bytes, sample_rate: int) -> None:
        with self._lock:
            self.audio_frames.append((participant_id, pcm, sample_rate))
            self.order.append(("audio", threading.current_thread().name))

    def ended(self, reason: str, error: str | None = None) -> None:
        self._rec("ended", reason, error)

    def participant_phone(self, participant_id: str, number: str | None = None) -> None:
        self._rec("phone", participant_id, number)

    def dtmf(self, participant_id: str | None, digit: str) -> None:
        self._rec("dtmf", participant_id, digit)

    def status(self, state: str, detail: str = "") -> None:
        self._rec("status", state, detail)

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [c for c in self.calls if c[0] == kind]


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` on the loop until it holds (fails the test after ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def on_thread(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` on a fresh thread (like Daily's native callback threads)."""
    t = threading.Thread(target=fn, args=args, name="daily-native-test")
    t.start()
    t.join(5)


def participant(name: str | None, *, local: bool = False, pid: str | None = None) -> dict:
    """A participant dict shaped like daily-python 0.36's."""
    info: dict[str, Any] = {
        "isLocal": local,
        "isOwner": False,
        "joinedAt": 1795222367,
        "permissions": {"canSend": True},
        "userId": str(uuid.uuid4()),
    }
    if name is not None:
        info["userName"] = name
    off = {"offReasons": ["user"], "state": "off", "subscribed": "unsubscribed"}
    return {
        "id": pid or str(uuid.uuid4()),
        "info": info,
        "media": {
            "camera": dict(off),
            "microphone": {"state": "playable", "subscribed": "subscribed"},
        },
    }


@dataclass
class FakeAudioData:
    """Shaped like ``daily.AudioData`` (the SDK gives no public constructor)."""

    audio_frames: bytes
    sample_rate: int = 16000
    num_channels: int = 1
    bits_per_sample: int = 16

    @property
    def num_audio_frames(self) -> int:
        return len(self.audio_frames) // (2 * self.num_channels)


def make_transport(cls: type[DailyTransport] = DailyTransport, **kw: Any) -> DailyTransport:
    """A transport (or subclass ``cls``) for the test room; options as DailyOptions fields."""
    kw.setdefault("room", ROOM)
    kw.setdefault("room_name", ROOM.rsplit("/", 1)[1])
    kw.setdefault("audio_out", "custom-track")
    return cls(DailyOptions(**kw))
