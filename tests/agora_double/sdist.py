"""The published agora-python-server-sdk, fetched at test time and loaded over native.py.

Agora's code is never committed: each supported version's sdist is downloaded from the
package registry once per test session (``pip download --no-binary :all:``; set
``BOTRUN_AGORA_SDIST_DIR`` to keep the downloads between sessions), its ``agora`` package is
copied unmodified into a private site directory with a minimal ``.dist-info`` (so
``importlib.metadata`` reports the version, as after ``pip install``), and imported with two
seams, both outside Agora's code:

* ``urllib.request.urlretrieve`` is Agora's CDN: the package's ``__init__`` downloads the
  native SDK zip on first import (and, in 2.3.0, on every import); the fake CDN serves a zip
  of placeholder libraries, or fails like an offline machine (``URLError``);
* ``ctypes.CDLL`` returns :class:`~native.FakeAgoraLib` for ``libagora_rtc_sdk.so`` of that
  site directory (and a stub for the helper libraries it loads first); every other path
  gets the real ``CDLL``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .native import Cloud, FakeAgoraLib

#: Every minor line botrun supports (>=2.3,<2.5): first and last patch release of each.
VERSIONS = ("2.3.0", "2.3.4", "2.4.0", "2.4.10")
DISTRIBUTION = "agora-python-server-sdk"
NATIVE_LIBS = (
    "libagora_rtc_sdk.so",
    "libaosl.so",
    "libagora-fdkaac.so",
    "libagora-ffmpeg.so",
    "libagora-soundtouch.so",
    "libagora_ai_noise_suppression_extension.so",
)

_lock = threading.Lock()
_root: Path | None = None
_sources: dict[str, Path] = {}
_sites: dict[str, Path] = {}


def _cache_dir() -> Path:
    global _root
    if _root is None:
        env = os.environ.get("BOTRUN_AGORA_SDIST_DIR")
        if env:
            _root = Path(env)
            _root.mkdir(parents=True, exist_ok=True)
        else:
            _root = Path(tempfile.mkdtemp(prefix="botrun-agora-sdist-"))
            atexit.register(shutil.rmtree, _root, ignore_errors=True)
    return _root


def source(version: str) -> Path:
    """The extracted sdist of ``version`` (downloaded once per session)."""
    with _lock:
        if version in _sources:
            return _sources[version]
        cache = _cache_dir()
        archive = cache / f"agora_python_server_sdk-{version}.tar.gz"
        if not archive.is_file():
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
                "2",
                "--timeout",
                "30",
                "-d",
                str(cache),
                f"{DISTRIBUTION}=={version}",
            ]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            except subprocess.TimeoutExpired:
                pytest.fail(f"pip download of {DISTRIBUTION}=={version} timed out", False)
            if proc.returncode != 0 or not archive.is_file():
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                pytest.fail(
                    f"cannot fetch {DISTRIBUTION}=={version} from the package registry "
                    f"(the Agora tests need it): {last}",
                    False,
                )
        dest = cache / f"src-{version}"
        if not dest.is_dir():
            with tarfile.open(archive) as tar:
                tar.extractall(dest, filter="data")
        found = sorted(dest.glob("agora_python_server_sdk-*/agora/rtc"))
        assert found, f"the {version} sdist has no agora/rtc package"
        _sources[version] = found[0].parents[1]
        return _sources[version]


def site(version: str, fresh: Path | None = None) -> Path:
    """A directory holding ``agora`` (unmodified) and its .dist-info, to put on sys.path:
    one per version and session, or a new one in ``fresh`` (as just after ``pip install``,
    before the first import has downloaded the native library)."""
    src = source(version)
    with _lock:
        if fresh is None and version in _sites:
            return _sites[version]
        target = fresh or _cache_dir() / f"site-{version}"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(src / "agora", target / "agora")
        info = target / f"agora_python_server_sdk-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: agora-python-server-sdk\nVersion: {version}\n"
        )
        if fresh is None:
            _sites[version] = target
        return target


def forget_agora() -> None:
    for name in list(sys.modules):
        if name == "agora" or name.startswith("agora."):
            del sys.modules[name]


class FakeCDN:
    """``urllib.request.urlretrieve`` for Agora's download of the native SDK."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.offline = False

    def __call__(self, url: str, filename: Any = None, reporthook: Any = None, data: Any = None):
        self.requests.append(url)
        if self.offline:
            raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))
        blob = io.BytesIO()
        with zipfile.ZipFile(blob, "w") as zf:
            for name in NATIVE_LIBS:
                zf.writestr(f"agora_sdk/{name}", b"\x7fELF placeholder")
        payload = blob.getvalue()
        Path(filename).write_bytes(payload)
        if reporthook is not None:  # as urllib does: block 0, then each block read
            reporthook(0, 8192, len(payload))
            reporthook(1, 8192, len(payload))
        return filename, None


class _StubLib:
    """A helper library the wrapper loads only for its side effects."""


@contextlib.contextmanager
def installed(
    version: str, cloud: Cloud, cdn: FakeCDN | None = None, fresh: Path | None = None
) -> Iterator[FakeAgoraLib]:
    """``import agora.rtc...`` finds the published ``version`` over a fake native library
    while the context is active; the modules are forgotten on exit."""
    root = site(version, fresh)
    lib = FakeAgoraLib(cloud)
    cdn = cdn or FakeCDN()
    real_cdll = ctypes.CDLL

    def cdll(name: Any, *args: Any, **kwargs: Any) -> Any:
        path = Path(str(name))
        if root in path.parents:
            if path.name not in NATIVE_LIBS:
                raise OSError(f"{path}: cannot open shared object file")
            return lib if path.name == "libagora_rtc_sdk.so" else _StubLib()
        return real_cdll(name, *args, **kwargs)

    forget_agora()
    sys.path.insert(0, str(root))
    old_cdll, old_retrieve = ctypes.CDLL, urllib.request.urlretrieve
    ctypes.CDLL = cdll  # type: ignore[misc,assignment]
    urllib.request.urlretrieve = cdn  # type: ignore[assignment]
    try:
        yield lib
    finally:
        ctypes.CDLL = old_cdll  # type: ignore[misc]
        urllib.request.urlretrieve = old_retrieve
        with contextlib.suppress(ValueError):
            sys.path.remove(str(root))
        cloud.shutdown()
        forget_agora()
