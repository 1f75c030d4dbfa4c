"""G.711 μ-law <-> PCM16 for phone audio (Twilio Media Streams: μ-law, 8 kHz, mono).

Table look-ups in NumPy (``audioop`` left the standard library in Python 3.13); the tables
are the simulator's (``core/sim/codec.py``), so what botrun encodes the simulator decodes
exactly. Used only when the agent cannot take μ-law itself: otherwise the caller's bytes
pass through untouched.
"""

from __future__ import annotations

import numpy as np

from botrun.core.sim.codec import PCMU, decode, encode

#: μ-law's silence (the code for a zero sample): what pads a μ-law stream.
ULAW_SILENCE = b"\xff"


def ulaw_to_pcm16(data: bytes) -> bytes:
    """μ-law bytes -> PCM16 little-endian, one sample per byte."""
    return decode(data, PCMU).astype("<i2").tobytes()


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """PCM16 little-endian (even length) -> μ-law bytes."""
    return encode(np.frombuffer(pcm, dtype="<i2"), PCMU)
