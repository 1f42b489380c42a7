"""An MCP client written with the Python SDK (`mcp`), for the interop tests of mcp-host.

Run as `python sdk_client.py <mcp-host> <config>`: starts `<mcp-host> --config <config> serve` with the SDK's
`stdio_client`, initializes, lists the aggregated tools, calls `everything__echo` (a Node server) and
`time__get_current_time` (a Python server), leaves the session (the SDK closes the gateway's input, waits, and only
then terminates it), and prints a JSON summary on stdout. `MCP_HOST_INTEROP_MARKER`, when set, is passed on to
the gateway so that leak checks find it.

To observe how the gateway ended, the script wraps two private functions of `mcp.client.stdio` (pinned SDK
version): the one that spawns the process, to keep the process and read its exit status, and the one that
terminates the process tree, to record whether the SDK had to.
"""

import json
import os
import sys
import time

import anyio
import mcp.client.stdio as sdk_stdio
from mcp import ClientSession, StdioServerParameters, stdio_client

from sdk_survey import survey

MARKER_VAR = "MCP_HOST_INTEROP_MARKER"

observed = {"process": None, "terminated": False}

_spawn = sdk_stdio._create_platform_compatible_process
_terminate = sdk_stdio._terminate_process_tree


async def spawn(*args, **kwargs):
    process = await _spawn(*args, **kwargs)
    observed["process"] = process
    return process


async def terminate(process):
    observed["terminated"] = True
    await _terminate(process)


sdk_stdio._create_platform_compatible_process = spawn
sdk_stdio._terminate_process_tree = terminate



async def main(host: str, config: str) -> dict:
    env = {MARKER_VAR: os.environ[MARKER_VAR]} if MARKER_VAR in os.environ else {}
    params = StdioServerParameters(command=host, args=["--config", config, "serve"], env=env)
    summary = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await survey(session, summary, "from the Python SDK")
        closing = time.monotonic()
    summary["closeSeconds"] = round(time.monotonic() - closing, 3)
    process = observed["process"]
    summary["returncode"] = None if process is None else process.returncode
    summary["terminated"] = observed["terminated"]
    return summary


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: sdk_client.py <mcp-host> <config>")
    print(json.dumps(anyio.run(main, sys.argv[1], sys.argv[2])), flush=True)
