"""A client and a service speaking different voice-agent protocols (issue 18, item 1):
the client fails fast with an error naming the protocol the service speaks and the setting
to change -- never a 30 s hang, never a silent call that "succeeds" with no replies -- and
the simulator, sent another protocol's first message, logs one line and closes with a
reason naming the protocol it speaks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import websockets
from speech import speak
from test_backends_e2e import call_on, config

from botrun.core.config import apply_overrides
from botrun.core.errors import AgentError

NAMES = {"assemblyai": "AssemblyAI", "openai": "OpenAI Realtime", "gemini": "Gemini Live"}
PAIRS = [(c, s) for c in NAMES for s in NAMES if c != s]


@pytest.fixture(scope="module")
def fox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "fox.wav"
    speak("The quick brown fox jumps over the lazy dog.", path)
    return path


@pytest.mark.parametrize(("client", "service"), PAIRS)
async def test_a_client_of_another_protocol_fails_fast_naming_it(
    client: str, service: str, tmp_path: Path, fox: Path
) -> None:
    # a generous ready timeout: the mismatch must be recognised, not timed out
    cfg = apply_overrides(config(client), {"agent.ready_timeout_s": 20.0})
    summary, _sim, _rec, _ = await call_on(service, tmp_path, [(fox, 0.0, "Ann")], cfg)
    assert isinstance(summary.error, AgentError), summary
    msg = str(summary.error)
    assert NAMES[service] in msg and f"--backend {service}" in msg, msg
    assert "never answered" not in msg


FIRST = {
    "assemblyai": {"type": "session.update", "session": {"system_prompt": "hi"}},
    "openai": {"type": "session.update", "session": {"type": "realtime", "instructions": "hi"}},
    "gemini": {"setup": {"model": "models/x"}},
}


@pytest.mark.parametrize(("client", "service"), PAIRS)
async def test_the_simulator_refuses_another_protocols_first_message(
    client: str, service: str, caplog: pytest.LogCaptureFixture
) -> None:
    from botrun.core.sim import Simulator

    caplog.set_level(logging.INFO, "botrun.sim")
    async with Simulator(None, protocol=service) as sim, websockets.connect(sim.url) as ws:
        await ws.send(json.dumps(FIRST[client]))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    reason = closed.value.rcvd.reason
    assert f"this simulator speaks {NAMES[service]}" in reason and f"--backend {service}" in reason
    lines = [r for r in caplog.records if "client connected to the" in r.getMessage()]
    assert len(lines) == 1 and client in lines[0].getMessage()
