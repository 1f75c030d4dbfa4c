"""Audio encodings the protocol allows: PCM16 LE, G.711 μ-law and A-law; plus WAV I/O.

The simulator is the server side, so it decodes what clients send (for speech detection and
recording) and encodes its replies in the session's output format. Plain NumPy: these run per
50 ms chunk and need no filter quality (the simulator never resamples client audio it echoes
at the same rate).
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from botrun.core.errors import ConfigError

PCM = "audio/pcm"
PCMU = "audio/pcmu"
PCMA = "audio/pcma"
ENCODINGS = (PCM, PCMU, PCMA)
DEFAULT_RATE = 24000
G711_RATE = 8000


@dataclass(frozen=True)
class AudioFormat:
    """An encoding and its sample rate (G.711 is always 8 kHz)."""

    encoding: str = PCM
    sample_rate: int = DEFAULT_RATE

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == PCM else 1

    def to_dict(self) -> dict[str, object]:
        return {"encoding": self.encoding, "sample_rate": self.sample_rate}


def _ulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


_ULAW_DEC = _ulaw_decode_table()
_ALAW_DEC = _alaw_decode_table()


def _encode_table(decode: np.ndarray) -> np.ndarray:
    """A 65536-entry table int16 -> nearest code, built from the decode table (so encode and
    decode agree exactly)."""
    order = np.argsort(decode)
    levels = decode[order].astype(np.int32)
    x = np.arange(-32768, 32768, dtype=np.int32)
    idx = np.clip(np.searchsorted(levels, x), 1, 255)
    lower, upper = levels[idx - 1], levels[idx]
    pick = np.where(x - lower <= upper - x, idx - 1, idx)
    return order[pick].astype(np.uint8)


_ULAW_ENC = _encode_table(_ULAW_DEC)
_ALAW_ENC = _encode_table(_ALAW_DEC)


def decode(data: bytes, encoding: str) -> np.ndarray:
    """Bytes in ``encoding`` -> int16 samples. PCM16 must have an even length (the caller
    checks and reports ``invalid_audio``)."""
    if encoding == PCM:
        return np.frombuffer(data, dtype="<i2")
    table = _ULAW_DEC if encoding == PCMU else _ALAW_DEC
    return table[np.frombuffer(data, dtype=np.uint8)]


def encode(samples: np.ndarray, encoding: str) -> bytes:
    """int16 samples -> bytes in ``encoding``."""
    s = np.asarray(samples, dtype=np.int16)
    if encoding == PCM:
        return s.astype("<i2").tobytes()
    table = _ULAW_ENC if encoding == PCMU else _ALAW_ENC
    return table[s.astype(np.int32) + 32768].tobytes()


def resample_linear(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Linear-interpolation rate change: good enough for the simulator's own reply audio
    (tones, WAV replies) when a client asks for a non-default output rate."""
    if in_rate == out_rate or len(samples) == 0:
        return np.asarray(samples, dtype=np.int16)
    n_out = round(len(samples) * out_rate / in_rate)
    t = np.arange(n_out) * (in_rate / out_rate)
    out = np.interp(t, np.arange(len(samples)), samples.astype(np.float64))
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


#: Sample rates a WAV reply may have (it is resampled to the session's output rate).
WAV_RATES = (1000, 384000)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a PCM16 WAV file as mono int16 samples and its rate. Anything else (not a WAV, not
    16-bit PCM, no sample rate) is a :class:`ConfigError` naming the file; a truncated last
    frame is dropped."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise ConfigError(
                    f"{path}: only 16-bit PCM WAV files are supported "
                    f"(this one has {8 * w.getsampwidth()}-bit samples)"
                )
            rate, channels = w.getframerate(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        detail = str(exc) or "it ends too soon (is it a WAV file?)"
        raise ConfigError(
            f"{path}: cannot read WAV file: {getattr(exc, 'strerror', None) or detail}"
        ) from None
    if not WAV_RATES[0] <= rate <= WAV_RATES[1]:
        raise ConfigError(
            f"{path}: sample rate {rate} Hz is not in {WAV_RATES[0]}..{WAV_RATES[1]} Hz"
        )
    frame = 2 * channels
    data = np.frombuffer(raw[: len(raw) // frame * frame], dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return data.astype(np.int16), rate


def write_wav(path: Path, pcm16: bytes, rate: int) -> None:
    """Write mono PCM16 bytes as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16)
