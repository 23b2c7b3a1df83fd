# syntax=docker/dockerfile:1
# One image for every newsmon service: `docker run IMAGE fetcher|classifier|alerter|notifier`
# (or `run`, all in one process). Checked in `make test` (hadolint, structure); not built on the
# development machine, which runs no Docker engine (README, "Run on a cluster").

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the wheel of newsmon and of every dependency, then a virtualenv from them -------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
COPY shared ./shared
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels . \
    && python -m venv /opt/newsmon \
    && /opt/newsmon/bin/pip install --no-cache-dir --no-index --find-links /wheels /wheels/newsmon-*.whl

# --- runtime: the virtualenv only; no compiler, no pip cache, no sources -------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="newsmon" \
      org.opencontainers.image.description="Streaming news monitor: fetcher, classifier, alerter, notifier over Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 newsmon \
    && useradd --system --uid 10001 --gid newsmon --no-create-home --home-dir /app \
       --shell /usr/sbin/nologin newsmon
COPY --from=build /opt/newsmon /opt/newsmon
WORKDIR /app
# The default feeds list (NEWSMON_FEEDS_FILE=deploy/feeds.toml is relative to /app).
COPY deploy/feeds.toml deploy/feeds.toml
ENV PATH=/opt/newsmon/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NEWSMON_METRICS_HOST=0.0.0.0 \
    NEWSMON_METRICS_PORT=9400 \
    NEWSMON_LOG_FORMAT=json
USER 10001:10001
EXPOSE 9400
# /healthz answers 200 while the process runs its loop (/readyz tells whether it has work and
# Kafka); urllib because the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('NEWSMON_METRICS_PORT', '9400') + '/healthz', timeout=4)"]
ENTRYPOINT ["newsmon"]
CMD ["run"]
