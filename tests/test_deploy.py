"""docs/deploy.md, the Dockerfile and compose.yaml stay true to the code (issue 20). The
image build itself cannot run here (no Docker daemon): docs/deploy.md says so."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_dockerfile_runs_the_same_install_steps_as_ci() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    docker = (ROOT / "Dockerfile").read_text()
    assert "bash .ci/install-system-tools" in ci and "bash .ci/install-system-tools" in docker
    (install,) = set(re.findall(r"python3 -m venv \.venv && \.venv/bin/pip install [^\n]+'", ci))
    assert install in docker


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
