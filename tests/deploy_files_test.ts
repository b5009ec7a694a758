/**
 * The shipped deployment files (`Dockerfile`, `deploy/compose.yaml`,
 * `deploy/Caddyfile`, `deploy/realtime.service`) do what they say, as far
 * as this machine can show without a container runtime or systemd as PID 1:
 *
 * - the Dockerfile's `CMD` runs with the image's `ENV`, from a folder holding
 *   only what the Dockerfile copies, with `--cached-only` (nothing fetched at
 *   run time) and writes its KV database into the volume; its `HEALTHCHECK`
 *   passes against that server and fails once it is gone;
 * - the systemd unit passes `systemd-analyze verify` without a warning, and
 *   its `ExecStart` with its `Environment` starts the server, whose only
 *   writes land in the state directory;
 * - each compose node's environment is a valid configuration, only Caddy
 *   publishes ports, Caddy's upstreams are exactly the nodes, and a stopped
 *   node is given longer than the server's drain.
 *
 * Paths inside the image or the host (`/app`, `/var/lib/realtime`) are moved
 * to temporary folders; nothing else is changed.
 */
import assert from "node:assert/strict";
import { SECRET } from "./_helpers.ts";
import { freePort, spawnServer } from "./_process.ts";
import { loadConfig } from "../lib/config.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  const joined = text.split("\n").filter((l) => !l.trimStart().startsWith("#"))
    .join("\n").replaceAll(/\\\n/g, " ");
  return joined.split("\n").map((l) => l.trim()).filter((l) => l !== "").map((l) => {
    const space = l.indexOf(" ");
    return { op: l.slice(0, space).toUpperCase(), args: l.slice(space + 1).trim() };
  });
}

/** `ENV a=1 b="x y"` pairs. */
function envPairs(args: string): [string, string][] {
  return [...args.matchAll(/(\w+)=("[^"]*"|\S+)/g)].map((m) => [m[1]!, m[2]!.replaceAll('"', "")]);
}

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const [src, dst] = [`${from}/${entry.name}`, `${to}/${entry.name}`];
    if (entry.isDirectory) await copyTree(src, dst);
    else if (entry.isFile) await Deno.copyFile(src, dst);
  }
}

/** Runs `sh -c command` with `env`; resolves with its exit code. */
async function sh(command: string, env: Record<string, string>): Promise<number> {
  const out = await new Deno.Command("sh", {
    args: ["-c", command],
    env: { ...env, PATH: `${Deno.execPath().replace(/\/[^/]+$/, "")}:${Deno.env.get("PATH")}` },
    stdout: "null",
    stderr: "null",
  }).output();
  return out.code;
}

Deno.test("Dockerfile: CMD serves from the copied files alone, KV in the volume, HEALTHCHECK tracks it", async () => {
  const steps = instructions(await Deno.readTextFile(`${ROOT}/Dockerfile`));
  const ci = await Deno.readTextFile(`${ROOT}/.ci/run`);
  const pinned = ci.match(/DENO_VERSION=(\S+)/)![1]!;
  assert.equal(steps[0]!.op, "FROM");
  assert.match(steps[0]!.args, new RegExp(`^denoland/deno:\\S*${pinned.replaceAll(".", "\\.")}$`));
  // Dependencies are installed, frozen, before any source is copied (a cached layer).
  const install = steps.findIndex((s) =>
    s.op === "RUN" && s.args.includes("deno install --frozen")
  );
  const firstSource = steps.findIndex((s) => s.op === "COPY" && !s.args.startsWith("deno.json"));
  assert.ok(install > 0 && install < firstSource, "deno install --frozen before the sources");
  const user = steps.filter((s) => s.op === "USER").at(-1)?.args;
  assert.ok(user !== undefined && user !== "root" && user !== "0", `non-root USER (${user})`);

  const env = Object.fromEntries(
    steps.filter((s) => s.op === "ENV").flatMap((s) => envPairs(s.args)),
  );
  const volume = JSON.parse(steps.find((s) => s.op === "VOLUME")!.args) as string[];
  assert.ok(volume.some((v) => env.KV_PATH!.startsWith(`${v}/`)), "KV_PATH inside the volume");
  const cmd = JSON.parse(steps.find((s) => s.op === "CMD")!.args) as string[];
  assert.equal(cmd[0], "deno");
  assert.ok(cmd.includes("--cached-only"), "nothing fetched at run time");
  const health = steps.find((s) => s.op === "HEALTHCHECK")!.args.replace(/^.*?CMD\s+/, "");

  // The image's /app: only what the Dockerfile copies.
  const app = await Deno.makeTempDir({ prefix: "image_app_" });
  const data = `${app}/data`;
  try {
    for (const s of steps.filter((s) => s.op === "COPY")) {
      const parts = s.args.split(/\s+/);
      for (const src of parts.slice(0, -1)) {
        const path = src.replace(/\/$/, "");
        const info = await Deno.stat(`${ROOT}/${path}`);
        if (info.isDirectory) await copyTree(`${ROOT}/${path}`, `${app}/${path}`);
        else await Deno.copyFile(`${ROOT}/${path}`, `${app}/${path}`);
      }
    }
    await Deno.mkdir(data);
    const port = freePort();
    const moved = (v: string) => v.replaceAll("/app/data", data).replaceAll("/app", app);
    const runEnv = {
      ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, moved(v)])),
      PORT: String(port),
      HOSTNAME: "127.0.0.1",
      JWT_SECRET: SECRET,
      STORE: "kv",
      TRUST_PROXY: "1",
    };
    const server = await spawnServer(cmd.slice(1).map(moved), { port, cwd: app, env: runEnv });
    try {
      const body = await (await fetch(`${server.httpUrl}/healthz`)).json();
      assert.equal(body.status, "ok", JSON.stringify(body));
      const written = [...Deno.readDirSync(data)].map((e) => e.name);
      assert.ok(
        written.some((n) => n.startsWith("realtime.kv")),
        `KV file in the volume: ${written}`,
      );
      assert.equal(await sh(health, { PORT: String(port) }), 0, "HEALTHCHECK passes");
    } finally {
      await server.stop();
    }
    assert.notEqual(
      await sh(health, { PORT: String(port) }),
      0,
      "HEALTHCHECK fails once it is gone",
    );
  } finally {
    await Deno.remove(app, { recursive: true });
  }
});

/** `Key=value` lines of a unit file's `[Service]` section (repeated keys kept in order). */
function unitEntries(text: string): [string, string][] {
  return text.split("\n").map((l) => l.trim()).filter((l) => /^\w+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]);
}

Deno.test("systemd unit: verifies without a warning; its ExecStart serves and writes only its state directory", async () => {
  const text = await Deno.readTextFile(`${ROOT}/deploy/realtime.service`);
  const entries = unitEntries(text);
  const get = (key: string) => entries.filter(([k]) => k === key).map(([, v]) => v);
  const exec = get("ExecStart")[0]!.split(/\s+/);
  const local = await Deno.makeTempDir({ prefix: "unit_" });
  try {
    // systemd checks the binary exists: point it at this machine's deno.
    const unit = `${local}/realtime.service`;
    await Deno.writeTextFile(unit, text.replace(exec[0]!, Deno.execPath()));
    const verify = await new Deno.Command("systemd-analyze", {
      args: ["verify", unit],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const said = new TextDecoder().decode(verify.stderr) + new TextDecoder().decode(verify.stdout);
    assert.equal(verify.code, 0, said);
    assert.equal(said.trim(), "", `systemd-analyze has nothing to say: ${said}`);

    assert.equal(get("NoNewPrivileges")[0], "yes");
    assert.equal(get("ProtectSystem")[0], "strict");
    assert.equal(get("CapabilityBoundingSet")[0], "");

    const state = `${local}/state`;
    await Deno.mkdir(state);
    const moved = (v: string) => v.replaceAll(`/var/lib/${get("StateDirectory")[0]}`, state);
    const env = Object.fromEntries(
      get("Environment").map((
        e,
      ) => [e.slice(0, e.indexOf("=")), moved(e.slice(e.indexOf("=") + 1))]),
    );
    // The unit's DENO_DIR is filled by the install steps of its header; here the cache is the test's.
    delete env.DENO_DIR;
    const port = freePort();
    const server = await spawnServer(exec.slice(1).map(moved), {
      port,
      env: { ...env, PORT: String(port), HOSTNAME: "127.0.0.1", JWT_SECRET: SECRET, STORE: "kv" },
    });
    try {
      const body = await (await fetch(`${server.httpUrl}/healthz`)).json();
      assert.equal(body.status, "ok", JSON.stringify(body));
      assert.ok([...Deno.readDirSync(state)].some((e) => e.name.startsWith("realtime.kv")));
    } finally {
      const status = await server.stop();
      assert.equal(status.code, 0, "SIGTERM drains and exits 0");
    }
  } finally {
    await Deno.remove(local, { recursive: true });
  }
});

interface Compose {
  services: Record<string, {
    build?: string;
    ports?: string[];
    environment?: Record<string, string>;
    volumes?: string[];
    stop_grace_period?: string;
  }>;
}

Deno.test("compose: valid node configuration, only Caddy published, Caddy's upstreams are the nodes", async () => {
  const dir = `${ROOT}/deploy`;
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [
      "-c",
      "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
      `${dir}/compose.yaml`,
    ],
    stdout: "piped",
  }).output();
  assert.equal(out.code, 0, "python3 with PyYAML parses compose.yaml");
  const compose = JSON.parse(new TextDecoder().decode(out.stdout)) as Compose;
  const nodes = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);
  assert.deepEqual(nodes.map(([name]) => name), ["node1", "node2"]);
  for (const [name, node] of nodes) {
    assert.equal(node.ports, undefined, `${name} publishes no port (only Caddy reaches it)`);
    assert.ok((await Deno.stat(`${dir}/${node.build}/Dockerfile`)).isFile);
    // ${VAR:?…} is the operator's; the policy file is mounted from the repository.
    const env: Record<string, string> = { ...node.environment! };
    env.JWT_SECRET = SECRET;
    const mount = node.volumes!.map((v) => v.split(":")).find(([, inside]) =>
      inside === env.ROOM_POLICY
    )!;
    env.ROOM_POLICY = `${dir}/${mount[0]}`;
    const config = loadConfig(env);
    assert.equal(config.store.kind, "redis");
    assert.ok(config.server.trustProxy, "behind Caddy: X-Forwarded-For is believed");
    const grace = Number(node.stop_grace_period!.replace(/s$/, "")) * 1000;
    assert.ok(grace > config.server.shutdownGraceMs, `${name}: stop grace ${grace} ms > drain`);
  }
  assert.deepEqual(compose.services.caddy!.ports, ["80:80", "443:443"]);
  const caddyfile = await Deno.readTextFile(`${dir}/Caddyfile`);
  const upstreams = caddyfile.match(/reverse_proxy\s+([^{]+)\{/)![1]!.trim().split(/\s+/);
  assert.deepEqual(
    upstreams,
    nodes.map(([name]) => `${name}:${loadConfig({ JWT_SECRET: SECRET }).server.port}`),
  );
});
