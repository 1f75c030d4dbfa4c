"""Loading the Agora SDK: every way it can be unusable becomes one clear UsageError (exit 2),
and the plugin registers ``botrun agora`` without importing it."""

from __future__ import annotations

import importlib.util
import logging
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from agora_double.harness import APP_ID
from agora_double.native import Cloud
from agora_double.sdist import VERSIONS, FakeCDN, installed

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


@pytest.mark.parametrize("version", VERSIONS)
def test_the_published_sdk_loads_without_side_effects(
    version: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 14 item 3: the first import (which downloads the native library) leaves the
    process's HTTPS certificate checks on and logs nothing above DEBUG."""
    caplog.set_level("DEBUG")
    before = ssl._create_default_https_context
    cdn = FakeCDN()
    with installed(version, Cloud(), cdn, fresh=tmp_path / "site"):
        sdk = load_sdk()
        assert sdk.version == version
        assert hasattr(sdk.RTCConnection, "push_audio_pcm_data")
        assert ssl._create_default_https_context is before
        load_sdk()  # again, as a second call in the same process would
        assert ssl._create_default_https_context is before
    assert len(cdn.requests) >= 1  # the import really went through the download path
    loud = [r for r in caplog.records if r.name.split(".")[0] == "agora"]
    assert loud == []  # the SDK's own ERROR lines did not reach the user's handlers
    assert "agora SDK import: " in caplog.text  # ... they are in botrun's log, at DEBUG
    assert all(
        r.levelno == logging.DEBUG for r in caplog.records if "agora SDK import" in r.message
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_offline_first_import_names_the_native_library_download(
    version: str, tmp_path: Path
) -> None:
    before = ssl._create_default_https_context
    cdn = FakeCDN()
    cdn.offline = True
    with installed(version, Cloud(), cdn, fresh=tmp_path / "site"):
        with pytest.raises(UsageError) as info:
            load_sdk()
        assert ssl._create_default_https_context is before  # restored after a failed import
    message = str(info.value)
    assert "native library" in message and "download.agora.io" in message
    assert "Temporary failure in name resolution" in message
    assert "internet access" in message


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


def test_an_initialize_that_raises_is_named_an_init_failure(tmp_path: Path) -> None:
    """After a failed init, 2.4.x's initialize() goes on to use the service's parameter
    object; should that be missing, it raises from inside the wrapper."""
    from botrun.core.errors import TransportError
    from botrun.transports.agora.sdk import initialize_service

    class Service:
        inited = False

        def initialize(self, config: object) -> int:
            raise AttributeError("'NoneType' object has no attribute 'set_int'")

    with pytest.raises(TransportError, match=r"failed to initialize \(AttributeError: "):
        initialize_service(Service(), object(), log_path=tmp_path / "agorasdk.log")
