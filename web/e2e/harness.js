// The harness of the end-to-end tests: a headless Chromium from the system,
// pages on the plait server under test, and shortcuts to its HTTP API for
// the data a scenario starts from.
//
// PLAIT_URL is the server's base URL (scripts/e2e starts one); CHROMIUM the
// browser to drive (/usr/bin/chromium by default). Screenshots go to
// test-output/.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createHmac, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const BASE = (process.env.PLAIT_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
export const OUT = new URL('./test-output/', import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });

/** Launches the system's Chromium, headless, with nothing running in the background. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync',
      '--disable-default-apps', '--disable-extensions',
    ],
  });
}

/**
 * Opens the orderdesk UI in a fresh browser context (empty storage)
 * and waits for its relay to be live. Errors thrown in the page are kept in
 * page.errors, for the test to check, and so is anything the page's
 * Content-Security-Policy refused (page.violations too).
 *
 * @param {import('playwright-core').Browser} browser
 * With holdStream, the relay is held back from the start (see holdStream)
 * until page.releaseStream() is called.
 *
 * @param {{viewport?: {width: number, height: number}, path?: string, holdStream?: boolean}} [options]
 */
export async function openApp(browser, options = {}) {
  const context = await browser.newContext({
    baseURL: BASE,
    viewport: options.viewport ?? { width: 1280, height: 800 },
  });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(err));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource|EventSource/.test(msg.text())) page.errors.push(new Error(msg.text()));
  });
  page.violations = [];
  await page.exposeFunction('plaitCSPViolation', (v) => {
    page.violations.push(v);
    page.errors.push(new Error(`Content-Security-Policy refused ${v.blockedURI || 'inline code'} (${v.directive}) at ${v.source}`));
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.plaitCSPViolation({
        directive: e.effectiveDirective, blockedURI: e.blockedURI,
        source: `${e.sourceFile || e.documentURI}:${e.lineNumber}`,
      });
    });
  });
  if (options.holdStream) page.releaseStream = await holdStream(page);
  await page.goto(options.path ?? '/');
  if (!options.holdStream) await waitLive(page);
  await page.locator('[data-testid=list] table, [data-testid=empty]').first().waitFor();
  return page;
}

/**
 * Collects the page's requests the server answered with an error (4xx,
 * 5xx) from now on, as "GET /path 404": each is logged in the browser's
 * console as a failed resource, which page.errors leaves out.
 *
 * @returns {string[]} filled as they come
 */
export function failedRequests(page) {
  const failed = [];
  page.on('response', (r) => {
    if (r.status() >= 400) failed.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`);
  });
  return failed;
}

/** Waits until the page's relay is connected. */
export async function waitLive(page) {
  await page.locator('[data-testid=connection][data-state=live]').waitFor({ timeout: 10000 });
}

/** Closes the page's context, failing if the page threw. */
export async function done(page) {
  const errors = page.errors ?? [];
  await page.context().close();
  if (errors.length) throw new Error(`the page threw: ${errors.map((e) => e.message).join('; ')}`);
}

/** Saves a screenshot of the page as test-output/<name>.png. */
export function shot(page, name) {
  return page.screenshot({ path: `${OUT}${name}.png`, fullPage: false });
}

/**
 * Holds back the page's relay: every request for /stream waits until
 * release() is called, then goes through. The page's EventSource stays
 * "connecting" meanwhile, as over a slow network. Works across reloads.
 *
 * @returns {Promise<() => Promise<void>>} release
 */
export async function holdStream(page) {
  let open;
  const released = new Promise((r) => { open = r; });
  const isStream = (url) => url.pathname === '/stream';
  const handler = async (route) => {
    await released;
    await route.continue().catch(() => {}); // the page may have gone meanwhile
  };
  await page.route(isStream, handler);
  return async () => {
    open();
    await page.unroute(isStream, handler);
  };
}

/** Delays the page's posts of commands by ms, as over a slow network. */
export async function slowPosts(page, ms) {
  await page.route((url) => url.pathname === '/commands', async (route) => {
    if (route.request().method() === 'POST') await new Promise((r) => setTimeout(r, ms));
    await route.continue();
  });
}

/** A fresh suffix, so that every scenario has data of its own. */
export function unique() {
  return randomBytes(4).toString('hex').toUpperCase();
}

/**
 * Sends a command through the HTTP API and waits until it has settled: its
 * outcome and all it caused (view updates) are visible. Returns the answer.
 */
export async function command(type, aggregateId, name, data, extra = {}) {
  const res = await fetch(`${BASE}/commands?wait=settled&timeout=10s`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ type, aggregateId, name, data, ...extra }),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`${type}.${name} ${aggregateId}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** Creates a customer through the API; returns its id. */
export async function createCustomer(name, email = `${name.toLowerCase().replace(/[^a-z0-9]+/g, '.')}@example.com`) {
  const id = `cus-${unique()}`;
  await command('customer', id, 'create', { name, email });
  return id;
}

/** Places an order through the API; returns its id. */
export async function placeOrder(customerId, lines = [{ sku: 'TEA', qty: 2, price: 4.5 }]) {
  const id = `ord-${unique()}`;
  await command('order', id, 'place', { customerId, lines });
  return id;
}

/** GETs a path of the API as JSON. */
export async function get(path) {
  const res = await fetch(BASE + path);
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return res.json();
}

/** The screen element, once it has finished loading. */
export async function screen(page) {
  const el = page.locator('[data-testid=screen][data-ready=true]');
  await el.waitFor();
  return el;
}

/** Goes to a list and narrows it to items starting with prefix. */
export async function search(page, tab, prefix) {
  await page.getByTestId(`tab-${tab}`).click();
  await page.getByTestId('list-title').filter({ hasText: tab === 'orders' ? 'Orders' : 'Customers' }).waitFor();
  const box = page.getByTestId('search');
  const listed = page.waitForResponse((r) => {
    const u = new URL(r.url());
    return u.pathname.startsWith('/lists/') && [...u.searchParams.values()].includes(prefix);
  });
  await box.fill(prefix);
  await listed;
}

/** A JWT of claims signed with secret (HS256). */
export function hs256(secret, claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

/**
 * Starts a server of its own for a test: the plait binary of PLAIT_BIN
 * (scripts/e2e builds it) serving orderdesk with args on a free loopback
 * port and a fresh data folder. Returns its base URL and stop().
 *
 * @param {string[]} args
 */
export async function startServer(args) {
  const bin = process.env.PLAIT_BIN;
  if (!bin) throw new Error('PLAIT_BIN is not set: run the tests through scripts/e2e');
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
  const data = mkdtempSync(join(tmpdir(), 'plait-e2e-'));
  const proc = spawn(bin, ['serve', '--addr', `127.0.0.1:${port}`, '--data', data, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (b) => { log += b; });
  const base = `http://127.0.0.1:${port}`;
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const stop = async () => {
    proc.kill('SIGTERM');
    await exited;
    rmSync(data, { recursive: true, force: true });
  };
  for (let i = 0; i < 150; i++) {
    if (proc.exitCode !== null) break;
    if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) return { base, stop };
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error(`plait serve ${args.join(' ')} did not become healthy:\n${log}`);
}

/**
 * A TCP proxy on a free loopback port to the server under test, that can
 * go down and come back on the same port, as a server restarted or a
 * network lost and found: stop() drops every connection (the relay's
 * too) and refuses new ones; start() listens again. Returns its base URL.
 */
export async function outage() {
  const target = new URL(BASE);
  const sockets = new Set();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  server.unref(); // it keeps no test process alive
  const listen = (port) => new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  await listen(0);
  const { port } = server.address();
  return {
    base: `http://127.0.0.1:${port}`,
    async stop() {
      if (!server.listening) return;
      const closed = new Promise((resolve) => server.close(resolve));
      for (const s of sockets) s.destroy();
      await closed;
    },
    start: () => listen(port),
  };
}
