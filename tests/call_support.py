"""Helpers for the call-action tests (tests/test_call_*.py): a WAV transport that can press
keypad keys and records the call actions it was asked to perform, hooks that record what
they saw, and a runner for one call through the real bridge and the simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botrun.core import events as ev
from botrun.core.bridge import Bridge, CallSummary
from botrun.core.config import BotConfig, apply_overrides
from botrun.core.events import BridgeEvent
from botrun.core.sim import Simulator
from botrun.core.sim.scenario import Scenario
from botrun.core.transport import Transport, TransportEvents
from botrun.transports.wav.transport import WavInput, WavTransport

RATE = 16000


@dataclass
class Recorder:
    events: list[BridgeEvent] = field(default_factory=list)

    def __call__(self, e: BridgeEvent) -> None:
        self.events.append(e)

    def of(self, cls: type[BridgeEvent]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    def agent_lines(self) -> list[str]:
        return [e.text for e in self.of(ev.AgentTranscript) if e.final]


class ActionWav(WavTransport):
    """The WAV transport, plus: keypad presses at given meeting times (through the bridge's
    ``TransportEvents.dtmf``), an optional phone caller, and a record of the actions the
    bridge asked of it. Transfer succeeds; DTMF out and dial-out keep the Transport
    defaults (ActionUnsupported), whatever the WAV transport itself may add."""

    def __init__(
        self,
        inputs: list[WavInput],
        output: Path,
        *,
        presses: Sequence[tuple[float, str]] = (),
        phone: str | None = None,
    ) -> None:
        super().__init__(inputs, output, RATE, 1.0)
        self.presses = list(presses)
        self.phone = phone
        self.asked: list[tuple[str, Any]] = []
        self.sent = bytearray()

    async def join(self, events: TransportEvents) -> None:
        if self.phone is not None:
            events.participant_phone("wav-1", self.phone)
        await super().join(events)
        loop = asyncio.get_running_loop()
        for at, digit in self.presses:
            loop.call_later(at, events.dtmf, "wav-1", digit)

    def write_audio(self, pcm: bytes) -> None:
        self.sent += pcm
        super().write_audio(pcm)

    async def hang_up(self, reason: str) -> None:
        self.asked.append(("hang_up", reason))

    async def transfer(self, target: str, participant_id: str | None = None) -> None:
        self.asked.append(("transfer", target))

    async def send_dtmf(self, digits: str, participant_id: str | None = None) -> None:
        self.asked.append(("send_dtmf", digits))
        await Transport.send_dtmf(self, digits, participant_id)

    async def dial_out(self, number: str) -> str:
        self.asked.append(("dial_out", number))
        return await Transport.dial_out(self, number)

    def input_ended(self, rec: Recorder) -> bool:
        """The participant left because their file ended (the call was not cut short)."""
        return any(e.reason == "input ended" for e in rec.of(ev.ParticipantLeft))


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * RATE) * 2)


async def run_call(
    transport: ActionWav,
    cfg: BotConfig,
    scenario: Scenario | None,
    *,
    tools: Any = None,
    hooks: Any = None,
    transcript: Path | None = None,
    protocol: str = "assemblyai",
) -> tuple[CallSummary, Recorder, Simulator, float]:
    """One call to its end; the summary, the events, the simulator and the call's length.
    ``protocol``: the backend (and the simulator's wire) the call runs on."""
    rec = Recorder()
    async with Simulator(scenario, protocol=protocol) as sim:
        cfg = apply_overrides(
            cfg,
            {
                "agent.url": sim.url,
                "agent.backend": protocol,
                "bridge.idle_timeout_s": 0.0,
                "bridge.leave_grace_s": 1.0,
            },
        )
        bridge = Bridge(
            transport, cfg, tools=tools, observers=[rec], transcript=transcript, hooks=hooks
        )
        t0 = time.monotonic()
        summary = await asyncio.wait_for(bridge.run(), 120)
        length = time.monotonic() - t0
    return summary, rec, sim, length
