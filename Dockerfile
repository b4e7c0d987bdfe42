# The blindpad relay: one process serving the page and the websocket, SQLite
# in the /data volume, as a non-root user.
#
#   docker build -t blindpad-relay .
#   docker run -d -p 127.0.0.1:8765:8765 -v blindpad-data:/data blindpad-relay \
#       serve --host 0.0.0.0 --public-url https://pad.example.org
#
# Both stages call scripts/install-relay, the script tests/web/test_selfhost.py
# runs in CI (no container engine runs there). docs/DEPLOY.md has the rest.

FROM python:3.12-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# Pyodide and libsodium, which the wheel carries to serve the page.
RUN npm ci --no-audit --no-fund --loglevel=error
COPY . .
RUN scripts/install-relay build /dist

FROM python:3.12-slim
COPY --from=build /dist /dist
COPY scripts/install-relay /usr/local/bin/install-relay
RUN install-relay install /dist/blindpad-*.whl /opt/blindpad \
    && rm -rf /dist \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin blindpad \
    && mkdir -p /data \
    && chown blindpad:blindpad /data
ENV PATH=/opt/blindpad/bin:$PATH \
    PYTHONUNBUFFERED=1
USER blindpad
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8765
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["blindpad", "relay", "check", "--url", "http://127.0.0.1:8765/"]
ENTRYPOINT ["blindpad", "relay"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8765", "--store", "sqlite:////data/blindpad.sqlite3"]
