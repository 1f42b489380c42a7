"""The Python SDK's client (`mcp`: `streamable_http_client` + `ClientSession`) as a benchmark client of `mcp-host-bench`.

Run as `python sdk_client.py '<spec-json>'` with the Python of a venv that holds `mcp`. The spec names the endpoint,
the tool and how much to measure (see `HttpClientSpec` in `crates/mcp-host-bench/src/http/spec.rs`); the result goes
to stdout as one JSON object (`HttpClientResult`): connect+initialize times, sequential call times, calls per second
with N in flight on one session, and with many sessions at once. Every call is checked (an error result or an
exception counts as a failure), and the whole run is bounded by `deadline_s`.
"""

import contextlib
import json
import os
import sys
import threading
import time

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

now = time.perf_counter_ns


class Run:
    def __init__(self, spec: dict):
        self.spec = spec
        self.arguments = {"text": spec["text"]}
        self.failures = 0
        self.first_failure = None

    def fail(self, error: BaseException) -> None:
        self.failures += 1
        if self.first_failure is None:
            self.first_failure = repr(error)

    @contextlib.asynccontextmanager
    async def session(self):
        """A connected, initialized session; leaving it ends the session (DELETE) and closes the connection."""
        async with streamable_http_client(self.spec["url"]) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session

    async def call(self, session: ClientSession) -> None:
        result = await session.call_tool(self.spec["tool"], self.arguments)
        if result.is_error:
            raise RuntimeError(f"the tool answered an error: {result}")

    async def run_for(self, sessions: list, lanes: int, seconds: float) -> float:
        """`lanes` loops of calls (lane i on session i % n) until `seconds` have passed; completed calls per second."""
        started = now()
        deadline = started + int(seconds * 1e9)
        completed = 0

        async def lane(lane_idx: int) -> None:
            nonlocal completed
            session = sessions[lane_idx % len(sessions)]
            while now() < deadline:
                try:
                    await self.call(session)
                    completed += 1
                except Exception as error:  # noqa: BLE001 - every failure is counted and reported
                    self.fail(error)

        async with anyio.create_task_group() as group:
            for lane_idx in range(lanes):
                group.start_soon(lane, lane_idx)
        return completed / ((now() - started) / 1e9)

    async def main(self) -> dict:
        spec = self.spec
        result = {
            "startup_ns": [],
            "seq_ns": [],
            "throughput": [],
            "sessions_throughput": None,
        }
        # Connect + initialize; the first cycle warms up and is not counted.
        for cycle_idx in range(spec["startups"] + 1):
            async with contextlib.AsyncExitStack() as stack:
                started = now()
                await stack.enter_async_context(self.session())
                elapsed = now() - started
            if cycle_idx > 0:
                result["startup_ns"].append(elapsed)
        if spec["seq_calls"] > 0:
            async with self.session() as session:
                for _ in range(spec["seq_warmup"]):
                    await self.call(session)
                deadline = now() + int(spec["seq_max_s"] * 1e9)
                for _ in range(spec["seq_calls"]):
                    if now() >= deadline:
                        break
                    started = now()
                    await self.call(session)
                    result["seq_ns"].append(now() - started)
        if spec["throughput"]:
            async with self.session() as session:
                for run in spec["throughput"]:
                    await self.run_for([session], run["in_flight"], run["warmup_s"])
                    rate = await self.run_for([session], run["in_flight"], run["run_s"])
                    result["throughput"].append([run["in_flight"], rate])
        if spec["sessions"] is not None:
            run = spec["sessions"]
            async with contextlib.AsyncExitStack() as stack:
                sessions = [await stack.enter_async_context(self.session()) for _ in range(run["n_sessions"])]
                lanes = run["n_sessions"] * run["in_flight"]
                await self.run_for(sessions, lanes, run["warmup_s"])
                result["sessions_throughput"] = await self.run_for(sessions, lanes, run["run_s"])
        result["failures"] = self.failures
        result["first_failure"] = self.first_failure
        return result


def watchdog(seconds: float) -> None:
    """Bounds the run even if the gateway hangs: exits with a distinct code, which the benchmark reports."""

    def expire() -> None:
        sys.stderr.write(f"sdk_client.py: no result after {seconds} s\n")
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: sdk_client.py <spec-json>")
    spec = json.loads(sys.argv[1])
    watchdog(spec["deadline_s"])
    print(json.dumps(anyio.run(Run(spec).main)), flush=True)
