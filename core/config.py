"""Bot configuration: TOML files validated into typed models.

Errors name the file, the key and what was expected, and raise :class:`ConfigError`
(exit 2). Secrets never live here: they come from the environment (see ``secrets.py``).
"""

from __future__ import annotations

import difflib
import re
import reprlib
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from .defaults import DEFAULT_AGENT_URL, DEFAULT_TOOL_RESULT_MAX_BYTES
from .errors import ConfigError
from .secrets import register_url_credentials

if TYPE_CHECKING:
    from .plugin_types import TransportSpec

__all__ = ["DEFAULT_AGENT_URL", "BotConfig", "load_config"]
#: Output voices the voice-agent service accepts (``session.output.voice``); any other value
#: makes it refuse the session at setup, so it is refused here at load time instead.
VOICES = ("ivy", "james", "sophie", "diego", "arjun")
#: Longest keyterm (AssemblyAI's keyterms prompting: short words or phrases, at most 50
#: characters each); the protocol allows up to 100 of them.
MAX_KEYTERM_CHARS = 50
MAX_KEYTERMS = 100
#: Tools botrun provides, enabled by bare name in ``[agent] tools`` (core/builtin_tools.py).
BUILTIN_TOOLS = ("end_call", "transfer_call", "send_dtmf")
#: Where a call can be transferred or dialled: an E.164 number or a SIP URI.
PHONE_NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")
SIP_URI = re.compile(r"^sips?:[^\s@]+@[^\s@]+$")

#: Config models: unknown keys are errors, booleans are TOML booleans (not "yes"), and
#: floats are finite (no ``inf``/``nan``, which would turn a limit into "never").
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
Keyterm = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_KEYTERM_CHARS)
]


class _Model(BaseModel):
    model_config = ConfigDict(**_STRICT, validate_assignment=True)


class TurnDetection(_Model):
    vad_threshold: float = Field(0.5, ge=0.0, le=1.0)
    min_silence: int = Field(1000, ge=0, le=60000, description="ms of silence that ends a turn")
    max_silence: int = Field(3000, ge=0, le=60000, description="ms of silence that always ends it")
    interrupt_response: StrictBool = True
    semantic_vad: StrictBool = Field(
        False, description="openai only: end turns by what was said (semantic_vad)"
    )

    @model_validator(mode="after")
    def _silences(self) -> TurnDetection:
        if self.max_silence < self.min_silence:  # the service refuses this at setup
            raise ValueError(
                f"max_silence ({self.max_silence}) must be >= min_silence ({self.min_silence})"
            )
        return self


class AgentInput(_Model):
    keyterms: list[Keyterm] = Field(default_factory=list, max_length=MAX_KEYTERMS)
    turn_detection: TurnDetection = Field(default_factory=TurnDetection)


def _backend_spec(name: Any) -> Any:
    """The registered backend called ``name`` (None when there is none)."""
    from .plugins import backends

    return backends().get(name) if isinstance(name, str) else None


class AgentConfig(_Model):
    backend: str = Field(
        "assemblyai", min_length=1, description="the voice-agent service (docs/backends.md)"
    )
    url: str = DEFAULT_AGENT_URL
    model: str | None = Field(None, min_length=1, description="the backend's default model")
    system_prompt: str = (
        "You are a helpful voice assistant in a meeting. Keep answers short and friendly."
    )
    greeting: str = "Hi, I'm listening. How can I help?"
    voice: str = "ivy"
    volume: int | None = Field(None, ge=0, le=100)
    input: AgentInput = Field(default_factory=AgentInput)
    tools: list[str] = Field(default_factory=list)
    tool_timeout_s: float = Field(10.0, gt=0, le=300)
    tool_result_max_bytes: int = Field(DEFAULT_TOOL_RESULT_MAX_BYTES, ge=1024, le=512 * 1024)
    ready_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="the longest the call may go without a ready agent session while botrun"
        " retries, at the start and after a lost connection",
    )

    @model_validator(mode="before")
    @classmethod
    def _backend_defaults(cls, data: Any) -> Any:
        """URL, model and voice default to the chosen backend's; a URL or model that is
        another backend's default (left over from a config validated for that backend) is
        replaced by this one's. A voice is only filled in when missing: one the user wrote
        that the backend lacks is an error (:func:`apply_overrides` drops a defaulted voice
        when ``--backend`` switches the backend)."""
        if not isinstance(data, dict):
            return data
        spec = _backend_spec(data.get("backend", "assemblyai"))
        if spec is None:
            return data
        from .plugins import backends

        others = [s for s in backends().values() if s.name != spec.name]
        data = dict(data)
        for key, mine, theirs in (
            ("url", spec.default_url, {s.default_url for s in others}),
            ("model", spec.default_model, {s.default_model for s in others} - {None}),
            ("voice", spec.default_voice, set()),
        ):
            if data.get(key) is None or data.get(key) in theirs:
                data[key] = mine
        return data

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        from .plugins import backends

        if _backend_spec(v) is None:
            known = list(backends())
            raise ValueError(
                f"unknown backend {v!r}{suggest(v, known)}; installed: {', '.join(known)}"
            )
        return v

    @model_validator(mode="after")
    def _honoured(self) -> AgentConfig:
        """A field the backend cannot honour is an error here, never silently dropped."""
        spec = _backend_spec(self.backend)
        problems = spec.check(self) if spec is not None and spec.check is not None else []
        if problems:
            raise ValueError(f"the {self.backend} backend cannot honour " + "; ".join(problems))
        return self

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("ws://", "wss://")):
            raise ValueError("expected a ws:// or wss:// URL")
        register_url_credentials(v)  # a password or ?token= in it never reaches a log line
        return v

    @field_validator("voice")
    @classmethod
    def _voice(cls, v: str, info: ValidationInfo) -> str:
        spec = _backend_spec(info.data.get("backend", "assemblyai"))
        voices = spec.voices if spec is not None else VOICES
        if voices and v not in voices:
            backend = "" if spec is None or spec.name == "assemblyai" else f" for {spec.name}"
            raise ValueError(f"unknown voice{backend}; expected one of {', '.join(voices)}")
        return v

    @field_validator("tools")
    @classmethod
    def _tools(cls, v: list[str]) -> list[str]:
        for item in v:
            mod, sep, fn = item.partition(":")
            if not sep and item in BUILTIN_TOOLS:
                continue
            if not sep:
                raise ValueError(
                    f"expected 'package.module:function' or a built-in tool "
                    f"({', '.join(BUILTIN_TOOLS)}), got {excerpt(item)}"
                )
            if not mod or not fn:
                raise ValueError(f"expected 'package.module:function', got {excerpt(item)}")
        return v


class BridgeConfig(_Model):
    listen: str = Field("mix", min_length=1, description="mix | first | a participant name")
    chunk_ms: int = Field(20, ge=10, le=200, multiple_of=10)
    leave_grace_s: float = Field(2.0, ge=0, le=3600)
    reply_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="a reply with no audio or text for this long is over"
    )
    idle_timeout_s: float = Field(300.0, ge=0, description="leave after this long with no humans")
    max_duration_s: float = Field(3 * 3600.0, gt=0)
    reconnect_buffer_s: float = Field(5.0, ge=0, le=120)
    prebuffer_ms: int = Field(
        60,
        ge=0,
        le=1000,
        description="most a new reply is held before playing (adaptive: a sender faster "
        "than real time is played at once, a real-time one after 15 ms plus its jitter)",
    )


class BotSection(_Model):
    name: str = Field("botrun", min_length=1, max_length=100)
    hooks: str | None = Field(
        None, description="per-call hooks: 'package.module' (functions) or 'package.module:Class'"
    )
    hook_timeout_s: float = Field(5.0, gt=0, le=300, description="a hook running longer is cut")
    dtmf: Literal["forward", "ignore"] = Field(
        "forward",
        description="keypad presses: also tell the agent (forward) or only the on_dtmf hook",
    )
    dtmf_gap_s: float = Field(
        1.5, gt=0, le=30, description="a key sequence ends this long after its last press or at #"
    )
    idle_reminder_s: float | None = Field(
        None, gt=0, le=3600, description="agent idle and nobody spoke this long: check in"
    )
    idle_hangup_s: float | None = Field(
        None, gt=0, le=3600, description="this long more after the reminder: end the call"
    )
    idle_reminder: str = Field(
        "The caller has gone quiet. Briefly ask whether they are still there.",
        min_length=1,
        max_length=2000,
    )
    idle_goodbye: str = Field(
        "It seems you have stepped away, so I will end the call now. Goodbye!", max_length=2000
    )

    @field_validator("hooks")
    @classmethod
    def _hooks(cls, v: str | None) -> str | None:
        if v is None:
            return v
        mod, sep, attr = v.partition(":")
        dotted = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
        if not dotted.match(mod) or (sep and not dotted.match(attr)):
            raise ValueError(
                f"expected 'package.module' or 'package.module:Class', got {excerpt(v)}"
            )
        return v


class TransferTarget(_Model):
    """One ``[[transfer]]`` target: the agent transfers by ``name``, never to a free number."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    to: str = Field(min_length=1, max_length=500)
    description: str = Field("", max_length=500)

    @field_validator("to")
    @classmethod
    def _to(cls, v: str) -> str:
        if not (PHONE_NUMBER.match(v) or SIP_URI.match(v)):
            raise ValueError(
                "expected a SIP URI ('sip:user@host') or an E.164 number ('+14155550123')"
            )
        return v


class BotConfig(_Model):
    bot: BotSection = Field(default_factory=BotSection)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    bridge: BridgeConfig = Field(default_factory=BridgeConfig)
    #: Where ``transfer_call`` / ``CallContext.transfer`` may send a caller, by name.
    transfer: list[TransferTarget] = Field(default_factory=list, max_length=100)
    #: Per-transport tables, validated against each transport's options.
    transports: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True)
    #: Where the config came from (for messages).
    source: str = Field("<defaults>", exclude=True)

    @model_validator(mode="after")
    def _targets(self) -> BotConfig:
        names = [t.name for t in self.transfer]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"transfer target names must be unique ({', '.join(dupes)})")
        if "transfer_call" in self.agent.tools and not self.transfer:
            raise ValueError(
                "agent.tools has 'transfer_call' but no [[transfer]] target is declared"
            )
        return self


_SECTIONS = ("bot", "agent", "bridge", "transfer")


def default_config_path() -> Path:
    return Path(str(resources.files("botrun.configs").joinpath("default.toml")))


def packaged_configs() -> dict[str, Path]:
    """The bot configs shipped with botrun (configs/*.toml), by name (file stem)."""
    root = resources.files("botrun.configs")
    return {
        e.name[: -len(".toml")]: Path(str(e)) for e in root.iterdir() if e.name.endswith(".toml")
    }


def resolve_config_path(path: Path | str) -> Path:
    """``path`` itself, or for a bare name that is not a file here (``support``) the
    packaged config of that name (``configs/support.toml``)."""
    p = Path(path)
    if not p.exists() and p.suffix == "" and p.name == str(path):
        return packaged_configs().get(p.name, p)
    return p


def _layer(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, table by table: a key wins only where ``top`` writes it."""
    out = dict(base)
    for key, value in top.items():
        below = out.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            out[key] = _layer(below, value)
        else:
            out[key] = value
    return out


def suggest(word: str, options: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or nothing."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_EXCERPT = reprlib.Repr()
_EXCERPT.maxstring = _EXCERPT.maxother = _EXCERPT.maxlong = 60
_EXCERPT.maxlist = _EXCERPT.maxtuple = _EXCERPT.maxset = _EXCERPT.maxdict = 5
_EXCERPT.maxlevel = 3
#: Validation errors listed in one message; the rest are counted.
MAX_ERRORS_SHOWN = 5


def excerpt(value: Any) -> str:
    """A short ``repr`` of ``value`` for an error message: long strings and lists are cut
    (``...``), deep nesting is elided, so a huge value never floods the terminal or a log."""
    try:
        return _EXCERPT.repr(value)
    except Exception:  # an object whose repr fails, or an int too long to print
        return f"<{type(value).__name__}>"


def short_key(key: str) -> str:
    """A key name as it can appear in a message: printable and at most ~60 characters."""
    if len(key) <= 60 and key.isprintable():
        return key
    return excerpt(key)[1:-1]


def known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``loc`` inside ``model`` (list indices and optional models
    included), or ``[]`` where ``loc`` does not lead to a model."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(str(part))
        ann = getattr(field, "annotation", None)
        if ann is not None and getattr(ann, "__args__", None):
            inner = [a for a in ann.__args__ if isinstance(a, type) and issubclass(a, BaseModel)]
            ann = inner[0] if inner else ann
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        current = ann
    return list(current.model_fields)


def format_validation_error(
    source: str, exc: ValidationError, model: type[BaseModel] | None = None, prefix: str = ""
) -> str:
    """One line naming ``source``, each bad key (dotted) and what was expected; unknown keys
    get a suggestion from ``model``'s fields."""
    lines = []
    errors = exc.errors()
    for err in errors[:MAX_ERRORS_SHOWN]:
        loc = ".".join(short_key(str(p)) for p in (prefix, *err["loc"]) if p != "")
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            known = known_keys(model, err["loc"][:-1]) if model is not None else []
            lines.append(f"unknown key '{loc}'{suggest(key, known)}")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {excerpt(got)})"
            where = f"'{loc}': " if loc else ""
            msg = err["msg"]  # not .lower(): it may quote case-sensitive values (voices)
            lines.append(f"{where}{short_message(msg[:1].lower() + msg[1:])}{shown}")
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more errors")
    return f"{source}: " + "; ".join(lines)


def short_message(msg: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters (a validator's message can quote input)."""
    msg = " ".join(msg.split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def read_toml(path: Path, what: str = "config file", hint: str = "") -> dict[str, Any]:
    """Parse a TOML file; every failure is a :class:`ConfigError` naming the file (and the
    line, for syntax errors)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}{hint}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:  # (utf-8-sig: a UTF-8 byte-order mark, as some Windows editors write, is dropped)
        return tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {short_message(str(exc))}") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays/tables
        raise ConfigError(f"{path}: invalid TOML: values are nested too deeply") from None


def load_config(
    path: Path | str | None = None,
    transport_names: tuple[str, ...] | list[str] = (),
    extra_sections: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
) -> BotConfig:
    """Read and validate a bot config; ``None`` loads the packaged ``default.toml``, and a
    bare name (``"support"``) a packaged config.

    Values are resolved in layers: the model's defaults, then ``defaults`` (a transport's
    own, e.g. ``{"bridge": {"idle_timeout_s": 0}}``), then the keys the file really writes.
    Tables named after a transport are kept raw in ``transports`` and validated by
    :func:`transport_options` for the transport that runs."""
    p = resolve_config_path(path) if path is not None else default_config_path()
    names = ", ".join(sorted(packaged_configs())) or "none"
    data = read_toml(p, hint=f" (packaged configs: {names})" if path is not None else "")
    return config_from_dict(data, str(p), transport_names, extra_sections, defaults)


def config_from_dict(
    data: dict[str, Any],
    source: str = "<config>",
    transport_names: tuple[str, ...] | list[str] = (),
    extra_sections: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
) -> BotConfig:
    known = [*_SECTIONS, *transport_names, *extra_sections]
    core: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            core[key] = value
        elif key in transport_names or key in extra_sections:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{key}' must be a table ([{key}])")
            tables[key] = value
        else:
            raise ConfigError(f"{source}: unknown key '{key}'{suggest(key, known)}")
    if defaults:
        core = _layer(defaults, core)
    try:
        cfg = BotConfig.model_validate(core)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, BotConfig)) from None
    cfg.transports = tables
    cfg.source = source
    return cfg


def apply_overrides(cfg: BotConfig, overrides: dict[str, Any]) -> BotConfig:
    """Apply dotted-key overrides (``{"agent.url": ...}``) from CLI flags, validated."""
    data = cfg.model_dump()
    backend = overrides.get("agent.backend")
    if (
        backend is not None
        and backend != cfg.agent.backend
        and overrides.get("agent.voice") is None
    ):
        old = _backend_spec(cfg.agent.backend)
        if old is not None and cfg.agent.voice == old.default_voice:
            del data["agent"]["voice"]  # the old backend's default: take the new one's
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        new = BotConfig.model_validate(data)
    except ValidationError as exc:
        where = "command line"
        if backend is not None and backend != cfg.agent.backend and not cfg.source.startswith("<"):
            # the file's values meet the backend a flag chose: name both (issue 18)
            where = f"{cfg.source} (with --backend {backend})"
        raise ConfigError(format_validation_error(where, exc, BotConfig)) from None
    new.transports, new.source = cfg.transports, cfg.source
    return new


def _options_model(spec: TransportSpec) -> type[BaseModel]:
    """A pydantic model of ``spec``'s options (types, choices, ranges; nothing imported)."""
    fields: dict[str, Any] = {}
    for opt in spec.options:
        typ: Any = StrictBool if opt.type is bool else opt.type
        if opt.choices:
            typ = Literal[opt.choices]
        constraints: dict[str, Any] = {}
        if opt.min is not None:
            constraints["ge"] = opt.min
        if opt.max is not None:
            constraints["le"] = opt.max
        if opt.multiple:  # constraints apply to each value
            item: Any = Annotated[typ, Field(**constraints)]
            typ = list[item | None] if opt.follows else list[item]  # None: not given
            constraints = {}
        default = list(opt.default or []) if opt.multiple else opt.default
        fields[opt.name] = (typ | None if default is None else typ, Field(default, **constraints))
    return create_model(f"{spec.name.title()}Options", __config__=_STRICT, **fields)


def check_transport_table(spec: TransportSpec, cfg: BotConfig) -> dict[str, Any]:
    """Validate the config file's ``[<transport>]`` table on its own; errors name the file.
    Returns the table."""
    table = dict(cfg.transports.get(spec.name, {}))
    by_name = {o.name: o for o in spec.options}
    for key in table:
        opt = by_name.get(key)
        if opt is None or not opt.config:
            allowed = [o.name for o in spec.options if o.config]
            raise ConfigError(
                f"{cfg.source}: unknown key '{spec.name}.{short_key(key)}'{suggest(key, allowed)}"
            )
    model = _options_model(spec)
    try:
        model.model_validate(table)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(cfg.source, exc, model, spec.name)) from None
    return table


def check_transport_tables(cfg: BotConfig, specs: Iterable[TransportSpec]) -> None:
    """Validate every installed transport's table at load, whichever command runs (a bad
    ``[daily]`` table is an error for ``botrun wav`` too). Cheap: no transport is imported."""
    for spec in specs:
        check_transport_table(spec, cfg)


def _expected(err: Any) -> str:
    """What a flag's value must be, in a few words (``must be ≥ 0.1``)."""
    ctx = err.get("ctx") or {}
    words = {
        "greater_than_equal": ("≥", "ge"),
        "less_than_equal": ("≤", "le"),
        "greater_than": (">", "gt"),
        "less_than": ("<", "lt"),
    }.get(err["type"])
    if words is not None and words[1] in ctx:
        bound = ctx[words[1]]
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # "≥ 0", not "≥ 0.0"
        return f"must be {words[0]} {bound}"
    return short_message(err["msg"].lower())


def _flag_error(spec: TransportSpec, exc: ValidationError) -> str:
    """One line naming each bad flag (``--speed: must be ≥ 0.1``): the user typed the value,
    so no file is blamed and the value is not echoed (it may be a secret)."""
    flags = {o.name: o for o in spec.options}
    parts = []
    for err in exc.errors()[:MAX_ERRORS_SHOWN]:
        name = str(err["loc"][0]) if err["loc"] else ""
        opt = flags.get(name)
        flag = opt.flag if opt is not None else f"--{name.replace('_', '-')}"
        if opt is not None and opt.envvar:
            flag += f" (or {opt.envvar})"
        parts.append(f"{flag}: {_expected(err)}")
    return "; ".join(parts)


def option_value_errors(spec: TransportSpec, values: dict[str, Any]) -> list[tuple[str, str]]:
    """``(option name, what it must be)`` for each of ``values`` (already converted, as
    click gives them) that breaks ``spec``'s declared types, choices or ranges; [] when
    none does. Required options are not checked (a config table may give them)."""
    try:
        _options_model(spec).model_validate(values)
    except ValidationError as exc:
        return [
            (str(err["loc"][0]) if err["loc"] else "", _expected(err))
            for err in exc.errors()[:MAX_ERRORS_SHOWN]
        ]
    return []


def transport_options(
    spec: TransportSpec, cfg: BotConfig, cli_values: dict[str, Any]
) -> dict[str, Any]:
    """Merge the transport's config table with CLI flags (flags win) and validate both
    against the transport's declared options: the table first (errors name the file), then
    the flags (errors name the flag)."""
    table = check_transport_table(spec, cfg)
    given = {k: v for k, v in cli_values.items() if v is not None and v != ()}
    try:
        values = _options_model(spec).model_validate({**table, **given}).model_dump()
    except ValidationError as exc:
        raise ConfigError(_flag_error(spec, exc)) from None
    for opt in spec.options:
        v = values.get(opt.name)
        if opt.required and (v is None or v == []):
            raise ConfigError(
                f"missing option {opt.flag} (or '{opt.name}' in the [{spec.name}] table)"
            )
    return values
