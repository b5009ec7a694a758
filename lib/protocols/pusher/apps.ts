/**
 * Pusher apps: who may use the Pusher front door, with which key and secret,
 * and under which of Pusher's per-app limits. One app comes from the
 * `PUSHER_APP_*` variables, several from `PUSHER_APPS_FILE` (a JSON array,
 * validated here at start-up: a bad file stops start-up with one line naming
 * the field), and dev mode adds `app-id` / `app-key` / `app-secret`.
 *
 * @module
 */
import { z } from "zod";
import type { PusherConfig, PusherCredentials } from "../../config.ts";
import { errorMessage } from "../../errors.ts";
import { OriginSchema } from "../../_config_env.ts";

const token = z.string().regex(/^[A-Za-z0-9_\-.]{1,64}$/, "must be 1-64 of A-Z a-z 0-9 _ - .");

/** Pusher's webhook events. */
export const PUSHER_WEBHOOK_EVENTS = [
  "channel_occupied",
  "channel_vacated",
  "member_added",
  "member_removed",
  "client_event",
  "cache_miss",
] as const;

/** One webhook of an app: where Pusher-format batches are posted. */
export const PusherWebhookSchema = z.strictObject({
  /** The receiver (http or https). */
  url: z.url({ protocol: /^https?$/ }),
  /** Which events it receives. @default every event */
  events: z.array(z.enum(PUSHER_WEBHOOK_EVENTS)).min(1).default([...PUSHER_WEBHOOK_EVENTS]),
  /** Extra request headers (e.g. an authorization header of the receiver). */
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]{1,64}$/), z.string().max(4096)).optional(),
});

/** A Pusher webhook as configured. */
export type PusherWebhook = z.output<typeof PusherWebhookSchema>;

/**
 * One app, with Pusher's defaults. The options are the ones Pusher (and
 * soketi) documents, so an apps file from soketi carries over.
 */
export const PusherAppSchema = z.strictObject({
  id: token,
  key: token,
  secret: z.string().min(16, "must be at least 16 characters"),
  /** A disabled app's connections are closed with 4003. */
  enabled: z.boolean().default(true),
  /** Connections of this app at once (4004 beyond); unset: only the server's `MAX_CONNECTIONS`. */
  maxConnections: z.number().int().min(1).optional(),
  /** Whether `client-*` events are relayed. */
  enableClientMessages: z.boolean().default(false),
  /** Client events per connection per second (4301 beyond). */
  maxClientEventsPerSecond: z.number().int().min(1).default(10),
  /** Users per presence channel. */
  maxPresenceMembersPerChannel: z.number().int().min(1).default(100),
  /** Size of one member's `user_info`, in KiB. */
  maxPresenceMemberSizeKb: z.number().min(0.1).default(2),
  /** Size of one event's `data`, in KiB. */
  maxEventPayloadKb: z.number().min(0.1).default(10),
  /** Channels one API event may name. */
  maxEventChannelsAtOnce: z.number().int().min(1).default(100),
  /** Length of an event name. */
  maxEventNameLength: z.number().int().min(1).default(200),
  /** Events of one `batch_events` request. */
  maxEventBatchSize: z.number().int().min(1).default(10),
  /** Browser origins allowed on this app's sockets; unset: the server's `ALLOWED_ORIGINS` rule. */
  allowedOrigins: z.array(OriginSchema).optional(),
  /** Where this app's webhooks go. */
  webhooks: z.array(PusherWebhookSchema).default([]),
});

/** One app, every option resolved. */
export type PusherApp = z.output<typeof PusherAppSchema>;

/** The credentials dev mode creates, printed at start so `pusher-js` works in the demo. */
export const DEV_PUSHER_APP: PusherCredentials = {
  id: "app-id",
  key: "app-key",
  secret: "app-secret",
};

/**
 * The apps the server serves, found by key (WebSocket path) or by id (HTTP
 * API path).
 *
 * @example
 * ```ts
 * import { PusherApps } from "./apps.ts";
 * const apps = PusherApps.of([{ id: "1", key: "k", secret: "s".repeat(16) }]);
 * apps.byKey("k")?.maxEventBatchSize; // 10
 * ```
 */
export class PusherApps {
  readonly #byKey = new Map<string, PusherApp>();
  readonly #byId = new Map<string, PusherApp>();

  private constructor(apps: readonly PusherApp[]) {
    for (const app of apps) {
      this.#byKey.set(app.key, app);
      this.#byId.set(app.id, app);
    }
  }

  /**
   * Validates apps (Pusher's defaults applied). Ids and keys must be unique.
   *
   * @throws {TypeError} naming the first bad field (`[index].field: problem`)
   */
  static of(input: readonly unknown[]): PusherApps {
    const parsed = z.array(PusherAppSchema).safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = (issue?.path ?? []).map((p) =>
        typeof p === "number" ? `[${p}]` : `.${String(p)}`
      )
        .join("").replace(/^\./, "");
      throw new TypeError(`${path || "apps"}: ${issue?.message ?? "invalid"}`);
    }
    return PusherApps.from(parsed.data);
  }

  /**
   * Apps already validated (by {@linkcode PusherAppSchema}).
   *
   * @throws {TypeError} when two apps share an id or a key
   */
  static from(apps: readonly PusherApp[]): PusherApps {
    for (const field of ["id", "key"] as const) {
      const seen = new Set<string>();
      apps.forEach((app, i) => {
        if (seen.has(app[field])) {
          throw new TypeError(`[${i}].${field}: "${app[field]}" is used by another app`);
        }
        seen.add(app[field]);
      });
    }
    return new PusherApps(apps);
  }

  /** The app whose public key this is. */
  byKey(key: string): PusherApp | undefined {
    return this.#byKey.get(key);
  }

  /** The app with this id. */
  byId(id: string): PusherApp | undefined {
    return this.#byId.get(id);
  }

  /** Every app. */
  list(): PusherApp[] {
    return [...this.#byId.values()];
  }

  /** How many apps there are (0: the Pusher endpoints answer 404). */
  get size(): number {
    return this.#byId.size;
  }
}

/**
 * The apps of the `pusher` config section: the `PUSHER_APP_*` app, the apps
 * of `PUSHER_APPS_FILE`, and in dev mode the dev app (unless its id or key is
 * taken).
 *
 * @throws {TypeError} `PUSHER_APPS_FILE: …` for an unreadable or invalid file,
 * one line naming the field
 */
export async function loadPusherApps(config: PusherConfig): Promise<PusherApps> {
  const apps: PusherApp[] = [];
  if (config.app !== undefined) apps.push(PusherAppSchema.parse(config.app));
  if (config.appsFile !== undefined) {
    const input = await readAppsFile(config.appsFile);
    try {
      apps.push(...PusherApps.of(input).list());
    } catch (err) {
      throw new TypeError(`PUSHER_APPS_FILE: ${errorMessage(err)}`);
    }
  }
  if (config.devApp && !apps.some((a) => a.id === DEV_APP.id || a.key === DEV_APP.key)) {
    apps.push(DEV_APP);
  }
  try {
    return PusherApps.from(apps);
  } catch (err) {
    throw new TypeError(`PUSHER_APPS_FILE: ${errorMessage(err)} (counting PUSHER_APP_ID first)`);
  }
}

// The dev secret is public by design (printed at start): it skips the length rule.
const DEV_APP: PusherApp = PusherAppSchema.extend({ secret: z.string() }).parse(DEV_PUSHER_APP);

async function readAppsFile(path: string): Promise<unknown[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new TypeError(`PUSHER_APPS_FILE: cannot read ${path}: ${errorMessage(err)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new TypeError(`PUSHER_APPS_FILE: not JSON: ${errorMessage(err)}`);
  }
  if (!Array.isArray(value)) throw new TypeError("PUSHER_APPS_FILE: must be a JSON array of apps");
  return value;
}
