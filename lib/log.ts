/**
 * LogTape set-up for the process: JSON lines (or text) on stderr, batched
 * and written off the hot path.
 *
 * @module
 */
import { configure, dispose, type LogLevel, type LogRecord, type Sink } from "@logtape/logtape";
import type { LogConfig } from "./config.ts";

/** LogTape's mark of a sink that is done with a record when it returns (`markSinkAsImmediate`, not exported). */
const IMMEDIATE_SINK = Symbol.for("LogTape.sinkSnapshotPolicy.immediate");

/** Most lines held while stderr is slow; past it lines are dropped (and counted). */
const MAX_PENDING_LINES = 10_000;

/**
 * Configures LogTape once per process. Call from the entry point only:
 * libraries and tests leave LogTape unconfigured, which keeps them silent.
 */
export async function configureLogging(log: LogConfig): Promise<void> {
  await configure({
    reset: true,
    sinks: {
      stderr: batchedSink(
        log.format === "json" ? jsonLine : textLine,
        (bytes) => Deno.stderr.write(bytes),
      ),
    },
    loggers: [
      { category: ["realtime"], lowestLevel: log.level as LogLevel, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** Writes what is still buffered; call before the process exits. */
export async function flushLogging(): Promise<void> {
  await dispose();
}

/**
 * A record's message with its `{placeholders}` filled in. A message without
 * any (every audit record) is used as it is, which matters at two audit
 * records per connection.
 */
export function renderMessage(record: LogRecord): string {
  const raw = record.rawMessage;
  if (typeof raw === "string" && !raw.includes("{")) return raw;
  return record.message.map((part) => typeof part === "string" ? part : show(part)).join("");
}

function show(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.message;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * One JSON object per line: `time`, `level`, `logger`, `msg` (rendered),
 * then the record's properties. Leaner than LogTape's own JSON-lines
 * formatter, which matters at two audit records per connection.
 */
export function jsonLine(record: LogRecord): string {
  return JSON.stringify({
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    logger: record.category.join("."),
    msg: renderMessage(record),
    ...record.properties,
  }) + "\n";
}

const LEVELS: Readonly<Record<LogLevel, string>> = {
  trace: "TRC",
  debug: "DBG",
  info: "INF",
  warning: "WRN",
  error: "ERR",
  fatal: "FTL",
};

/**
 * One line for people (`LOG_FORMAT=text`): time, level, logger, the
 * rendered message, then every property the message did not show, as
 * `key=value` (strings quoted only when they hold spaces or quotes).
 */
export function textLine(record: LogRecord): string {
  const raw = typeof record.rawMessage === "string" ? record.rawMessage : "";
  const fields = Object.entries(record.properties)
    .filter(([key]) => !raw.includes(`{${key}}`))
    .map(([key, value]) => {
      const text = show(value);
      return `${key}=${
        typeof value === "string" && /[\s"=]/.test(text) ? JSON.stringify(text) : text
      }`;
    });
  const time = new Date(record.timestamp).toISOString().replace("T", " ").replace("Z", "");
  const head = `${time} [${LEVELS[record.level]}] ${record.category.join("·")}: ${
    renderMessage(record)
  }`;
  return (fields.length === 0 ? head : `${head} ${fields.join(" ")}`) + "\n";
}

/**
 * A sink that formats at once but writes once per event-loop turn, all lines
 * of that turn in one write: a per-record stream write cost more than the
 * rest of a WebSocket handshake. Bounded: while the writer lags, lines past
 * {@linkcode MAX_PENDING_LINES} are dropped and the loss is reported in the
 * next write.
 */
export function batchedSink(
  format: (record: LogRecord) => string,
  write: (bytes: Uint8Array) => Promise<number>,
): Sink & AsyncDisposable {
  const encoder = new TextEncoder();
  let pending: string[] = [];
  let dropped = 0;
  let writing: Promise<void> | null = null;

  async function drain(): Promise<void> {
    while (pending.length > 0 || dropped > 0) {
      const lines = pending;
      pending = [];
      if (dropped > 0) {
        lines.push(
          `{"level":"warning","logger":"realtime.log","msg":"dropped ${dropped} log lines: stderr too slow"}\n`,
        );
        dropped = 0;
      }
      const bytes = encoder.encode(lines.join(""));
      for (let offset = 0; offset < bytes.length;) offset += await write(bytes.subarray(offset));
    }
  }

  function schedule(): void {
    writing ??= new Promise<void>((resolve) => setTimeout(resolve, 0)).then(drain).catch(() => {
      // stderr is gone: nothing left to tell
    }).finally(() => {
      writing = null;
      if (pending.length > 0) schedule();
    });
  }

  const sink = (record: LogRecord) => {
    if (pending.length >= MAX_PENDING_LINES) {
      dropped++;
      return;
    }
    pending.push(format(record));
    schedule();
  };
  // It formats each record before returning, so LogTape need not snapshot the
  // record's properties for it first (LogTape's own marker for such sinks).
  Object.defineProperty(sink, IMMEDIATE_SINK, { value: true });
  return Object.assign(sink, {
    async [Symbol.asyncDispose]() {
      while (writing !== null) await writing;
      await drain().catch(() => {});
    },
  });
}
