"""StreamResampler: filter quality from the designed taps, chunk invariance (property-based),
delay, saturation, flush/reset, and agreement with an independent one-shot polyphase filter
(``scipy.signal.upfirdn``) using the same taps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from botrun.core.audio.resampler import SUPPORTED_RATES, StreamResampler, design

PAIRS = [(a, b) for a, b in itertools.permutations(SUPPORTED_RATES, 2)]


def noise(n: int, seed: int = 0, scale: float = 6000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.standard_normal(n) * scale, -32768, 32767).astype(np.int16)


def one_shot(in_rate: int, out_rate: int, x: np.ndarray) -> np.ndarray:
    r = StreamResampler(in_rate, out_rate)
    return np.frombuffer(r.process(x.tobytes()) + r.flush(), dtype="<i2")


def chunked(r: StreamResampler, data: bytes, sizes: list[int]) -> np.ndarray:
    """Feed ``data`` in pieces of the given sizes (cycled), then flush."""
    out, i = [], 0
    for size in itertools.cycle(sizes):
        if i >= len(data):
            break
        out.append(r.process(data[i : i + size]))
        i += size
    out.append(r.flush())
    return np.frombuffer(b"".join(out), dtype="<i2")


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_designed_taps_meet_the_response_spec(in_rate: int, out_rate: int) -> None:
    d = design(in_rate, out_rate)
    fs = in_rate * d.up
    nyq_low = min(in_rate, out_rate) / 2
    freqs, h = signal.freqz(d.taps / d.up, worN=1 << 16, fs=fs)
    mag_db = 20 * np.log10(np.maximum(np.abs(h), 1e-12))
    passband = mag_db[freqs <= 0.9 * nyq_low]
    stopband = mag_db[freqs >= nyq_low]
    assert passband.max() - passband.min() <= 0.1
    assert abs(passband.mean()) < 0.01  # unity gain
    assert -stopband.max() >= 80.0
    # Linear phase (symmetric taps) and an exact delay in output samples.
    np.testing.assert_allclose(d.taps, d.taps[::-1], atol=1e-12)
    assert (d.taps.size - 1) / 2 == d.delay * d.down


def test_designs_are_shared_between_instances() -> None:
    a, b = StreamResampler(16000, 24000), StreamResampler(16000, 24000)
    assert a._design is b._design is design(16000, 24000)


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_matches_independent_one_shot_polyphase_filter(in_rate: int, out_rate: int) -> None:
    x = noise(in_rate // 5, seed=in_rate + out_rate)
    d = design(in_rate, out_rate)
    ref = signal.upfirdn(d.taps, x.astype(np.float64), d.up, d.down)
    ours = one_shot(in_rate, out_rate, x)
    expected_len = -(-x.size * out_rate // in_rate) + d.delay
    assert ours.size == expected_len
    ref = np.clip(np.rint(ref[:expected_len]), -32768, 32767)
    assert np.max(np.abs(ours - ref)) <= 1


@settings(max_examples=60, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    seed=st.integers(0, 2**16),
    n_samples=st.integers(0, 3000),
    sizes=st.lists(st.integers(0, 1500), min_size=1, max_size=12).filter(any),
)
def test_chunked_output_equals_one_shot_within_one_lsb(
    pair: tuple[int, int], seed: int, n_samples: int, sizes: list[int]
) -> None:
    x = noise(n_samples, seed)
    expected = one_shot(*pair, x)
    got = chunked(StreamResampler(*pair), x.tobytes(), sizes)  # sizes are bytes: odd ones too
    assert got.size == expected.size
    if got.size:
        assert np.max(np.abs(got.astype(np.int32) - expected)) <= 1


def test_odd_byte_is_carried_not_dropped() -> None:
    x = noise(1600, seed=3)
    data = x.tobytes()
    r = StreamResampler(16000, 24000)
    pieces = [r.process(data[i : i + 7]) for i in range(0, len(data), 7)]
    got = np.frombuffer(b"".join(pieces) + r.flush(), dtype="<i2")
    np.testing.assert_allclose(got, one_shot(16000, 24000, x), atol=1)


def test_empty_chunks_produce_nothing_and_change_nothing() -> None:
    r = StreamResampler(24000, 16000)
    assert r.process(b"") == b""
    assert r.process_array(np.zeros(0, dtype=np.int16)).size == 0
    x = noise(2400, seed=4)
    got = np.frombuffer(r.process(b"") + r.process(x.tobytes()) + r.flush(), dtype="<i2")
    np.testing.assert_array_equal(got, one_shot(24000, 16000, x))


def test_output_comes_in_whole_milliseconds_without_extra_latency_for_10ms_frames() -> None:
    r = StreamResampler(16000, 24000)
    frame = noise(160, seed=5).tobytes()
    assert all(len(r.process(frame)) == 480 for _ in range(5))
    assert r.pending_input == 0
    assert len(r.process(frame[:100])) == 3 * 24 * 2  # 50 samples: 3 whole 1 ms steps
    assert r.pending_input == 2


@pytest.mark.parametrize(("in_rate", "out_rate"), [(16000, 24000), (24000, 16000), (8000, 48000)])
def test_reported_delay_aligns_a_tone(in_rate: int, out_rate: int) -> None:
    r = StreamResampler(in_rate, out_rate)
    f = 1000.0
    t_in = np.arange(in_rate // 2) / in_rate
    x = np.rint(12000 * np.sin(2 * np.pi * f * t_in)).astype(np.int16)
    y = np.frombuffer(r.process(x.tobytes()), dtype="<i2").astype(float)
    n = np.arange(y.size)
    ideal = 12000 * np.sin(2 * np.pi * f * (n - r.delay) / out_rate)
    middle = slice(out_rate // 20, y.size - out_rate // 20)  # away from the start-up ramp
    err = y[middle] - ideal[middle]
    snr = 10 * np.log10(np.sum(ideal[middle] ** 2) / np.sum(err**2))
    assert snr > 60


def test_impulse_peaks_at_the_reported_delay() -> None:
    r = StreamResampler(16000, 24000)
    x = np.zeros(1600, dtype=np.int16)
    x[160] = 20000  # input time 10 ms -> output sample 240 before the delay
    y = np.frombuffer(r.process(x.tobytes()) + r.flush(), dtype="<i2")
    assert int(np.argmax(np.abs(y))) == 240 + r.delay


def test_stopband_tone_is_removed_when_downsampling() -> None:
    # 10 kHz at 24 kHz would alias to 6 kHz at 16 kHz: it must come out below -80 dB.
    t = np.arange(24000) / 24000
    x = np.rint(20000 * np.sin(2 * np.pi * 10000 * t)).astype(np.int16)
    y = StreamResampler(24000, 16000).process_array(x).astype(float)[2000:]
    level_db = 20 * np.log10(np.sqrt(np.mean(y**2)) / (20000 / np.sqrt(2)) + 1e-12)
    assert level_db < -80


def test_full_scale_input_saturates_instead_of_wrapping() -> None:
    square = np.tile(np.r_[np.full(40, 32767), np.full(40, -32768)], 50).astype(np.int16)
    d = design(16000, 24000)
    ideal = signal.upfirdn(d.taps, square.astype(float), d.up, d.down)
    y = one_shot(16000, 24000, square)
    over = ideal[: y.size] > 32767.5
    under = ideal[: y.size] < -32768.5
    assert over.any() and under.any()  # the filter's overshoot really exceeds int16
    assert np.all(y[over] == 32767)
    assert np.all(y[under] == -32768)


def test_flush_resets_and_reset_forgets_history() -> None:
    x = noise(3200, seed=6)
    r = StreamResampler(16000, 24000)
    r.process(noise(999, seed=7).tobytes() + b"\x01")  # history, pending input, odd byte
    r.reset()
    first = np.frombuffer(r.process(x.tobytes()) + r.flush(), dtype="<i2")
    second = np.frombuffer(r.process(x.tobytes()) + r.flush(), dtype="<i2")
    expected = one_shot(16000, 24000, x)
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)


def test_long_input_in_one_call_matches_streaming() -> None:
    x = noise(16000 * 3, seed=8)
    r = StreamResampler(16000, 24000)
    whole = r.process_array(x)
    r.reset()
    frames = np.concatenate([r.process_array(x[i : i + 320]) for i in range(0, x.size, 320)])
    assert whole.size == frames.size == 72000  # 3 s in, 3 s out (the tail waits for flush)
    assert np.max(np.abs(whole.astype(np.int32) - frames)) <= 1


def test_equal_rates_pass_through() -> None:
    r = StreamResampler(16000, 16000)
    assert r.delay == 0
    assert r.process(b"\x01\x02\x03") == b"\x01\x02"
    assert r.process(b"\x04") == b"\x03\x04"
    x = noise(100, seed=9)
    np.testing.assert_array_equal(r.process_array(x), x)
    assert r.flush() == b""


@pytest.mark.parametrize(("in_rate", "out_rate"), [(44100, 16000), (16000, 22050), (0, 8000)])
def test_unsupported_rates_are_refused(in_rate: int, out_rate: int) -> None:
    with pytest.raises(ValueError, match="unsupported sample rate"):
        StreamResampler(in_rate, out_rate)


# -- PCM16 helpers (core/audio/pcm.py), used by the resampler and the transports --------


def test_pcm_helpers_convert_round_and_saturate() -> None:
    from botrun.core.audio import pcm

    x = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    assert pcm.int16_to_bytes(x) == x.astype("<i2").tobytes()
    np.testing.assert_array_equal(pcm.bytes_to_int16(pcm.int16_to_bytes(x)), x)
    with pytest.raises(ValueError, match="even number"):
        pcm.bytes_to_int16(b"\x00\x01\x02")
    y = pcm.saturate(np.array([-40000.0, -1.5, -0.4, 0.5, 1.5, 32767.4, 1e9]))
    assert y.dtype == np.int16
    assert y.tolist() == [-32768, -2, 0, 0, 2, 32767, 32767]
    assert pcm.silence(10, 16000) == bytes(320)
    assert pcm.bytes_for_ms(20, 24000) == 960
    assert pcm.samples_for_ms(10, 8000) == 80
    assert pcm.duration_ms(960, 24000) == pytest.approx(20.0)


def test_odd_byte_carry_never_splits_a_sample() -> None:
    from botrun.core.audio.pcm import OddByteCarry

    carry = OddByteCarry()
    data = bytes(range(11))
    out = b"".join(carry.feed(data[i : i + 3]) for i in range(0, len(data), 3))
    assert out == data[:10]
    assert carry.pending == 1
    assert carry.feed(b"\xff") == data[10:] + b"\xff"
    carry.feed(b"\x01")
    carry.reset()
    assert carry.pending == 0 and carry.feed(b"\x02\x03") == b"\x02\x03"
