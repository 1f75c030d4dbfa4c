"""Mixer: sample-aligned sums, soft limiting without wrap-around, stalls, late joiners,
leavers and stale-burst trimming. Time is passed explicitly (``now``), as the bridge does."""

from __future__ import annotations

import numpy as np
import pytest

from botrun.core.audio.mixer import KNEE, Mixer, soft_limit

RATE = 24000
FRAME = 480  # 20 ms at 24 kHz


def pcm(samples: np.ndarray) -> bytes:
    return samples.astype("<i2").tobytes()


def arr(frames: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(frames), dtype="<i2").astype(np.int32)


def ramp(start: int, n: int, scale: int = 1) -> np.ndarray:
    """Distinct, recognisable samples: start, start+1, ... (times scale)."""
    return (np.arange(start, start + n) % 4000) * scale


def test_two_streams_in_different_chunk_sizes_are_summed_sample_aligned() -> None:
    mixer = Mixer(RATE, frame_ms=20)
    mixer.add("a")
    mixer.add("b")
    a, b = ramp(0, FRAME * 10), -ramp(1000, FRAME * 10, 2)
    out: list[bytes] = []
    t = 0.0
    for i in range(20):  # "a" sends 10 ms pieces, "b" 20 ms pieces every other tick
        t = i * 0.010
        mixer.push("a", pcm(a[i * 240 : (i + 1) * 240]), t)
        if i % 2 == 1:
            mixer.push("b", pcm(b[(i // 2) * FRAME : (i // 2 + 1) * FRAME]), t)
        out += mixer.pop(t)
    assert all(len(f) == FRAME * 2 for f in out)
    np.testing.assert_array_equal(arr(out), a + b)
    assert mixer.stats.forced_frames == 0


def test_frames_wait_for_a_present_participant_until_max_lag_once() -> None:
    mixer = Mixer(RATE, frame_ms=20, max_lag_ms=60)
    mixer.add("a")
    mixer.add("b")
    mixer.push("a", pcm(np.full(FRAME, 1)), 0.0)
    mixer.push("b", pcm(np.full(FRAME, 2)), 0.0)  # b's audio flows: b is present
    assert len(mixer.pop(0.0)) == 1
    mixer.push("a", pcm(ramp(0, FRAME)), 0.02)
    assert mixer.pop(0.02) == []
    assert mixer.next_due() == pytest.approx(0.08)
    assert mixer.pop(0.079) == []  # b may still be on its way
    frames = mixer.pop(0.080)  # now a's audio is max_lag old: b counts as silence
    np.testing.assert_array_equal(arr(frames), ramp(0, FRAME))
    assert mixer.stats.forced_frames == 1
    # b is now absent: a's next frames are emitted the moment they arrive
    for i in range(2, 6):
        mixer.push("a", pcm(ramp(i, FRAME)), i * 0.02)
        np.testing.assert_array_equal(arr(mixer.pop(i * 0.02)), ramp(i, FRAME))
    assert mixer.stats.forced_frames == 1


def test_stalled_participant_is_silence_and_rejoins_at_the_current_frame() -> None:
    mixer = Mixer(RATE, frame_ms=20, max_lag_ms=60)
    mixer.add("a")
    mixer.add("b")
    a = ramp(0, FRAME * 12)
    out: list[bytes] = []
    b_first = -ramp(0, FRAME, 3)
    for i in range(12):
        t = i * 0.020
        mixer.push("a", pcm(a[i * FRAME : (i + 1) * FRAME]), t)
        if i == 0:
            mixer.push("b", pcm(b_first), t)
        if i == 8:  # b resumes after 140 ms of nothing
            mixer.push("b", pcm(np.full(FRAME, 7)), t)
        out += mixer.pop(t)
    out += mixer.pop(12 * 0.020 + 0.060)
    mixed = arr(out)
    assert mixed.size == a.size  # a's timeline is intact: no gap, no duplicate
    expected = a.copy()
    expected[:FRAME] += b_first
    expected[8 * FRAME : 9 * FRAME] += 7  # b's audio sits beside a's audio of the same tick
    np.testing.assert_array_equal(mixed, expected)
    assert mixer.stats.forced_frames > 0


def test_burst_after_a_stall_is_trimmed_so_the_voice_stays_aligned() -> None:
    mixer = Mixer(RATE, frame_ms=20, max_lag_ms=60)
    mixer.add("a")
    mixer.add("b")
    out: list[bytes] = []
    for i in range(20):
        t = i * 0.020
        mixer.push("a", pcm(np.full(FRAME, 1)), t)
        if i == 10:  # b delivers 200 ms at once, then keeps up in real time
            mixer.push("b", pcm(np.full(FRAME * 10, 100)), t)
        elif i > 10:
            mixer.push("b", pcm(np.full(FRAME, 100)), t)
        out += mixer.pop(t)
    # a's audio up to 0.18 s was already played with b silent: b's audio from then is
    # dropped, the rest mixed beside a's audio of the same capture time.
    assert mixer.stats.trimmed_ms == pytest.approx(180)
    mixed = arr(out)
    assert mixed.size == FRAME * 20
    # b had sent nothing: it held nothing back, a's frames 0-9 went out as they arrived
    np.testing.assert_array_equal(mixed[: 10 * FRAME], 1)
    np.testing.assert_array_equal(mixed[10 * FRAME :], 101)


def test_late_joiner_lines_up_with_audio_captured_at_the_same_time() -> None:
    mixer = Mixer(RATE, frame_ms=20)
    mixer.add("a")
    out: list[bytes] = []
    mixer.push("a", pcm(ramp(0, FRAME * 2)), 0.0)
    out += mixer.pop(0.0)
    assert len(out) == 2
    mixer.push("a", pcm(ramp(0, 240)), 0.01)  # captured 0.00-0.01
    mixer.add("c")  # c's first audio was captured 0.01-0.02: after a's queued half frame
    mixer.push("c", pcm(np.full(240, 5)), 0.02)
    mixer.push("a", pcm(ramp(240, 240)), 0.02)
    mixer.push("c", pcm(np.full(240, 6)), 0.03)
    mixer.push("a", pcm(ramp(480, 240)), 0.03)
    out += mixer.pop(0.03)
    assert len(out) == 3
    np.testing.assert_array_equal(arr(out[2:]), ramp(0, FRAME) + np.r_[[0] * 240, [5] * 240])
    mixer.push("a", pcm(ramp(720, 240)), 0.04)
    assert mixer.pop(0.04) == []  # c may still send the rest of its frame
    c_then_silent = np.r_[[6] * 240, [0] * 240]
    np.testing.assert_array_equal(arr(mixer.pop(0.10)), ramp(480, FRAME) + c_then_silent)


def test_late_joiner_audio_older_than_the_mix_is_dropped() -> None:
    mixer = Mixer(RATE, frame_ms=20)
    mixer.push("a", pcm(ramp(0, FRAME)), 0.02)  # captured 0.00-0.02
    mixer.add("c")
    mixer.push("c", pcm(np.full(FRAME * 2, 5)), 0.02)  # captured -0.02-0.02: half is older
    np.testing.assert_array_equal(arr(mixer.pop(0.02)), ramp(0, FRAME) + 5)
    assert mixer.stats.trimmed_ms == pytest.approx(20)


def test_leaver_audio_is_mixed_then_dropped() -> None:
    mixer = Mixer(RATE, frame_ms=20)
    mixer.add("a")
    mixer.add("b")
    mixer.push("a", pcm(np.full(FRAME, 3)), 0.0)
    mixer.push("b", pcm(np.full(FRAME, 4)), 0.0)
    assert len(mixer.pop(0.0)) == 1
    mixer.push("a", pcm(np.full(100, 3)), 0.005)  # a's last words, then a leaves
    mixer.remove("a")
    assert "a" in mixer.participants  # 100 samples still queued
    mixer.push("b", pcm(np.full(FRAME, 4)), 0.02)
    frames = mixer.pop(0.02)
    expected = np.full(FRAME, 4)
    expected[:100] += 3
    np.testing.assert_array_equal(arr(frames), expected)
    assert mixer.participants == ["b"]
    mixer.remove("b")
    assert mixer.participants == []


def test_last_leaver_is_played_out_padded_with_silence() -> None:
    mixer = Mixer(RATE, frame_ms=20)
    mixer.push("solo", pcm(np.full(FRAME + 10, 9)), 0.0)  # unknown id: added on push
    assert len(mixer.pop(0.0)) == 1
    mixer.remove("solo")
    tail = arr(mixer.pop(0.0))
    np.testing.assert_array_equal(tail, np.r_[np.full(10, 9), np.zeros(FRAME - 10)])
    assert mixer.pop(1.0) == []


def test_loud_overlap_never_wraps_or_hard_clips() -> None:
    mixer = Mixer(RATE, frame_ms=20)
    t = np.arange(FRAME * 5) / RATE
    a = np.rint(30000 * np.sin(2 * np.pi * 200 * t)).astype(np.int16)
    b = np.rint(30000 * np.sin(2 * np.pi * 200 * t + 0.3)).astype(np.int16)
    mixer.push("a", pcm(a), 0.0)
    mixer.push("b", pcm(b), 0.0)
    mixed = arr(mixer.pop(0.0))
    total = a.astype(np.int32) + b
    assert np.abs(total).max() > 50000  # a plain int16 sum would wrap
    assert np.all(np.sign(mixed) == np.sign(total))  # no wrap-around
    assert np.abs(mixed).max() < 32767  # approaches full scale, never flat-tops on it
    quiet = np.abs(total) <= KNEE
    np.testing.assert_array_equal(mixed[quiet], total[quiet])  # untouched below the knee
    order = np.argsort(total, kind="stable")
    assert np.all(np.diff(mixed[order]) >= 0)  # monotonic: louder in, louder (or equal) out
    assert mixer.stats.limited_samples > 0


def test_soft_limit_curve_is_continuous_with_unit_slope_at_the_knee() -> None:
    x = np.arange(KNEE - 50, 70000, dtype=np.int32)
    y = soft_limit(x).astype(np.int32)
    steps = np.diff(y)
    assert steps.min() >= 0 and steps.max() <= 1  # no jumps: a 1-LSB input step moves <= 1
    assert y[:51].tolist() == list(range(KNEE - 50, KNEE + 1))
    assert y[-1] <= 32767
    np.testing.assert_array_equal(soft_limit(-x), -y)


def test_lone_loud_speaker_is_bent_by_the_same_curve() -> None:
    mixer = Mixer(RATE, frame_ms=20)
    loud = np.full(FRAME, 32000, dtype=np.int16)
    mixer.push("a", pcm(loud), 0.0)
    out = arr(mixer.pop(0.0))
    np.testing.assert_array_equal(out, soft_limit(loud.astype(np.int32)))


def test_odd_byte_pieces_are_reassembled() -> None:
    mixer = Mixer(RATE, frame_ms=20)
    data = pcm(ramp(0, FRAME))
    for i in range(0, len(data), 7):
        mixer.push("a", data[i : i + 7], 0.0)
    np.testing.assert_array_equal(arr(mixer.pop(0.0)), ramp(0, FRAME))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Mixer(24000, frame_ms=0)
    with pytest.raises(ValueError):
        Mixer(22050, frame_ms=10, max_lag_ms=60)  # 220.5 samples


def test_a_long_call_keeps_only_the_arrivals_of_audio_still_queued() -> None:
    """Regression: every pushed piece's arrival was kept for the whole call once audio
    flowed steadily (a tuple per participant per frame: ~80 MB per speaker over three
    hours, and a resuming speaker's alignment walked all of them)."""
    mixer = Mixer(RATE, frame_ms=20)
    a, b = ramp(0, FRAME // 2), ramp(7, FRAME)
    longest = 0
    for i in range(3000):  # one minute: "a" in 10 ms pieces, "b" in 20 ms pieces
        t = i * 0.010
        mixer.push("a", pcm(a), t)
        if i % 2:
            mixer.push("b", pcm(b), t)
        mixer.pop(t)
        longest = max(longest, *(len(tr.arrivals) for tr in mixer._tracks.values()))
    assert longest <= 3
    assert mixer.stats.frames == 1500
    # what is still queued keeps its arrival: the partial frame drains max_lag after it
    mixer.push("a", pcm(a), 30.0)
    assert mixer.next_due() == pytest.approx(30.0 + 0.060)


@pytest.mark.parametrize("seed", range(6))
def test_offered_frames_mix_exactly_as_pushed_ones(seed: int) -> None:
    """Mixer.offer (the usual tick handed over without queueing) against the same audio
    pushed piece by piece: the same frames, the same due times, the same state, through
    stalls, odd piece sizes, joins, leaves and a second push in the same tick."""
    rng = np.random.default_rng(seed)
    fast, slow = Mixer(RATE, frame_ms=20), Mixer(RATE, frame_ms=20)
    people = ["a", "b", "c"]
    voices = {p: ramp(1000 * i, FRAME * 4000, 3) for i, p in enumerate(people)}
    pos = dict.fromkeys(people, FRAME)
    here = ["a", "b"]
    for m in (fast, slow):
        for p in here:
            m.add(p)
    offered = 0
    t = 0.0
    for _tick in range(600):
        t += 0.02
        roll = rng.random()
        if roll < 0.03 and len(here) < 3:  # someone joins
            p = next(p for p in people if p not in here)
            here.append(p)
            pos[p] = FRAME * round(t / 0.02) - FRAME  # starts talking now
            for m in (fast, slow):
                m.add(p)
        elif roll < 0.06 and len(here) > 1:  # someone leaves
            p = here.pop(int(rng.integers(len(here))))
            for m in (fast, slow):
                m.remove(p)
        frames = []
        for p in here:
            due = FRAME * round(t / 0.02) - pos[p]  # what this track owes by now
            if rng.random() < 0.03:
                continue  # a stalled track: its audio comes later, in a burst
            n = due if rng.random() < 0.97 else int(rng.choice([due // 2, due + 1, 7]))
            piece = pcm(voices[p][pos[p] : pos[p] + n])
            pos[p] += n
            frames.append((p, piece, t))  # one SDK callback: one arrival time
        if frames and fast.offer(frames):
            offered += 1
        else:
            for p, piece, at in frames:
                fast.push(p, piece, at)
        for p, piece, at in frames:
            slow.push(p, piece, at)
        if rng.random() < 0.03 and here:  # more audio before the pop: the offer is queued
            p = here[0]
            extra = pcm(voices[p][pos[p] : pos[p] + FRAME // 4])
            pos[p] += FRAME // 4
            fast.push(p, extra, t)
            slow.push(p, extra, t)
        assert fast.queued == slow.queued
        if rng.random() < 0.1:
            assert fast.next_due() == slow.next_due()
        assert fast.pop_pieces(t) == slow.pop_pieces(t)
        assert fast.next_due() == slow.next_due()
        assert fast.present == slow.present
        assert fast.participants == slow.participants
    assert fast.drain() == slow.drain()
    assert fast.stats == slow.stats
    # each stream's position (bytes mixed so far) is kept as if every frame was queued
    assert {p: t.consumed for p, t in fast._tracks.items()} == {
        p: t.consumed for p, t in slow._tracks.items()
    }
    assert 10 < offered < 590, offered  # both ways were taken, many times


def test_an_offer_is_refused_unless_it_is_everyones_one_whole_frame() -> None:
    mixer = Mixer(RATE, frame_ms=20)
    frame = pcm(ramp(0, FRAME))
    for p in ("a", "b"):
        mixer.add(p)
    # a and b are absent until their audio flows: the first audio is lined up (pushed)
    assert not mixer.offer([("a", frame, 0.0), ("b", frame, 0.0)])
    mixer.push("a", frame, 0.0)
    mixer.push("b", frame, 0.0)
    assert len(mixer.pop_pieces(0.0)) == 1
    assert mixer.offer([("a", frame, 0.02), ("b", frame, 0.02)])
    assert not mixer.offer([("a", frame, 0.02), ("b", frame, 0.02)])  # one at a time
    assert mixer.pop_pieces(0.02) == [[frame, frame]]
    assert not mixer.offer([("a", frame, 0.04)])  # b's frame missing
    assert not mixer.offer([("a", frame, 0.04), ("a", frame, 0.04)])  # a twice
    assert not mixer.offer([("a", frame, 0.04), ("b", frame[:-2], 0.04)])  # short
    assert not mixer.offer([("a", frame, 0.04), ("x", frame, 0.04)])  # unknown
    assert not mixer.queued
