"""The SDK double (and botrun's observer overrides) checked against the real SDK's source.

When the package registry is reachable, the published sdist of the pinned version is
downloaded once per test session (``pip download --no-deps --no-binary :all:``), and its
Python sources are parsed with ``ast`` (never imported: importing it loads or downloads a
native library). Every module, class, method, parameter (name, position, how many have
defaults), dataclass field (name, order, frozen/kw_only) and enum member (value) defined by
tests/agora_double must exist identically in the real SDK; so must every callback botrun's
observers override. Offline, the test skips with the reason.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from agora_double.harness import DOUBLE_DIR

PINNED = "2.4.10"  # inside botrun's supported range >=2.3,<2.5
OBSERVERS_PY = Path(__file__).resolve().parents[1] / "transports" / "agora" / "observers.py"
#: botrun handler class -> (real module, interface class) it overrides callbacks of.
HANDLERS = {
    "ConnectionHandler": ("rtc_connection_observer", "IRTCConnectionObserver"),
    "AudioFrameHandler": ("audio_frame_observer", "IAudioFrameObserver"),
    "LocalUserHandler": ("local_user_observer", "IRTCLocalUserObserver"),
}


@dataclass(frozen=True)
class Signature:
    positional: tuple[str, ...]
    n_defaults: int
    kwonly: tuple[str, ...]


@dataclass
class ClassInfo:
    methods: dict[str, Signature] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    dataclass_flags: dict[str, bool] | None = None
    enum_members: dict[str, object] = field(default_factory=dict)


def _signature(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Signature:
    a = fn.args
    names = tuple(p.arg for p in (*a.posonlyargs, *a.args))
    return Signature(names, len(a.defaults), tuple(p.arg for p in a.kwonlyargs))


def _dataclass_flags(cls: ast.ClassDef) -> dict[str, bool] | None:
    for dec in cls.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Name) and target.id == "dataclass":
            flags = {"frozen": False, "kw_only": False}
            if isinstance(dec, ast.Call):
                for kw in dec.keywords:
                    if kw.arg in flags and isinstance(kw.value, ast.Constant):
                        flags[kw.arg] = bool(kw.value.value)
            return flags
    return None


def parse_module(path: Path) -> dict[str, ClassInfo]:
    """Top-level classes of a module; a later definition wins, as at runtime."""
    classes: dict[str, ClassInfo] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if not isinstance(node, ast.ClassDef):
            continue
        info = ClassInfo(dataclass_flags=_dataclass_flags(node))
        is_enum = any(isinstance(b, ast.Name) and b.id.endswith("Enum") for b in node.bases)
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                info.methods[item.name] = _signature(item)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                info.fields.append(item.target.id)
            elif is_enum and isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name):
                info.enum_members[item.targets[0].id] = ast.literal_eval(item.value)
        classes[node.name] = info
    return classes


def _ours(name: str) -> bool:
    return name.startswith("_dbl")


@pytest.fixture(scope="session")
def real_rtc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """agora/rtc of the real sdist (downloaded once per session), or skip when offline."""
    cache = tmp_path_factory.mktemp("agora-sdist")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "--retries",
        "1",
        "--timeout",
        "15",
        "-d",
        str(cache),
        f"agora-python-server-sdk=={PINNED}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip("package registry not reachable (pip download timed out)")
    archives = sorted(cache.glob("agora_python_server_sdk-*.tar.gz"))
    if proc.returncode != 0 or not archives:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"package registry not reachable, cannot fetch the real SDK source: {last}")
    with tarfile.open(archives[0]) as tar:
        tar.extractall(cache, filter="data")
    found = sorted(cache.glob("agora_python_server_sdk-*/agora/rtc"))
    assert found, "the sdist has no agora/rtc package"
    return found[0]


def test_double_claims_the_pinned_version() -> None:
    assert (DOUBLE_DIR / f"agora_python_server_sdk-{PINNED}.dist-info" / "METADATA").is_file()


def test_double_matches_the_real_sdk(real_rtc: Path) -> None:
    problems: list[str] = []
    checked = 0
    for path in sorted((DOUBLE_DIR / "agora" / "rtc").glob("*.py")):
        if path.name == "__init__.py":
            continue
        real_path = real_rtc / path.name
        if not real_path.is_file():
            problems.append(f"module agora.rtc.{path.stem} does not exist")
            continue
        real = parse_module(real_path)
        for cname, dinfo in parse_module(path).items():
            if _ours(cname):
                continue
            where = f"agora.rtc.{path.stem}.{cname}"
            rinfo = real.get(cname)
            if rinfo is None:
                problems.append(f"{where}: class missing")
                continue
            for mname, sig in dinfo.methods.items():
                if _ours(mname):
                    continue
                checked += 1
                rsig = rinfo.methods.get(mname)
                if rsig is None:
                    problems.append(f"{where}.{mname}: method missing")
                elif rsig != sig:
                    problems.append(f"{where}.{mname}: double {sig} != real {rsig}")
            if dinfo.dataclass_flags is not None:
                checked += 1
                if dinfo.fields != rinfo.fields:
                    problems.append(f"{where}: fields {dinfo.fields} != real {rinfo.fields}")
                if dinfo.dataclass_flags != rinfo.dataclass_flags:
                    problems.append(
                        f"{where}: dataclass flags {dinfo.dataclass_flags} != "
                        f"real {rinfo.dataclass_flags}"
                    )
            for member, value in dinfo.enum_members.items():
                checked += 1
                if rinfo.enum_members.get(member, object()) != value:
                    problems.append(
                        f"{where}.{member} = {value!r}: real has "
                        f"{rinfo.enum_members.get(member, 'no such member')!r}"
                    )
    assert problems == []
    assert checked > 80  # the comparison really covered the double's surface


def test_botrun_observer_callbacks_exist_in_the_real_interfaces(real_rtc: Path) -> None:
    ours = parse_module(OBSERVERS_PY)
    problems: list[str] = []
    for handler, (module, iface) in HANDLERS.items():
        real = parse_module(real_rtc / f"{module}.py")[iface]
        callbacks = {n: s for n, s in ours[handler].methods.items() if n.startswith("on_")}
        assert callbacks, handler
        for name, sig in callbacks.items():
            if name not in real.methods:
                problems.append(f"{iface}.{name} does not exist: the SDK would never call it")
            elif real.methods[name].positional != sig.positional:
                problems.append(
                    f"{iface}.{name}: ours {sig.positional} != real {real.methods[name].positional}"
                )
    assert problems == []
