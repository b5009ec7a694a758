/**
 * The packages as an app outside the repository gets them: `packages/client`
 * and `packages/server` are built and packed with `npm pack` into tarballs,
 * a TypeScript app in a temp dir installs them (plus `ws`, `typescript`,
 * `@types/*` from npm's cache or the registry), compiles with `tsc --strict`
 * (every declaration file checked, and every TypeScript block of both
 * packages' READMEs compiled too), then runs on Node 20 with `ws`: it mints a
 * token, connects, joins, publishes through the server SDK and receives. The
 * same compiled app then runs on Bun (from npm) and Deno, with their own
 * global WebSocket.
 *
 * @module
 */
import assert from "node:assert/strict";
import { buildPackage, type PackageName } from "../scripts/build_packages.ts";
import { startServer } from "./_helpers.ts";
import { SECRET } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);
const API_KEY = "packages-test-api-key-long-enough-00000000";

async function run(
  cmd: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env: options.env ?? {},
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 0, `${cmd} ${args.join(" ")} failed (exit ${code}):\n${out}\n${err}`);
  return out;
}

/** Builds and packs one package; returns the tarball's path. */
async function pack(name: PackageName, dir: string): Promise<string> {
  const stage = `${dir}/stage-${name}`;
  await Deno.mkdir(stage, { recursive: true });
  for (const file of ["package.json", "README.md"]) {
    await Deno.copyFile(new URL(`packages/${name}/${file}`, ROOT), `${stage}/${file}`);
  }
  await buildPackage(name, `${stage}/dist`);
  const out = await run("npm", ["pack", "--offline", "--json", "--pack-destination", dir], {
    cwd: stage,
  });
  const [{ filename }] = JSON.parse(out) as [{ filename: string }];
  return `${dir}/${filename}`;
}

/** The ```ts blocks of a README, each one module. */
async function readmeBlocks(path: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(path, ROOT));
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

const APP = `
import WebSocket from "ws";
import { connect, type RoomMessage, type Subscription } from "@realtime/client";
import { mintToken, RealtimeApi, type PublishResult } from "@realtime/server-sdk";

type Chat = { text: string };
const base = process.env.RT_URL!;
const token = await mintToken(process.env.RT_SECRET!, { sub: "node-app", rooms: ["chat:*"] });
// Node 20 has no global WebSocket: pass ws's. Bun and Deno have one (RT_GLOBAL_WS=1).
const url = base.replace(/^http/, "ws") + "/ws";
const rt = process.env.RT_GLOBAL_WS === "1" ? connect(url, { token }) : connect(url, { token, WebSocket });
let resolve!: (message: RoomMessage<Chat>) => void;
const received = new Promise<RoomMessage<Chat>>((r) => (resolve = r));
const sub: Subscription = await rt.join<Chat>("chat:pkg", (_payload, message) => resolve(message));
const api = new RealtimeApi({ url: base, apiKey: process.env.RT_API_KEY! });
const result: PublishResult = await api.publish("chat:pkg", { text: "from the SDK" });
const message = await received;
console.log(JSON.stringify({
  userId: rt.userId,
  recipients: result.recipients,
  from: message.from,
  text: message.payload.text,
}));
await sub.unsubscribe();
await rt.close();
`;

Deno.test("packages: an outside TypeScript app installs the tarballs, compiles strict, and talks through them on Node 20 (ws), Bun and Deno", async () => {
  const dir = await Deno.makeTempDir({ prefix: "packages_test_" });
  try {
    const client = await pack("client", dir);
    const server = await pack("server", dir);
    const app = `${dir}/app`;
    await Deno.mkdir(`${app}/src`, { recursive: true });
    await Deno.writeTextFile(
      `${app}/package.json`,
      JSON.stringify({
        name: "outside-app",
        private: true,
        type: "module",
        dependencies: {
          "@realtime/client": `file:${client}`,
          "@realtime/server-sdk": `file:${server}`,
          ws: "^8.18.0",
        },
        devDependencies: {
          typescript: "5.9.3",
          "@types/ws": "^8.18.1",
          "@types/node": "^20",
          bun: "^1.4.5",
        },
      }),
    );
    await Deno.writeTextFile(
      `${app}/tsconfig.json`,
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noUncheckedIndexedAccess: true,
          exactOptionalPropertyTypes: true,
          target: "es2022",
          module: "nodenext",
          moduleResolution: "nodenext",
          lib: ["es2022", "dom"],
          types: ["node"],
          skipLibCheck: false,
          rootDir: "src",
          outDir: "dist",
        },
        include: ["src"],
      }),
    );
    await Deno.writeTextFile(`${app}/src/app.ts`, APP);
    let n = 0;
    for (const path of ["packages/client/README.md", "packages/server/README.md"]) {
      for (const block of await readmeBlocks(path)) {
        await Deno.writeTextFile(`${app}/src/readme_${++n}.ts`, `${block}\nexport {};\n`);
      }
    }
    assert.ok(n >= 8, `README blocks found: ${n}`);
    const env = { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/root" };
    await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], { cwd: app, env });
    // Installed as an app gets them: no runtime dependency under the client.
    const manifest = JSON.parse(
      await Deno.readTextFile(`${app}/node_modules/@realtime/client/package.json`),
    ) as { dependencies?: Record<string, string> };
    assert.equal(manifest.dependencies, undefined);
    await run("node", ["node_modules/typescript/bin/tsc", "-p", "."], { cwd: app, env });

    await using ts = await startServer({ API_KEY });
    const expected = { userId: "node-app", recipients: 1, from: "server", text: "from the SDK" };
    const appEnv = { ...env, RT_URL: ts.httpUrl, RT_SECRET: SECRET, RT_API_KEY: API_KEY };
    const node = await run("node", ["dist/app.js"], { cwd: app, env: appEnv });
    assert.deepEqual(JSON.parse(node.trim()), expected, "Node with ws");
    // The same compiled app in the other runtimes, on their own WebSocket.
    const global = { ...appEnv, RT_GLOBAL_WS: "1" };
    const bun = await run("node_modules/.bin/bun", ["dist/app.js"], { cwd: app, env: global });
    assert.deepEqual(JSON.parse(bun.trim()), expected, "Bun");
    const deno = await run(Deno.execPath(), ["run", "-A", "dist/app.js"], {
      cwd: app,
      env: global,
    });
    assert.deepEqual(JSON.parse(deno.trim()), expected, "Deno");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
