"""PCM16 helpers shared by the resampler, mixer, pacer and transports.

All audio inside botrun is mono signed 16-bit little-endian PCM ("PCM16"). These helpers
convert between ``bytes`` and ``int16`` arrays without copying where numpy allows it, carry
a stray odd byte between network or SDK chunks (a sample must never be split), convert float
results back to int16 with rounding and saturation (never wrap-around), and turn byte or
sample counts into durations.
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np

SAMPLE_WIDTH = 2  # bytes per PCM16 mono sample
INT16_MIN = -32768
INT16_MAX = 32767
_LE_INT16 = np.dtype("<i2")


def bytes_to_int16(pcm: bytes | bytearray | memoryview) -> np.ndarray:
    """View PCM16 LE bytes as an int16 array (read-only view, no copy).

    Raises ``ValueError`` for an odd byte count; use :class:`OddByteCarry` upstream when
    chunks may split a sample.
    """
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
    arr = np.frombuffer(pcm, dtype=_LE_INT16)
    return arr if arr.dtype == np.int16 else arr.astype(np.int16)


def int16_to_bytes(samples: np.ndarray) -> bytes:
    """Serialise an int16 array as PCM16 LE bytes."""
    return np.asarray(samples, dtype=_LE_INT16).tobytes()


def saturate(x: np.ndarray) -> np.ndarray:
    """Round float samples to the nearest integer and clip them into int16 (no wrap-around).

    The input array may be modified in place (it is a scratch result in every caller).
    """
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    np.rint(x, out=x)
    np.clip(x, INT16_MIN, INT16_MAX, out=x)
    return x.astype(np.int16)


def energies(frames: list[bytes]) -> list[float]:
    """Sum of squares of each PCM16 frame, every frame in one pass (a trailing odd byte is
    not a sample and is ignored; an empty frame has none)."""
    n = len(frames[0]) if frames else 0
    if n and not n & 1 and min(map(len, frames)) == max(map(len, frames)):  # equal frames
        x = np.frombuffer(b"".join(frames), dtype=_LE_INT16).astype(np.float32)
        x = x.reshape(len(frames), n // SAMPLE_WIDTH)
        return np.einsum("ij,ij->i", x, x).tolist()
    sizes = [len(f) // SAMPLE_WIDTH for f in frames]
    full = [
        f[: n * SAMPLE_WIDTH] if len(f) & 1 else f for f, n in zip(frames, sizes, strict=True) if n
    ]
    if not full:
        return [0.0] * len(frames)
    x = np.frombuffer(b"".join(full), dtype=_LE_INT16).astype(np.float32)
    np.multiply(x, x, out=x)
    starts = list(accumulate([n for n in sizes if n][:-1], initial=0))
    sums = iter(np.add.reduceat(x, starts).tolist())
    return [next(sums) if n else 0.0 for n in sizes]


def silence(ms: float, sample_rate: int) -> bytes:
    """``ms`` milliseconds of digital silence at ``sample_rate``."""
    return bytes(samples_for_ms(ms, sample_rate) * SAMPLE_WIDTH)


def samples_for_ms(ms: float, sample_rate: int) -> int:
    """Number of whole samples in ``ms`` milliseconds (rounded to the nearest sample)."""
    return round(sample_rate * ms / 1000)


def bytes_for_ms(ms: float, sample_rate: int) -> int:
    """Number of PCM16 bytes in ``ms`` milliseconds."""
    return samples_for_ms(ms, sample_rate) * SAMPLE_WIDTH


def duration_ms(nbytes: int, sample_rate: int) -> float:
    """Duration in milliseconds of ``nbytes`` of PCM16 at ``sample_rate``."""
    return nbytes / SAMPLE_WIDTH * 1000 / sample_rate


class OddByteCarry:
    """Splits a byte stream into whole PCM16 samples, holding back a trailing odd byte.

    Network frames and SDK buffers do not promise to end on a sample boundary; dropping
    the odd byte would shift every later sample by one byte (loud noise), so it is kept and
    prepended to the next chunk instead.
    """

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held: bytes = b""  # the odd byte held back (b"" when none)

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Return the whole samples available after ``data``; keep any odd byte for later."""
        if self.held:
            data = self.held + bytes(data)
            self.held = b""
        if len(data) % SAMPLE_WIDTH:
            self.held = bytes(data[-1:])
            data = data[:-1]
        return bytes(data)

    @property
    def pending(self) -> int:
        """Bytes held back (0 or 1)."""
        return len(self.held)

    def reset(self) -> None:
        """Forget a held-back byte."""
        self.held = b""
