"""Python SDK clients through a load balancer in front of mcp-host replicas that share a session key.

Run as `python replica_clients.py <url> <clients> <seconds>`: each client opens one session, then calls `s__echo`
over and over for the given time (each call bounded by 15 s), and counts calls that answered, failed (an error
came back) and were lost (no answer within the bound). A client's session survived when its last call, made
after every fault, answered on the session it opened. Prints a JSON summary on stdout.
"""

import json
import sys
import time

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

CALL_BOUND_S = 15


async def one_client(idx: int, url: str, seconds: float, results: list) -> None:
    record = {"ok": 0, "failed": 0, "lost": 0, "errors": [], "longestGapMs": 0.0, "survived": False}
    try:
        async with streamable_http_client(url) as (read, write):
            async with ClientSession(read, write) as session:
                with anyio.fail_after(CALL_BOUND_S):
                    await session.initialize()
                start = time.monotonic()
                last_ok = start
                last_call_ok = False
                while time.monotonic() - start < seconds:
                    try:
                        with anyio.fail_after(CALL_BOUND_S):
                            result = await session.call_tool("s__echo", {"text": f"client {idx}"})
                        if result.is_error:
                            record["failed"] += 1
                            last_call_ok = False
                            if len(record["errors"]) < 5:
                                at = time.monotonic() - start
                                record["errors"].append(f"at {at:.1f} s: tool error {result.content!r}"[:300])
                        else:
                            now = time.monotonic()
                            record["longestGapMs"] = max(record["longestGapMs"], (now - last_ok) * 1000.0)
                            last_ok = now
                            record["ok"] += 1
                            last_call_ok = True
                    except TimeoutError:
                        record["lost"] += 1
                        last_call_ok = False
                    except Exception as exc:  # noqa: BLE001 - every failure is counted, by kind
                        record["failed"] += 1
                        last_call_ok = False
                        if len(record["errors"]) < 5:
                            at = time.monotonic() - start
                            record["errors"].append(f"at {at:.1f} s: {repr(exc)[:300]}")
                record["survived"] = last_call_ok
    except Exception as exc:  # noqa: BLE001
        import traceback
        traceback.print_exception(exc, file=sys.stderr)
        record["errors"].append("session: " + repr(exc)[:300])
        record["silentClose"] = is_silent_close(exc)
    results[idx] = record


def is_silent_close(exc: BaseException) -> bool:
    """Whether the session ended only because a request's connection was closed without any
    answer (a balancer does that to a kept-alive connection whose request was on a replica that
    died, so that the client may retry; the SDK ends the whole session instead)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_silent_close(inner) for inner in exc.exceptions)
    return "Server disconnected without sending a response" in str(exc)


async def main(url: str, n_clients: int, seconds: float) -> dict:
    results = [None] * n_clients
    async with anyio.create_task_group() as group:
        for idx in range(n_clients):
            group.start_soon(one_client, idx, url, seconds, results)
    return {
        "clients": results,
        "survived": sum(1 for record in results if record and record["survived"]),
        "silentlyClosed": sum(1 for record in results if record and record.get("silentClose")),
        "ok": sum(record["ok"] for record in results if record),
        "failed": sum(record["failed"] for record in results if record),
        "lost": sum(record["lost"] for record in results if record),
        "longestGapMs": max((record["longestGapMs"] for record in results if record), default=0.0),
    }


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: replica_clients.py <url> <clients> <seconds>")
    summary = anyio.run(main, sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
    print(json.dumps(summary), flush=True)
