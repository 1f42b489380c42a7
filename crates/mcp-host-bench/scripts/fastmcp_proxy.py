"""FastMCP's proxy (`fastmcp.server.create_proxy`) in front of one stdio server, served over Streamable HTTP: a peer gateway of `mcp-host-bench`.

Run as `python fastmcp_proxy.py <port> <command> [args...]` with the Python of a venv that holds `fastmcp`. It
proxies the stdio server `<command> [args...]` (configured as the one server `srv` of an `mcpServers` object, as
FastMCP's documentation shows) at `http://127.0.0.1:<port>/mcp`, with FastMCP's defaults otherwise, until
SIGINT or SIGTERM.
"""

import sys

from fastmcp.server import create_proxy

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: fastmcp_proxy.py <port> <command> [args...]")
    port = int(sys.argv[1])
    config = {"mcpServers": {"srv": {"command": sys.argv[2], "args": sys.argv[3:]}}}
    proxy = create_proxy(config, name="fastmcp-proxy")
    proxy.run(transport="http", host="127.0.0.1", port=port, path="/mcp", show_banner=False, log_level="WARNING")
