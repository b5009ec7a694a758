/**
 * What a session takes in: every client message is counted, measured
 * against `MAX_MESSAGE_BYTES` and charged a rate-limit token, and a client
 * that keeps sending while limited is found flooding. Protocol-neutral: a
 * message is text or bytes, whatever its format.
 *
 * @module
 */
import { CloseCode, ErrorCode } from "../codes.ts";
import { utf8Length } from "./json.ts";
import type { CoreContext, SessionError } from "./types.ts";

/** Window over which rate-limit violations are counted towards a 4429 close. */
export const FLOOD_WINDOW_MS = 10_000;

/** The session an {@linkcode Intake} works for. */
export interface IntakeOwner {
  readonly id: string;
  readonly userId: string;
  close(code: number, reason: string): void;
}

/** One session's intake accounting. */
export class Intake {
  readonly #ctx: CoreContext;
  readonly #owner: IntakeOwner;
  #violations = 0;
  #violationWindowStart = 0;
  /** Messages taken in. */
  messages = 0;

  /**
   * @param ctx shared services (limits, limiter, counters, audit, clock)
   * @param owner the session: who it is, and how to close it
   */
  constructor(ctx: CoreContext, owner: IntakeOwner) {
    this.#ctx = ctx;
    this.#owner = owner;
  }

  /** See {@linkcode CoreSession.admit}. */
  admit(data: unknown): number {
    const { counters, limits } = this.#ctx;
    this.messages++;
    counters.messagesIn++;
    const size = typeof data === "string"
      ? utf8Length(data, limits.maxMessageBytes)
      : (data instanceof ArrayBuffer ? data.byteLength : 0);
    counters.bytesIn += size;
    if (size > limits.maxMessageBytes) {
      this.tooBig(size);
      return -1;
    }
    return this.#ctx.limiter.take(this.#owner.userId);
  }

  /** See {@linkcode CoreSession.tooBig}. */
  tooBig(size: number | undefined): void {
    const { audit, counters, limits } = this.#ctx;
    counters.framesTooBig++;
    audit.record("frame_too_big", {
      user: this.#owner.userId,
      connection: this.#owner.id,
      bytes: size ?? null,
    });
    this.#owner.close(CloseCode.MessageTooBig, `message over ${limits.maxMessageBytes} bytes`);
  }

  /** See {@linkcode CoreSession.rateLimited}. */
  rateLimited(retryAfterMs: number): SessionError | null {
    const { audit, clock, counters, limits } = this.#ctx;
    const who = { user: this.#owner.userId, connection: this.#owner.id };
    counters.rateLimited++;
    const now = clock.now();
    if (now - this.#violationWindowStart > FLOOD_WINDOW_MS) {
      this.#violationWindowStart = now;
      this.#violations = 0;
      audit.record("rate_limited", who);
    }
    if (++this.#violations > limits.maxViolations) {
      counters.floodClosed++;
      audit.record("flood_closed", who);
      this.#owner.close(CloseCode.RateLimited, "rate limit exceeded repeatedly");
      return null;
    }
    return { code: ErrorCode.RateLimited, message: "rate limit exceeded", retryAfterMs };
  }
}
