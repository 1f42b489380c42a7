"""An MCP client written with the Python SDK (`mcp`) that reaches `mcp-host serve --http` over Streamable HTTP.

Run as `python sdk_http_client.py <url>`: connects with the SDK's `streamable_http_client`, initializes, lists the
aggregated tools, calls `everything__echo` (a Node server), `time__get_current_time` (a Python server) and
`everything__trigger-long-running-operation` with a progress callback, leaves the session (the SDK sends DELETE),
and prints a JSON summary on stdout.
"""

import json
import sys
import time

import anyio
import mcp_types

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def text_of(result):
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


async def main(url: str) -> dict:
    summary = {}
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            started = time.monotonic()
            initialized = await session.initialize()
            summary["initializeSeconds"] = round(time.monotonic() - started, 3)
            summary["protocolVersion"] = initialized.protocol_version
            summary["serverName"] = initialized.server_info.name

            tools = []
            cursor = None
            while True:
                page = None if cursor is None else mcp_types.PaginatedRequestParams(cursor=cursor)
                listed = await session.list_tools(params=page)
                tools.extend(tool.name for tool in listed.tools)
                cursor = listed.next_cursor
                if cursor is None:
                    break
            summary["tools"] = tools

            echo = await session.call_tool("everything__echo", {"message": "over HTTP"})
            summary["echo"] = {"isError": bool(echo.is_error), "text": text_of(echo)}
            now = await session.call_tool("time__get_current_time", {"timezone": "UTC"})
            summary["time"] = {"isError": bool(now.is_error), "text": text_of(now)}

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
