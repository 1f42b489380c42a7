# mcp-host as a gateway replica: `docker build -t mcp-host .`
#
# Each replica runs its own stdio servers, so the image carries their runtimes (Node.js for npx
# servers, Python with uv for uvx ones); drop what your servers do not need. The configuration
# comes from /etc/mcp-host/mcp.json (a ConfigMap in Kubernetes: changes are applied live), the
# bearer token and the session key from the environment (a Secret).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo install --path crates/mcp-host-cli --locked --root /out

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl nodejs npm python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/mcp mcp
COPY --from=build /out/bin/mcp-host /usr/local/bin/mcp-host
USER 10001
WORKDIR /home/mcp
EXPOSE 8808
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD curl -fsS http://127.0.0.1:8808/healthz || exit 1
# --max-sessions-per-peer 0: behind a load balancer every session comes from its address.
ENTRYPOINT ["mcp-host", "--config", "/etc/mcp-host/mcp.json", "--log-level", "info", \
            "serve", "--http", "0.0.0.0:8808", \
            "--bearer-token-env", "GATEWAY_TOKEN", "--session-key-env", "GATEWAY_SESSION_KEY", \
            "--probes-without-auth", "--max-sessions-per-peer", "0", \
            "--drain-timeout-ms", "20000", "--shutdown-timeout-ms", "5000"]
