/**
 * Debian's Chromium for the browser tests, driven by playwright-core: where
 * it is, and a headless instance with a throw-away profile whose pages
 * report uncaught exceptions and CSP violations.
 *
 * @module
 */
import { chromium } from "playwright-core";
import type { BrowserContext, Page } from "playwright-core";

/** The Chromium binary (`/usr/bin/chromium` or one on PATH), if any. */
export const CHROMIUM: string | undefined = [
  "/usr/bin/chromium",
  ...(Deno.env.get("PATH") ?? "").split(":").filter(Boolean).map((dir) => `${dir}/chromium`),
].find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});

/** A running headless Chromium; disposing it closes it and removes its profile. */
export interface Chromium extends AsyncDisposable {
  readonly context: BrowserContext;
  /** What the pages reported: uncaught exceptions and console lines matching `problemPattern`. */
  readonly problems: string[];
  /** A new page with a 10 s default timeout, reporting into `problems`. */
  newPage(): Promise<Page>;
}

/** Options for {@linkcode launchChromium}. */
export interface LaunchOptions {
  /** Prefix of the temporary profile directory. */
  profilePrefix: string;
  viewport: { width: number; height: number };
  /** Console lines that count as problems. @default /Content Security Policy/i */
  problemPattern?: RegExp;
}

/**
 * Starts Chromium as the probe found it works here: headless, no sandbox
 * (root), and no background networking (this machine's network is closed).
 */
export async function launchChromium(options: LaunchOptions): Promise<Chromium> {
  const { profilePrefix, viewport, problemPattern = /Content Security Policy/i } = options;
  if (CHROMIUM === undefined) throw new Error("Chromium is not installed");
  const profile = await Deno.makeTempDir({ prefix: profilePrefix });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  } catch (err) {
    await Deno.remove(profile, { recursive: true });
    throw err;
  }
  const problems: string[] = [];
  return {
    context,
    problems,
    async newPage() {
      const page = await context.newPage();
      page.setDefaultTimeout(10_000);
      page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
      page.on("console", (message) => {
        if (problemPattern.test(message.text())) problems.push(message.text());
      });
      return page;
    },
    async [Symbol.asyncDispose]() {
      try {
        await context.close();
      } finally {
        await Deno.remove(profile, { recursive: true });
      }
    },
  };
}
