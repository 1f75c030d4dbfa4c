# botrun: one image for the front door (`botrun serve --queue`) and the call workers
# (`botrun worker`). The build runs the same install steps as .ci/run: the system tools of
# .ci/system-tools (.ci/install-system-tools), then the README's venv install.
FROM python:3.11-slim-bookworm

WORKDIR /app
COPY . /app
RUN bash .ci/install-system-tools \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev,daily]'

ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1
# Not root at run time; bots write nothing outside /tmp unless their config says so.
RUN useradd --create-home --uid 10001 botrun
USER botrun
# The front door's port (serve); a worker's /metrics port is chosen with --port.
EXPOSE 7860 9100
# SIGTERM is the drain signal of a worker: give `docker stop` a timeout at least as long
# as --drain-timeout (compose.yaml: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["botrun"]
CMD ["--help"]
