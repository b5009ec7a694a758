/**
 * What one client can make the ticket store hold: `/ticket` refuses an
 * `Origin` or `Host` over 512 characters (the same-origin check accepts any
 * Origin whose host is `Host`, and the client sets both), and the store stops
 * at `TICKET_STORE_MAX_BYTES` whatever the number of IPs asking. The
 * contract suite holds every backend to the same limit.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startServer, type TestServer, token } from "./_helpers.ts";

async function askTicket(
  ts: TestServer,
  jwt: string,
  headers: Record<string, string>,
): Promise<number> {
  const res = await fetch(`${ts.httpUrl}/ticket`, {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}`, ...headers },
  });
  await res.body?.cancel();
  return res.status;
}

Deno.test("/ticket: a 10 KB Origin or 6 KB Host is 400 (30 KB: 431) and nothing is stored or audited", async () => {
  await using ts = await startServer();
  const jwt = await token("mallory");
  // Same host as the server: the same-origin check alone lets this through.
  const longOrigin = `http://127.0.0.1:${ts.port}/${"a".repeat(10_000)}`;
  assert.equal(await askTicket(ts, jwt, { origin: longOrigin }), 400);
  // Past 16 KiB the front door refuses the head before the handler sees it.
  const hugeOrigin = `http://127.0.0.1:${ts.port}/${"a".repeat(30_000)}`;
  assert.equal(await askTicket(ts, jwt, { origin: hugeOrigin }), 431);
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: ts.port });
  const host = `${"h".repeat(6_000)}.example`;
  await raw.write(new TextEncoder().encode(
    `POST /ticket HTTP/1.1\r\nhost: ${host}\r\norigin: http://${host}\r\n` +
      `authorization: Bearer ${jwt}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
  ));
  const answer = new TextDecoder().decode(await new Response(raw.readable).bytes());
  assert.match(answer, /^HTTP\/1\.1 400 /);
  assert.equal(ts.server.stats().tickets, 0);
  assert.deepEqual(ts.audit.of("ticket_issued"), []);
  // An ordinary Origin still gets its ticket.
  assert.equal(await askTicket(ts, jwt, { origin: `http://127.0.0.1:${ts.port}` }), 200);
});

Deno.test("/ticket: 40 IPs fill TICKET_STORE_MAX_BYTES and get 503, never more", async () => {
  const maxBytes = 64 * 1024;
  await using ts = await startServer({
    TRUST_PROXY: "1",
    TICKET_STORE_MAX_BYTES: String(maxBytes),
  });
  const jwt = await token("mallory");
  const base = `http://127.0.0.1:${ts.port}/`;
  const origin = base + "a".repeat(512 - base.length);
  const statuses: number[] = [];
  for (let ip = 0; ip < 40; ip++) {
    statuses.push(
      ...await Promise.all(
        Array.from(
          { length: 5 },
          () => askTicket(ts, jwt, { origin, "x-forwarded-for": `10.0.0.${ip}` }),
        ),
      ),
    );
  }
  const ok = statuses.filter((s) => s === 200).length;
  assert.equal(ok + statuses.filter((s) => s === 503).length, 200, String(statuses));
  assert.ok(ok > 0 && ok < 200, `${ok} of 200 issued`);
  // Each ticket is charged at least its Origin plus 256 bytes.
  assert.ok(ok * (512 + 256) <= maxBytes, `${ok} tickets over ${maxBytes} bytes`);
  assert.equal(ts.server.stats().tickets, ok);
});
