"""The simulator never fails on client input: seeded random and mutated messages of every type
get documented errors (never ``internal_error``), and the session keeps working afterwards."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

from botrun.core.sim import Simulator
from tests.sim_support import RawClient, silence, utterance

TYPES = ["session.update", "input.audio", "tool.result", "session.resume", "reply.create", "bogus"]
KEYS = [
    "session",
    "audio",
    "call_id",
    "result",
    "session_id",
    "instructions",
    "input",
    "output",
    "tools",
    "turn_detection",
    "format",
    "voice",
    "greeting",
    "vad_threshold",
]


def junk_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 1.5, 10**30, float("1e308"), 2**63])
    if choice == 3:
        return rng.choice(["", "x" * 300, "é\u0000\ud7ff", "AAAA", "===", "audio/pcm"])
    if choice == 4:
        return base64.b64encode(rng.randbytes(rng.randrange(0, 64))).decode()
    if choice == 5:
        return rng.choice(["ivy", "sess_0", "call_0", "hold"])
    if choice == 6:
        return [junk_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS): junk_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def junk_message(rng: random.Random) -> str | bytes:
    kind = rng.randrange(10)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 50))
    if kind == 1:
        return json.dumps({"type": rng.choice(TYPES)})[: rng.randrange(1, 20)]
    if kind == 2:
        return '{"type": "input.audio", "audio": "AA"}' + "]" * 3
    if kind == 3:
        return '{"x": ' + "1" * 5000 + "}"  # beyond Python's integer-string limit
    if kind == 4:
        return "[" * 100000  # deep nesting
    event: dict[str, Any] = {"type": rng.choice(TYPES)}
    for _ in range(rng.randrange(4)):
        event[rng.choice(KEYS)] = junk_value(rng)
    return json.dumps(event)


async def test_random_junk_never_breaks_a_session(sim: Simulator) -> None:
    rng = random.Random(20260)
    c = await RawClient.connect(sim.url)
    sid = await c.start(input={"turn_detection": {"min_silence": 300}})
    for _ in range(400):
        msg = junk_message(rng)
        if isinstance(msg, str) and '"session.resume"' in msg:
            continue  # a resume is only valid first; covered by its own tests
        await c.send_raw(msg)
    await c.send_audio(utterance(300, 100, 400))
    await c.wait("transcript.user", timeout=10)
    await c.send("session.end")
    await c.wait("session.ended", timeout=10)
    s = sim.sessions[sid]
    codes = set(s.error_codes)
    assert codes and codes <= {
        "invalid_format",
        "invalid_value",
        "invalid_audio",
        "invalid_config",
        "immutable_field",
    }
    assert len(sim.sessions) == 1


async def test_random_first_messages_never_break_the_server(sim: Simulator) -> None:
    rng = random.Random(7)
    for _ in range(40):
        c = await RawClient.connect(sim.url)
        for _ in range(5):
            await c.send_raw(junk_message(rng))
        await c.send("session.end")
        await c.wait("session.ended")
        await c.wait_closed()
    codes = {e["code"] for e in sim.connection_errors}
    for s in sim.sessions.values():
        codes |= set(s.error_codes)
    assert "internal_error" not in codes
    c = await RawClient.connect(sim.url)
    await c.start()
    await c.send_audio(silence(100))
    await c.close()
