"""Loading the Agora SDK: every way it can be unusable becomes one clear UsageError (exit 2),
and the plugin registers ``botrun agora`` without importing it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from agora_double.harness import APP_ID, DOUBLE_DIR

from botrun.core.errors import MissingSecretError, UsageError
from botrun.transports.agora.sdk import load_sdk, parse_version


def _forget_agora() -> None:
    for name in list(sys.modules):
        if name == "agora" or name.startswith("agora."):
            del sys.modules[name]


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty directory first on sys.path, to build fake installations in."""
    _forget_agora()
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    _forget_agora()


def install(site: Path, version: str | None, files: dict[str, str]) -> None:
    if version is not None:
        info = site / f"agora_python_server_sdk-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: agora_python_server_sdk\nVersion: {version}\n"
        )
    for rel, text in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    importlib.invalidate_caches()


def test_parse_version() -> None:
    assert parse_version("2.4.10") == (2, 4, 10)
    assert parse_version("2.3.0rc1") == (2, 3, 0)
    assert parse_version("dev") == ()


def test_missing_sdk_says_what_to_install(fake_site: Path) -> None:
    if importlib.util.find_spec("agora") is not None:
        pytest.skip("an `agora` package is installed in this environment")
    with pytest.raises(UsageError, match=r"pip install 'botrun\[agora\]'"):
        load_sdk()


@pytest.mark.parametrize(
    ("version", "words"), [("2.2.4", r"2\.3\+ API"), ("2.5.0", r"2\.3\.x-2\.4\.x")]
)
def test_unsupported_versions_are_refused_before_import(
    fake_site: Path, version: str, words: str
) -> None:
    # The package body would exit the process if it were imported: the check comes first.
    install(fake_site, version, {"agora/__init__.py": "import sys\nsys.exit(1)\n"})
    with pytest.raises(UsageError, match=words) as info:
        load_sdk()
    assert version in str(info.value) and "agora-python-server-sdk>=2.3,<2.5" in str(info.value)


def test_native_library_exit_becomes_a_usage_error(fake_site: Path) -> None:
    install(fake_site, "2.4.10", {"agora/__init__.py": "import sys\nsys.exit(1)\n"})
    with pytest.raises(UsageError, match="native library could not be loaded"):
        load_sdk()


def test_native_load_oserror_becomes_a_usage_error(fake_site: Path) -> None:
    install(
        fake_site,
        "2.4.10",
        {
            "agora/__init__.py": (
                "raise OSError('libagora_rtc_sdk.so: cannot open shared object')\n"
            ),
        },
    )
    with pytest.raises(UsageError, match=r"OSError: libagora_rtc_sdk\.so"):
        load_sdk()


def test_old_api_shape_without_metadata_is_recognised(fake_site: Path) -> None:
    modules = {
        f"agora/rtc/{m}.py": ""
        for m in (
            "agora_base",
            "agora_service",
            "rtc_connection_observer",
            "audio_frame_observer",
            "local_user_observer",
        )
    }
    modules["agora/__init__.py"] = ""
    modules["agora/rtc/__init__.py"] = ""
    modules["agora/rtc/agora_service.py"] = "class AgoraService:\n    pass\n"
    modules["agora/rtc/rtc_connection.py"] = "class RTCConnection:\n    def connect(self): pass\n"
    install(fake_site, None, modules)
    with pytest.raises(UsageError, match=r"old 2\.2\.x API"):
        load_sdk()


def test_the_double_loads_as_2_4(monkeypatch: pytest.MonkeyPatch) -> None:
    _forget_agora()
    monkeypatch.syspath_prepend(str(DOUBLE_DIR))
    try:
        sdk = load_sdk()
        assert sdk.version == "2.4.10"
        assert hasattr(sdk.RTCConnection, "push_audio_pcm_data")
    finally:
        _forget_agora()


def test_plugin_registers_agora_without_importing_the_sdk() -> None:
    from botrun.core.plugins import transports

    spec = transports()["agora"]
    names = {o.name: o for o in spec.options}
    assert set(names) == {
        "channel",
        "uid",
        "app_id",
        "certificate",
        "token_expiry_s",
        "join_timeout_s",
    }
    assert names["channel"].required
    assert names["app_id"].envvar == "AGORA_APP_ID" and names["app_id"].secret
    cert = names["certificate"]
    assert cert.envvar == "AGORA_APP_CERTIFICATE" and cert.secret and not cert.config
    assert "agora" not in sys.modules and "agora.rtc" not in sys.modules


def test_factory_needs_an_app_id_and_registers_secrets() -> None:
    from botrun.bots.runner import SharedOptions, prepare
    from botrun.core.plugins import transports
    from botrun.core.secrets import Secrets, redact

    spec = transports()["agora"]
    shared = SharedOptions(agent_url="ws://127.0.0.1:9/ws")
    ctx, _key = prepare(spec, shared, {"channel": "room"}, Secrets(environ={}))
    with pytest.raises(MissingSecretError, match="AGORA_APP_ID"):
        spec.factory(ctx)
    cert = "1234567890abcdef1234567890abcdef"
    env = {"AGORA_APP_ID": APP_ID, "AGORA_APP_CERTIFICATE": cert}
    ctx, _key = prepare(spec, shared, {"channel": "room", "uid": 7}, Secrets(environ=env))
    t = spec.factory(ctx)
    assert (t.app_id, t.certificate, t.uid, t.channel) == (APP_ID, cert, 7, "room")
    assert redact(f"id {APP_ID} cert {cert} token {t.make_token()}").count("***") == 3


def test_cli_without_the_sdk_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    if importlib.util.find_spec("agora") is not None:
        pytest.skip("an `agora` package is installed in this environment")
    pytest.importorskip("botrun.core.audio.pacer", reason="the bridge's pacer is not built yet")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "ASSEMBLYAI_"))}
    env["AGORA_APP_ID"] = APP_ID
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "botrun.bots.cli",
            "agora",
            "--channel",
            "room",
            "--agent-url",
            "ws://127.0.0.1:9/ws",
            "--log-level",
            "error",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'botrun[agora]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert APP_ID not in proc.stderr + proc.stdout
