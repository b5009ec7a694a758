import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { batchedSink, jsonLine } from "../lib/log.ts";

function record(msg: string, properties: Record<string, unknown> = {}): LogRecord {
  return {
    category: ["realtime", "audit"],
    level: "info",
    message: [msg],
    rawMessage: msg,
    timestamp: Date.UTC(2026, 0, 1),
    properties,
  };
}

Deno.test("jsonLine: one object per line with the record's properties", () => {
  const line = jsonLine(record("connect", { user: "alice", code: 1000 }));
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  assert.deepEqual(JSON.parse(line), {
    time: "2026-01-01T00:00:00.000Z",
    level: "info",
    logger: "realtime.audit",
    msg: "connect",
    user: "alice",
    code: 1000,
  });
});

Deno.test("batchedSink: lines of one turn go out in one write, in order; dispose flushes", async () => {
  const writes: string[] = [];
  const sink = batchedSink((r) => `${r.rawMessage}\n`, (bytes) => {
    writes.push(new TextDecoder().decode(bytes));
    return Promise.resolve(bytes.length);
  });
  for (let i = 0; i < 100; i++) sink(record(String(i)));
  assert.equal(writes.length, 0, "nothing is written synchronously");
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(writes.length, 1);
  assert.equal(writes[0], Array.from({ length: 100 }, (_, i) => `${i}\n`).join(""));
  sink(record("last"));
  await sink[Symbol.asyncDispose]();
  assert.equal(writes.at(-1), "last\n");
});

Deno.test("batchedSink: a stalled writer bounds the buffer and reports the loss", async () => {
  let release = () => {};
  const gate = new Promise<void>((r) => release = r);
  const written: string[] = [];
  const sink = batchedSink((r) => `${r.rawMessage}\n`, async (bytes) => {
    await gate;
    written.push(new TextDecoder().decode(bytes));
    return bytes.length;
  });
  sink(record("first"));
  await new Promise((r) => setTimeout(r, 5)); // the first write is now stuck
  for (let i = 0; i < 10_005; i++) sink(record(`x${i}`));
  release();
  await sink[Symbol.asyncDispose]();
  const all = written.join("");
  assert.equal(all.split("\n").filter((l) => l.startsWith("x")).length, 10_000);
  assert.match(all, /dropped 5 log lines/);
});
