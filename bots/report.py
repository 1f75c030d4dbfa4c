"""``botrun report DIR``: a recorded call (core/recording.py) as one self-contained HTML
file: both sides' waveforms on one time axis, what each side said placed on it, barge-ins,
tool calls, per-turn latency and the call summary.

Reading is forgiving: a recording cut short (the process killed, a file missing or
truncated, the last line half-written) still renders, and the report says what is missing.
The timeline is inline SVG drawn here (no script, no network): every mark carries
``data-kind``, ``data-start`` and ``data-end`` (seconds), so the file can be read back."""

from __future__ import annotations

import html
import json
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from botrun.core.recording import BOT_WAV, END, EVENTS, MIX_WAV, START

REPORT = "report.html"
WIDTH = 1100  # px of the time axis
LEFT = 110  # px for the lane labels


@dataclass
class Track:
    samples: np.ndarray
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0


@dataclass
class Segment:
    kind: str  # user-speech, agent-reply, tool-call, latency, barge-in
    start: float
    end: float
    text: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recording:
    directory: Path
    start: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    mix: Track | None = None
    bot: Track | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        ts = [float(e.get("t", 0.0)) for e in self.events]
        if self.end is not None:
            ts.append(float(self.end.get("t", 0.0)))
        for tr in (self.mix, self.bot):
            if tr is not None:
                ts.append(tr.seconds)
        return max([*ts, 0.001])


def _read_wav(path: Path, what: str, problems: list[str]) -> Track | None:
    if path.is_dir():
        problems.append(f"{path.name} is a directory, not a WAV file: no waveform of {what}.")
        return None
    if not path.is_file():
        problems.append(f"{path.name} is missing: no waveform of {what}.")
        return None
    if path.stat().st_size == 0:
        problems.append(f"{path.name} is empty (0 bytes): no waveform of {what}.")
        return None
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                problems.append(f"{path.name} is not mono PCM16: no waveform of {what}.")
                return None
            rate = w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        why = str(exc) or type(exc).__name__  # (EOFError() says nothing: a truncated header)
        if isinstance(exc, EOFError):
            why = "its header is cut short"
        problems.append(f"{path.name} is unreadable ({why}): no waveform of {what}.")
        return None
    frames = frames[: len(frames) & ~1]
    return Track(np.frombuffer(frames, dtype="<i2"), rate)


_NUM = (int, float)
#: The fields the report reads, by event kind, and the types they must have (None allowed
#: where the bridge sends it).
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "reply.started": {"latency_ms": (*_NUM, type(None))},
    "reply.interrupted": {"flushed_ms": _NUM},
    "tool.call": {"name": (str,), "duration_ms": (*_NUM, type(None))},
    "transcript.user": {"text": (str,)},
    "transcript.agent": {"text": (str,)},
}


def _bad_field(obj: dict[str, Any]) -> str | None:
    """The first field of a known event that has the wrong type (a damaged or edited
    file), else None."""
    for name, types in _FIELDS.get(str(obj.get("kind")), {}).items():
        value = obj.get(name)
        if name in obj and (not isinstance(value, types) or isinstance(value, bool)):
            return name
    return None


def load_recording(directory: Path) -> Recording:
    """Read a recording; what is missing or damaged goes to ``problems``, never raises for
    the content (only for a ``directory`` that is not one)."""
    rec = Recording(directory)
    path = directory / EVENTS
    if path.is_dir():
        rec.problems.append(
            f"{EVENTS} is a directory, not a file: no transcript, turns, barge-ins or tool calls."
        )
    elif not path.is_file():
        rec.problems.append(f"{EVENTS} is missing: no transcript, turns, barge-ins or tool calls.")
    else:
        raw = path.read_bytes().decode("utf-8", errors="replace")
        lines = raw.split("\n")
        cut_last = bool(lines) and lines[-1] != ""  # no newline after the last line
        body = [ln for ln in lines if ln.strip()]
        for i, line in enumerate(body, 1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                last = i == len(body)
                rec.problems.append(
                    f"the last line of {EVENTS} is cut off (the recording was interrupted "
                    "while writing it)."
                    if last and cut_last
                    else f"line {i} of {EVENTS} is not JSON: skipped."
                )
                continue
            t = obj.get("t") if isinstance(obj, dict) else None
            if not isinstance(t, int | float) or isinstance(t, bool) or not 0 <= t < 1e7:
                rec.problems.append(f"line {i} of {EVENTS} is not an event: skipped.")
                continue
            bad = _bad_field(obj)
            if bad is not None:
                rec.problems.append(
                    f"line {i} of {EVENTS}: a {str(obj.get('kind'))[:40]} event with a bad "
                    f"'{bad}': skipped."
                )
                continue
            if obj.get("kind") == START:
                rec.start = obj
            elif obj.get("kind") == END:
                rec.end = obj
            else:
                rec.events.append(obj)
        if rec.start is None:
            rec.problems.append(f"{EVENTS} has no {START} line: the rates are assumed.")
        if rec.end is None:
            rec.problems.append(
                f"{EVENTS} has no {END} line: the recording stopped before the call ended "
                "(the process was killed?); the timeline shows what was written, and the "
                "summary is worked out from the events."
            )
    rec.mix = _read_wav(directory / MIX_WAV, "the participants", rec.problems)
    rec.bot = _read_wav(directory / BOT_WAV, "the bot", rec.problems)
    if rec.end is not None:
        for tr, name, key in ((rec.mix, MIX_WAV, "mix_s"), (rec.bot, BOT_WAV, "bot_s")):
            want = rec.end.get(key)
            if tr is not None and isinstance(want, int | float) and tr.seconds < want - 0.05:
                rec.problems.append(
                    f"{name} holds {tr.seconds:.2f} s of the {want:.2f} s recorded: the rest "
                    "is missing (the file was cut short)."
                )
    return rec


def segments(rec: Recording) -> list[Segment]:
    """The timeline's marks, worked out from the events in order."""
    out: list[Segment] = []
    end_t = rec.duration
    speech: Segment | None = None
    pending_user: list[Segment] = []  # speech turns still waiting for their transcript
    reply: Segment | None = None
    last_reply: Segment | None = None
    for e in rec.events:
        t = float(e["t"])
        kind = e.get("kind")
        if kind == "speech.started":
            speech = Segment("user-speech", t, t, detail={"who": e.get("name") or ""})
        elif kind == "speech.stopped" and speech is not None:
            speech.end = t
            out.append(speech)
            pending_user.append(speech)
            speech = None
        elif kind == "transcript.user" and e.get("final", True):
            # the latest speech turn gets the words; earlier ones still waiting got none
            # (the agent's VAD split an utterance, or heard a noise)
            target = pending_user[-1] if pending_user else speech
            pending_user.clear()
            if target is None:  # words with no speech marks: a point on the axis
                target = Segment("user-speech", t, t)
                out.append(target)
            target.text = str(e.get("text", ""))
            if e.get("participant_name"):
                target.detail["who"] = e["participant_name"]
        elif kind == "reply.started":
            if reply is None or "started" in reply.detail:
                reply = Segment("agent-reply", t, t)
                out.append(reply)
            # (a reply whose words came first starts here, where its audio does)
            reply.start = reply.end = t
            reply.detail["started"] = True
            lat = e.get("latency_ms")
            if isinstance(lat, int | float):
                out.append(Segment("latency", t - lat / 1000, t, f"{lat:.0f} ms", {"ms": lat}))
        elif kind == "transcript.agent":
            final = bool(e.get("final", True))
            if reply is not None:
                target = reply
            elif last_reply is not None and not last_reply.detail.get("final"):
                # the words of a reply the call ended under come after its reply.done
                if not final:
                    continue
                target = last_reply
            else:
                # words with no reply.started (yet): a greeting cut before its audio
                # played, or a reply whose words come before its audio
                target = reply = Segment("agent-reply", t, t)
                out.append(reply)
            target.text = str(e.get("text", ""))
            if final:
                target.detail["final"] = True
            if e.get("interrupted"):
                target.detail["interrupted"] = True
        elif kind == "reply.done" and reply is not None:
            reply.end = t
            reply.detail["status"] = e.get("status", "")
            last_reply, reply = reply, None
        elif kind == "reply.interrupted":
            out.append(
                Segment(
                    "barge-in",
                    t,
                    t,
                    f"barge-in: {float(e.get('flushed_ms', 0)):.0f} ms dropped",
                    {"cause": e.get("cause", "")},
                )
            )
        elif kind == "call.action":
            err = e.get("error")
            what = f"{e.get('action', '')}: {e.get('detail', '')}" + (
                f" (failed: {err})" if err else ""
            )
            out.append(Segment("call-action", t, t, what))
        elif kind == "dtmf":
            out.append(Segment("dtmf", t, t, f"keypad {e.get('digit', '')}"))
        elif kind == "tool.call":
            dur = float(e.get("duration_ms") or 0) / 1000
            out.append(
                Segment(
                    "tool-call",
                    max(0.0, t - dur),
                    t,
                    str(e.get("name", "")),
                    {
                        "arguments": e.get("arguments"),
                        "result": e.get("result"),
                        "error": e.get("error"),
                        "duration_ms": e.get("duration_ms"),
                    },
                )
            )
    if speech is not None:
        speech.end = end_t
        out.append(speech)
    if reply is not None and reply.end <= reply.start:
        reply.end = end_t
        reply.detail["status"] = "unfinished"
    return out


def _figures(rec: Recording, segs: list[Segment]) -> tuple[int, int, int, list[float]]:
    """Agent replies, how many were interrupted, barge-ins and latencies (ms): the call
    summary's own figures (the console's) when the end line has them, else the per-turn
    metrics events the same figures are made of, else the timeline's marks."""
    fig = (rec.end or {}).get("summary")
    fig = fig if isinstance(fig, dict) else {}
    metrics = [e for e in rec.events if e.get("kind") == "turn.metrics"]
    replies = [s for s in segs if s.kind == "agent-reply"]

    def count(key: str, fallback: int) -> int:
        value = fig.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else fallback

    if metrics:
        turns, cut = len(metrics), sum(1 for e in metrics if e.get("interrupted"))
    else:
        turns, cut = len(replies), sum(1 for r in replies if _cut(r))
    lat = fig.get("latencies_ms")
    if not (isinstance(lat, list) and all(isinstance(x, int | float) for x in lat)):
        lat = [s.detail["ms"] for s in segs if s.kind == "latency"]
    return (
        count("turns", turns),
        count("interrupted_turns", cut),
        count("barge_ins", sum(1 for s in segs if s.kind == "barge-in")),
        sorted(float(x) for x in lat),
    )


def summary(rec: Recording, segs: list[Segment]) -> list[tuple[str, str]]:
    replies, cut, barge_ins, lat = _figures(rec, segs)
    tools = [s for s in segs if s.kind == "tool-call"]
    said = sum(1 for e in rec.events if e.get("kind") == "transcript.user" and e.get("final", True))
    vad = sum(1 for s in segs if s.kind == "user-speech")
    rows = [
        ("call length", f"{rec.duration:.1f} s"),
        ("transport", str((rec.start or {}).get("transport") or "unknown")),
        ("started", str((rec.start or {}).get("started_at") or "unknown")),
        ("ended", str((rec.end or {}).get("reason") or "not recorded")),
        ("user turns", f"{said} ({vad} speech segments)"),
        ("agent replies", f"{replies} ({cut} interrupted)"),
        ("barge-ins", str(barge_ins)),
        ("tool calls", f"{len(tools)} ({sum(1 for s in tools if s.detail.get('error'))} failed)"),
    ]
    acts = [s.text for s in segs if s.kind == "call-action"]
    if acts:
        rows.append(("call actions", "; ".join(acts)))
    if lat:
        rows.append(
            (
                "latency (you stop → bot audio)",
                f"median {lat[len(lat) // 2]:.0f} ms, min {lat[0]:.0f} ms, max {lat[-1]:.0f} ms",
            )
        )
    errors = [e for e in rec.events if e.get("kind") == "error"]
    if errors:
        rows.append(("agent errors", "; ".join(str(e.get("message", "")) for e in errors)))
    if rec.end and rec.end.get("error"):
        rows.append(("error", str(rec.end["error"])))
    return rows


def _cut(s: Segment) -> bool:
    """The reply did not finish: interrupted, or its connection or the call ended under it."""
    status = s.detail.get("status", "completed")
    return bool(s.detail.get("interrupted")) or status != "completed"


# ---------------------------------------------------------------------------- rendering
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _x(t: float, duration: float) -> float:
    return LEFT + max(0.0, t) / duration * WIDTH


def _wave_path(track: Track, duration: float, mid: float, half: float) -> str:
    n = len(track.samples)
    cols = max(1, min(n, round(WIDTH * track.seconds / duration)))
    if n == 0:
        return ""
    edges = np.linspace(0, n, cols + 1).astype(int)[:-1]
    x = track.samples.astype(np.int32)
    hi = np.maximum.reduceat(x, edges) / 32768.0
    lo = np.minimum.reduceat(x, edges) / 32768.0
    step = WIDTH * track.seconds / duration / cols
    top = " ".join(f"{LEFT + i * step:.1f},{mid - v * half:.1f}" for i, v in enumerate(hi))
    bottom = " ".join(
        f"{LEFT + i * step:.1f},{mid - v * half:.1f}" for i, v in reversed(list(enumerate(lo)))
    )
    return f"M{top} L{bottom} Z"


def _mark(seg: Segment, y: float, h: float, duration: float, cls: str, title: str) -> str:
    x0, x1 = _x(seg.start, duration), _x(seg.end, duration)
    w = max(2.0, x1 - x0)
    return (
        f'<g class="mark {cls}" data-kind="{_e(seg.kind)}" data-start="{seg.start:.3f}" '
        f'data-end="{seg.end:.3f}" data-text="{_e(seg.text)}">'
        f'<rect x="{x0:.1f}" y="{y}" width="{w:.1f}" height="{h}" rx="2"/>'
        f"<title>{_e(title)}</title></g>"
    )


def timeline_svg(rec: Recording, segs: list[Segment]) -> str:
    d = rec.duration
    lanes = [("participants", 70), ("bot", 70), ("you said", 26), ("bot said", 26),
             ("latency", 22), ("tools", 22), ("actions", 22)]  # fmt: skip
    y, ys = 24, {}
    for name, h in lanes:
        ys[name] = (y, h)
        y += h + 8
    height = y + 4
    parts = [
        f'<svg class="timeline" viewBox="0 0 {LEFT + WIDTH + 10} {height}" '
        f'width="{LEFT + WIDTH + 10}" height="{height}" role="img" '
        f'aria-label="call timeline" data-duration="{d:.3f}">'
    ]
    step = next(s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1e9) if d / s <= 16)
    t = 0.0
    while t <= d + 1e-9:
        x = _x(t, d)
        parts.append(
            f'<line class="tick" x1="{x:.1f}" y1="16" x2="{x:.1f}" y2="{height}"/>'
            f'<text class="ticklabel" x="{x:.1f}" y="12">{t:g} s</text>'
        )
        t += step
    for name, (ly, lh) in ys.items():
        parts.append(f'<text class="lane" x="4" y="{ly + lh / 2 + 4:.0f}">{_e(name)}</text>')
    for name, track, cls in (("participants", rec.mix, "mix"), ("bot", rec.bot, "bot")):
        ly, lh = ys[name]
        if track is None:
            parts.append(
                f'<text class="missing" x="{LEFT + 8}" y="{ly + lh / 2 + 4:.0f}">missing</text>'
            )
            continue
        path = _wave_path(track, d, ly + lh / 2, lh / 2)
        parts.append(
            f'<path class="wave {cls}" data-kind="waveform-{cls}" '
            f'data-seconds="{track.seconds:.3f}" d="{path}"/>'
        )
    for s in segs:
        if s.kind == "user-speech":
            ly, lh = ys["you said"]
            who = s.detail.get("who") or "you"
            parts.append(_mark(s, ly, lh, d, "user", f"{who}: {s.text or '(no transcript)'}"))
        elif s.kind == "agent-reply":
            ly, lh = ys["bot said"]
            cut = " [interrupted]" if _cut(s) else ""
            parts.append(
                _mark(s, ly, lh, d, "agent" + (" cut" if cut else ""), f"bot: {s.text}{cut}")
            )
        elif s.kind == "latency":
            ly, lh = ys["latency"]
            parts.append(_mark(s, ly, lh, d, "latency", f"latency {s.text}"))
        elif s.kind == "tool-call":
            ly, lh = ys["tools"]
            info = s.detail
            title = (
                f"{s.text}({json.dumps(info.get('arguments'))}) -> "
                f"{info.get('error') or info.get('result')} in "
                f"{float(info.get('duration_ms') or 0):.0f} ms"
            )
            parts.append(_mark(s, ly, lh, d, "tool", title))
        elif s.kind in ("call-action", "dtmf"):
            ly, lh = ys["actions"]
            parts.append(_mark(s, ly, lh, d, "action", s.text))
        elif s.kind == "barge-in":
            x = _x(s.start, d)
            parts.append(
                f'<g class="mark bargein" data-kind="barge-in" data-start="{s.start:.3f}" '
                f'data-end="{s.end:.3f}" data-text="{_e(s.text)}">'
                f'<line x1="{x:.1f}" y1="18" x2="{x:.1f}" y2="{height}"/>'
                f"<title>{_e(s.text)}</title></g>"
            )
    parts.append("</svg>")
    return "".join(parts)


CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d1d1f;background:#fafaf8}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:1.6rem}
.problems{background:#fdecea;color:#8c1d18;padding:.6rem 1rem;border-radius:.4rem}
.scroll{overflow-x:auto;background:#fff;border:1px solid #e2e2e0;border-radius:.4rem}
svg.timeline text{font-size:11px;fill:#6b6b70}
.tick{stroke:#eee}.wave.mix{fill:#2459c4}.wave.bot{fill:#1f8a52}
.mark.user rect{fill:#2459c4;opacity:.75}.mark.agent rect{fill:#1f8a52;opacity:.75}
.mark.cut rect{fill:#d0791b}.mark.latency rect{fill:#8a63d2;opacity:.6}
.mark.tool rect{fill:#b38600}.mark.action rect{fill:#444}
.mark.bargein line{stroke:#b3261e;stroke-width:2;stroke-dasharray:4 3}
text.missing{fill:#b3261e!important}
table{border-collapse:collapse;margin:.4rem 0}td,th{border-bottom:1px solid #e2e2e0;
padding:.25rem .7rem;text-align:left;vertical-align:top;font-size:.9rem}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px}
code{white-space:pre-wrap;word-break:break-all}
"""


def _table(rows: list[list[str]], head: list[str]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render(rec: Recording) -> str:
    segs = segments(rec)
    name = rec.directory.name or str(rec.directory)
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>botrun call report: {_e(name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Call {_e(name)}</h1>",
    ]
    if rec.problems:
        items = "".join(f'<li class="problem">{_e(p)}</li>' for p in rec.problems)
        out.append(
            f'<div class="problems"><b>This recording is incomplete.</b><ul>{items}</ul></div>'
        )
    out.append("<h2>Summary</h2>")
    out.append(
        '<table class="summary"><tbody>'
        + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in summary(rec, segs))
        + "</tbody></table>"
    )
    out.append(
        '<h2>Timeline</h2><p class="legend">'
        '<span><i style="background:#2459c4"></i>participants / you said</span>'
        '<span><i style="background:#1f8a52"></i>bot / bot said</span>'
        '<span><i style="background:#d0791b"></i>interrupted reply</span>'
        '<span><i style="background:#8a63d2"></i>latency (you stop → bot audio)</span>'
        '<span><i style="background:#b38600"></i>tool call</span>'
        '<span><i style="background:#b3261e"></i>barge-in</span></p>'
    )
    out.append(f'<div class="scroll">{timeline_svg(rec, segs)}</div>')
    lines = sorted(
        (s for s in segs if s.kind in ("user-speech", "agent-reply")), key=lambda s: s.start
    )
    out.append("<h2>Transcript</h2>")
    out.append(
        _table(
            [
                [
                    f"{s.start:.2f}–{s.end:.2f} s",
                    (s.detail.get("who") or "you") if s.kind == "user-speech" else "bot",
                    s.text + (" [interrupted]" if s.kind == "agent-reply" and _cut(s) else ""),
                ]
                for s in lines
            ],
            ["when", "who", "said"],
        )
    )
    lat = [s for s in segs if s.kind == "latency"]
    out.append("<h2>Turns</h2>")
    out.append(
        _table(
            [[f"{i}", f"{s.end:.2f} s", s.text] for i, s in enumerate(lat, 1)],
            ["turn", "first bot audio at", "latency"],
        )
    )
    tools = [s for s in segs if s.kind == "tool-call"]
    if tools:
        out.append("<h2>Tool calls</h2>")
        out.append(
            _table(
                [
                    [
                        f"{s.end:.2f} s",
                        s.text,
                        json.dumps(s.detail.get("arguments")),
                        str(s.detail.get("error") or s.detail.get("result")),
                        f"{float(s.detail.get('duration_ms') or 0):.0f} ms",
                    ]
                    for s in tools
                ],
                ["at", "tool", "arguments", "result", "took"],
            )
        )
    acts = [s for s in segs if s.kind in ("call-action", "dtmf")]
    if acts:
        out.append("<h2>Call actions and keypad</h2>")
        out.append(_table([[f"{s.start:.2f} s", s.text] for s in acts], ["at", "what"]))
    bi = [s for s in segs if s.kind == "barge-in"]
    if bi:
        out.append("<h2>Barge-ins</h2>")
        out.append(
            _table(
                [[f"{s.start:.2f} s", s.text, str(s.detail.get("cause", ""))] for s in bi],
                ["at", "what", "cause"],
            )
        )
    out.append("</body></html>\n")
    return "".join(out)


def is_recording(rec: Recording) -> bool:
    """Whether ``rec`` came from a ``--record`` directory: it holds at least one valid
    event line or one of the recordings (a damaged events.jsonl beside them still counts)."""
    found_events = rec.start is not None or rec.end is not None or bool(rec.events)
    wavs = any((rec.directory / name).is_file() for name in (MIX_WAV, BOT_WAV))
    return found_events or wavs


def write_report(
    directory: Path, output: Path | None = None, rec: Recording | None = None
) -> tuple[Path, Recording]:
    """Write the report of ``directory`` (read now unless ``rec``, already read, is given)."""
    if rec is None:
        rec = load_recording(directory)
    path = output or directory / REPORT
    path.write_text(render(rec), encoding="utf-8")
    return path, rec
