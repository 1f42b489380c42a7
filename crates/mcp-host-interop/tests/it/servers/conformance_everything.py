"""The surface the official conformance suite's server scenarios expect, written with the Python SDK (`mcp`).

`cargo xtask conformance` runs the suite's server scenarios against `mcp-host serve --http`, whose configuration
holds this one server with `"namespace": false`, so the gateway offers these names as they are. Each tool, resource
and prompt follows the "Server Implementation Requirements" of its scenario in `@modelcontextprotocol/conformance`
(the sources under `src/scenarios/server/`). Run as `python conformance_everything.py` (stdio).
"""

import asyncio
import base64
import json
import warnings

from mcp import types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.mcpserver.tools.base import Tool
from pydantic import BaseModel, Field

# Logging, sampling and elicitation are deprecated in newer protocol revisions; the warnings would only clutter
# stderr.
warnings.simplefilter("ignore")

# A 1x1 PNG and a WAV file with no samples.
IMAGE_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
AUDIO_WAV = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="


def image() -> types.ImageContent:
    return types.ImageContent(type="image", data=IMAGE_PNG, mime_type="image/png")


def text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def embedded(uri: str, mime_type: str, value: str) -> types.EmbeddedResource:
    contents = types.TextResourceContents(uri=uri, mime_type=mime_type, text=value)
    return types.EmbeddedResource(type="resource", resource=contents)


def json_schema_2020_12_tool(name: str = "", address: dict | None = None) -> str:
    """Tool with JSON Schema 2020-12 features"""
    return f"name={name} address={json.dumps(address)}"


# The scenario checks that JSON Schema 2020-12 keywords reach the client unchanged: `$schema`, `$defs` and
# `additionalProperties` (2025-11-25), and composition, conditional and `$anchor` keywords too (SEP-2106,
# 2026-07-28). So this tool's input schema is written out rather than derived from the function's signature.
schema_tool = Tool.from_function(json_schema_2020_12_tool).model_copy(
    update={
        "parameters": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {
                "address": {
                    "$anchor": "addressDef",
                    "type": "object",
                    "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
                }
            },
            "properties": {
                "name": {"type": "string"},
                "address": {"$ref": "#/$defs/address"},
                "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                "phone": {"type": "string"},
                "email": {"type": "string"},
            },
            "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
            "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
            "then": {"required": ["phone"]},
            "else": {"required": ["email"]},
            "additionalProperties": False,
        }
    }
)

server = MCPServer("mcp-host-conformance-everything", tools=[schema_tool])


# Tools.


@server.tool()
def test_simple_text() -> str:
    """Returns simple text content."""
    return "This is a simple text response for testing."


@server.tool()
def test_image_content() -> list[types.ImageContent]:
    """Returns image content."""
    return [image()]


@server.tool()
def test_audio_content() -> list[types.AudioContent]:
    """Returns audio content."""
    return [types.AudioContent(type="audio", data=AUDIO_WAV, mime_type="audio/wav")]


@server.tool()
def test_embedded_resource() -> list[types.EmbeddedResource]:
    """Returns an embedded resource."""
    return [embedded("test://embedded-resource", "text/plain", "This is an embedded resource content.")]


@server.tool()
def test_multiple_content_types() -> list[types.TextContent | types.ImageContent | types.EmbeddedResource]:
    """Returns text, image and resource content."""
    return [
        text("Multiple content types test:"),
        image(),
        embedded("test://mixed-content-resource", "application/json", '{"test":"data","value":123}'),
    ]


@server.tool()
async def test_tool_with_logging(ctx: Context) -> str:
    """Sends three log messages while it runs."""
    await ctx.info("Tool execution started")
    await asyncio.sleep(0.05)
    await ctx.info("Tool processing data")
    await asyncio.sleep(0.05)
    await ctx.info("Tool execution completed")
    return "Tool with logging executed successfully"


@server.tool()
async def test_logging_tool(ctx: Context) -> str:
    """Logs one message (2026-07-28: a client that sets no log level in `_meta` must not get it)."""
    await ctx.info("test_logging_tool ran")
    return "logged"


@server.tool()
def test_error_handling() -> str:
    """Always fails."""
    raise RuntimeError("This tool intentionally returns an error for testing")


@server.tool()
async def test_reconnection() -> str:
    """The reference server closes the request's SSE stream here and answers after the client
    reconnects (SEP-1699). Behind the gateway the HTTP stream is the gateway's, not this stdio
    server's: the tool only takes a moment; the gateway's priming event and `retry` field are what
    the scenario sees, and its resumption is tested by mcp-host-cli's own tests."""
    await asyncio.sleep(0.1)
    return "Reconnection test completed successfully."


@server.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Reports progress 0, 50 and 100 of 100."""
    for progress in (0, 50, 100):
        if progress:
            await asyncio.sleep(0.05)
        await ctx.report_progress(progress=progress, total=100, message=f"Completed step {progress} of 100")
    return "Tool with progress executed successfully"


@server.tool()
async def test_sampling(prompt: str, ctx: Context) -> str:
    """Asks the client's LLM through `sampling/createMessage`."""
    message = types.SamplingMessage(role="user", content=text(prompt))
    result = await ctx.session.create_message(messages=[message], max_tokens=100)
    content = result.content
    return f"LLM response: {content.text if content.type == 'text' else 'No response'}"


class UserInfo(BaseModel):
    username: str = Field(description="User's response")
    email: str = Field(description="User's email address")


@server.tool()
async def test_elicitation(message: str, ctx: Context) -> str:
    """Asks the user through `elicitation/create`."""
    result = await ctx.elicit(message=message, schema=UserInfo)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"User response: action={result.action}, content={content}"


class Defaults(BaseModel):
    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(
        default="active", description="User status", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    verified: bool = Field(default=True, description="Verification status")


@server.tool()
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    """Elicits values of every primitive type, each with a default (SEP-1034)."""
    result = await ctx.elicit(message="Please provide user information", schema=Defaults)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"Elicitation completed: action={result.action}, content={content}"


class Enums(BaseModel):
    untitledSingle: str = Field(
        description="Simple enum without titles", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    titledSingle: str = Field(
        description="Enum with titled options",
        json_schema_extra={
            "oneOf": [
                {"const": "low", "title": "Low Priority"},
                {"const": "medium", "title": "Medium Priority"},
                {"const": "high", "title": "High Priority"},
            ]
        },
    )
    legacyEnum: str = Field(
        description="Legacy enum with enumNames",
        json_schema_extra={"enum": ["small", "medium", "large"], "enumNames": ["Small", "Medium", "Large"]},
    )
    untitledMulti: list[str] = Field(
        description="Multi-select without titles",
        json_schema_extra={"items": {"type": "string", "enum": ["read", "write", "execute"]}},
    )
    titledMulti: list[str] = Field(
        description="Multi-select with titles",
        json_schema_extra={
            "items": {
                "anyOf": [
                    {"const": "feature", "title": "New Feature"},
                    {"const": "bug", "title": "Bug Fix"},
                    {"const": "docs", "title": "Documentation"},
                ]
            }
        },
    )


@server.tool()
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    """Elicits values with every enum schema variant (SEP-1330)."""
    result = await ctx.elicit(message="Please select values using different enum schema types", schema=Enums)
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"Elicitation completed: action={result.action}, content={content}"


# Resources.


@server.resource("test://static-text", mime_type="text/plain")
def static_text() -> str:
    """A static text resource."""
    return "This is the content of the static text resource."


@server.resource("test://static-binary", mime_type="image/png")
def static_binary() -> bytes:
    """A static binary resource (a PNG image)."""
    return base64.b64decode(IMAGE_PNG)


@server.resource("test://template/{id}/data", mime_type="application/json")
def template_data(id: str) -> str:
    """A resource template whose `{id}` is substituted."""
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@server.resource("test://watched-resource", mime_type="text/plain")
def watched_resource() -> str:
    """A resource that can be subscribed to."""
    return "Watched resource content"


subscriptions: set[str] = set()


async def subscribe(ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
    subscriptions.add(str(params.uri))
    return types.EmptyResult()


async def unsubscribe(ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    subscriptions.discard(str(params.uri))
    return types.EmptyResult()


async def set_logging_level(ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
    # Every message is sent whatever the level; the client (here the gateway) filters.
    return types.EmptyResult()


# MCPServer has no public registration for these three; the low-level server serves them and declares
# `resources.subscribe` and `logging` because they are there.
server._lowlevel_server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
server._lowlevel_server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
server._lowlevel_server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_logging_level)


# Prompts.


@server.prompt()
def test_simple_prompt() -> list[UserMessage]:
    """A simple prompt without arguments."""
    return [UserMessage(role="user", content=text("This is a simple prompt for testing."))]


@server.prompt()
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    """A prompt with two required arguments."""
    return [UserMessage(role="user", content=text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]


@server.prompt()
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    """A prompt that embeds the resource it is given."""
    return [
        UserMessage(role="user", content=embedded(resourceUri, "text/plain", "Embedded resource content for testing.")),
        UserMessage(role="user", content=text("Please process the embedded resource above.")),
    ]


@server.prompt()
def test_prompt_with_image() -> list[UserMessage]:
    """A prompt with an image."""
    return [
        UserMessage(role="user", content=image()),
        UserMessage(role="user", content=text("Please analyze the image above.")),
    ]


@server.completion()
async def complete(ref, argument, context) -> types.Completion:
    """Completes `arg1` of `test_prompt_with_arguments` from a fixed list; nothing else."""
    if isinstance(ref, types.PromptReference) and ref.name == "test_prompt_with_arguments" and argument.name == "arg1":
        values = [value for value in ("test", "testing", "tested") if value.startswith(argument.value)]
        return types.Completion(values=values, total=len(values), has_more=False)
    return types.Completion(values=[], total=0, has_more=False)


if __name__ == "__main__":
    server.run("stdio")
