/**
 * LogTape set-up for the process: JSON lines (or text) on stderr, written
 * without blocking the event loop.
 *
 * @module
 */
import {
  configure,
  getStreamSink,
  getTextFormatter,
  jsonLinesFormatter,
  type LogLevel,
} from "@logtape/logtape";
import type { Config } from "./config.ts";

/**
 * Configures LogTape once per process. Call from the entry point only:
 * libraries and tests leave LogTape unconfigured, which keeps them silent.
 */
export async function configureLogging(log: Config["log"]): Promise<void> {
  await configure({
    reset: true,
    sinks: {
      stderr: getStreamSink(Deno.stderr.writable, {
        formatter: log.format === "json" ? jsonLinesFormatter : getTextFormatter(),
        nonBlocking: true,
      }),
    },
    loggers: [
      { category: ["realtime"], lowestLevel: log.level as LogLevel, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}
