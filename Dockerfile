# The result-relay service: slim, non-root, with a health check on readiness.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-cache-dir --prefix=/install ".[postgres]"

FROM python:3.11-slim
# /data is created here, owned by the service's user, so a named volume mounted on it starts
# out writable by that user (Docker copies the image's ownership into a new volume).
RUN useradd --system --uid 10001 --create-home --home-dir /home/relay relay \
    && mkdir -p /data && chown relay:relay /data
COPY --from=build /install /usr/local
USER relay
WORKDIR /home/relay
ENV PYTHONUNBUFFERED=1 \
    RELAY_DATABASE_URL=sqlite:////data/relay.db \
    RELAY_PORT=8080
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('RELAY_PORT', '8080')}/readyz\", timeout=2).status != 200)"]
CMD ["sh", "-c", "exec result-relay serve --host 0.0.0.0 --port \"$RELAY_PORT\""]
