"""What both Python SDK clients of the interop tests do with an initialized gateway session."""

import time

import mcp_types


def text_of(result):
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


async def survey(session, summary: dict, echo_message: str) -> None:
    """Initializes, lists every tool (all pages), calls `everything__echo` with `echo_message` and
    `time__get_current_time`, and records it all in `summary`."""
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

    echo = await session.call_tool("everything__echo", {"message": echo_message})
    summary["echo"] = {"isError": bool(echo.is_error), "text": text_of(echo)}
    now = await session.call_tool("time__get_current_time", {"timezone": "UTC"})
    summary["time"] = {"isError": bool(now.is_error), "text": text_of(now)}
