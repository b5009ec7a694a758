/**
 * A WebSocket client for tests/tls_test.ts, run in its own process with
 * `--cert <ca.pem>`: Deno's WebSocket has no per-connection CA option, and
 * the test process must not trust the test CA for everything else. Connects
 * two users to `wss://`, joins both to a room, sends one message and prints
 * one JSON line with what each saw.
 *
 * Usage: `deno run --cert ca.pem --allow-net tests/_tls_client.ts <wss url> <token a> <token b>`
 *
 * @module
 */
type Msg = Record<string, unknown> & { type: string };

function open(
  url: string,
): Promise<{ ws: WebSocket; next: (pred: (m: Msg) => boolean) => Promise<Msg> }> {
  const ws = new WebSocket(url);
  const inbox: Msg[] = [];
  const waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data)) as Msg;
    const i = waiters.findIndex((w) => w.pred(m));
    if (i === -1) inbox.push(m);
    else waiters.splice(i, 1)[0]!.resolve(m);
  };
  const next = (pred: (m: Msg) => boolean) => {
    const i = inbox.findIndex(pred);
    if (i !== -1) return Promise.resolve(inbox.splice(i, 1)[0]!);
    return new Promise<Msg>((resolve) => waiters.push({ pred, resolve }));
  };
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve({ ws, next });
    ws.onerror = (e) => reject(new Error(`cannot connect: ${(e as ErrorEvent).message}`));
  });
}

const [url, tokenA, tokenB] = Deno.args;
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: "timed out" }));
  Deno.exit(2);
}, 10_000);
const a = await open(`${url}?token=${tokenA}`);
const b = await open(`${url}?token=${tokenB}`);
const welcome = await a.next((m) => m.type === "welcome");
await b.next((m) => m.type === "welcome");
a.ws.send(JSON.stringify({ type: "join", room: "secure", id: "ja" }));
b.ws.send(JSON.stringify({ type: "join", room: "secure", id: "jb" }));
const joined = [await a.next((m) => m.id === "ja"), await b.next((m) => m.id === "jb")];
a.ws.send(
  JSON.stringify({ type: "message", room: "secure", payload: { text: "over tls" }, id: "m" }),
);
const ack = await a.next((m) => m.id === "m");
const received = await b.next((m) => m.type === "message");
console.log(JSON.stringify({ welcome, joined, ack, received }));
clearTimeout(timer);
a.ws.close();
b.ws.close();
