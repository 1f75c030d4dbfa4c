"""Every call's inbound audio mixed, weighed and resampled together (core/inbound_batch.py):
the batch sends each call exactly what the call's own path would have (within 1 LSB: the
same taps on the same inputs, in a larger matrix product), and one bad frame never costs
a call the rest of its hand-off (issue 15 performance; the odd-length frame bug).

Real InboundPaths, mixers and resamplers throughout; time is passed explicitly."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from test_inbound import IN_RATE, RecordingClient, bridge_with, cancel_drain, pieces, speech16

from botrun.core.audio.mixer import KNEE, mix_many, mix_one
from botrun.core.audio.pcm import energies
from botrun.core.audio.resampler import StreamResampler, process_rows
from botrun.core.inbound import InboundPath
from botrun.core.inbound_batch import BatchSlot, InboundBatch

FRAME = 320  # 20 ms at 16 kHz


def pcm(x: np.ndarray) -> bytes:
    return np.asarray(x, dtype="<i2").tobytes()


def noise(n: int, level: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.standard_normal(n) * level, -32768, 32767).astype(np.int16)


# ------------------------------------------------------------------ the array kernels
def test_energies_are_each_frames_sum_of_squares_whatever_the_sizes() -> None:
    frames = [
        pcm(noise(320, 3000, 1)),
        b"",
        pcm(noise(160, 20000, 2)),
        pcm(noise(7, 100, 3)) + b"\x01",  # a trailing odd byte is not a sample
        b"\x05",  # nothing but an odd byte
        pcm(noise(960, 30000, 4)),
    ]
    want = []
    for f in frames:
        x = np.frombuffer(f[: len(f) // 2 * 2], dtype="<i2").astype(np.float64)
        want.append(float(np.sum(x * x)))
    got = energies(frames)
    assert len(got) == len(frames)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got[1] == 0.0 and got[4] == 0.0
    assert energies([]) == [] and energies([b""]) == [0.0]


def test_mix_many_equals_mixing_each_frame_alone() -> None:
    loud = noise(FRAME, 25000, 9)  # two of these overlap past the limiter's knee
    frames = [
        [pcm(noise(FRAME, 2000, 1))],  # a lone speaker: bit-exact
        [pcm(noise(FRAME, 2000, 2)), pcm(noise(FRAME, 2000, 3))],
        [pcm(loud), pcm(loud)],  # bent by the soft limiter
        [pcm(np.full(FRAME, KNEE + 5000, dtype=np.int16))],  # one loud voice alone
        [pcm(noise(FRAME, 1000, 4)), pcm(noise(100, 1000, 5))],  # a short piece
        [pcm(noise(FRAME, 500, 6)), pcm(noise(FRAME, 500, 7)), pcm(noise(FRAME, 500, 8))],
    ]
    array, limited = mix_many(frames, FRAME * 2)
    assert array.shape == (len(frames), FRAME) and array.dtype == np.dtype("<i2")
    for i, f in enumerate(frames):
        alone, bent = mix_one(f, FRAME * 2)
        assert array[i].tobytes() == alone, f"frame {i}"
        assert limited[i] == bent, f"frame {i}"
    assert limited[2] > 0 and limited[3] == FRAME and limited[0] == 0
    assert array[0].tobytes() == frames[0][0]


def test_energies_of_equal_frames_match_the_general_path() -> None:
    # The usual tick (every frame 20 ms) takes one product for all; an odd frame among
    # them takes the general path. Both give each frame's own sum of squares.
    equal = [pcm(noise(320, level, seed)) for seed, level in enumerate((3000, 0, 30000, 50))]
    want = [float(np.sum(np.frombuffer(f, "<i2").astype(np.float64) ** 2)) for f in equal]
    np.testing.assert_allclose(energies(equal), want, rtol=1e-5)
    assert energies(equal)[1] == 0.0
    mixed = [*equal, pcm(noise(160, 1000, 9))]
    np.testing.assert_allclose(energies(mixed)[:4], want, rtol=1e-5)


@pytest.mark.parametrize("loud_at", [None, 0, 5])
def test_mix_many_batches_of_pairs_quiet_or_with_one_loud_row(loud_at: int | None) -> None:
    # A batch of two-voice frames is checked against the limiter's knee as a whole first;
    # only a batch that reaches it is looked at row by row.
    frames = [
        [pcm(noise(FRAME, 3000, 2 * i)), pcm(noise(FRAME, 3000, 2 * i + 1))] for i in range(8)
    ]
    if loud_at is not None:
        frames[loud_at] = [pcm(noise(FRAME, 25000, 90)), pcm(noise(FRAME, 25000, 91))]
    array, limited = mix_many(frames, FRAME * 2)
    for i, f in enumerate(frames):
        alone, bent = mix_one(f, FRAME * 2)
        assert array[i].tobytes() == alone, f"frame {i}"
        assert limited[i] == bent, f"frame {i}"
    assert (sum(limited) > 0) == (loud_at is not None)


def test_process_rows_continues_each_stream_as_its_own_resampler_would() -> None:
    """Streams resampled partly in batches, partly alone, equal the same streams resampled
    alone throughout (within 1 LSB), and the resampler's counters stay right (flush)."""
    voices = [speech16(400, seed=s) for s in range(3)]
    alone = [StreamResampler(IN_RATE, 24000) for _ in voices]
    mixed = [StreamResampler(IN_RATE, 24000) for _ in voices]
    want: list[list[np.ndarray]] = [[] for _ in voices]
    got: list[list[np.ndarray]] = [[] for _ in voices]
    for step, start in enumerate(range(0, 400 * 16, FRAME)):
        chunks = [v[start : start + FRAME] for v in voices]
        for k, c in enumerate(chunks):
            want[k].append(alone[k].process_array(c))
        if step % 3 == 2:  # every third frame each stream goes alone
            for k, c in enumerate(chunks):
                got[k].append(mixed[k].process_array(c))
            continue
        assert all(rs.batchable(FRAME) for rs in mixed)
        y = process_rows(mixed, np.stack(chunks))
        for k in range(len(voices)):
            got[k].append(y[k])
    for k in range(len(voices)):
        w = np.concatenate([*want[k], np.frombuffer(alone[k].flush(), "<i2")])
        g = np.concatenate([*got[k], np.frombuffer(mixed[k].flush(), "<i2")])
        assert w.shape == g.shape
        assert np.max(np.abs(w.astype(int) - g)) <= 1


def test_process_rows_batches_that_change_members_and_order() -> None:
    """A batch leaves each stream's filter history in its own input window; the next batch
    of the same streams in the same order takes it with one copy. Batches that reorder,
    drop or add streams, and streams that go alone in between, give what each stream
    resampled alone gives (within 1 LSB), to the end of its filter (flush)."""
    voices = [speech16(300, seed=10 + s) for s in range(4)]
    alone = [StreamResampler(IN_RATE, 24000) for _ in voices]
    batched = [StreamResampler(IN_RATE, 24000) for _ in voices]
    want: list[list[np.ndarray]] = [[] for _ in voices]
    got: list[list[np.ndarray]] = [[] for _ in voices]
    plan = [  # which streams go through one product at each frame, in that order
        [0, 1, 2, 3],
        [0, 1, 2, 3],  # the same batch again: the one-copy path
        [0, 1, 2, 3],
        [2, 0, 3, 1],  # reordered
        [0, 1],  # fewer (2 and 3 go alone)
        [0, 1],
        [3, 0, 1, 2],  # more, and 3 came back from going alone
        [1],  # a batch of one
        [0, 1, 2, 3],
    ]
    for step, start in enumerate(range(0, 300 * 16, FRAME)):
        chunks = [v[start : start + FRAME] for v in voices]
        for k, c in enumerate(chunks):
            want[k].append(alone[k].process_array(c))
        members = plan[step % len(plan)]
        if step % 11 == 10:
            members = []  # every stream alone
        y = (
            process_rows([batched[k] for k in members], np.stack([chunks[k] for k in members]))
            if members
            else None
        )
        for k, c in enumerate(chunks):
            if k in members:
                assert y is not None
                got[k].append(y[members.index(k)])
            else:
                got[k].append(batched[k].process_array(c))
    for k in range(len(voices)):
        w = np.concatenate([*want[k], np.frombuffer(alone[k].flush(), "<i2")])
        g = np.concatenate([*got[k], np.frombuffer(batched[k].flush(), "<i2")])
        assert w.shape == g.shape
        assert np.max(np.abs(w.astype(int) - g)) <= 1, f"stream {k}"


def test_a_resampler_with_input_pending_is_not_batchable() -> None:
    rs = StreamResampler(IN_RATE, 24000)
    assert rs.batchable(FRAME) and not rs.batchable(FRAME + 3) and not rs.batchable(0)
    rs.process(pcm(noise(8, 100, 1)))  # half a 1 ms step waits in the filter
    assert not rs.batchable(FRAME)
    rs.process(b"\x01")  # and an odd byte
    assert not StreamResampler(IN_RATE, IN_RATE).batchable(FRAME)


# ------------------------------------------------------------------ the batch itself
@pytest.mark.parametrize("seed", [5, 6, 7])
async def test_the_batch_sends_every_call_what_its_own_path_would(seed: int) -> None:
    """Calls of one, two and three people, at 16 kHz, 8 kHz (another filter and frame
    size) and 24 kHz (no filter), getting 10-60 ms pieces at random moments (so a tick can
    hold several frames of a call, or none): what each call's batch delivers equals what a
    twin InboundPath fed the same audio pops alone."""
    loop = asyncio.get_running_loop()
    batch = InboundBatch(loop)
    rates = [16000, 16000, 16000, 16000, 8000, 24000, 16000, 8000]
    people = [["a"], ["a", "b"], ["a", "b", "c"], ["a"], ["a", "b"], ["a", "b"], ["a"], ["a"]]
    calls = len(rates)
    paths = [InboundPath(max_lag_ms=500) for _ in range(calls)]
    twins = [InboundPath(max_lag_ms=500) for _ in range(calls)]
    sent: list[list[bytes]] = [[] for _ in range(calls)]
    want: list[list[bytes]] = [[] for _ in range(calls)]
    levels: list[list[tuple[str, float]]] = [[] for _ in range(calls)]

    def slot(i: int) -> BatchSlot:
        return BatchSlot(
            batch,
            lambda: paths[i],
            lambda heard: levels[i].extend(heard),
            lambda frames, now, picked: sent[i].extend(frames),
        )

    slots = [slot(i) for i in range(calls)]
    voices = {
        (i, p): noise(rates[i] * 8, 3000 / (j + 1), seed=100 * i + j)
        for i in range(calls)
        for j, p in enumerate(people[i])
    }
    for i in range(calls):
        for p in people[i]:
            paths[i].add(p)
            twins[i].add(p)
    rng = np.random.default_rng(seed)
    pos = [0] * calls
    now = time.monotonic()
    for _tick in range(120):
        now += 0.01
        for i in range(calls):
            if rng.random() < 0.3:  # this call got nothing in this tick
                continue
            n = rates[i] * int(rng.choice([10, 20, 40, 60])) // 1000
            heard = []
            for p in people[i]:
                piece = voices[(i, p)][pos[i] : pos[i] + n].tobytes()
                paths[i].push(p, piece, rates[i], now)
                twins[i].push(p, piece, rates[i], now)
                heard.append((p, piece, now))
            pos[i] += n
            batch.add(slots[i], now, heard)
            want[i].extend(twins[i].pop(now))
        batch.flush()
    assert batch.batched_frames > 0
    for i in range(calls):
        assert len(sent[i]) == len(want[i]) > 0, f"call {i}"
        assert [len(f) for f in sent[i]] == [len(f) for f in want[i]], f"call {i}"
        got = np.frombuffer(b"".join(sent[i]), "<i2").astype(int)
        ref = np.frombuffer(b"".join(want[i]), "<i2").astype(int)
        assert np.max(np.abs(got - ref)) <= 1, f"call {i}"
        who = [p for p, _ in levels[i]]
        assert who == [p for _ in range(len(who) // len(people[i])) for p in people[i]]
        assert all(e > 0 for _, e in levels[i])


async def test_a_leavers_tail_takes_the_calls_own_path() -> None:
    loop = asyncio.get_running_loop()
    batch = InboundBatch(loop)
    path, twin = InboundPath(max_lag_ms=500), InboundPath(max_lag_ms=500)
    got: list[bytes] = []
    slot = BatchSlot(batch, lambda: path, lambda heard: None, lambda f, now, picked: got.extend(f))
    voice = speech16(110)
    now = time.monotonic()
    for p in (path, twin):
        p.add("a")
        p.push("a", voice.tobytes(), IN_RATE, now)
        p.remove("a", now)  # left: the end still inside the filter must come out too
    batch.add(slot, now, [])
    batch.flush()
    want = twin.pop(now)
    assert batch.single_frames == len(want) > 0
    assert b"".join(got) == b"".join(want)


# ------------------------------------------------------------------ through a real bridge
@pytest.mark.parametrize("people", [1, 2])
async def test_bridge_weighs_each_speaker_through_the_batch(people: int) -> None:
    """Who spoke in the turn (transcript attribution) still comes from each participant's
    own frames: the louder one wins."""
    client = RecordingClient()
    bridge = bridge_with(client, max_lag_ms=500)
    bridge._user_speaking = True
    names = ["a", "b"][:people]
    for pid in names:
        bridge._on_joined(pid, pid.upper())
    loud, soft = speech16(200, seed=1), speech16(200, seed=2) // 8
    for i, (x, y) in enumerate(zip(pieces(loud), pieces(soft), strict=True)):
        frames = [("a", x, IN_RATE, time.monotonic())]
        if people == 2:
            frames.append(("b", y, IN_RATE, time.monotonic()))
        bridge.inbound._on_audio(frames)
        if i % 2:
            await asyncio.sleep(0)
    await client.until(2 * 24 * 180, timeout=5.0)
    best = bridge.roster.loudest()
    assert best is not None and best.id == "a"
    a = bridge.roster.get("a")
    assert a is not None and a.turn_energy == pytest.approx(
        float(np.sum(loud.astype(float) ** 2)), rel=1e-4
    )
    cancel_drain(bridge)
