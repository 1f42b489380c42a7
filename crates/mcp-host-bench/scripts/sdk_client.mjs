// The TypeScript SDK's client (`@modelcontextprotocol/sdk`, `StreamableHTTPClientTransport`) as a
// benchmark client of `mcp-host-bench`, driven by a tiny JSON protocol.
//
// Run as `node sdk_client.mjs '<spec-json>'` from a directory whose `node_modules` holds the SDK
// (the benchmark copies this file there). The spec names the endpoint, the tool and how much to
// measure (see `HttpClientSpec` in `crates/mcp-host-bench/src/http/spec.rs`); the result goes to
// stdout as one JSON object (`HttpClientResult`): connect+initialize times, sequential call times,
// calls per second with N in flight on one session, and with many sessions at once.
// Every call is checked (an error result or a rejected promise counts as a failure), and the whole
// run is bounded by `deadline_s`.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const spec = JSON.parse(process.argv[2]);
// Bounded even if the gateway hangs: exit with a distinct code, which the benchmark reports.
setTimeout(() => {
  process.stderr.write(`sdk_client.mjs: no result after ${spec.deadline_s} s\n`);
  process.exit(3);
}, spec.deadline_s * 1000).unref();

const now = () => process.hrtime.bigint();
const arguments_ = { text: spec.text };
let failures = 0;
let firstFailure = null;

function fail(error) {
  failures += 1;
  if (firstFailure === null) {
    firstFailure = String(error?.stack ?? error);
  }
}

async function connect() {
  const client = new Client({ name: "mcp-host-bench", version: "0.1.0" });
  const transport = new StreamableHTTPClientTransport(new URL(spec.url));
  await client.connect(transport);
  return { client, transport };
}

async function disconnect({ client, transport }) {
  // Ends the session with DELETE, as an application leaving a server does, then closes.
  try {
    await transport.terminateSession();
  } catch (error) {
    fail(error);
  }
  await client.close();
}

async function call(session) {
  const result = await session.client.callTool({ name: spec.tool, arguments: arguments_ });
  if (result.isError) {
    throw new Error(`the tool answered an error: ${JSON.stringify(result)}`);
  }
}

// `lanes` loops of calls on the given sessions (lane i uses session i % n), each starting a new
// call when its previous one ends, until `seconds` have passed; returns completed calls per second.
async function runFor(sessions, lanes, seconds) {
  const started = now();
  const deadline = started + BigInt(Math.round(seconds * 1e9));
  let completed = 0;
  const lane = async (laneIdx) => {
    const session = sessions[laneIdx % sessions.length];
    while (now() < deadline) {
      try {
        await call(session);
        completed += 1;
      } catch (error) {
        fail(error);
      }
    }
  };
  await Promise.all(Array.from({ length: lanes }, (_, laneIdx) => lane(laneIdx)));
  const elapsed = Number(now() - started) / 1e9;
  return completed / elapsed;
}

async function main() {
  const result = {
    startup_ns: [],
    seq_ns: [],
    throughput: [],
    sessions_throughput: null,
    failures: 0,
    first_failure: null,
  };
  // Connect + initialize; the first cycle warms up and is not counted.
  for (let cycleIdx = 0; cycleIdx <= spec.startups; cycleIdx++) {
    const started = now();
    const session = await connect();
    const elapsed = now() - started;
    await disconnect(session);
    if (cycleIdx > 0) {
      result.startup_ns.push(Number(elapsed));
    }
  }
  if (spec.seq_calls > 0) {
    const session = await connect();
    for (let callIdx = 0; callIdx < spec.seq_warmup; callIdx++) {
      await call(session);
    }
    const seqDeadline = now() + BigInt(Math.round(spec.seq_max_s * 1e9));
    for (let callIdx = 0; callIdx < spec.seq_calls && now() < seqDeadline; callIdx++) {
      const started = now();
      await call(session);
      result.seq_ns.push(Number(now() - started));
    }
    await disconnect(session);
  }
  if (spec.throughput.length > 0) {
    const session = await connect();
    for (const run of spec.throughput) {
      await runFor([session], run.in_flight, run.warmup_s);
      result.throughput.push([run.in_flight, await runFor([session], run.in_flight, run.run_s)]);
    }
    await disconnect(session);
  }
  if (spec.sessions !== null) {
    const run = spec.sessions;
    const sessions = [];
    for (let sessionIdx = 0; sessionIdx < run.n_sessions; sessionIdx++) {
      sessions.push(await connect());
    }
    const lanes = run.n_sessions * run.in_flight;
    await runFor(sessions, lanes, run.warmup_s);
    result.sessions_throughput = await runFor(sessions, lanes, run.run_s);
    await Promise.all(sessions.map(disconnect));
  }
  result.failures = failures;
  result.first_failure = firstFailure;
  return result;
}

main().then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
  },
  (error) => {
    process.stderr.write(`sdk_client.mjs: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
