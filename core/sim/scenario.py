"""Scenario files: what the simulated agent says, how it detects turns, and which faults it injects.

A scenario is a TOML file validated into the typed :class:`Scenario` model, so a typo in a key or
a value out of range is reported with the file and the key (``ConfigError``, exit 2) instead of
silently doing something else. Every field has a default: ``Scenario()`` is an echo agent with no
faults. The format is documented in docs/simulator.md.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from botrun.core.config import format_validation_error, read_toml
from botrun.core.errors import ConfigError

from .limits import DROP_AFTER_S, MAX_WAIT_S, READY_DELAY_S

if TYPE_CHECKING:
    import numpy as np

#: Output voices the simulator accepts unless a scenario lists its own.
DEFAULT_VOICES: tuple[str, ...] = ("ivy", "james", "sophie", "diego", "arjun")

#: Junk frames the simulator can inject (see ``FaultSettings.inject``).
InjectKind = Literal["malformed_json", "binary_frame", "unknown_event", "oversized_message"]

#: Error codes a connection attempt can be refused with (``FaultSettings.connect_error``).
ConnectErrorCode = Literal[
    "server_error",
    "FORBIDDEN",
    "UNAUTHORIZED",
    "rate_limited",
    "internal_error",
    "agent_init_failed",
    "agent_timeout",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SessionSettings(_Model):
    """Limits of one session."""

    voices: tuple[str, ...] = Field(DEFAULT_VOICES, min_length=1)
    max_duration_s: float = Field(
        0.0, ge=0, le=MAX_WAIT_S, description="0: unlimited (a token may still set one)"
    )
    ready_order: Literal["ready-first", "updated-first"] = "ready-first"


class VadSettings(_Model):
    """Energy speech detection. Thresholds and silences come from the client's turn_detection;
    these are the simulator's fixed timing constants (ms of *audio*, not wall time)."""

    start_ms: int = Field(60, ge=10, le=2000, description="voiced audio before speech.started")
    hangover_ms: int = Field(300, ge=10, le=10000, description="silence before speech.stopped")
    preroll_ms: int = Field(100, ge=0, le=2000, description="audio kept before the detected start")
    delta_every_ms: int = Field(400, ge=50, le=10000, description="transcript.user.delta cadence")


class ReplySettings(_Model):
    """How replies sound and are paced."""

    default: Literal["echo", "tone"] = "echo"
    text: str = "I heard you."
    delay_ms: int = Field(300, ge=0, le=60000, description="think time after the end of a turn")
    chunk_ms: int = Field(50, ge=10, le=1000)
    stale_frames: int = Field(2, ge=0, le=100, description="reply.audio frames after a barge-in")
    ms_per_char: int = Field(65, ge=5, le=1000, description="tone speech duration per character")
    tool_transition: str = "One moment, let me check that."
    tool_result: str = "Here is what I found: {result}"
    tool_timeout: str = "Sorry, that took too long."
    reply_create: str = "{instructions}"
    resend_tool_calls: bool = True


class ToolCallSpec(_Model):
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    mode: Literal["interactive", "hold"] | None = None

    @model_validator(mode="after")
    def _finite_arguments(self) -> ToolCallSpec:
        if not _all_finite(self.arguments):  # they are sent as JSON, which has no inf or nan
            raise ValueError("arguments must not hold inf or nan")
        return self


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_all_finite(v) for v in value)
    return True


class Turn(_Model):
    """The simulated agent's side of one user turn (turns are matched in order)."""

    user: str | None = None
    complete: bool = True
    #: What the agent says; with a ``tool``, said while it calls the tool (instead of
    #: ``reply.tool_transition``), e.g. "Goodbye!" with ``end_call``.
    reply: str | None = None
    #: With a ``tool``: the answer once its result is back (``{result}``, ``{name}``),
    #: instead of ``reply.tool_result``; "" = say nothing.
    result: str | None = None
    audio: Literal["echo", "tone", "wav", "silence"] | None = None
    wav: Path | None = None
    tool: ToolCallSpec | None = None

    @model_validator(mode="after")
    def _wav_needs_file(self) -> Turn:
        if self.audio == "wav" and self.wav is None:
            raise ValueError("audio = 'wav' needs a 'wav' file")
        return self


class FaultSettings(_Model):
    """Failures the simulator injects on purpose, to test a client's recovery."""

    connect_error: ConnectErrorCode = "server_error"
    connect_error_count: int = Field(0, ge=0, description="refuse the first K connections")
    #: How a refused connection closes: the documented code (1013/1008/1011), or "policy":
    #: 1008 with the error code as the reason, as some deployments do.
    connect_error_close: Literal["documented", "policy"] = "documented"
    #: False: only the close frame, no session.error first (what a client sees when the
    #: close frame is read before the in-band error).
    connect_error_in_band: bool = True
    #: Replies start and speak but never send reply.done (an agent stuck mid-reply); a
    #: barge-in silences them without a reply.done either.
    reply_never_done: bool = False
    drop_at_reply_audio: int = Field(0, ge=0, description="abort the socket at the Nth frame")
    drop_after_s: float = Field(
        0.0, ge=DROP_AFTER_S[0], le=DROP_AFTER_S[1], description="abort the socket T s after ready"
    )
    refuse_resume: bool = False
    session_not_found: Literal["in-band", "close"] = "in-band"
    sample_rate: Literal["deaf", "honour"] = "deaf"
    ready_delay_s: float = Field(0.0, ge=READY_DELAY_S[0], le=READY_DELAY_S[1])
    inject: tuple[InjectKind, ...] = ()
    inject_at_reply_audio: int = Field(0, ge=0, description="0: right after session.ready")
    oversized_bytes: int = Field(2 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)


class Scenario(_Model):
    """A whole scenario file. ``base_dir`` resolves relative WAV paths."""

    name: str = "echo"
    description: str = ""
    session: SessionSettings = Field(default_factory=SessionSettings)
    vad: VadSettings = Field(default_factory=VadSettings)
    reply: ReplySettings = Field(default_factory=ReplySettings)
    turns: tuple[Turn, ...] = ()
    faults: FaultSettings = Field(default_factory=FaultSettings)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    #: WAV replies read (and so validated) at load, by resolved path: (samples, rate).
    _wav_audio: dict[Path, tuple[np.ndarray, int]] = PrivateAttr(default_factory=dict)

    def turn(self, index: int) -> Turn | None:
        """The scripted turn for the ``index``-th user utterance (0-based), if any."""
        return self.turns[index] if 0 <= index < len(self.turns) else None

    def wav_path(self, turn: Turn) -> Path:
        assert turn.wav is not None
        return turn.wav if turn.wav.is_absolute() else self.base_dir / turn.wav

    def wav_audio(self, turn: Turn) -> tuple[np.ndarray, int]:
        """A ``wav`` turn's reply audio as mono int16 samples and their rate. A scenario from
        :func:`load_scenario` / :func:`scenario_from_dict` read every file at load (so a bad
        one failed there); otherwise it is read now (:class:`ConfigError` if it is bad)."""
        from .codec import read_wav

        path = self.wav_path(turn)
        audio = self._wav_audio.get(path)
        if audio is None:
            audio = self._wav_audio[path] = read_wav(path)
        return audio


def scenario_from_dict(
    data: dict[str, Any], source: str = "scenario", base_dir: Path | None = None
) -> Scenario:
    """Validate a parsed scenario; raise :class:`ConfigError` naming ``source`` and the key."""
    if "base_dir" in data:
        raise ConfigError(f"{source}: unknown key 'base_dir'")
    try:
        scenario = Scenario.model_validate({**data, "base_dir": base_dir or Path.cwd()})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, Scenario)) from None
    for i, turn in enumerate(scenario.turns):
        if turn.wav is None:
            continue
        path = scenario.wav_path(turn)
        if not path.is_file():
            problem = "not a file" if path.exists() else "file not found"
            raise ConfigError(f"{source}: 'turns.{i}.wav': {problem}: {path}")
        try:  # read it now: a file the reply cannot use fails here, not mid-call
            scenario.wav_audio(turn)
        except ConfigError as exc:
            raise ConfigError(f"{source}: 'turns.{i}.wav': {exc}") from None
    return scenario


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a TOML scenario file. A bare name (``"weather"``) picks a shipped
    example scenario."""
    p = Path(path)
    if not p.exists() and p.suffix == "" and p.name == str(path):
        shipped = builtin_scenarios().get(p.name)
        if shipped is not None:
            p = shipped
    shipped_names = ", ".join(sorted(builtin_scenarios())) or "none"
    data = read_toml(p, "scenario file", f" (shipped scenarios: {shipped_names})")
    data.setdefault("name", p.stem)  # (announced and logged: the file's, not 'echo')
    return scenario_from_dict(data, str(p), p.resolve().parent)


def builtin_scenarios() -> dict[str, Path]:
    """The example scenarios shipped with botrun, by name (file stem)."""
    root = resources.files("botrun.core.sim").joinpath("scenarios")
    out: dict[str, Path] = {}
    try:
        for entry in root.iterdir():
            if entry.name.endswith(".toml"):
                out[entry.name[: -len(".toml")]] = Path(str(entry))
    except (FileNotFoundError, NotADirectoryError):
        pass
    return out
