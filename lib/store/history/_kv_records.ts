/**
 * The records the KV history store keeps (a stream's head, its entries, its
 * dedupe keys) and the checks that a value read back is one: KV hands back
 * whatever was stored under a key, so nothing is trusted by its type alone.
 *
 * @module
 */
import type { HistoryLimits } from "./types.ts";

/** A stream's head: its epoch, last offset, and when it lapses. */
export interface Head {
  epoch: string;
  offset: number;
  expiresAt: number;
}

/** One stored message (its frame inline, or the first part of its bytes). */
export interface StoredEntry {
  /** The frame, when it fits one value. */
  frame?: string;
  /** Otherwise its UTF-8 bytes, first part. */
  bytes?: Uint8Array;
  /** Parts of `bytes` in all (≥ 1); the others are under `"x"`. */
  parts: number;
  at: number;
  exp: number;
}

/** What a dedupe key answers within its window. */
export interface DedupeRecord {
  offset: number;
  epoch: string;
  expiresAt: number;
}

/** The head, when `value` is one that has not lapsed. */
export function validHead(value: unknown, now: number): Head | undefined {
  return isHead(value) && value.expiresAt > now ? value : undefined;
}

/** Whether a value read back is a {@linkcode Head}. */
export function isHead(value: unknown): value is Head {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.epoch === "string" && typeof v.offset === "number" &&
    typeof v.expiresAt === "number";
}

/** Whether a value read back is a {@linkcode StoredEntry}. */
export function isStored(value: unknown): value is StoredEntry {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.at === "number" && typeof v.exp === "number" && typeof v.parts === "number" &&
    (typeof v.frame === "string" || v.bytes instanceof Uint8Array);
}

/** Whether a value read back is a {@linkcode DedupeRecord}. */
export function isDedupe(value: unknown): value is DedupeRecord {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.offset === "number" && typeof v.epoch === "string" &&
    typeof v.expiresAt === "number";
}

/** Within the TTL it was stored with and the room's current one. */
export function fresh(value: StoredEntry, limits: HistoryLimits, now: number): boolean {
  return value.exp > now && value.at > now - limits.ttlMs;
}
