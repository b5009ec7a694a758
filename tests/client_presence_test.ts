/**
 * The browser client's presence: `rt.presence(room)` kept from the server's
 * frames and `rt.on("presence", ...)`, against the real server, across a
 * reconnect.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type PresenceChange } from "../packages/client/src/client.ts";
import { eventually, startServer, token } from "./_helpers.ts";
import { CuttableProxy } from "./_proxy.ts";

Deno.test("client presence: members with info, joins and leaves, count, rejoin after a drop", async () => {
  const ts = await startServer({ PRESENCE: "1", PRESENCE_DIFF_MS: "50" });
  const proxy = new CuttableProxy(ts.port);
  const alice = connect(proxy.wsUrl, {
    token: () => token("alice", { info: { name: "Alice" } }),
    reconnect: { initialDelayMs: 50, maxDelayMs: 100 },
  });
  const bob = connect(ts.wsUrl, { token: () => token("bob", { info: { name: "Bob" } }) });
  try {
    const changes: PresenceChange[] = [];
    alice.on("presence", (room, change) => {
      assert.equal(room, "lobby");
      changes.push(change);
    });
    assert.equal(alice.presence("lobby"), undefined);
    await alice.join("lobby", () => {});
    await eventually(() => alice.presence("lobby") !== undefined, 3000, "alice's state");
    assert.deepEqual(alice.presence("lobby"), {
      members: [{ userId: "alice", info: { name: "Alice" }, connections: 1 }],
      count: 1,
      truncated: false,
    });
    assert.deepEqual(changes.shift(), {
      joins: [{ userId: "alice", info: { name: "Alice" } }],
      leaves: [],
      count: 1,
    });

    await bob.join("lobby", () => {});
    await eventually(() => alice.presence("lobby")?.count === 2, 3000, "bob seen");
    assert.deepEqual(changes.shift(), {
      joins: [{ userId: "bob", info: { name: "Bob" } }],
      leaves: [],
      count: 2,
    });
    const names = alice.presence("lobby")!.members.map((m) => m.info?.name).sort();
    assert.deepEqual(names, ["Alice", "Bob"]);

    await bob.leave("lobby");
    await eventually(() => alice.presence("lobby")?.count === 1, 3000, "bob gone");
    assert.deepEqual(changes.shift(), { joins: [], leaves: [{ userId: "bob" }], count: 1 });
    assert.equal(bob.presence("lobby"), undefined, "a left room has no presence");

    // Bob comes and goes while alice hears nothing: her rejoin's state reports the difference.
    await bob.join("lobby", () => {});
    await eventually(() => alice.presence("lobby")?.count === 2, 3000);
    changes.length = 0;
    proxy.blackhole("to_client");
    await bob.leave("lobby");
    const reconnected = new Promise((resolve) => alice.on("rejoin", resolve));
    proxy.cut();
    proxy.heal();
    await reconnected;
    await eventually(() => alice.presence("lobby")?.count === 1, 3000, "state after rejoin");
    assert.deepEqual(changes.at(-1)?.leaves, [{ userId: "bob" }]);
  } finally {
    await alice.close();
    await bob.close();
    await proxy.close();
    await ts.close();
  }
});
