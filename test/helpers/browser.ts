/**
 * Headless Chromium for end-to-end tests: Debian's `chromium` driven by playwright-core (no
 * browser download). Each page gets its own context (own storage, own connections).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** The Chromium binary (.ci/run installs Debian's `chromium`); FANOUT_CHROMIUM overrides it. */
export const CHROMIUM = process.env.FANOUT_CHROMIUM ?? '/usr/bin/chromium';

/** Where tests save screenshots (gitignored). */
export const ARTIFACTS = join(process.cwd(), 'test-artifacts');

export interface TestBrowser {
  readonly browser: Browser;
  /** Opens `url` in a fresh context; page errors and console errors are collected in `errors`. */
  open(url: string): Promise<TestPage>;
  close(): Promise<void>;
}

export interface TestPage {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Uncaught page errors and console.error lines, for assertions and failure messages. */
  readonly errors: string[];
}

export async function launchBrowser(): Promise<TestBrowser> {
  // Playwright gives the browser a fresh temporary --user-data-dir of its own on every launch.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    timeout: 60_000,
  });
  const contexts: BrowserContext[] = [];
  return {
    browser,
    async open(url) {
      const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
      contexts.push(context);
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
      page.on('console', (msg) => {
        if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
      });
      await page.goto(url, { waitUntil: 'load' });
      return { page, context, errors };
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => {});
      await browser.close();
    },
  };
}

/** Saves a screenshot of `page` as test-artifacts/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
