/**
 * Picks the bus transport named by `BUS`.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { MemoryBus } from "./memory.ts";
import type { Bus } from "./types.ts";

/** Builds the configured bus. */
export function createBus(config: Config): Promise<Bus> {
  switch (config.bus.kind) {
    default:
      return Promise.resolve(new MemoryBus());
  }
}
