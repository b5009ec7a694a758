/**
 * Builds what apps install from one source each: `deno task build:client`
 * bundles `packages/client/src` into the server's `/client.js`
 * (`web/client/client.js`, committed) AND compiles the same source into the
 * npm package's `packages/client/dist` (ES modules and `.d.ts`, not
 * committed); `deno task build:packages` also compiles `packages/server` and
 * `packages/react`.
 *
 * The package compiler is TypeScript from npm (`TYPESCRIPT` below), run by
 * Deno; it rewrites the sources' `.ts` import specifiers to `.js`, and the
 * `.d.ts` files get the same rewrite here. Imports of other npm packages
 * (`jose`, `react`, `@realtime/client`) stay bare, resolved while compiling
 * from Deno's npm cache (and, for the client, from its freshly built declarations).
 *
 * @example
 * ```sh
 * deno task build:client                 # web/client/client.js + packages/client/dist
 * deno run -A scripts/build_packages.ts server react
 * ```
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url);

/** The TypeScript compiler used for the packages' JavaScript and declarations. */
export const TYPESCRIPT = "npm:typescript@5.9.3/tsc";

/** The packages under `packages/`, each with `src/` and a `package.json`. */
export type PackageName = "client" | "server" | "react";

/** The entry module of each package, inside its `src/`. */
const ENTRY: Record<PackageName, string> = {
  client: "client.ts",
  server: "mod.ts",
  react: "mod.ts",
};

/** npm packages a package imports, which the compiler finds in Deno's cache. */
const NPM_DEPENDENCIES: Record<PackageName, readonly string[]> = {
  client: [],
  server: ["jose"],
  react: ["@types/react"],
};

async function run(args: string[], what: string): Promise<void> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    throw new Error(`${what} failed (exit ${code}):\n${text}`);
  }
}

/**
 * Bundles the browser client into one minified ES module, as the server
 * serves it. Run from the repository root, as the bundle names its source
 * relative to the working directory.
 *
 * @param out the file to write, relative to the repository root or absolute
 */
export async function bundleWebClient(out: string): Promise<void> {
  await run([
    "bundle",
    "--quiet",
    "--minify",
    "--keep-names",
    "--platform",
    "browser",
    "--format",
    "esm",
    "packages/client/src/client.ts",
    "-o",
    out,
  ], "deno bundle");
}

/** The declaration entry of npm package `name` in Deno's cache, at the version deno.lock pins. */
async function cachedNpmPackage(name: string): Promise<string> {
  const lock = JSON.parse(await Deno.readTextFile(new URL("deno.lock", ROOT))) as {
    npm?: Record<string, unknown>;
  };
  const key = Object.keys(lock.npm ?? {}).find((k) => k.startsWith(`${name}@`));
  if (key === undefined) {
    throw new Error(`Cannot build: ${name} is not in deno.lock (add it to deno.json imports)`);
  }
  const version = key.slice(name.length + 1).split("_")[0]!;
  const { npmCache } = JSON.parse(
    new TextDecoder().decode(
      (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output()).stdout,
    ),
  ) as { npmCache: string };
  const dir = `${npmCache}/registry.npmjs.org/${name}/${version}`;
  // The compiler's `paths` wants the declaration file itself, from `types` or `exports`.
  const manifest = JSON.parse(await Deno.readTextFile(`${dir}/package.json`)) as {
    types?: string;
    typings?: string;
    exports?: Record<string, unknown>;
  };
  const dot = manifest.exports?.["."] as { types?: unknown } | undefined;
  const types = typeof dot?.types === "string"
    ? dot.types
    : manifest.types ?? manifest.typings ?? "index.d.ts";
  return `${dir}/${types.replace(/^\.\//, "")}`;
}

/**
 * Compiles one package's `src/` into ES modules and `.d.ts` files.
 *
 * @param name the package
 * @param outDir where to write, absolute; default `packages/<name>/dist`
 */
export async function buildPackage(name: PackageName, outDir?: string): Promise<void> {
  const pkg = new URL(`packages/${name}/`, ROOT);
  const out = outDir ?? new URL("dist", pkg).pathname;
  await Deno.remove(out, { recursive: true }).catch(() => {});
  const paths: Record<string, string[]> = {};
  for (const dep of NPM_DEPENDENCIES[name]) paths[dep] = [await cachedNpmPackage(dep)];
  if (paths["@types/react"] !== undefined) paths["react"] = paths["@types/react"];
  const tsconfig = await Deno.makeTempFile({ prefix: `tsconfig_${name}_`, suffix: ".json" });
  // The React hooks compile against the client's declarations, as their users will.
  const clientTypes = name === "react" ? await Deno.makeTempDir({ prefix: "client_types_" }) : "";
  try {
    if (clientTypes !== "") {
      await buildPackage("client", clientTypes);
      paths["@realtime/client"] = [`${clientTypes}/client.d.ts`];
    }
    await Deno.writeTextFile(
      tsconfig,
      JSON.stringify({
        compilerOptions: {
          target: "es2022",
          module: "nodenext",
          moduleResolution: "nodenext",
          lib: ["es2022", "dom"],
          types: [],
          strict: true,
          noUncheckedIndexedAccess: true,
          exactOptionalPropertyTypes: true,
          declaration: true,
          rewriteRelativeImportExtensions: true,
          allowImportingTsExtensions: true,
          skipLibCheck: true,
          removeComments: false,
          rootDir: new URL("src", pkg).pathname,
          outDir: out,
          paths,
        },
        files: [new URL(`src/${ENTRY[name]}`, pkg).pathname],
      }),
    );
    await run(["run", "-A", TYPESCRIPT, "-p", tsconfig], `tsc for packages/${name}`);
  } finally {
    await Deno.remove(tsconfig);
    if (clientTypes !== "") await Deno.remove(clientTypes, { recursive: true });
  }
  // Declarations keep the sources' specifiers; TypeScript maps `./x.js` to `./x.d.ts`.
  for await (const entry of Deno.readDir(out)) {
    if (!entry.name.endsWith(".d.ts")) continue;
    const file = `${out}/${entry.name}`;
    const text = await Deno.readTextFile(file);
    await Deno.writeTextFile(file, text.replace(/(from\s+"\.{1,2}\/[^"]+)\.ts"/g, '$1.js"'));
  }
}

if (import.meta.main) {
  const names = Deno.args.length === 0 ? ["client"] : Deno.args;
  for (const name of names) {
    if (!(name in ENTRY)) {
      console.error(`build_packages: unknown package ${name}; one of ${Object.keys(ENTRY)}`);
      Deno.exit(2);
    }
    if (name === "client") await bundleWebClient("web/client/client.js");
    await buildPackage(name as PackageName);
    console.log(`built packages/${name}/dist`);
  }
}
