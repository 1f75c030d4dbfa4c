"""docs/deploy.md, the Dockerfile and compose.yaml stay true to the code (issue 20). The
image build itself cannot run here (no Docker daemon): docs/deploy.md says so."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stages() -> dict[str, str]:
    """The Dockerfile's stages by name (``FROM ... AS name``), in order; the last is the
    image ``docker build .`` makes."""
    docker = (ROOT / "Dockerfile").read_text()
    parts = re.split(r"^FROM \S+ AS (\w+)\s*$", docker, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_dockerfile_test_stage_runs_the_same_install_steps_as_ci() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    test = stages()["test"]
    assert "bash .ci/install-system-tools" in ci and "bash .ci/install-system-tools" in test
    (install,) = set(re.findall(r"python3 -m venv \.venv && \.venv/bin/pip install [^\n]+'", ci))
    assert install in test
    assert 'CMD ["bash", ".ci/run"]' in test


def test_the_runtime_image_has_no_test_tooling() -> None:
    """Probe item 9: chromium, chromedriver, redis-server, espeak-ng and the dev extra are
    for the tests; the image serve and worker run from (the last stage) has none of them."""
    names = list(stages())
    assert names[-1] == "runtime" and "test" in names
    runtime = stages()["runtime"]
    assert "install-system-tools" not in runtime and "apt-get" not in runtime
    assert "dev" not in re.findall(r"pip install [^\n]*'\.\[([^\]]*)\]'", runtime)[0].split(",")
    assert "daily" in runtime and "twilio" in runtime
    assert "USER botrun" in runtime and 'ENTRYPOINT ["botrun"]' in runtime


def test_compose_runs_redis_a_front_door_and_workers() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    assert "image: redis:" in compose
    assert '"serve"' in compose and '"--queue"' in compose
    assert "- worker" in compose and "--queue=redis://redis:6379/0" in compose
    assert "stop_grace_period" in compose  # the drain needs time


def test_the_deploy_guide_documents_every_worker_option_and_serve_queue_option() -> None:
    from botrun.bots.serve.cli import command as serve
    from botrun.bots.worker.cli import command as worker

    text = (ROOT / "docs" / "deploy.md").read_text()
    worker_options = [o for p in worker.params for o in p.opts if o.startswith("--")]
    assert [o for o in worker_options if o not in text] == []
    queue_options = [
        o for p in serve.params for o in p.opts if o.startswith(("--queue", "--max-queued"))
    ]
    assert queue_options and [o for o in queue_options if o not in text] == []
    assert "--call-transport" in text
    assert "not tested here" in text.lower()
