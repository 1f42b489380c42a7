"""An MCP server written with the Python SDK (`mcp`), for the interop tests of mcp-host.

Its `ask_llm` tool sends `sampling/createMessage` to the client whatever capabilities the client declared, and
reports how the request ended: `answered: ...` or `refused: code=<JSON-RPC error code> message=<message>`.
Run as `python sampling_server.py` (stdio).
"""

import warnings

from mcp import types
from mcp.server.mcpserver import Context, MCPServer

# `create_message` is deprecated in newer protocol revisions; the warning would only clutter stderr.
warnings.simplefilter("ignore")

server = MCPServer("mcp-host-interop-sampling")


@server.tool()
async def ask_llm(prompt: str, ctx: Context) -> str:
    """Asks the client's LLM through `sampling/createMessage` and reports how the request ended."""
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))
    try:
        result = await ctx.session.create_message(messages=[message], max_tokens=10)
    except Exception as error:  # noqa: BLE001 - how the request failed is the answer under test
        data = getattr(error, "error", None)
        return f"refused: code={getattr(data, 'code', None)} message={getattr(data, 'message', error)}"
    return f"answered: {result}"


if __name__ == "__main__":
    server.run("stdio")
