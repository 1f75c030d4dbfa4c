"""Reading any PCM/float WAV as 16-bit mono at the meeting rate, with clear errors (a
compressed one, μ-law, A-law or ADPCM, is refused)."""

from __future__ import annotations

import re
import warnings
from math import gcd
from pathlib import Path

from botrun.core.errors import UsageError

_HINT = "convert it first, e.g. `sox IN.wav -r 16000 -c 1 -b 16 OUT.wav`"
_UNKNOWN_FORMAT = re.compile(r"Unknown wave file format: (\w+)")
_ENCODINGS = {"MULAW": "μ-law", "ALAW": "A-law", "DVI_ADPCM": "IMA ADPCM", "ADPCM": "ADPCM"}


def read_wav_mono16(path: Path, rate: int) -> bytes:
    """Return ``path`` as PCM16 LE mono at ``rate`` Hz. Any sample rate, 8/16/24/32-bit
    integer or 32/64-bit float samples and any channel count are converted (channels are
    averaged); anything else (μ-law, A-law, ADPCM...) raises :class:`UsageError` naming
    what is unsupported."""
    import numpy as np
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    if not path.exists():
        raise UsageError(f"input file not found: {path}")
    if not path.is_file():
        raise UsageError(f"input is not a file: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            src_rate, data = wavfile.read(str(path))
    except PermissionError:
        raise UsageError(f"cannot read {path}: permission denied") from None
    except (ValueError, OSError, EOFError) as exc:
        text = str(exc)
        if "not understood" in text or "RIFF" in text or "WAVE" in text:
            raise UsageError(f"{path} is not a WAV file") from None
        encoding = _UNKNOWN_FORMAT.search(text)
        if encoding:  # e.g. MULAW, ALAW, DVI_ADPCM: compressed samples
            name = _ENCODINGS.get(encoding.group(1), encoding.group(1))
            raise UsageError(
                f"{path}: {name} WAV files are not read (only PCM and float WAVs); {_HINT}"
            ) from None
        raise UsageError(f"{path}: unsupported WAV ({text}); {_HINT}") from None
    except Exception as exc:  # scipy raises anything on malformed data
        detail = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        raise UsageError(f"{path} is not a valid WAV file ({detail})") from None
    if data.size == 0:
        raise UsageError(f"{path} contains no audio")
    if data.dtype.kind == "f":
        x = data.astype(np.float64)
    elif data.dtype == np.uint8:
        x = (data.astype(np.float64) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        x = data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))
    else:
        raise UsageError(f"{path}: unsupported sample type {data.dtype}; {_HINT}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    if src_rate <= 0:
        raise UsageError(f"{path}: invalid sample rate {src_rate}")
    if src_rate != rate:
        g = gcd(int(src_rate), rate)
        x = resample_poly(x, rate // g, int(src_rate) // g)
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    return pcm.tobytes()
