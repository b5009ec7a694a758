/**
 * The publish and RPC hooks in the core (issue 18). A message to a room
 * whose policy rule sets `"hook": true` is asked of the backend
 * (`HOOK_PUBLISH_URL`) before it is stored or fanned out: the backend may
 * reject it (`forbidden` with its reason) or replace its payload (held to
 * the same size and depth limits: `bad_request`); a failed call is
 * `unavailable`. Each publisher's messages keep their order while a call is
 * in flight ({@linkcode PublishLine}). An `rpc` is answered by `HOOK_RPC_URL`.
 *
 * @module
 */
import type { AuditSink } from "../audit.ts";
import { ErrorCode } from "../codes.ts";
import type { HookCaller } from "../hooks/caller.ts";
import { claimsOf, PublishAnswer, RPC_ERROR_CODES, RpcAnswer } from "../hooks/contract.ts";
import type { JsonValue } from "../protocols/native/protocol.ts";
import type { JoinAsker } from "./join_hook.ts";
import { relayProblem, utf8ByteLength } from "./json.ts";
import { type Refused, refused } from "./refusals.ts";
import type { RoomAccess, RoomPolicy } from "./room_policy.ts";
import type { Answer, Outcome, SessionLimits } from "./types.ts";

/** Most publishes one session may have waiting behind a hook call. */
export const MAX_WAITING_PUBLISHES = 64;

/** The session a publish or call comes from. */
export interface Publisher extends JoinAsker {
  readonly rooms: ReadonlyMap<string, RoomAccess>;
}

/** Options for {@linkcode BackendHooks}. */
export interface BackendHooksOptions {
  /** The caller of `HOOK_PUBLISH_URL`, when set. */
  publish: HookCaller | undefined;
  /** The caller of `HOOK_RPC_URL`, when set. */
  rpc: HookCaller | undefined;
  /** Which rooms' messages go through the publish hook (`"hook": true`). */
  policy: Pick<RoomPolicy, "hookFor">;
  limits: Pick<SessionLimits, "maxMessageBytes" | "maxPayloadDepth">;
  audit: AuditSink;
}

/** The publish and RPC hooks, one per node, shared by every session. */
export class BackendHooks {
  readonly #o: BackendHooksOptions;

  /** @param options the callers, the policy and the limits a rewritten payload is held to */
  constructor(options: BackendHooksOptions) {
    this.#o = options;
  }

  /** Whether a message to `room` is asked of the publish hook. */
  hooked(room: string): boolean {
    return this.#o.publish !== undefined && this.#o.policy.hookFor(room);
  }

  /** Asks the publish hook: the payload to publish (the backend's, if it replaced it), or why not. */
  async publish(session: Publisher, room: string, payload: JsonValue): Promise<Outcome<JsonValue>> {
    const caller = this.#o.publish;
    if (caller === undefined) return { ok: true, value: payload };
    const result = await caller.call({ ...facts(session), room, payload }, PublishAnswer);
    if (!result.ok) {
      return refused(ErrorCode.Unavailable, "the backend did not answer; try again", room);
    }
    const answer = result.value;
    if (!answer.allow) {
      const reason = answer.reason ?? "the backend rejected this message";
      this.#o.audit.record("hook_denied", {
        hook: "publish",
        user: session.principal.userId,
        connection: session.id,
        room,
        reason,
      });
      return refused(ErrorCode.Forbidden, reason, room);
    }
    if (answer.payload === undefined) return { ok: true, value: payload };
    const problem = this.#payloadProblem(answer.payload);
    if (problem !== undefined) {
      return refused(ErrorCode.BadRequest, `the backend's payload ${problem}`, room);
    }
    return { ok: true, value: answer.payload };
  }

  /** Calls the RPC hook: its payload, or an error to answer with the request's id. */
  async rpc(session: Publisher, method: string, payload: JsonValue): Promise<Outcome<JsonValue>> {
    const caller = this.#o.rpc;
    if (caller === undefined) {
      return refused(ErrorCode.NotFound, "no RPC backend is configured (HOOK_RPC_URL)");
    }
    const result = await caller.call({ ...facts(session), method, payload }, RpcAnswer);
    if (!result.ok) return refused(ErrorCode.Unavailable, "the backend did not answer; try again");
    const answer = result.value;
    if ("error" in answer) return rpcRefusal(answer.error);
    const problem = this.#payloadProblem(answer.payload);
    if (problem !== undefined) {
      return refused(ErrorCode.Internal, `the backend's payload ${problem}`);
    }
    return { ok: true, value: answer.payload };
  }

  #payloadProblem(payload: JsonValue): string | undefined {
    const { maxMessageBytes, maxPayloadDepth } = this.#o.limits;
    const bytes = utf8ByteLength(JSON.stringify(payload));
    if (bytes > maxMessageBytes) return `is ${bytes} bytes, over ${maxMessageBytes}`;
    return relayProblem(payload, maxPayloadDepth);
  }
}

/** A backend's RPC error as the client sees it: its code when ours, else `rpc_error`. */
function rpcRefusal(error: { message: string; code?: string | undefined }): Refused {
  const { message, code } = error;
  const known = RPC_ERROR_CODES.find((c) => c === code);
  if (known !== undefined) return refused(known, message);
  return refused(ErrorCode.RpcError, code === undefined ? message : `${code}: ${message}`);
}

function facts(session: Publisher) {
  const { principal } = session;
  return {
    userId: principal.userId,
    claims: claimsOf(principal),
    connectionId: session.id,
    ip: session.info.ip,
  };
}

/**
 * One publisher's line: messages to hooked rooms wait for the backend, and
 * every message after one that waits waits behind it, so the publisher's
 * order holds. At most {@linkcode MAX_WAITING_PUBLISHES} wait.
 */
export class PublishLine {
  readonly #hooks: BackendHooks;
  readonly #session: Publisher;
  #tail: Promise<void> | null = null;
  #waiting = 0;

  /** @param hooks the node's hooks @param session the publisher */
  constructor(hooks: BackendHooks, session: Publisher) {
    this.#hooks = hooks;
    this.#session = session;
  }

  /**
   * Publishes `payload` to `room` through `publish`, after the backend when
   * the room is hooked (and the publisher may publish there: otherwise the
   * session's own refusal answers, without asking); refusals go to `answer`.
   */
  submit(
    room: string,
    payload: JsonValue,
    publish: (payload: JsonValue) => void,
    answer: Answer<never>,
  ): void {
    const hooked = this.#session.rooms.get(room) === "publish" && this.#hooks.hooked(room);
    if (!hooked && this.#tail === null) return publish(payload);
    if (this.#waiting >= MAX_WAITING_PUBLISHES) {
      return answer(refused(
        ErrorCode.RateLimited,
        `${MAX_WAITING_PUBLISHES} messages are already waiting for the backend`,
        room,
      ));
    }
    this.#waiting++;
    const step = async () => {
      if (!hooked) return publish(payload);
      const outcome = await this.#hooks.publish(this.#session, room, payload);
      if (this.#session.ended) return;
      if (outcome.ok) publish(outcome.value);
      else answer(outcome);
    };
    const run: Promise<void> = (this.#tail ?? Promise.resolve()).then(step).finally(() => {
      this.#waiting--;
      if (this.#tail === run) this.#tail = null;
    });
    this.#tail = run;
  }
}
