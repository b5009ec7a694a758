/**
 * The receiving isolate of bench/kv_bus.ts: a KV bus on the shared file,
 * subscribed to N rooms, timing each envelope from its publish.
 *
 * @module
 */
import { KvBus } from "../lib/bus/kv.ts";

const scope = self as unknown as {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
};

let bus: KvBus | undefined;
let kv: Deno.Kv | undefined;
const latencies: number[] = [];

scope.onmessage = async (event: MessageEvent) => {
  const msg = event.data as { type: "start"; path: string; rooms: number } | { type: "stop" };
  if (msg.type === "start") {
    kv = await Deno.openKv(msg.path);
    bus = new KvBus({ kv, instanceId: "receiver" });
    bus.onEnvelope((envelope) => {
      const sentAt = Number(JSON.parse(envelope.frame).t);
      latencies.push(performance.timeOrigin + performance.now() - sentAt);
    });
    const started = performance.now();
    await Promise.all(Array.from({ length: msg.rooms }, (_, i) => bus!.subscribe(`room-${i}`)));
    scope.postMessage({ type: "ready", subscribeMs: performance.now() - started });
  } else {
    // Let the last watch notifications arrive.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await bus?.close();
    kv?.close();
    scope.postMessage({ type: "done", latencies });
    scope.close();
  }
};
