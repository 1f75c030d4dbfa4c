# botrun: one image for the front door (`botrun serve --queue`) and the call workers
# (`botrun worker`), built in two stages:
#   test     the same install steps as .ci/run (the system tools of .ci/system-tools via
#            .ci/install-system-tools, then the README's venv install with the dev extra);
#            `docker build --target test -t botrun-test . && docker run --rm botrun-test`
#            runs .ci/run (gates and tests) in it.
#   runtime  (the default target) only what serve and worker need: the package with the
#            daily and twilio extras, no chromium, chromedriver, redis-server, espeak-ng,
#            sox or dev tools.
FROM python:3.11-slim-bookworm AS test

WORKDIR /app
COPY . /app
RUN bash .ci/install-system-tools \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev,daily]'
CMD ["bash", ".ci/run"]


FROM python:3.11-slim-bookworm AS runtime

WORKDIR /app
COPY . /app
RUN python3 -m venv .venv && .venv/bin/pip install -q --no-cache-dir '.[daily,twilio]' \
    && rm -rf tests benchmarks .ci

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
