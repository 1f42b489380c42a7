"""An MCP client written with the Python SDK (`mcp`) that reaches `mcp-host serve --http` over Streamable HTTP.

Run as `python sdk_http_client.py <url>`: connects with the SDK's `streamable_http_client`, initializes, lists the
aggregated tools, calls `everything__echo` (a Node server), `time__get_current_time` (a Python server) and
`everything__trigger-long-running-operation` with a progress callback, leaves the session (the SDK sends DELETE),
and prints a JSON summary on stdout.
"""

import json
import sys

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from sdk_survey import survey, text_of


async def main(url: str) -> dict:
    summary = {}
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await survey(session, summary, "over HTTP")

            progress = []

            async def on_progress(value, total, message):
                progress.append([value, total])

            long = await session.call_tool(
                "everything__trigger-long-running-operation",
                {"duration": 1, "steps": 4},
                progress_callback=on_progress,
            )
            summary["long"] = {"isError": bool(long.is_error), "text": text_of(long)}
            summary["progress"] = progress
    return summary


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: sdk_http_client.py <url>")
    print(json.dumps(anyio.run(main, sys.argv[1])), flush=True)
