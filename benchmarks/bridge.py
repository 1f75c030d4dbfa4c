"""Bridge under load: N concurrent calls in one process against the simulator, in real time.

Each session is a real :class:`botrun.core.bridge.Bridge` (resamplers, mixer, agent client,
pacer thread) wired to a synthetic transport that behaves like a meeting SDK: a thread of its
own delivers 20 ms PCM16 frames at 16 kHz for each participant (speech-like voiced bursts with
pauses, near-silence in between), and the bot's voice goes into a sink that accepts writes at
once, like Agora's push, and logs when each chunk arrived. Participant A says something, the
agent (the simulator, echoing) answers; in every other exchange someone talks into the reply,
so the bot is interrupted. The sink declares ``write_blocks = False``, so every call's pacer
runs on the process's one shared pacer thread (``--pacer-threads``: a thread per call, as a
blocking sink gets). Each session's 20 ms tick has its own random phase (calls join at
random moments; aligned ticks would make every frame queue behind all the others). The
simulator runs in a separate process (``botrun agent-sim``) on loopback, so its CPU is not
counted here.

Figures, each against its target (DESIGN.md, "Performance bars"):

* bridge processing latency p50/p99, inbound (``Bridge.metrics.inbound``: from the transport
  thread's ``audio()`` call, through the hand-off to the event loop, resampling and mixing,
  to the frame queued on the agent client) and outbound (``metrics.outbound``: resampling a
  ``reply.audio`` chunk and queueing it on the pacer). Deliberate batching (the mixer's 20 ms
  frames) and pacing are not in these figures; WebSocket encode/send and decode are the
  client's, outside both. Samples from the first second after all sessions are ready
  (connects, lazy imports) are discarded;
* CPU per session in % of one core: process CPU time / wall / N over the measured window.
  Reported raw, and net of an idle baseline measured first: the same N synthetic transports
  delivering the same audio to a do-nothing receiver. That baseline is the fake SDK's own
  cost (making audio, its threads waking every 20 ms), which in production is the meeting
  SDK's and not botrun's, so the target is checked against the net figure;
* stale audio after barge-in: for every ``barge_in`` event (observer on the loop, timestamped
  as it fires, after the pacer flush), the bot audio the sink still plays after that moment:
  what was written before it and had not played out yet (the sink plays chunks back to back
  from their arrival), plus anything written in the next 250 ms (the interrupted reply
  leaking through; the next reply cannot start that soon because the user is still talking);
* the WebSocket floor (benchmarks/ws_floor.py, run in this same process before the
  bridges and again after them, its sink in another process): N sessions that only send
  the 20 ms ``input.audio`` messages the bridge sends. The bridge's net CPU per session
  divided by the mean of the two floors is printed against the goal of 2x (the floor
  alone moved by a third between runs here; measuring it on both sides of the bridges
  brackets the machine's drift);
* bridge-added latency each way, end to end (issue 15): inbound, participant A's last
  sample of each 20 ms frame -> the ``input.audio`` message holding it handed to the socket
  (framed by websockets' protocol object, whose bytes go to the socket next, whether the
  client's writer task or the hand-off tick's direct send made it; the resampler's fixed
  2.75 ms group delay is not included); outbound, the first ``reply.audio`` of a reply
  off the socket -> the first write into the SDK after it; timed on the first ``PROBED``
  (10) sessions' connections, the probe's own work being inside the CPU window. Goal 30 ms
  each way, with zero pacer underruns and zero gaps heard inside replies (the sink's own
  timeline: a write more than 5 ms after it ran dry);
* peak RSS of the process (``ru_maxrss``), and the RSS before any session started (after
  loading SciPy, websockets and the agent client, so the difference is what sessions cost).

Diagnostics printed with them: CPU by kind of thread (event loop, pacers, synthetic SDK
threads; Linux ``/proc``), and how long the event-loop thread sat runnable but without a CPU
(``/proc/thread-self/schedstat``) together with the load average. On a small shared machine
that wait, not the bridge's code, makes the inbound latency tail: the loop cannot run a
frame's hand-off while it has no core.

Run: ``.venv/bin/python benchmarks/bridge.py [--sessions 50] [--seconds 20] [--participants
1|2] [--chunk-ms 20] [--pacer-threads]`` (``--sessions 5`` for a quick look).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from botrun.core import events as ev
from botrun.core.bridge import Bridge
from botrun.core.config import BotConfig, apply_overrides, config_from_dict
from botrun.core.events import BridgeEvent
from botrun.core.inbound import InboundPath
from botrun.core.metrics import LatencyStats
from botrun.core.transport import Transport, TransportEvents

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ws_floor import measure_floor  # a sibling script (benchmarks/ is not a package)

RATE = 16000
FRAME_MS = 20
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2
CYCLE_S = 6.5  # one exchange: A speaks, the agent answers (and is interrupted, every other)
LEAD_S = 1.0  # first words this long after joining (plus a per-session offset)
LEAK_WINDOW_S = 0.25
PROBED = 10  # sessions whose connections the wire probe times (the added-latency figures)
WARMUP_S = 1.0

TARGET_P99_MS = 2.0
TARGET_CPU_PCT = 1.0
TARGET_STALE_MS = 20.0  # issue 15: max at 50 sessions
TARGET_ADDED_MS = 30.0  # issue 15: bridge-added latency each way, zero pacer underruns
TARGET_FLOOR_RATIO = 2.0  # bridge net CPU per session <= 2x what sending the audio costs


# ---------------------------------------------------------------------- synthetic audio
def voiced(seconds: float, seed: int) -> bytes:
    """A speech-like burst: three harmonics of a gliding pitch, syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = (110 + 90 * rng.random()) * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase) / k for k in (1, 2, 3))
    syllables = 0.55 + 0.45 * np.abs(np.sin(np.pi * (3.5 + rng.random()) * t))
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    x = x * syllables * ramp
    pcm = x / np.max(np.abs(x)) * 0.3 * 32767
    return pcm.astype("<i2").tobytes()[: len(t) // (FRAME_BYTES // 2) * FRAME_BYTES]


def room_tone() -> bytes:
    """One frame of faint noise (about -66 dBFS): far below the agent's speech threshold."""
    rng = np.random.default_rng(7)
    return (rng.standard_normal(FRAME_BYTES // 2) * 16).astype("<i2").tobytes()


@dataclass(frozen=True)
class Utterance:
    start_s: float
    pcm: bytes

    @property
    def end_s(self) -> float:
        return self.start_s + len(self.pcm) / 2 / RATE


class Bank:
    """Utterances shared by all sessions (so 50 sessions do not hold 50 copies)."""

    def __init__(self) -> None:
        self.long = [voiced(1.0 + 0.1 * k, seed=k) for k in range(5)]
        self.short = [voiced(0.5 + 0.05 * k, seed=100 + k) for k in range(4)]
        self.tone = room_tone()


def script(
    bank: Bank, session: int, participants: int, seconds: float
) -> dict[str, list[Utterance]]:
    """Who says what when, relative to joining. A speaks, the echoed reply starts about
    min_silence (1 s) + think time (0.3 s) later; in every other exchange the interrupter (B,
    or A itself with one participant) talks 0.6 s into that reply."""
    rng = np.random.default_rng(1000 + session)
    offset = LEAD_S + rng.uniform(0, 1.5)
    lines: dict[str, list[Utterance]] = {"a": [], "b": []}
    c = 0
    while offset + c * CYCLE_S < seconds + WARMUP_S + 30:  # slow connects included
        said = Utterance(offset + c * CYCLE_S, bank.long[(session + c) % len(bank.long)])
        lines["a"].append(said)
        if (session + c) % 2 == 0:
            interrupter = "b" if participants == 2 else "a"
            lines[interrupter].append(
                Utterance(said.end_s + 1.3 + 0.6, bank.short[(session + c) % len(bank.short)])
            )
        c += 1
    if participants == 1:
        del lines["b"]
    return lines


# ---------------------------------------------------------------------- synthetic transport
class NullEvents:
    """Receives the transport's calls and does nothing (the idle baseline)."""

    def participant_joined(self, participant_id: str, name: str | None = None) -> None: ...
    def participant_updated(self, participant_id: str, name: str | None = None) -> None: ...
    def participant_left(self, participant_id: str, reason: str = "") -> None: ...
    def audio(self, participant_id: str, pcm: bytes, sample_rate: int) -> None: ...
    def ended(self, reason: str, error: str | None = None) -> None: ...


class SyntheticTransport(Transport):
    """A meeting SDK stand-in: one thread delivers every participant's 20 ms frames in real
    time; the voice sink returns at once and logs (arrival time, bytes) of each chunk."""

    name = "synthetic"
    output_sample_rate = RATE
    write_blocks = False  # like Agora's push: every call's pacer on one shared thread

    def __init__(self, lines: dict[str, list[Utterance]], tone: bytes, phase_s: float) -> None:
        self.lines = lines
        self.tone = tone
        self.phase_s = phase_s  # calls join at random moments: their 20 ms ticks are not aligned
        self.writes: list[tuple[float, int]] = []  # appended on the pacer thread only
        self.ticks: list[float] = []  # monotonic time each 20 ms tick's frames were handed over
        self.frames_delivered = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def bot_participant_id(self) -> str | None:
        return "bot"

    async def join(self, events: TransportEvents) -> None:
        for pid in self.lines:
            events.participant_joined(pid, pid.upper())
        self._thread = threading.Thread(
            target=self._deliver, args=(events,), daemon=True, name="synthetic-sdk"
        )
        self._thread.start()

    def _frame(self, pid: str, t: float) -> bytes:
        for u in self.lines[pid]:
            if u.start_s <= t < u.end_s:
                off = int((t - u.start_s) * RATE) * 2 // FRAME_BYTES * FRAME_BYTES
                return u.pcm[off : off + FRAME_BYTES] or self.tone
        return self.tone

    def _deliver(self, events: TransportEvents) -> None:
        t0 = time.monotonic() + self.phase_s
        k = 0
        while not self._stop.is_set():
            t = k * FRAME_MS / 1000
            delay = t0 + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # late? deliver at once, as an SDK catching up does
            self.ticks.append(time.monotonic())
            for pid in self.lines:
                events.audio(pid, self._frame(pid, t), RATE)
                self.frames_delivered += 1
            k += 1

    async def leave(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 1.0)

    def write_audio(self, pcm: bytes) -> None:
        self.writes.append((time.monotonic(), len(pcm)))

    def stale_after(self, t_b: float) -> float:
        """Seconds of bot audio heard after ``t_b``: the sink plays chunks back to back from
        their arrival; what was playing or queued at ``t_b`` plus anything written in the
        next LEAK_WINDOW_S counts."""
        writes = list(self.writes)
        stale = 0.0
        playing_until = 0.0
        for t, n in writes:
            if t > t_b + LEAK_WINDOW_S:
                break
            start = max(t, playing_until)
            playing_until = start + n / 2 / RATE
            stale += max(0.0, playing_until - max(start, t_b))
        return stale


def sink_gaps(writes: list[tuple[float, int]], t_from: float) -> list[float]:
    """Gaps heard inside replies: the sink plays chunks back to back from their arrival;
    a write that comes more than 5 ms after the sink ran dry, but less than 300 ms after
    (replies are at least a second apart: the user speaks, then the agent's 1 s
    min_silence), is a reply's audio arriving too late: a gap the listener hears. Seconds."""
    gaps = []
    playing_until = None
    for t, n in writes:
        if playing_until is not None and t >= t_from:
            dry = t - playing_until
            if 0.005 < dry < 0.3:
                gaps.append(dry)
        start = t if playing_until is None else max(t, playing_until)
        playing_until = start + n / 2 / RATE
    return gaps


def make_transport(
    bank: Bank, session: int, participants: int, seconds: float
) -> SyntheticTransport:
    phase = np.random.default_rng(session).uniform(0, FRAME_MS / 1000)
    return SyntheticTransport(script(bank, session, participants, seconds), bank.tone, phase)


# ---------------------------------------------------------------------- measurement
_HEAD = '{"type":"input.audio","audio":"'


class WireProbe:
    """Timestamps of some agent connections' traffic, per connection: when each
    ``input.audio`` message has been framed for the socket (its bytes are written next) and
    its PCM size, and when each ``reply.started`` / ``reply.audio`` came off the socket
    (handed to the client as it was read, or ``recv`` returned). Installed on the
    connection objects of a sample of the sessions (``PROBED``): it runs inside the
    measured CPU window, on the loop, so the benchmark's own bookkeeping is kept to the few
    sessions the latency figures need."""

    def __init__(self) -> None:
        self.sent: dict[int, list[tuple[float, int]]] = {}
        self.received: dict[int, list[tuple[float, str]]] = {}
        self._patched: list[tuple[Any, Any, Any]] = []  # (protocol, connection, on_text swap)
        self.base: dict[int, int] = {}  # audio bytes a connection had sent before install()

    def install(self, connections: list[tuple[Any, int]]) -> None:
        """Time ``(connection, audio bytes it has sent so far)``."""
        head_b = _HEAD.encode()
        for conn, sent_before in connections:
            proto = conn.protocol
            self.base[id(proto)] = sent_before
            sent = self.sent.setdefault(id(proto), [])
            received = self.received.setdefault(id(proto), [])

            def timed_send_text(
                data: Any, *args: Any, _send: Any = proto.send_text, _sent: Any = sent, **kw: Any
            ) -> None:
                # every text frame the client sends is made here, by the writer task or by
                # the hand-off tick's direct send, just before its bytes go to the socket
                _send(data, *args, **kw)
                if type(data) is bytes and data.startswith(head_b):
                    n = (len(data) - len(head_b) - 2) * 3 // 4
                    n -= (data[-3] == 61) + (data[-4] == 61)
                    _sent.append((time.monotonic(), n))

            def note(message: Any, t: float, _received: Any = received) -> None:
                head = message[:40] if isinstance(message, str) else ""
                if '"reply.audio"' in head:
                    _received.append((t, "audio"))
                elif '"reply.started"' in head:
                    _received.append((t, "started"))

            async def timed_recv(
                *args: Any, _recv: Any = conn.recv, _note: Any = note, **kw: Any
            ) -> Any:
                message = await _recv(*args, **kw)
                _note(message, time.monotonic())
                return message

            # a ready session's whole text messages are handed to the client as the socket
            # reads them (core/agent_socket.py): time them there, before the handling
            def timed_on_text(
                message: str, _on_text: Any = conn.on_text, _note: Any = note
            ) -> bool:
                t = time.monotonic()
                if not _on_text(message):
                    return False  # left to recv(): timed there
                _note(message, t)
                return True

            proto.send_text = timed_send_text
            conn.recv = timed_recv
            if conn.on_text is not None:
                self._patched.append((proto, conn, (timed_on_text, conn.on_text)))
                conn.on_text = timed_on_text
            else:
                self._patched.append((proto, conn, None))

    def uninstall(self) -> None:
        for proto, conn, wrapped in self._patched:
            del proto.send_text, conn.recv  # the classes' own again
            if wrapped is not None and conn.on_text is wrapped[0]:
                conn.on_text = wrapped[1]
        self._patched.clear()


def inbound_latencies(
    ticks: list[float], sent: list[tuple[float, int]], t_from: float, t_to: float, base: int = 0
) -> list[float]:
    """Participant A's last sample of each 20 ms tick -> the input.audio message holding
    what the bridge made of it handed to the socket, for ticks in [t_from, t_to). A's
    16 kHz frame k becomes 24 kHz stream bytes up to 960 * (k + 1) (the resampler returns
    whole 1 ms steps); A's track is the mix's timeline (both participants start together,
    their frames arrive together), so the mixed stream's byte offsets are A's. ``base``:
    the bytes sent before the first message in ``sent``."""
    if not sent:
        return []
    t_sent = np.array([t for t, _ in sent])
    cum = base + np.cumsum([n for _, n in sent])
    out = []
    step = FRAME_BYTES * 3 // 2  # 24 kHz bytes per 20 ms frame at 16 kHz
    for k, t in enumerate(ticks):
        if not t_from <= t < t_to:
            continue
        i = int(np.searchsorted(cum, step * (k + 1)))
        if i < len(cum):
            out.append(float(t_sent[i] - t))
    return out


def outbound_latencies(
    received: list[tuple[float, str]], writes: list[tuple[float, int]], t_from: float
) -> list[float]:
    """First ``reply.audio`` of each reply off the socket -> the first write into the SDK
    after it (the pacer hands the reply's first sample over). A reply muted by a barge-in
    before any of it played has no write within 0.5 s and is skipped."""
    firsts = []
    fresh = False
    for t, kind in received:
        if kind == "started":
            fresh = True
        elif fresh:
            fresh = False
            if t >= t_from:
                firsts.append(t)
    t_w = np.array([t for t, _ in writes])
    out = []
    for t in firsts:
        i = int(np.searchsorted(t_w, t))
        if i < len(t_w) and t_w[i] - t < 0.5:
            out.append(float(t_w[i] - t))
    return out


class SharedStats(LatencyStats):
    """A bridge's latency stats kept in one list shared by all sessions, as ``(seconds,
    count)`` (no more work per delivery than the bridge's own; :func:`expand` makes the
    samples afterwards)."""

    def __init__(self, sink: list[tuple[float, int]]) -> None:
        super().__init__(capacity=1)
        self._sink = sink

    def add(self, seconds: float, count: int = 1) -> None:
        self._sink.append((seconds, count))


def expand(records: list[tuple[float, int]]) -> list[float]:
    """The samples :class:`SharedStats` recorded, ``count`` of each."""
    return [seconds for seconds, count in records for _ in range(count)]


@dataclass
class Session:
    transport: SyntheticTransport
    bridge: Bridge | None = None
    barge_ins: list[tuple[float, str, float]] = field(default_factory=list)  # t, cause, ms
    turn_ms: list[float] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def observe(self, e: BridgeEvent) -> None:
        if e.kind == ev.BARGE_IN:
            self.barge_ins.append(
                (time.monotonic(), e.data.get("cause", ""), e.data.get("flushed_ms", 0.0))
            )
        elif isinstance(e, ev.ReplyStarted) and e.latency_ms is not None:
            self.turn_ms.append(e.latency_ms)
        elif e.kind == ev.SESSION_STATE and e.data.get("state") == "ready":
            self.ready.set()


def warm_up_imports() -> None:
    """Load what every session needs (SciPy's filter design, websockets, the agent client)
    before the RSS baseline, so "per session" means per session."""
    from botrun.core import client  # noqa: F401
    from botrun.core.audio.resampler import StreamResampler

    StreamResampler(RATE, 24000)
    StreamResampler(24000, RATE)


def cpu_s() -> float:
    return time.process_time()


def loop_runqueue_wait_s() -> float:
    """Seconds the event-loop thread (this one) has spent runnable but waiting for a CPU
    (Linux schedstat; 0 elsewhere): high when the machine is oversubscribed."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each kind of live thread (Linux /proc; empty elsewhere): the
    event loop, the pacers, the synthetic SDK threads, asyncio's to_thread workers."""
    tick = os.sysconf("SC_CLK_TCK")
    kinds: dict[str, float] = {}
    for th in threading.enumerate():
        try:
            with open(f"/proc/self/task/{th.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        kind = "event loop" if th is threading.main_thread() else th.name.split("_")[0]
        kinds[kind] = kinds.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return kinds


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_simulator() -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "botrun.bots.cli",
            "agent-sim",
            "--port",
            "0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


async def baseline(bank: Bank, n: int, participants: int, seconds: float) -> float:
    """CPU seconds per wall second of N synthetic transports feeding a do-nothing receiver."""
    transports = [make_transport(bank, i, participants, seconds) for i in range(n)]
    for t in transports:
        await t.join(NullEvents())
    await asyncio.sleep(0.3)
    c0, w0 = cpu_s(), time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (cpu_s() - c0) / (time.perf_counter() - w0)
    await asyncio.gather(*(t.leave() for t in transports))
    return rate


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


def ratio_line(label: str, value: float, target: float, unit: str) -> str:
    verdict = "ok" if value <= target else "OVER"
    return (
        f"{label:34s} {value:8.3f} {unit:3s} target <= {target:g} {unit}  "
        f"ratio {value / target:5.2f}  {verdict}"
    )


async def run(args: argparse.Namespace) -> int:
    load0 = os.getloadavg()
    warm_up_imports()
    bank = Bank()
    base_cpu = await baseline(bank, args.sessions, args.participants, args.baseline_seconds)
    floor = await measure_floor(args.sessions, args.floor_seconds)
    rss_before = rss_mb()
    probe = WireProbe()

    proc = start_simulator()
    assert proc.stdout is not None
    url = (await asyncio.to_thread(proc.stdout.readline)).strip()
    if not url.startswith("ws://"):
        print("simulator did not start:", proc.communicate(timeout=10)[1])
        return 1

    cfg: BotConfig = apply_overrides(
        config_from_dict({"agent": {"greeting": ""}}),
        {"agent.url": url, "bridge.chunk_ms": args.chunk_ms},
    )
    inbound_records: list[tuple[float, int]] = []
    outbound_records: list[tuple[float, int]] = []
    sessions = [
        Session(make_transport(bank, i, args.participants, args.seconds))
        for i in range(args.sessions)
    ]
    for s in sessions:
        s.bridge = Bridge(s.transport, cfg, observers=[s.observe])
    bridges = [s.bridge for s in sessions if s.bridge is not None]
    runs = asyncio.gather(*(b.run() for b in bridges))
    try:
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in sessions)), 30)
    except TimeoutError:
        print(
            f"only {sum(s.ready.is_set() for s in sessions)} of {len(sessions)} sessions "
            "became ready within 30 s"
        )
    await asyncio.sleep(WARMUP_S)
    for b in bridges:  # steady state only: drop connect-time and first-import samples
        b.metrics.inbound = SharedStats(inbound_records)
        b.metrics.outbound = SharedStats(outbound_records)
    conns = {
        i: id(getattr(getattr(s.bridge.client, "_ws", None), "protocol", None))
        for i, s in enumerate(sessions)
        if s.bridge
    }
    probe.install(
        [
            (s.bridge.client._ws, s.bridge.client.stats.audio_sent_bytes)  # type: ignore[union-attr]
            for s in sessions[:PROBED]
            if s.bridge and getattr(s.bridge.client, "_ws", None) is not None
        ]
    )
    t_from = time.monotonic()
    c0, w0, k0, q0 = cpu_s(), time.perf_counter(), thread_cpu(), loop_runqueue_wait_s()
    await asyncio.sleep(args.seconds)
    t_to = time.monotonic()
    cpu, wall, k1 = cpu_s() - c0, time.perf_counter() - w0, thread_cpu()
    queued = loop_runqueue_wait_s() - q0
    load1 = os.getloadavg()
    for b in bridges:
        b.stop("benchmark over")
    summaries = await runs
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.to_thread(proc.communicate, timeout=30)
    sim = resource.getrusage(resource.RUSAGE_CHILDREN)
    sim_cpu = sim.ru_utime + sim.ru_stime
    # the floor again, bridges gone: the machine's state drifts within a run, and the
    # ratio divides by the mean of the floor before and after the bridges
    probe.uninstall()
    inbound, outbound = expand(inbound_records), expand(outbound_records)
    floor_after = await measure_floor(args.sessions, args.floor_seconds)
    floor_pct = (floor.cpu_pct_per_session + floor_after.cpu_pct_per_session) / 2

    n = args.sessions
    stale = [
        (s.transport.stale_after(t) * 1000, cause, flushed, i)
        for i, s in enumerate(sessions)
        for t, cause, flushed in s.barge_ins
    ]
    stale_ms = [x[0] for x in stale]
    turns = [x for s in sessions for x in s.turn_ms]
    errors = [str(x.error) for x in summaries if x.error is not None]
    cpu_raw = 100 * cpu / wall / n
    cpu_base = 100 * base_cpu / n
    cpu_net = cpu_raw - cpu_base
    dropped = sum(getattr(x.client_stats, "audio_dropped_ms", 0.0) or 0.0 for x in summaries)
    underruns = sum(b.pacer.underruns for b in bridges if b.pacer is not None)
    late_audio = sum(b.pacer.stats.late_audio for b in bridges if b.pacer is not None)
    chunks = sum(len(s.transport.writes) for s in sessions)
    gaps = [g for s in sessions for g in sink_gaps(list(s.transport.writes), t_from)]
    lat_in = [
        x
        for i, s in enumerate(sessions)
        for x in inbound_latencies(
            s.transport.ticks,
            probe.sent.get(conns[i], []),
            t_from,
            t_to,
            probe.base.get(conns[i], 0),
        )
    ]
    lat_out = [
        x
        for i, s in enumerate(sessions)
        for x in outbound_latencies(probe.received.get(conns[i], []), s.transport.writes, t_from)
    ]
    frames = sum(s.transport.frames_delivered for s in sessions)

    print(
        f"sessions: {n} bridges in one process, {args.participants} participant(s) each, "
        f"chunk_ms {args.chunk_ms}, pacers "
        f"{'a thread each' if args.pacer_threads else 'on one shared thread'}, "
        f"{args.seconds:.0f} s measured in real time "
        f"(+{WARMUP_S:.0f} s warm-up), simulator in its own process"
    )
    print(
        f"machine: {os.cpu_count()} cores; load average before {load0[0]:.2f}, "
        f"at the end {load1[0]:.2f} (1 min)"
    )
    print(
        f"traffic: {frames} participant frames in, {chunks} bot chunks out, "
        f"{sum(len(x.metrics.turns) for x in summaries)} agent replies, "
        f"{len(stale_ms)} barge-ins; errors {len(errors)}, inbound dropped {dropped:.0f} ms, "
        f"pacer underruns {underruns}"
    )
    for e in sorted(set(errors))[:5]:
        print("  error:", e)
    if turns:
        print(
            f"turn latency (user stops -> bot audio out, includes the agent's 1 s "
            f"min_silence + 0.3 s think time): median {statistics.median(turns):.0f} ms"
        )
    print(
        f"inbound  latency: p50 {pct(inbound, 50) * 1000:.3f} ms, p99 "
        f"{pct(inbound, 99) * 1000:.3f} ms, max {max(inbound, default=0) * 1000:.1f} ms "
        f"({len(inbound)} frames)"
    )
    print(
        f"outbound latency: p50 {pct(outbound, 50) * 1000:.3f} ms, p99 "
        f"{pct(outbound, 99) * 1000:.3f} ms, max {max(outbound, default=0) * 1000:.1f} ms "
        f"({len(outbound)} chunks)"
    )
    print(
        f"CPU: {100 * cpu / wall:.1f} % of one core in all = {cpu_raw:.3f} % per session; "
        f"idle baseline (synthetic SDK threads alone) {cpu_base:.3f} % per session; "
        f"net {cpu_net:.3f} % per session"
    )
    by_kind = {k: v - k0.get(k, 0.0) for k, v in k1.items()}
    print(
        "  by thread (% of one core, all sessions): "
        + ", ".join(
            f"{k} {100 * v / wall:.1f}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])
        )
    )
    print(
        f"  the event loop thread waited {1000 * queued / wall:.0f} ms per second for a CPU "
        "(runnable, not running: the machine's other work and this process's other threads)"
    )
    print(
        f"bridge-added latency, inbound (A's last sample of a frame -> the input.audio "
        f"holding it handed to the socket): p50 {pct(lat_in, 50) * 1000:.1f} ms, "
        f"p99 {pct(lat_in, 99) * 1000:.1f} ms, max {max(lat_in, default=0) * 1000:.1f} ms "
        f"({len(lat_in)} frames; plus the resampler's fixed 2.75 ms group delay)"
    )
    trimmed = sum(
        b.inbound._inbound._mixer.stats.trimmed_ms
        for b in bridges
        if isinstance(b.inbound._inbound, InboundPath) and b.inbound._inbound._mixer is not None
    )
    early = sum(1 for x in lat_in if x < 0)
    if early or trimmed or dropped:
        # the figure maps A's frames to the stream's byte offsets: audio the mixer trimmed
        # (a backlog after a stall) or the client dropped shifts every later frame
        print(
            f"  (not reliable in this run: the mixer trimmed {trimmed:.0f} ms and the client "
            f"dropped {dropped:.0f} ms of a starved loop's backlog, so {early} frames map to "
            "a message sent before they were captured)"
        )
    print(
        f"bridge-added latency, outbound (first reply.audio off the socket -> its first "
        f"sample written to the SDK): p50 {pct(lat_out, 50) * 1000:.1f} ms, "
        f"p99 {pct(lat_out, 99) * 1000:.1f} ms, max {max(lat_out, default=0) * 1000:.1f} ms "
        f"({len(lat_out)} replies); pacer underruns {underruns} ({late_audio} of them "
        f"audio that came after the sink ran dry); gaps heard inside "
        f"replies {len(gaps)} (longest {max(gaps, default=0) * 1000:.0f} ms)"
    )
    print(f"simulator process CPU (not counted above): {sim_cpu:.1f} s")
    print(floor.describe().replace("ws floor:", "ws floor before the bridges:", 1))
    print(floor_after.describe().replace("ws floor:", "ws floor after the bridges:", 1))
    if stale_ms:
        print(
            f"stale after barge-in: median {statistics.median(stale_ms):.1f} ms, "
            f"max {max(stale_ms):.1f} ms"
        )
        for ms, cause, flushed, i in sorted(stale, reverse=True)[:3]:
            if ms > TARGET_STALE_MS:
                print(
                    f"  over target: session {i}, {ms:.1f} ms stale (cause {cause}, "
                    f"{flushed:.0f} ms flushed from the pacer queue)"
                )
    print(
        f"RSS: {rss_before:.0f} MB before the sessions, peak {rss_mb():.0f} MB "
        f"({(rss_mb() - rss_before) / n:.2f} MB per session)"
    )
    print("-- against the targets (ratio = measured / target; <= 1 meets it)")
    print(ratio_line("inbound p99", pct(inbound, 99) * 1000, TARGET_P99_MS, "ms"))
    print(ratio_line("outbound p99", pct(outbound, 99) * 1000, TARGET_P99_MS, "ms"))
    print(ratio_line("CPU per session (net)", cpu_net, TARGET_CPU_PCT, "%"))
    floor_ratio = cpu_net / floor_pct
    print(
        f"{'bridge net CPU per session / floor':34s} {floor_ratio:8.2f} x   "
        f"target <= {TARGET_FLOOR_RATIO:g} x    "
        f"ratio {floor_ratio / TARGET_FLOOR_RATIO:5.2f}  "
        f"{'ok' if floor_ratio <= TARGET_FLOOR_RATIO else 'OVER'}  "
        f"({cpu_net:.3f} % / {floor_pct:.3f} %, the floor's mean before and after)"
    )
    if stale_ms:
        print(ratio_line("stale after barge-in (max)", max(stale_ms), TARGET_STALE_MS, "ms"))
    if lat_in:
        print(
            ratio_line("added latency inbound (p99)", pct(lat_in, 99) * 1000, TARGET_ADDED_MS, "ms")
        )
    if lat_out:
        print(
            ratio_line("added latency outbound (max)", max(lat_out) * 1000, TARGET_ADDED_MS, "ms")
        )
    print(f"{'pacer underruns':34s} {underruns:8d}     target 0")
    print(f"{'gaps heard inside replies':34s} {len(gaps):8d}     target 0")
    if n != 50:
        print("(the latency target is stated for 50 sessions; this run had", n, ")")
    if "Traceback" in err:
        print("simulator stderr had a traceback:\n" + err)
        return 1
    return 1 if errors or not inbound or not outbound else 0


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=50, help="concurrent bridges (default 50)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds (default 20)")
    p.add_argument(
        "--participants",
        type=int,
        choices=(1, 2),
        default=2,
        help="participants per session (default 2: a speaker and an interrupter)",
    )
    p.add_argument(
        "--chunk-ms",
        type=int,
        default=20,
        help="bridge.chunk_ms: inbound batch per WebSocket message (default 20)",
    )
    p.add_argument(
        "--pacer-threads",
        action="store_true",
        help="one pacer thread per call (a blocking sink's way) instead of the shared one",
    )
    p.add_argument(
        "--baseline-seconds",
        type=float,
        default=3.0,
        help="seconds of the idle baseline (synthetic transports alone)",
    )
    p.add_argument(
        "--floor-seconds",
        type=float,
        default=5.0,
        help="seconds of the WebSocket floor (benchmarks/ws_floor.py; default 5)",
    )
    args = p.parse_args()
    SyntheticTransport.write_blocks = args.pacer_threads
    if args.sessions < 1 or args.seconds <= 0:
        p.error("--sessions must be >= 1 and --seconds > 0")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
