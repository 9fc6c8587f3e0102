// End-to-end scenarios of the orderdesk UI in headless Chromium, against a
// real plait server (see harness.js and scripts/e2e).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, command, createCustomer, done, failedRequests, get, launch, openApp, outage, placeOrder, screen, search, shot, slowPosts, unique, waitLive,
} from './harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const T = { timeout: 60000 };

/**
 * Creates a customer named name and opens its screen in the app, counting
 * the commands the page posts from then on (posts()).
 */
async function openNewCustomerCountingPosts(name) {
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  let n = 0;
  await page.route((url) => url.pathname === '/commands', (route) => {
    if (route.request().method() === 'POST') n++;
    return route.continue();
  });
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  return { page, customerId, s: await screen(page), posts: () => n };
}

/** Reads the row of one item as text, by field. */
async function orderRowText(page, id) {
  const row = page.locator(`[data-testid=order-row][data-id="${id}"]`);
  return {
    customer: await row.getByTestId('customer-name').innerText(),
    total: await row.getByTestId('order-total').innerText(),
    status: await row.getByTestId('order-status').textContent(),
  };
}

test('create a customer and an order from the UI', T, async () => {
  const page = await openApp(browser);
  const name = `Ann Lee ${unique()}`;
  await shot(page, '01-orders-list');

  // A new customer.
  await search(page, 'customers', name);
  await page.getByTestId('new-item').click();
  let s = await screen(page);
  assert.equal(await s.getByTestId('screen-title').innerText(), 'New customer');
  await s.getByTestId('input-name').fill(name);
  await s.getByTestId('input-email').fill('ann.lee@example.com');
  await shot(page, '02-new-customer');
  await s.getByTestId('submit').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  const row = page.locator('[data-testid=customer-row]:not(.pending)').filter({ hasText: name });
  await row.waitFor();
  assert.equal(await row.getByTestId('customer-email').innerText(), 'ann.lee@example.com');
  const customerId = await row.getAttribute('data-id');
  const stored = await get(`/aggregates/customer/${customerId}`);
  assert.equal(stored.state.name, name);
  await shot(page, '03-customers-list');

  // An order of two lines for that customer.
  await page.getByTestId('tab-orders').click();
  await page.getByTestId('new-item').click();
  s = await screen(page);
  await s.getByTestId('customer-search').fill(name);
  await s.locator(`[data-testid=select-customer] option[value="${customerId}"]`).waitFor({ state: 'attached' });
  await s.getByTestId('select-customer').selectOption(customerId);
  const lines = s.getByTestId('line');
  await lines.nth(0).locator('[name=sku]').fill('TEA-GREEN');
  await lines.nth(0).locator('[name=qty]').fill('2');
  await lines.nth(0).locator('[name=price]').fill('4.50');
  await s.getByTestId('add-line').click();
  await lines.nth(1).locator('[name=sku]').fill('MUG');
  await lines.nth(1).locator('[name=qty]').fill('1');
  await lines.nth(1).locator('[name=price]').fill('12');
  assert.equal(await s.getByTestId('total-preview').innerText(), '21.00');
  await shot(page, '04-new-order');
  const orderId = await s.getAttribute('data-id');
  await s.getByTestId('submit').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });

  const orderRow = page.locator(`[data-testid=order-row][data-id="${orderId}"]:not(.pending)`);
  await orderRow.waitFor();
  await page.waitForFunction(([id, customer]) => {
    const r = document.querySelector(`[data-testid=order-row][data-id="${id}"]`);
    return r && !r.classList.contains('placeholder') && r.querySelector('[data-testid=open-customer]')?.textContent === customer;
  }, [orderId, name]);
  assert.deepEqual(await orderRowText(page, orderId), { customer: name, total: '21.00', status: 'placed' });
  const item = await get(`/aggregates/orderList/${orderId}`);
  assert.equal(item.state.total, 21);
  await shot(page, '05-orders-list-with-order');
  await done(page);
});

test('the UI runs under its Content-Security-Policy, which nothing on the page breaks', T, async () => {
  const page = await openApp(browser);
  const res = await page.request.get('/');
  const csp = res.headers()['content-security-policy'] ?? '';
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(csp, /default-src 'self'/);
  assert.equal(res.headers()['x-frame-options'], 'DENY');

  // Every part of the page at work: a list, a screen, a command over the relay.
  const name = `Csp Check ${unique()}`;
  await search(page, 'customers', name);
  await page.getByTestId('new-item').click();
  const s = await screen(page);
  await s.getByTestId('input-name').fill(name);
  await s.getByTestId('input-email').fill('csp@example.com');
  await s.getByTestId('submit').click();
  await page.locator('[data-testid=customer-row]:not(.pending)').filter({ hasText: name }).waitFor();
  await page.getByTestId('tab-orders').click();
  await page.getByTestId('new-item').click();
  await screen(page);

  // The policy is live: inline code is refused, and the refusal is seen.
  await page.evaluate(() => {
    const el = document.createElement('div');
    el.setAttribute('onclick', 'void 0');
    el.click();
  });
  await expectViolation(page, 'script-src-attr');
  page.violations.length = 0;
  page.errors = page.errors.filter((e) => !/Content.Security.Policy/i.test(e.message));
  await done(page);
});

/** Waits until the page has reported a violation of directive. */
async function expectViolation(page, directive) {
  for (let i = 0; i < 50 && !page.violations.some((v) => v.directive === directive); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(page.violations.some((v) => v.directive === directive), `no ${directive} violation seen: ${JSON.stringify(page.violations)}`);
}

test('a submission closes the screen at once, before its outcome is known', T, async () => {
  const name = `Bo Berg ${unique()}`;
  const customerId = await createCustomer(name);
  // The relay is held back: no outcome can arrive, yet the screen closes as
  // soon as the server has confirmed delivery.
  const page = await openApp(browser, { holdStream: true });
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-name').fill(`${name} Jr`);
  const posted = page.waitForResponse((r) => r.url().endsWith('/commands') && r.request().method() === 'POST');
  const t0 = Date.now();
  await s.getByTestId('submit-rename').click();
  assert.equal((await posted).status(), 202);
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  assert.ok(Date.now() - t0 < 3000, 'the screen closed within 3 s');
  assert.equal(await page.getByTestId('pending-count').innerText(), '1 pending');
  const row = page.locator(`[data-testid=customer-row][data-id="${customerId}"]`);
  assert.equal(await row.getAttribute('aria-disabled'), 'true', 'the renamed customer waits for its update');
  await shot(page, '11-pending-greyed');

  // Once the relay flows again, the outcome and the event arrive.
  await page.releaseStream();
  await page.getByTestId('pending-count').waitFor({ state: 'hidden' });
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]:not(.pending)`).filter({ hasText: `${name} Jr` }).waitFor();
  await done(page);
});

test('an invalid submission reopens the screen with annotations', T, async () => {
  const page = await openApp(browser);
  await page.getByTestId('tab-customers').click();
  await page.getByTestId('new-item').click();
  let s = await screen(page);
  const customerId = await s.getAttribute('data-id');
  await s.getByTestId('input-name').fill('   ');
  await s.getByTestId('input-email').fill('not an address');
  await s.getByTestId('submit').click();

  // Rejected: the screen is back with what was typed and a note per field.
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`);
  await s.getByTestId('reopen-note').waitFor();
  assert.equal(await s.getByTestId('input-email').inputValue(), 'not an address');
  const nameNote = s.locator('[data-testid=annotation][data-path=name]');
  const emailNote = s.locator('[data-testid=annotation][data-path=email]');
  assert.equal(await nameNote.getAttribute('data-code'), 'required');
  assert.equal(await emailNote.getAttribute('data-code'), 'invalid');
  assert.equal(await s.getByTestId('input-name').getAttribute('aria-invalid'), 'true');
  // An invalid field is described by its note: a screen reader tells why.
  const describedBy = await s.getByTestId('input-name').getAttribute('aria-describedby');
  assert.equal(await page.locator(`[id="${describedBy}"]`).innerText(), await nameNote.innerText());
  // Each note sits beside its field.
  assert.equal(await s.locator('.field', { has: page.getByTestId('input-email') }).getByTestId('annotation').count(), 1);
  await shot(page, '06-rejected-customer-reopened');

  // Corrected, it goes through.
  const name = `Cy Dale ${unique()}`;
  await s.getByTestId('input-name').fill(name);
  await s.getByTestId('input-email').fill('cy@example.com');
  await s.getByTestId('submit').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]:not(.pending)`).filter({ hasText: name }).waitFor();

  // An order line with a quantity of 0 and no price: the notes are on that
  // line's quantity and price.
  await page.getByTestId('tab-orders').click();
  await page.getByTestId('new-item').click();
  s = await screen(page);
  const orderId = await s.getAttribute('data-id');
  await s.getByTestId('customer-search').fill(name);
  await s.locator(`[data-testid=select-customer] option[value="${customerId}"]`).waitFor({ state: 'attached' });
  await s.getByTestId('select-customer').selectOption(customerId);
  await s.getByTestId('line').nth(0).locator('[name=sku]').fill('PEN');
  await s.getByTestId('line').nth(0).locator('[name=qty]').fill('0');
  await s.getByTestId('submit').click();
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${orderId}"]`);
  const qtyNote = s.locator('[data-testid=annotation][data-path="lines[0].qty"]');
  await qtyNote.waitFor();
  const qtyDescribedBy = await s.getByTestId('line').nth(0).locator('[name=qty]').getAttribute('aria-describedby');
  assert.equal(await page.locator(`[id="${qtyDescribedBy}"]`).innerText(), await qtyNote.innerText());
  assert.match(await s.locator('[data-testid=annotation][data-path="lines[0].price"]').textContent(), /price is required/);
  assert.equal(await s.getByTestId('line').nth(0).locator('[name=sku]').inputValue(), 'PEN');
  assert.equal(await s.getByTestId('select-customer').inputValue(), customerId);
  assert.equal(await page.locator(`[data-testid=order-row][data-id="${orderId}"]`).count(), 0, 'the rejected order left no row');
  await shot(page, '07-rejected-order-reopened');
  await done(page);
});

test('a rejection after moving on raises the badge, and reopens from it', T, async () => {
  const tag = unique();
  const firstId = await createCustomer(`${tag} Di Eve`);
  const secondId = await createCustomer(`${tag} Ed Fox`);
  // The relay is slow: the outcome comes after the user has moved on.
  const page = await openApp(browser, { holdStream: true });
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${firstId}"]`).click();
  let s = await screen(page);
  await s.getByTestId('input-email').fill('di at example');
  await s.getByTestId('submit-changeEmail').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });

  await page.locator(`[data-testid=customer-row][data-id="${secondId}"]`).click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${secondId}"]`).waitFor();
  await page.releaseStream();

  await page.getByTestId('error-badge').waitFor();
  assert.equal(await page.getByTestId('error-count').innerText(), '1');
  // The screen the user moved on to stays.
  assert.equal(await page.getByTestId('screen').getAttribute('data-id'), secondId);
  await shot(page, '08-error-badge');

  await page.getByTestId('close-screen').click();
  await page.getByTestId('error-badge').click();
  const items = page.getByTestId('error-item');
  assert.equal(await items.count(), 1);
  assert.match(await items.first().innerText(), /not an email address/);
  await shot(page, '09-error-list');
  await items.first().click();

  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${firstId}"]`);
  await s.waitFor();
  assert.equal(await s.getByTestId('input-email').inputValue(), 'di at example');
  assert.equal(await s.locator('[data-testid=annotation][data-path=email]').getAttribute('data-code'), 'invalid');
  await page.getByTestId('error-badge').waitFor({ state: 'hidden' });
  await shot(page, '10-reopened-from-badge');
  await done(page);
});

test('renaming a customer updates the order list in place, greyed out until then', T, async () => {
  const name = `Flo Gil ${unique()}`;
  const customerId = await createCustomer(name);
  const orders = [await placeOrder(customerId), await placeOrder(customerId, [{ sku: 'CUP', qty: 3, price: 2 }])];
  const page = await openApp(browser);
  await search(page, 'orders', name);
  for (const id of orders) await page.locator(`[data-testid=order-row][data-id="${id}"]`).waitFor();

  // Record, from inside the page, every row that was ever pending, and
  // count the list queries from now on.
  await page.evaluate((ids) => {
    window.seenPending = new Set();
    const check = () => {
      for (const id of ids) {
        if (document.querySelector(`[data-testid=order-row][data-id="${id}"].pending`)) window.seenPending.add(id);
      }
    };
    new MutationObserver(check).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['class'] });
  }, orders);
  let listQueries = 0;
  page.on('request', (r) => { if (r.url().includes('/lists/orderList')) listQueries++; });

  // Through the lineage of the customer name to the customer screen.
  await page.locator(`[data-testid=order-row][data-id="${orders[0]}"]`).getByTestId('open-customer').click();
  const s = page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`);
  await s.waitFor();
  const renamed = `${name} Smith`;
  await s.getByTestId('input-name').fill(renamed);
  await s.getByTestId('submit-rename').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  
  for (const id of orders) {
    await page.locator(`[data-testid=order-row][data-id="${id}"]:not(.pending)`).filter({ hasText: renamed }).waitFor();
  }
  const seen = await page.evaluate(() => [...window.seenPending]);
  assert.deepEqual(seen.sort(), [...orders].sort(), 'both items were greyed out before their update');
  assert.equal(listQueries, 0, 'the list was not queried again');
  assert.equal((await orderRowText(page, orders[1])).total, '6.00');
  await shot(page, '12-rename-applied');
  await done(page);
});

test('a list item opens the aggregates its fields came from', T, async () => {
  const name = `Gus Hay ${unique()}`;
  const customerId = await createCustomer(name);
  const orderId = await placeOrder(customerId, [{ sku: 'BOOK', qty: 1, price: 30 }]);
  const page = await openApp(browser);
  await search(page, 'orders', name);
  const row = page.locator(`[data-testid=order-row][data-id="${orderId}"]`);

  // The customer name came from the customer.
  await row.getByTestId('open-customer').click();
  let s = page.locator(`[data-testid=screen][data-ready=true][data-type=customer][data-id="${customerId}"]`);
  await s.waitFor();
  assert.equal(await s.getByTestId('screen-title').innerText(), name);
  assert.equal(await s.getByTestId('input-name').inputValue(), name);
  await s.getByTestId('customer-orders').getByText(orderId).waitFor();
  await shot(page, '13-customer-from-lineage');

  // The total and status came from the order.
  await row.getByTestId('open-order').click();
  s = page.locator(`[data-testid=screen][data-ready=true][data-type=order][data-id="${orderId}"]`);
  await s.waitFor();
  assert.equal(await s.getByTestId('order-total').innerText(), '30.00');
  assert.equal(await s.getByTestId('order-status').textContent(), 'placed');
  await shot(page, '14-order-screen');

  // And from the order back to its customer.
  await s.getByTestId('open-order-customer').click();
  await page.locator(`[data-testid=screen][data-ready=true][data-type=customer][data-id="${customerId}"]`).waitFor();
  await done(page);
});

test('an order changed meanwhile gives a clear conflict annotation', T, async () => {
  const name = `Hal Ivy ${unique()}`;
  const customerId = await createCustomer(name);
  const orderId = await placeOrder(customerId);
  const page = await openApp(browser);
  await search(page, 'orders', name);
  await page.locator(`[data-testid=order-row][data-id="${orderId}"]`).getByTestId('open-order').click();
  let s = await screen(page);

  // Someone else cancels the order while it is on screen.
  await command('order', orderId, 'cancel', { reason: 'changed my mind' });
  await s.getByTestId('stale-notice').waitFor();

  await s.getByTestId('submit-ship').click();
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${orderId}"]`);
  const note = s.locator('[data-testid=annotation][data-code=conflict]');
  await note.waitFor();
  assert.match(await note.innerText(), /changed/);
  // Shipping a cancelled order can no longer be done: no advice to send again.
  assert.match(await note.innerText(), /can no longer be done/);
  assert.equal(await s.getByTestId('order-status').textContent(), 'cancelled', 'the screen shows the current version');
  const row = page.locator(`[data-testid=order-row][data-id="${orderId}"]`);
  assert.equal(await row.getByTestId('order-status').textContent(), 'cancelled');
  await shot(page, '15-conflict');
  await done(page);
});

test('a reload while a command is pending still shows its outcome', T, async () => {
  const name = `Ida Jay ${unique()}`;
  const customerId = await createCustomer(name);
  // Nothing comes over the relay, before or after the reloads.
  const page = await openApp(browser, { holdStream: true });
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  let s = await screen(page);
  await s.getByTestId('input-name').fill('');
  await s.getByTestId('submit-rename').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  const pending = await page.evaluate(() => JSON.parse(sessionStorage.getItem('plait:pending') || '{}'));
  assert.equal(Object.keys(pending).length, 1, 'the command is remembered as pending');

  await page.reload();
  // The reloaded page asks for the command by id and reopens its screen.
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`);
  await s.locator('[data-testid=annotation][data-path=name]').waitFor();
  assert.equal(await s.getByTestId('input-name').inputValue(), '');
  await shot(page, '16-outcome-after-reload');

  // An accepted command too: its outcome is reported after the reload.
  await s.getByTestId('input-name').fill(`${name} II`);
  await s.getByTestId('submit-rename').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.reload();
  await page.getByTestId('toast').filter({ hasText: /^Done: Rename customer/ }).waitFor();
  assert.deepEqual(await page.evaluate(() => JSON.parse(sessionStorage.getItem('plait:pending') || '{}')), {});
  await page.releaseStream();
  await waitLive(page);
  await done(page);
});

test('lists page through their items', T, async () => {
  const prefix = `Pag ${unique()}`;
  const ids = [];
  for (let i = 0; i < 12; i++) ids.push(await createCustomer(`${prefix} ${String(i).padStart(2, '0')}`));
  const page = await openApp(browser);
  await search(page, 'customers', prefix);
  const rows = page.getByTestId('customer-row');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 10);
  assert.equal(await rows.first().getAttribute('data-id'), ids[0]);
  await page.getByTestId('next-page').click();
  await page.getByTestId('page-number').filter({ hasText: 'Page 2' }).waitFor();
  await page.locator(`[data-testid=customer-row][data-id="${ids[11]}"]`).waitFor();
  assert.equal(await rows.count(), 2);
  assert.ok(await page.getByTestId('next-page').isDisabled());
  await page.getByTestId('prev-page').click();
  await page.locator(`[data-testid=customer-row][data-id="${ids[0]}"]`).waitFor();
  assert.equal(await rows.count(), 10);
  await done(page);
});

test('readable on a phone', T, async () => {
  const name = `Kim Lu ${unique()}`;
  const customerId = await createCustomer(name);
  await placeOrder(customerId, [{ sku: 'LAMP', qty: 1, price: 25 }]);
  const page = await openApp(browser, { viewport: { width: 390, height: 844 } });
  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(await overflow() <= 0, 'no sideways scrolling');
  await shot(page, '17-phone-orders');
  await page.getByTestId('order-row').first().getByTestId('open-order').click();
  const s = await screen(page);
  const box = await s.boundingBox();
  assert.ok(box.width >= 380, 'the screen takes the whole width');
  assert.ok(await overflow() <= 0, 'no sideways scrolling');
  await shot(page, '18-phone-order-screen');
  await done(page);
});

// The first POST of a command is stored, and its answer is lost on the
// way, or is a server error: either way the page cannot know whether it
// arrived.
for (const [what, fail] of [
  ['whose answer was lost', (route) => route.abort('connectionreset')],
  ['the server failed to confirm', (route) => route.fulfill({
    status: 503, contentType: 'application/problem+json',
    body: JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'the command may have been stored: send it again' }),
  })],
]) {
  test(`a command ${what} is sent again under its id, and carried out once`, T, async () => {
    // The relay is slow too, so that the page cannot learn from it that
    // the command arrived.
    const page = await openApp(browser, { holdStream: true });
    const name = `Jo Kay ${unique()}`;
    let posts = 0;
    await page.route((url) => url.pathname === '/commands', async (route) => {
      if (route.request().method() !== 'POST' || posts++ > 0) return route.continue();
      await route.fetch();
      await fail(route);
    });
    await page.getByTestId('tab-customers').click();
    await page.getByTestId('new-item').click();
    const s = await screen(page);
    const id = await s.getAttribute('data-id');
    await s.getByTestId('input-name').fill(name);
    await s.getByTestId('input-email').fill('jo.kay@example.com');
    await s.getByTestId('submit').click();
    const note = s.locator('[data-testid=annotation][data-code=unreachable]');
    await note.waitFor();
    assert.match(await note.innerText(), /may not have arrived/);
    // Sent again as it was: the same command, carried out once.
    await s.getByTestId('submit').click();
    await page.getByTestId('screen').waitFor({ state: 'hidden' });
    assert.equal(posts, 2);
    await page.releaseStream();
    await page.getByTestId('toast').filter({ hasText: /^Done: Create customer/ }).first().waitFor();
    const events = await get(`/aggregates/customer/${id}/events`);
    assert.equal(events.length, 1, 'one created event');
    await page.locator('[data-testid=pending-count]').waitFor({ state: 'hidden' });
    assert.equal(await page.getByTestId('error-badge').isHidden(), true, 'no rejection: the retry was no second create');
    await done(page);
  });
}
test('of two tabs of one browser, only the one that sent a rejected command reopens it', T, async () => {
  const name = `Lu May ${unique()}`;
  const customerId = await createCustomer(name);
  const a = await openApp(browser);
  const b = await a.context().newPage();
  b.errors = [];
  await b.goto('/');
  await waitLive(b);
  await search(a, 'customers', name);
  await a.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(a);
  await s.getByTestId('input-name').fill('');
  await s.getByTestId('submit-rename').click();
  await a.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"] [data-testid=annotation][data-path=name]`).waitFor();
  // The other tab heard the outcome too, and left it alone.
  await b.waitForTimeout(500);
  assert.equal(await b.getByTestId('screen').isHidden(), true, 'the other tab opened no screen');
  assert.equal(await b.getByTestId('error-badge').isHidden(), true, 'the other tab raised no badge');
  await done(a);
});

test('a rejection reopened and replaced at once by another screen stays in the badge', T, async () => {
  const tag = unique();
  const firstId = await createCustomer(`${tag} Mo Ng`);
  const secondId = await createCustomer(`${tag} No Oh`);
  const page = await openApp(browser);
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${firstId}"]`).click();
  let s = await screen(page);
  await s.getByTestId('input-name').fill('');
  await s.getByTestId('submit-rename').click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${firstId}"] [data-testid=annotation][data-path=name]`).waitFor();
  // The user, already on the way elsewhere, clicks another row.
  await page.locator(`[data-testid=customer-row][data-id="${secondId}"]`).click({ noWaitAfter: true });
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${secondId}"]`).waitFor();
  await page.getByTestId('error-badge').waitFor();
  assert.equal(await page.getByTestId('error-count').innerText(), '1');
  await done(page);
});

test('a rejection does not reopen over a user typing elsewhere: it goes to the badge', T, async () => {
  const name = `Pa Qu ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser, { holdStream: true });
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-email').fill('bad');
  await s.getByTestId('submit-changeEmail').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  const searchBox = page.getByTestId('search');
  await searchBox.fill('');
  await searchBox.pressSequentially('Pa');
  await page.releaseStream();
  await page.getByTestId('error-badge').waitFor();
  await searchBox.pressSequentially(' Qu');
  assert.equal(await searchBox.inputValue(), 'Pa Qu', 'the keys went where the user typed');
  assert.equal(await page.getByTestId('screen').isHidden(), true);
  await done(page);
});

test('amounts are shown as the decimals they are, never rounded', T, async () => {
  const customerId = await createCustomer(`Ra Su ${unique()}`);
  const page = await openApp(browser);
  await page.getByTestId('new-item').click();
  const s = await screen(page);
  await s.getByTestId('select-customer').selectOption(customerId).catch(() => {});
  const line = s.getByTestId('line').nth(0);
  await line.locator('[name=sku]').fill('INK');
  await line.locator('[name=qty]').fill('1');
  await line.locator('[name=price]').fill('1.005');
  await s.getByTestId('add-line').click();
  const second = s.getByTestId('line').nth(1);
  await second.locator('[name=sku]').fill('NIB');
  await second.locator('[name=qty]').fill('3');
  await second.locator('[name=price]').fill('0.1');
  assert.equal(await s.getByTestId('total-preview').innerText(), '1.305');
  await done(page);
  const orderId = await placeOrder(customerId, [{ sku: 'PAD', qty: 1000, price: 1234.5 }]);
  const p2 = await openApp(browser);
  await p2.locator(`[data-testid=order-row][data-id="${orderId}"]`).waitFor();
  assert.equal((await orderRowText(p2, orderId)).total, '1,234,500.00');
  await done(p2);
});

test('sending one change of a screen keeps it open for the other, sent from the version the first made', T, async () => {
  const name = `Sa Tu ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-email').fill('sa.tu@example.org');
  await s.getByTestId('input-name').fill(`${name} Jr`);
  await s.getByTestId('input-name').press('Enter');
  // Once the rename is done, the screen shows the version it made, the
  // other change kept, and the email goes from that version.
  await page.locator('[data-testid=screen]:not([inert]) [data-testid=screen-title]').filter({ hasText: `${name} Jr` }).waitFor();
  assert.equal(await s.getByTestId('input-email').inputValue(), 'sa.tu@example.org', 'the other change is kept');
  await s.getByTestId('submit-changeEmail').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.getByTestId('toast').filter({ hasText: /^Done: Change the email/ }).waitFor();
  const c = await get(`/aggregates/customer/${customerId}`);
  assert.deepEqual([c.seq, c.state.name, c.state.email], [3, `${name} Jr`, 'sa.tu@example.org']);
  assert.equal(await page.getByTestId('error-badge').isHidden(), true, 'no conflict with the user\'s own change');
  await done(page);
});

test('a screen opened while another screen\'s command is on the way is neither busy nor closed by it', T, async () => {
  const tag = unique();
  const firstId = await createCustomer(`${tag} Ua Va`);
  const secondId = await createCustomer(`${tag} Wa Xa`);
  const page = await openApp(browser);
  await slowPosts(page, 1500);
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${firstId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-name').fill(`${tag} Ua Vb`);
  await s.getByTestId('submit-rename').click();
  await page.locator(`[data-testid=customer-row][data-id="${secondId}"] [data-testid=open-customer]`).click();
  const second = page.locator(`[data-testid=screen][data-ready=true][data-id="${secondId}"]`);
  await second.waitFor();
  assert.equal(await second.getAttribute('inert'), null, 'the new screen is not busy');
  // The first command's answer comes, and leaves the second screen be.
  await page.getByTestId('toast').filter({ hasText: /^Done: Rename customer/ }).waitFor();
  assert.equal(await second.isVisible(), true, 'the second screen stays open');
  await second.getByTestId('input-email').fill('wa.xa@example.org');
  assert.equal(await second.getByTestId('input-email').inputValue(), 'wa.xa@example.org');
  await done(page);
});

test('a command that fails after its screen was closed is kept in the badge', T, async () => {
  const name = `Ya Za ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await page.route((url) => url.pathname === '/commands', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    await new Promise((r) => setTimeout(r, 1000));
    await route.abort('connectionrefused'); // it never reaches the server
  });
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-name').fill(`${name} B`);
  await s.getByTestId('submit-rename').click();
  await page.keyboard.press('Escape');
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.getByTestId('error-badge').waitFor();
  assert.equal(await page.getByTestId('error-count').innerText(), '1');
  // The client learns the server never had it: nothing is left pending.
  await page.getByTestId('pending-count').waitFor({ state: 'hidden', timeout: 20000 });
  await page.getByTestId('error-badge').click();
  await page.getByTestId('error-item').first().click();
  const reopened = page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`);
  assert.equal(await reopened.getByTestId('input-name').inputValue(), `${name} B`, 'what was sent is kept');
  await done(page);
});

test('Enter on an order just opened sends nothing', T, async () => {
  const customerId = await createCustomer(`Ab Cd ${unique()}`);
  const orderId = await placeOrder(customerId);
  const page = await openApp(browser);
  await page.locator(`[data-testid=order-row][data-id="${orderId}"] [data-testid=open-order]`).click();
  await screen(page);
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'screen-title');
  await page.keyboard.press('Enter');
  await page.waitForTimeout(500);
  assert.equal((await get(`/aggregates/order/${orderId}`)).state.status, 'placed');
  await page.keyboard.press('Escape');
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'open-order', 'the focus is back on what opened the screen');
  await done(page);
});

test('a command lost on the way after its screen closed leaves the badge once its outcome is known', T, async () => {
  const name = `Ef Gh ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser, { holdStream: true });
  let posts = 0;
  await page.route((url) => url.pathname === '/commands', async (route) => {
    if (route.request().method() !== 'POST' || posts++ > 0) return route.continue();
    await route.fetch(); // it arrives; its answer is lost
    await new Promise((r) => setTimeout(r, 500));
    await route.abort('connectionreset');
  });
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-name').fill(`${name} X`);
  await s.getByTestId('submit-rename').click();
  await page.keyboard.press('Escape');
  await page.getByTestId('error-badge').waitFor();
  // Asked for by id, it turns out done: the badge lets it go.
  await page.getByTestId('toast').filter({ hasText: /^Done: Rename customer/ }).waitFor({ timeout: 15000 });
  await page.getByTestId('error-badge').waitFor({ state: 'hidden' });
  await page.releaseStream();
  const events = await get(`/aggregates/customer/${customerId}/events`);
  assert.deepEqual(events.map((e) => e.name), ['created', 'renamed']);
  await done(page);
});

test('Enter in the customer search of a new order searches, and places nothing', T, async () => {
  const tag = unique();
  const customerId = await createCustomer(`${tag} Ij Kl`);
  await createCustomer(`${tag} Mn Op`);
  const page = await openApp(browser);
  await page.getByTestId('tab-customers').click();
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  let s = await screen(page);
  await s.getByTestId('place-order-for-customer').click();
  s = page.locator('[data-testid=screen][data-ready=true][data-type=order]');
  await s.waitFor();
  const orderId = await s.getAttribute('data-id');
  const line = s.getByTestId('line').nth(0);
  await line.locator('[name=sku]').fill('QR');
  await line.locator('[name=price]').fill('2');
  await s.getByTestId('customer-search').fill(`${tag} Mn`);
  await s.getByTestId('customer-search').press('Enter');
  await page.waitForTimeout(500);
  assert.equal(await s.isVisible(), true, 'the screen stays');
  const res = await fetch(`${(process.env.PLAIT_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '')}/aggregates/order/${orderId}`);
  assert.equal(res.status, 404, 'no order was placed');
  await done(page);
});

test('a screen closing on its own leaves the focus where the user types', T, async () => {
  const name = `St Uv ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await slowPosts(page, 1000);
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-name').fill(`${name} W`);
  await s.getByTestId('submit-rename').click();
  const box = page.getByTestId('search');
  await box.fill('');
  await box.pressSequentially('typed while it was on its way', { delay: 60 });
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await box.pressSequentially(' and after');
  assert.equal(await box.inputValue(), 'typed while it was on its way and after');
  await done(page);
});

test('a rejection goes to the badge when another screen was opened while it was on the way', T, async () => {
  const tag = unique();
  const firstId = await createCustomer(`${tag} Wx Yz`);
  const secondId = await createCustomer(`${tag} Za Bc`);
  const page = await openApp(browser);
  await slowPosts(page, 1500);
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${firstId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-email').fill('bad');
  await s.getByTestId('submit-changeEmail').click();
  await page.locator(`[data-testid=customer-row][data-id="${secondId}"] [data-testid=open-customer]`).click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${secondId}"]`).waitFor();
  await page.keyboard.press('Escape');
  await page.getByTestId('error-badge').waitFor();
  assert.equal(await page.getByTestId('screen').isHidden(), true, 'nothing reopened');
  await done(page);
});

test('a new order for the customer searched for shows in the filtered list', T, async () => {
  const name = `Fi Lt ${unique()}`;
  const customerId = await createCustomer(name);
  const first = await placeOrder(customerId);
  const page = await openApp(browser);
  await search(page, 'orders', name);
  await page.locator(`[data-testid=order-row][data-id="${first}"]`).waitFor();
  // Placed elsewhere: its list item's first event may not name the
  // customer yet; it shows once one does.
  const second = await placeOrder(customerId);
  await page.locator(`[data-testid=order-row][data-id="${second}"]:not(.placeholder)`).waitFor();
  assert.equal((await orderRowText(page, second)).customer, name);
  // Another customer's order stays out.
  await placeOrder(await createCustomer(`Other ${unique()}`));
  assert.equal(await page.getByTestId('order-row').count(), 2);
  await done(page);
});

test('new items take their place in the list\'s order', T, async () => {
  const tag = `So ${unique()}`;
  const b = await createCustomer(`${tag} B`);
  const d = await createCustomer(`${tag} D`);
  const page = await openApp(browser);
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${d}"]`).waitFor();
  const c = await createCustomer(`${tag} C`);
  const a = await createCustomer(`${tag} A`);
  await page.locator(`[data-testid=customer-row][data-id="${a}"]`).waitFor();
  await page.locator(`[data-testid=customer-row][data-id="${c}"]`).waitFor();
  const ids = await page.getByTestId('customer-row').evaluateAll((rows) => rows.map((r) => r.dataset.id));
  assert.deepEqual(ids, [a, b, c, d]);
  await done(page);
});

test('new items with names beyond the basic plane take the place the server gives them', T, async () => {
  const tag = `Ω ${unique()}`;
  const kana = await createCustomer(`${tag} ｶ kana`, `kana.${unique()}@example.com`);
  const page = await openApp(browser);
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${kana}"]`).waitFor();
  const smile = await createCustomer(`${tag} 😀 smile`, `smile.${unique()}@example.com`);
  await page.locator(`[data-testid=customer-row][data-id="${smile}"]`).waitFor();
  const shown = await page.getByTestId('customer-row').evaluateAll((rows) => rows.map((r) => r.dataset.id));
  const stored = await get(`/lists/customer?sort=name&prefix.name=${encodeURIComponent(tag)}`);
  assert.deepEqual(shown, stored.items.map((it) => it.id));
  assert.deepEqual(shown, [kana, smile]);
  await done(page);
});

test('a page on its way shows the list busy, and a second click on Next before it arrives goes nowhere', T, async () => {
  const prefix = `Nx ${unique()}`;
  const ids = [];
  for (let i = 0; i < 25; i++) ids.push(await createCustomer(`${prefix} ${String(i).padStart(2, '0')}`));
  const page = await openApp(browser);
  await search(page, 'customers', prefix);
  await page.locator(`[data-testid=customer-row][data-id="${ids[0]}"]`).waitFor();
  await page.route((url) => url.pathname.startsWith('/lists/'), async (route) => {
    await new Promise((r) => setTimeout(r, 800));
    await route.continue();
  });
  const next = page.getByTestId('next-page');
  await next.click();
  // Until the page arrives, the list says it is busy, and looks it.
  const list = page.getByTestId('list');
  assert.equal(await list.getAttribute('aria-busy'), 'true');
  assert.equal(await page.getByTestId('page-number').innerText(), 'Loading page 2…');
  await page.waitForFunction(() => Number(getComputedStyle(document.querySelector('[data-testid=list] table')).opacity) < 1);
  await next.click();
  await page.locator(`[data-testid=customer-row][data-id="${ids[10]}"]`).waitFor();
  assert.equal(await list.getAttribute('aria-busy'), null);
  await new Promise((r) => setTimeout(r, 1200)); // a second page load, if one went out, has arrived
  assert.equal(await page.getByTestId('page-number').innerText(), 'Page 2');
  assert.equal(await page.getByTestId('customer-row').first().getAttribute('data-id'), ids[10]);
  await done(page);
});

test('a long name without spaces wraps: the list keeps its width, on a desk and on a phone', T, async () => {
  const name = `W${'w'.repeat(90)}${unique()}`;
  const customerId = await createCustomer(name, `long.${unique().toLowerCase()}@example.com`);
  await placeOrder(customerId);
  for (const viewport of [{ width: 1280, height: 800 }, { width: 360, height: 740 }]) {
    const page = await openApp(browser, { viewport });
    await search(page, 'orders', name);
    await page.getByTestId('order-row').first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${viewport.width}px: ${overflow}px of sideways scrolling`);
    await done(page);
  }
});

test('beside a screen on a narrow desk, amounts and statuses stay whole and every column can be reached', T, async () => {
  const name = `Narrow ${unique()}`;
  const customerId = await createCustomer(name);
  const big = await placeOrder(customerId, [{ sku: 'GOLD', qty: 1, price: 12345678901234.56 }]);
  const shipped = await placeOrder(customerId);
  await command('order', shipped, 'ship', {});
  const cancelled = await placeOrder(customerId);
  await command('order', cancelled, 'cancel', { reason: 'test' });
  const page = await openApp(browser, { viewport: { width: 1024, height: 800 } });
  await search(page, 'orders', name);
  await page.locator(`[data-testid=order-row][data-id="${big}"]`).waitFor();
  await page.locator(`[data-testid=order-row][data-id="${big}"] [data-testid=open-order]`).click();
  await screen(page);
  const found = await page.evaluate(() => {
    /** The number of lines the text of el takes. */
    const lines = (el) => {
      const range = document.createRange();
      range.selectNodeContents(el);
      return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
    };
    const broken = [...document.querySelectorAll('[data-testid=list] :is([data-testid=order-total], [data-testid=order-status])')]
      .filter((el) => lines(el) > 1).map((el) => el.textContent);
    // Each row's last cell, brought into view, is seen, not hidden under the screen.
    const hidden = [...document.querySelectorAll('[data-testid=list] [data-testid=order-row] td:last-child')].filter((td) => {
      td.scrollIntoView({ block: 'nearest', inline: 'nearest' });
      const r = td.getBoundingClientRect();
      return !td.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2));
    }).length;
    return { broken, hidden };
  });
  assert.deepEqual(found.broken, [], 'amounts and statuses broken across lines');
  assert.equal(found.hidden, 0, 'cells of the list out of reach under the screen');
  await done(page);
});

test('a name holding a right-to-left override turns only itself around in what the page says of a command', T, async () => {
  const name = `Bidi ${unique()} \u202Eevil`;
  const { page, s } = await openNewCustomerCountingPosts(name);
  const email = `new.${unique().toLowerCase()}@example.com`;
  await s.getByTestId('input-email').fill(email);
  await s.getByTestId('input-email').press('Enter');
  const toast = page.getByTestId('toast').filter({ hasText: /^Done: Change the email/ });
  await toast.waitFor();
  // The address after the name reads left to right: its first character
  // is drawn left of its last.
  const order = await toast.evaluate((el, email) => {
    const text = el.firstChild;
    const at = text.data.indexOf(email);
    const x = (i) => {
      const range = document.createRange();
      range.setStart(text, i);
      range.setEnd(text, i + 1);
      return range.getBoundingClientRect().left;
    };
    return { first: x(at), last: x(at + email.length - 1) };
  }, email);
  assert.ok(order.first < order.last, `the address is drawn reversed: ${JSON.stringify(order)}`);
  await done(page);
});

test('on a phone, the quantity and price of an order line can be read', T, async () => {
  const page = await openApp(browser, { viewport: { width: 360, height: 740 } });
  await page.getByTestId('tab-orders').click();
  await page.getByTestId('new-item').click();
  const s = await screen(page);
  const line = s.getByTestId('line').first();
  await line.locator('[name=qty]').fill('1250');
  await line.locator('[name=price]').fill('1234567.89');
  for (const [field, min] of [['qty', 70], ['price', 110]]) {
    const box = await line.locator(`[name=${field}]`).boundingBox();
    assert.ok(box.width >= min, `${field} is ${box.width}px wide`);
  }
  await shot(page, '19-phone-order-line');
  await done(page);
});

test('removing an order line by keyboard leaves the focus on the next one', T, async () => {
  const page = await openApp(browser);
  await page.getByTestId('tab-orders').click();
  await page.getByTestId('new-item').click();
  const s = await screen(page);
  await s.getByTestId('add-line').click();
  await s.getByTestId('add-line').click();
  const removes = s.getByTestId('remove-line');
  await removes.nth(1).focus();
  await page.keyboard.press('Enter');
  assert.equal(await removes.count(), 2);
  assert.ok(await removes.nth(1).evaluate((el) => el === document.activeElement), 'the next line\'s remove button has the focus');
  await page.keyboard.press('Enter');
  await page.keyboard.press('Enter');
  assert.equal(await removes.count(), 0);
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'add-line');
  await done(page);
});

test('the controls of each order line are named with the line\'s number', T, async () => {
  const page = await openApp(browser);
  await page.getByTestId('tab-orders').click();
  await page.getByTestId('new-item').click();
  const s = await screen(page);
  await s.getByTestId('add-line').click();
  await s.getByRole('textbox', { name: 'Article, line 2', exact: true }).fill('MUG');
  for (const name of ['Article, line 1', 'Quantity, line 2', 'Price, line 2']) {
    assert.equal(await s.getByLabel(name, { exact: true }).count(), 1, name);
  }
  await s.getByRole('button', { name: 'Remove line 1', exact: true }).click();
  // Numbered again: the line left is line 1.
  assert.equal(await s.getByRole('textbox', { name: 'Article, line 1', exact: true }).inputValue(), 'MUG');
  assert.equal(await s.getByRole('button', { name: 'Remove line 2', exact: true }).count(), 0);
  await done(page);
});

test('the focus comes back to the badge from its list and from a screen it reopened', T, async () => {
  const tag = unique();
  const ids = [];
  for (const n of ['Ba Dg', 'Ca Eh', 'Da Fi']) ids.push(await createCustomer(`${tag} ${n}`));
  const page = await openApp(browser);
  await slowPosts(page, 1500);
  await search(page, 'customers', tag);
  // Two rejections on their way while the user goes on to other screens.
  for (let i = 0; i < 2; i++) {
    await page.locator(`[data-testid=customer-row][data-id="${ids[i]}"] [data-testid=open-customer]`).click();
    const s = await screen(page);
    assert.equal(await s.getAttribute('data-id'), ids[i]);
    await s.getByTestId('input-email').fill('bad');
    await s.getByTestId('submit-changeEmail').click();
  }
  await page.locator(`[data-testid=customer-row][data-id="${ids[2]}"] [data-testid=open-customer]`).click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${ids[2]}"]`).waitFor();
  await page.getByTestId('error-count').filter({ hasText: '2' }).waitFor();
  await page.keyboard.press('Escape');

  const badge = page.getByTestId('error-badge');
  const focused = () => page.evaluate(() => document.activeElement?.dataset.testid ?? document.activeElement?.tagName);
  // Escape in the list of rejections.
  await badge.focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('error-item').first().focus();
  await page.keyboard.press('Escape');
  assert.equal(await focused(), 'error-badge');
  // An entry reopens its screen; closed, the focus is on the badge again.
  await page.keyboard.press('Enter');
  await page.getByTestId('error-item').first().focus();
  await page.keyboard.press('Enter');
  await screen(page);
  // The rejected data is not sent: the first Escape says so, the second closes.
  await page.keyboard.press('Escape');
  await page.getByTestId('discard-notice').waitFor();
  await page.keyboard.press('Escape');
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  assert.equal(await focused(), 'error-badge');
  await done(page);
});

test('closing a screen with changes not sent asks once, then discards them', T, async () => {
  const name = `Cl Os ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  let s = await screen(page);
  // Nothing typed: Escape closes at once.
  await page.keyboard.press('Escape');
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  s = await screen(page);
  await s.getByTestId('input-name').fill(`${name} typed`);
  await page.keyboard.press('Escape');
  await s.getByTestId('discard-notice').waitFor();
  assert.equal(await s.getByTestId('input-name').inputValue(), `${name} typed`, 'the change is still there');
  await page.getByTestId('close-screen').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  assert.equal((await get(`/aggregates/customer/${customerId}`)).state.name, name, 'nothing was sent');
  await done(page);
});

test('Escape in a search box with text clears that search only; in an empty one it closes the screen', T, async () => {
  const name = `Es Cape ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  await screen(page);
  const box = page.getByTestId('search');
  await box.focus();
  const listed = page.waitForResponse((r) => new URL(r.url()).pathname === '/lists/customer');
  await page.keyboard.press('Escape');
  assert.equal(await box.inputValue(), '');
  await listed; // the list is no longer filtered
  assert.equal(await page.getByTestId('screen').isVisible(), true, 'the screen stays');
  await page.keyboard.press('Escape');
  await page.getByTestId('screen').waitFor({ state: 'hidden' });

  // A new order: typing in its customer search is no change to the order.
  await page.getByTestId('tab-orders').click();
  await page.getByTestId('new-item').click();
  const s = await screen(page);
  await s.getByTestId('customer-search').fill('zz');
  assert.equal(await s.locator('form[data-dirty]').count(), 0, 'a search is not a change');
  await page.keyboard.press('Escape');
  assert.equal(await s.getByTestId('customer-search').inputValue(), '');
  assert.equal(await page.getByTestId('screen').isVisible(), true);
  await page.keyboard.press('Escape');
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  assert.equal(await page.getByTestId('discard-notice').count(), 0, 'nothing to discard was said');
  await done(page);
});

test('showing the current version of a screen changed meanwhile keeps what the user typed', T, async () => {
  const name = `Cu Rv ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  let s = await screen(page);
  await s.getByTestId('input-email').fill('typed.meanwhile@example.com');
  await command('customer', customerId, 'rename', { name: `${name} New` });
  await s.getByTestId('stale-notice').waitFor({ state: 'visible' });
  await s.getByTestId('reload-screen').click();
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`);
  await page.waitForFunction((n) => document.querySelector('[data-testid=screen] [data-testid=input-name]')?.value === n, `${name} New`);
  assert.equal(await s.getByTestId('input-email').inputValue(), 'typed.meanwhile@example.com');
  await done(page);
});

test('a screen that could not be loaded says so and tries again', T, async () => {
  const name = `Tr Ag ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await search(page, 'customers', name);
  const down = (url) => url.pathname.startsWith('/aggregates/');
  await page.route(down, (route) => route.abort('connectionrefused'));
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  assert.match(await s.innerText(), /The server could not be reached/);
  await page.unroute(down);
  await s.getByTestId('retry-screen').click();
  await page.waitForFunction((n) => document.querySelector('[data-testid=screen] [data-testid=input-name]')?.value === n, name);
  await done(page);
});

test('a list that could not be loaded while offline loads again once the relay is back, or at Try again', T, async () => {
  const name = `Of Fl ${unique()}`;
  const customerId = await createCustomer(name);
  const orderId = await placeOrder(customerId);
  const server = await outage();
  const page = await openApp(browser, { path: `${server.base}/` });
  await search(page, 'customers', name);
  await server.stop();
  await page.locator('[data-testid=connection]:not([data-state=live])').waitFor();
  await page.getByTestId('tab-orders').click();
  const error = page.locator('[data-testid=list] .error');
  await error.waitFor();
  assert.match(await error.innerText(), /could not be loaded/);
  // The server is back: the relay is live again, and the list loads by itself.
  await server.start();
  await waitLive(page);
  await page.locator(`[data-testid=order-row][data-id="${orderId}"]`).waitFor({ timeout: 10000 });

  // A load that fails while the relay stays live: the error offers to try again.
  const down = (url) => url.pathname.startsWith('/lists/');
  await page.route(down, (route) => route.abort('connectionrefused'));
  await page.getByTestId('tab-customers').click();
  await error.waitFor();
  await page.unroute(down);
  await page.getByTestId('retry-list').click();
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).waitFor();
  await done(page);
  await server.stop();
});

test('an amount in another currency than the desk\'s shows its code', T, async () => {
  const name = `Cu Ry ${unique()}`;
  const customerId = await createCustomer(name);
  const id = `ord-${unique()}`;
  await command('order', id, 'place', { customerId, currency: 'USD', lines: [{ sku: 'HAT', qty: 2, price: 4.5 }] });
  const euros = await placeOrder(customerId);
  const page = await openApp(browser);
  await search(page, 'orders', name);
  await page.locator(`[data-testid=order-row][data-id="${id}"]`).waitFor();
  assert.equal((await orderRowText(page, id)).total, '9.00 USD');
  assert.equal((await orderRowText(page, euros)).total, '9.00');
  await done(page);
});

test('a change that conflicts but can still be made advises to send it again', T, async () => {
  const name = `Co Nf ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  await command('customer', customerId, 'changeEmail', { email: 'changed.meanwhile@example.com' });
  await s.getByTestId('input-name').fill(`${name} Mine`);
  await s.getByTestId('submit-rename').click();
  const note = page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"] [data-testid=annotation][data-code=conflict]`);
  await note.waitFor();
  assert.match(await note.innerText(), /check it, then send again/);
  // The focus is on the field of the change, to send it again from there.
  await page.waitForFunction(() => document.activeElement?.dataset.testid === 'input-name');
  await done(page);
});

test('after a reload, an item a pending command is to change is greyed until it is done', T, async () => {
  const name = `Gr Ey ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser, { holdStream: true });
  await search(page, 'customers', name);
  const row = page.locator(`[data-testid=customer-row][data-id="${customerId}"]`);
  await row.click();
  const s = await screen(page);
  await s.getByTestId('input-name').fill(`${name} II`);
  await s.getByTestId('submit-rename').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  // Nor does its status come by asking, until released.
  let answer;
  const asked = new Promise((r) => { answer = r; });
  const status = (url) => url.pathname.startsWith('/commands/');
  await page.route(status, async (route) => { await asked; await route.continue().catch(() => {}); });
  await page.reload();
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"].pending`).waitFor({ timeout: 3000 });
  answer();
  await page.releaseStream();
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]:not(.pending)`).waitFor({ timeout: 20000 });
  assert.equal(await row.locator('[data-testid=open-customer]').innerText(), `${name} II`);
  await done(page);
});

test('a conflict that goes to the badge is listed there and reopens its screen', T, async () => {
  const tag = unique();
  const firstId = await createCustomer(`${tag} Cf Lt`);
  const secondId = await createCustomer(`${tag} Ot Hr`);
  const page = await openApp(browser);
  await slowPosts(page, 1500);
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${firstId}"]`).click();
  const s = await screen(page);
  await command('customer', firstId, 'rename', { name: `${tag} Cf Lt II` }); // someone else, meanwhile
  await s.getByTestId('input-name').fill(`${tag} Cf Lt mine`);
  await s.getByTestId('submit-rename').click();
  await page.locator(`[data-testid=customer-row][data-id="${secondId}"] [data-testid=open-customer]`).click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${secondId}"]`).waitFor();
  await page.keyboard.press('Escape');
  await page.getByTestId('error-badge').waitFor();
  await page.getByTestId('error-badge').click();
  const entry = page.getByTestId('error-item');
  await entry.waitFor();
  assert.equal(await entry.count(), 1);
  assert.match(await entry.innerText(), /changed meanwhile/);
  await entry.click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${firstId}"] [data-testid=annotation][data-code=conflict]`).waitFor();
  await done(page);
});

test('a rejection reopened from the badge after someone else\'s change says so, and sending it meets the conflict', T, async () => {
  const name = `Re Base ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  let s = await screen(page);
  const tooLong = `${name} ${'x'.repeat(100)}`;
  await s.getByTestId('input-name').fill(tooLong);
  await s.getByTestId('input-name').press('Enter');
  await page.getByTestId('new-item').click(); // moved on at once: the rejection goes to the badge
  await page.getByTestId('error-badge').waitFor();
  await command('customer', customerId, 'rename', { name: `${name} Other` }); // someone else, meanwhile
  await page.keyboard.press('Escape');
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.getByTestId('error-badge').click();
  await page.getByTestId('error-item').click();

  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`);
  await s.getByTestId('stale-notice').waitFor();
  // The note tells what was sent, not the name stored now.
  const note = await s.getByTestId('reopen-note').innerText();
  assert.ok(note.includes(tooLong.trim()), note);
  assert.ok(!note.includes('Other'), note);
  await s.getByTestId('input-name').fill(`${name} Mine`);
  await s.getByTestId('input-name').press('Enter');
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"] [data-testid=annotation][data-code=conflict]`).waitFor();
  assert.equal((await get(`/aggregates/customer/${customerId}`)).state.name, `${name} Other`, 'the other change stands');
  await done(page);
});

test('a list page that arrives after a relayed change keeps the change', T, async () => {
  const tag = `La Te ${unique()}`;
  const id = await createCustomer(`${tag} Old`);
  const page = await openApp(browser);
  await search(page, 'customers', tag);
  const row = page.locator(`[data-testid=customer-row][data-id="${id}"] [data-testid=open-customer]`);
  assert.equal(await row.innerText(), `${tag} Old`);
  // The next page is read at once, and handed to the page late, after a
  // rename the relay brings.
  let read;
  const wasRead = new Promise((r) => { read = r; });
  await page.route((url) => url.pathname.startsWith('/lists/'), async (route) => {
    const res = await route.fetch();
    read();
    await new Promise((r) => setTimeout(r, 1500));
    await route.fulfill({ response: res }).catch(() => {});
  });
  await page.getByTestId('search').fill(`${tag} `);
  await wasRead;
  await command('customer', id, 'rename', { name: `${tag} New` });
  await page.waitForFunction(([sel, name]) => document.querySelector(sel)?.textContent === name,
    [`[data-testid=customer-row][data-id="${id}"] [data-testid=open-customer]`, `${tag} New`]);
  await page.waitForResponse((r) => new URL(r.url()).pathname.startsWith('/lists/'));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await row.innerText(), `${tag} New`, 'the late page did not take the change back');
  await done(page);
});

test('a first page that many new items join is read again, and stays a page', T, async () => {
  const tag = `Gr Ow ${unique()}`;
  const page = await openApp(browser);
  await search(page, 'customers', tag);
  for (let i = 0; i < 25; i++) await createCustomer(`${tag} ${String(i).padStart(2, '0')}`);
  await page.waitForFunction(() => !document.querySelector('[data-testid=next-page]').disabled);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=customer-row]').length <= 20);
  const rows = await page.getByTestId('customer-row').count();
  assert.ok(rows >= 10 && rows <= 20, `${rows} rows on the first page`);
  await done(page);
});

test('opening another item over changes not sent asks once, then opens it', T, async () => {
  const tag = unique();
  const firstId = await createCustomer(`${tag} Un Sent`);
  const secondId = await createCustomer(`${tag} Ne Xt`);
  const page = await openApp(browser);
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${firstId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-name').fill(`${tag} typed`);
  const other = page.locator(`[data-testid=customer-row][data-id="${secondId}"] [data-testid=open-customer]`);
  await other.click();
  await s.getByTestId('discard-notice').waitFor();
  assert.equal(await s.getAttribute('data-id'), firstId, 'still the first screen');
  assert.equal(await s.getByTestId('input-name').inputValue(), `${tag} typed`);
  // Typed again after the warning: asked again.
  await s.getByTestId('input-name').fill(`${tag} typed more`);
  await other.click();
  await s.getByTestId('discard-notice').waitFor();
  assert.equal(await s.getAttribute('data-id'), firstId, 'still the first screen, after more typing');
  // Another way of leaving is asked about on its own: Escape does not
  // close at once on the warning about opening the other.
  await page.keyboard.press('Escape');
  assert.match(await s.getByTestId('discard-notice').innerText(), /Close again/);
  assert.equal(await s.getAttribute('data-id'), firstId, 'one Escape did not close it');
  // Opening the same item again would show it as stored: asked too.
  const same = page.locator(`[data-testid=customer-row][data-id="${firstId}"] [data-testid=open-customer]`);
  await same.click();
  assert.match(await s.getByTestId('discard-notice').innerText(), /Open it again/);
  assert.equal(await s.getByTestId('input-name').inputValue(), `${tag} typed more`);
  await other.click();
  await other.click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${secondId}"]`).waitFor();
  await done(page);
});

test('a row drawn anew by the relay keeps the keyboard focus', T, async () => {
  const tag = `Kf ${unique()}`;
  const customerId = await createCustomer(`${tag} A`);
  const first = await placeOrder(customerId);
  const page = await openApp(browser);
  await search(page, 'orders', tag);
  const focused = () => page.evaluate(() => {
    const a = document.activeElement;
    return `${a.dataset?.testid ?? a.tagName} ${a.closest('tr')?.dataset.id ?? ''}`;
  });
  const customerButton = page.locator(`[data-testid=order-row][data-id="${first}"] [data-testid=open-customer]`);
  await customerButton.focus();
  // Someone renames the customer: the row is drawn anew in place.
  await command('customer', customerId, 'rename', { name: `${tag} B` });
  await page.waitForFunction(([id, name]) => document.querySelector(`[data-testid=order-row][data-id="${id}"] [data-testid=open-customer]`)?.textContent === name, [first, `${tag} B`]);
  assert.equal(await focused(), `open-customer ${first}`);
  // Someone places an order: the whole list is drawn anew.
  const second = await placeOrder(customerId);
  await page.locator(`[data-testid=order-row][data-id="${second}"]`).waitFor();
  assert.equal(await focused(), `open-customer ${first}`);
  await done(page);
});

test('a screen whose version is already old when it arrives says so', T, async () => {
  const tag = `St ${unique()}`;
  const customerId = await createCustomer(`${tag} A`);
  const page = await openApp(browser);
  await search(page, 'customers', tag);
  // The screen's version is read at once, and reaches the page after the
  // relay has brought a change made meanwhile.
  await page.route((url) => url.pathname === `/aggregates/customer/${customerId}`, async (route) => {
    const res = await route.fetch();
    await command('customer', customerId, 'rename', { name: `${tag} B` });
    await new Promise((r) => setTimeout(r, 500));
    await route.fulfill({ response: res }).catch(() => {});
  });
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"] [data-testid=open-customer]`).click();
  const s = await screen(page);
  await s.getByTestId('stale-notice').waitFor({ state: 'visible' });
  assert.match(await s.getByTestId('stale-notice').innerText(), /changed meanwhile \(renamed, now version 2\)/);
  await done(page);
});

test('a first page that new items keep joining over a slow network still stays about a page', T, async () => {
  const tag = `Sl Ow ${unique()}`;
  const page = await openApp(browser);
  await search(page, 'customers', tag);
  await page.route((url) => url.pathname.startsWith('/lists/'), async (route) => {
    const res = await route.fetch();
    await new Promise((r) => setTimeout(r, 600));
    await route.fulfill({ response: res }).catch(() => {});
  });
  let most = 0;
  for (let i = 0; i < 60; i++) {
    await createCustomer(`${tag} ${String(i).padStart(2, '0')}`);
    await new Promise((r) => setTimeout(r, 100));
    most = Math.max(most, await page.getByTestId('customer-row').count());
  }
  assert.ok(most <= 35, `the first page grew to ${most} rows while the items came`);
  await done(page);
});

test('a rejection in the badge held back by unsent changes stays in the badge', T, async () => {
  const tag = unique();
  const firstId = await createCustomer(`${tag} Ba Dg`);
  const secondId = await createCustomer(`${tag} Ty Pe`);
  const page = await openApp(browser);
  await slowPosts(page, 1500);
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${firstId}"]`).click();
  let s = await screen(page);
  await s.getByTestId('input-email').fill('bad');
  await s.getByTestId('submit-changeEmail').click();
  // On another screen, with a change not sent, when the rejection comes.
  await page.locator(`[data-testid=customer-row][data-id="${secondId}"] [data-testid=open-customer]`).click();
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${secondId}"]`);
  await s.waitFor();
  await s.getByTestId('input-name').fill(`${tag} typed`);
  await page.getByTestId('error-badge').waitFor();
  await page.getByTestId('error-badge').click();
  await page.getByTestId('error-item').click();
  await s.getByTestId('discard-notice').waitFor();
  assert.equal(await page.getByTestId('error-count').innerText(), '1', 'the rejection is still in the badge');
  await page.getByTestId('error-badge').click();
  await page.getByTestId('error-item').click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${firstId}"] [data-testid=annotation][data-path=email]`).waitFor();
  await done(page);
});

test('a row usable again does not take the focus from an open screen', T, async () => {
  const tag = unique();
  const firstId = await createCustomer(`${tag} Fo Ca`);
  const secondId = await createCustomer(`${tag} Fo Cb`);
  const page = await openApp(browser, { holdStream: true });
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${firstId}"] [data-testid=open-customer]`).click();
  let s = await screen(page);
  await s.getByTestId('input-name').fill(`${tag} Fo Ca II`);
  await s.getByTestId('submit-rename').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  // The first row is greyed until its event comes; another screen opens.
  await page.locator(`[data-testid=customer-row][data-id="${secondId}"] [data-testid=open-customer]`).click();
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${secondId}"]`);
  await s.waitFor();
  await s.getByTestId('input-name').fill(`${tag} typing`);
  await page.evaluate(() => document.activeElement.blur()); // as a click on the screen's text: the focus falls to the page
  await page.releaseStream();
  await page.locator(`[data-testid=customer-row][data-id="${firstId}"]:not(.pending)`).waitFor({ timeout: 20000 });
  const focused = await page.evaluate(() => document.activeElement.closest('tr')?.dataset.id ?? null);
  assert.equal(focused, null, 'the focus stayed off the list');
  await done(page);
});

test('a form sent twice at once sends one command', T, async () => {
  const name = `Tw Ic ${unique()}`;
  const { page, s, posts } = await openNewCustomerCountingPosts(name);
  await s.getByTestId('input-name').fill(`${name} II`);
  // Two presses of Enter within one frame.
  await s.locator('form[data-command=rename]').evaluate((form) => { form.requestSubmit(); form.requestSubmit(); });
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.getByTestId('toast').filter({ hasText: /^Done: / }).first().waitFor();
  assert.equal(posts(), 1);
  assert.equal(await page.getByTestId('error-badge').isHidden(), true, 'no conflict with a second copy');
  await done(page);
});

test('an item being created stays out of a search it does not match', T, async () => {
  const tag = unique();
  const page = await openApp(browser, { holdStream: true });
  await search(page, 'customers', `${tag} Pl`);
  await page.getByTestId('new-item').click();
  const s = await screen(page);
  await s.getByTestId('input-name').fill(`${tag} Pl Ace`);
  await s.getByTestId('input-email').fill('pl.ace@example.com');
  await s.getByTestId('submit').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.getByTestId('customer-row').filter({ hasText: `${tag} Pl Ace` }).waitFor();
  // Another search, while its events are held back: the placeholder does
  // not belong there.
  await search(page, 'customers', `${tag} Zz`);
  await page.getByTestId('empty').waitFor();
  assert.equal(await page.getByTestId('customer-row').count(), 0);
  await page.releaseStream();
  await done(page);
});

test('a customer renamed elsewhere moves to its place, leaves a search it no longer matches, and joins one it does', T, async () => {
  const tag = `Mv ${unique()}`;
  const b = await createCustomer(`${tag} B`);
  const d = await createCustomer(`${tag} D`);
  const x = await createCustomer(`Out ${unique()}`);
  const page = await openApp(browser);
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${d}"]`).waitFor();
  const ids = () => page.getByTestId('customer-row').evaluateAll((rows) => rows.map((r) => r.dataset.id));
  const until = async (want, what) => {
    for (let i = 0; i < 100 && JSON.stringify(await ids()) !== JSON.stringify(want); i++) await page.waitForTimeout(50);
    assert.deepEqual(await ids(), want, what);
  };
  await until([b, d], 'the search, in order');
  await command('customer', d, 'rename', { name: `${tag} A` });
  await until([d, b], 'a renamed row moves to its place in the order');
  await command('customer', b, 'rename', { name: `Gone ${unique()}` });
  await until([d], 'a row that no longer matches the search leaves it');
  await command('customer', x, 'rename', { name: `${tag} C` });
  await until([d, x], 'an item renamed to match the search joins it, in its place');
  await done(page);
});

test('leaving the page with changes not sent asks first', T, async () => {
  const name = `Un Ld ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  await screen(page);
  const asked = [];
  page.on('dialog', (d) => { asked.push(d.type()); d.dismiss(); });
  // Nothing typed: the page may go without asking.
  await page.reload();
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const input = (await screen(page)).getByTestId('input-name');
  await input.press('End');
  await input.pressSequentially(' typed');
  const reloaded = page.reload({ timeout: 2000 }).then(() => true, () => false);
  for (let i = 0; i < 40 && asked.length === 0; i++) await page.waitForTimeout(50);
  assert.deepEqual(asked, ['beforeunload'], 'the browser asks before the page goes with changes not sent');
  assert.equal(await reloaded, false, 'staying keeps the page');
  assert.equal(await input.inputValue(), `${name} typed`);
  await done(page);
});

test('the badge keeps its rejections across a reload', T, async () => {
  const tag = unique();
  const ids = [await createCustomer(`${tag} Ba One`), await createCustomer(`${tag} Ba Two`)];
  const page = await openApp(browser, { holdStream: true });
  await search(page, 'customers', tag);
  // A bad change sent, its screen left at once; its rejection comes while
  // another screen is open, so it goes to the badge.
  await page.locator(`[data-testid=customer-row][data-id="${ids[0]}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-email').fill('not an address');
  await s.getByTestId('submit-changeEmail').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.locator(`[data-testid=customer-row][data-id="${ids[1]}"]`).click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${ids[1]}"]`).waitFor();
  await page.releaseStream();
  await page.getByTestId('error-badge').waitFor();

  await page.reload();
  await waitLive(page);
  await page.getByTestId('error-badge').waitFor();
  assert.equal(await page.getByTestId('error-count').innerText(), '1', 'the rejection not yet looked at is still in the badge');
  await page.getByTestId('error-badge').click();
  await page.getByTestId('error-item').first().click();
  const reopened = page.locator(`[data-testid=screen][data-ready=true][data-id="${ids[0]}"]`);
  await reopened.waitFor();
  assert.equal(await reopened.getByTestId('input-email').inputValue(), 'not an address');
  await page.getByTestId('error-badge').waitFor({ state: 'hidden' });
  // Looked at: gone for good, also after another reload.
  await page.reload();
  await waitLive(page);
  assert.equal(await page.getByTestId('error-badge').isHidden(), true);
  await done(page);
});

test('the connection, the pending count and a stale screen are announced; the total typed is not', T, async () => {
  const name = `Ar Ia ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  for (const id of ['connection', 'pending-count']) {
    assert.equal(await page.getByTestId(id).getAttribute('role'), 'status', `${id} is a live region`);
  }
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  await command('customer', customerId, 'rename', { name: `${name} Two` });
  const stale = s.getByTestId('stale-notice');
  await stale.waitFor();
  assert.equal(await stale.getAttribute('role'), 'status');
  await page.getByTestId('close-screen').click();
  await page.getByTestId('tab-orders').click();
  await page.getByTestId('list-title').filter({ hasText: 'Orders' }).waitFor();
  await page.getByTestId('new-item').click();
  const total = (await screen(page)).getByTestId('total-preview');
  assert.equal(await total.getAttribute('aria-live'), 'off');
  await done(page);
});

test('an entry of the error list keeps the focus when another rejection arrives, and a click elsewhere closes the list', T, async () => {
  const tag = unique();
  const ids = [];
  for (const n of ['Fo Ka', 'Fo Kb', 'Fo Kc']) ids.push(await createCustomer(`${tag} ${n}`));
  const page = await openApp(browser);
  await slowPosts(page, 1500);
  await search(page, 'customers', tag);
  const reject = async (id) => {
    await page.locator(`[data-testid=customer-row][data-id="${id}"] [data-testid=open-customer]`).click();
    const s = await screen(page);
    assert.equal(await s.getAttribute('data-id'), id);
    await s.getByTestId('input-email').fill('bad');
    await s.getByTestId('submit-changeEmail').click();
  };
  await reject(ids[0]);
  await page.waitForTimeout(1000); // the second rejection comes a second after the first
  await reject(ids[1]);
  await page.locator(`[data-testid=customer-row][data-id="${ids[2]}"] [data-testid=open-customer]`).click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${ids[2]}"]`).waitFor();
  await page.getByTestId('error-count').filter({ hasText: '1' }).waitFor();
  await page.getByTestId('close-screen').click();
  await page.getByTestId('error-badge').click();
  await page.getByTestId('error-item').first().focus();
  assert.equal(await page.getByTestId('error-count').innerText(), '1', 'the second rejection is still on its way');
  await page.getByTestId('error-count').filter({ hasText: '2' }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'error-item', 'the focus stays in the list');
  await page.getByTestId('list-title').click();
  await page.getByTestId('error-list').waitFor({ state: 'hidden' });
  await done(page);
});

test('a form that still shows what the customer already is sends nothing', T, async () => {
  const name = `Un Changed ${unique()}`;
  const { page, customerId, s, posts } = await openNewCustomerCountingPosts(name);
  await s.getByTestId('submit-rename').click();
  await s.locator('form[data-command=rename] [data-testid=annotation][data-code=unchanged]').waitFor();
  // Typed away and back again: still the same name.
  await s.getByTestId('input-name').fill(`${name}!`);
  await s.getByTestId('input-name').fill(name);
  await s.getByTestId('input-name').press('Enter');
  assert.equal(await s.getByTestId('input-name').evaluate((el) => el === document.activeElement), true);
  assert.equal(posts(), 0);
  // With a space around it: the server would store the same name.
  await s.getByTestId('input-name').fill(` ${name} `);
  await s.getByTestId('input-name').press('Enter');
  await s.locator('form[data-command=rename] [data-testid=annotation][data-code=unchanged]').waitFor();
  assert.equal(posts(), 0);
  assert.equal(await page.getByTestId('screen').isVisible(), true);
  // A real change goes out and closes the screen.
  await s.getByTestId('input-email').fill(`changed.${unique()}@example.com`);
  await s.getByTestId('submit-changeEmail').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  assert.equal(posts(), 1);

  // Renamed elsewhere while on screen: the name shown is no longer the
  // customer's, so sending it back goes out, and meets the conflict.
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const again = await screen(page);
  await command('customer', customerId, 'rename', { name: `${name} Elsewhere` });
  await again.getByTestId('stale-notice').waitFor();
  await again.getByTestId('submit-rename').click();
  await page.locator(`[data-testid=screen][data-id="${customerId}"] [data-testid=annotation][data-code=conflict]`).waitFor();
  assert.equal(posts(), 2);
  await done(page);
});

test('a page reloaded while its command was on the way shows the outcome when the command arrives late', T, async () => {
  const name = `Lat Ey ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  // The page's post never arrives; the same request reaches the server a
  // second later, as one held up on a slow network would.
  let forwarded;
  await page.route((url) => url.pathname === '/commands', (route) => {
    if (route.request().method() !== 'POST' || forwarded) return route.continue();
    const body = route.request().postData();
    forwarded = new Promise((r) => setTimeout(r, 1000)).then(() => fetch(`${BASE}/commands`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
    }));
  });
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-name').fill('   ');
  await s.getByTestId('submit-rename').click();
  await s.locator('form[aria-busy]').waitFor({ state: 'attached' });
  const asked = [];
  page.on('dialog', (d) => { asked.push(d.type()); d.accept(); });
  await page.waitForTimeout(300);
  await page.reload();
  assert.deepEqual(asked, ['beforeunload'], 'the browser asks before the page goes while a command is on its way');
  assert.equal((await forwarded).status, 202);
  // The reloaded page asked for it before it arrived, and still reopens
  // its screen with the rejection once it is decided.
  const reopened = page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`);
  await reopened.locator('[data-testid=annotation][data-path=name]').waitFor();
  await done(page);
});

test('a submission refused at the door gives the focus to the field it annotates', T, async () => {
  const name = `Fo Cus ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await page.getByTestId('tab-orders').click();
  await page.getByTestId('new-item').click();
  const s = await screen(page);
  await s.getByTestId('customer-search').fill(name);
  await s.locator(`[data-testid=select-customer] option[value="${customerId}"]`).waitFor({ state: 'attached' });
  await s.getByTestId('select-customer').selectOption(customerId);
  const line = s.getByTestId('line').nth(0);
  await line.locator('[name=sku]').fill('PEN');
  await line.locator('[name=qty]').fill('1.5'); // not a whole number: the schema refuses it (400)
  await line.locator('[name=price]').fill('2');
  await s.getByTestId('submit').click();
  await s.locator('[data-testid=annotation][data-path="lines[0].qty"]').waitFor();
  await page.waitForFunction(() => document.activeElement?.name === 'qty' && document.activeElement.getAttribute('aria-invalid') === 'true');
  await done(page);
});

test('the pager hands the keyboard focus on at the first and the last page', T, async () => {
  const prefix = `Pgk ${unique()}`;
  for (let i = 0; i < 12; i++) await createCustomer(`${prefix} ${String(i).padStart(2, '0')}`);
  const page = await openApp(browser);
  await search(page, 'customers', prefix);
  await page.getByTestId('customer-row').first().waitFor();
  await page.getByTestId('next-page').focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('page-number').filter({ hasText: 'Page 2' }).waitFor();
  await page.waitForFunction(() => document.activeElement?.dataset.testid === 'prev-page');
  await page.keyboard.press('Enter');
  await page.getByTestId('page-number').filter({ hasText: 'Page 1' }).waitFor();
  await page.waitForFunction(() => document.activeElement?.dataset.testid === 'next-page');
  await done(page);
});

test('a rejection whose screen could not be loaded to reopen it stays in the badge when that screen is closed', T, async () => {
  const tag = unique();
  const customerId = await createCustomer(`${tag} Lo St`);
  const page = await openApp(browser, { holdStream: true });
  await search(page, 'customers', tag);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-email').fill('lost at example');
  await s.getByTestId('submit-changeEmail').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  // The rejection reopens the screen, whose instance cannot be read.
  const down = (url) => url.pathname.startsWith('/aggregates/');
  await page.route(down, (route) => route.abort('connectionrefused'));
  await page.releaseStream();
  await page.getByTestId('retry-screen').waitFor();
  await page.keyboard.press('Escape');
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.getByTestId('error-badge').waitFor();
  assert.equal(await page.getByTestId('error-count').innerText(), '1');
  // From the badge, once the server answers, it reopens with what was typed.
  await page.unroute(down);
  await page.getByTestId('error-badge').click();
  await page.getByTestId('error-item').first().click();
  const again = page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`);
  await again.waitFor();
  assert.equal(await again.getByTestId('input-email').inputValue(), 'lost at example');
  await done(page);
});

test('a command that never reached the server, its page reloaded while sending it, goes to the badge to be sent again', T, async () => {
  const name = `Ne Ver ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  // The page's post never arrives.
  await page.route((url) => url.pathname === '/commands', (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    return undefined; // held until the page goes
  });
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  await s.getByTestId('input-name').fill(`${name} Renamed`);
  await s.getByTestId('submit-rename').click();
  await s.locator('form[aria-busy]').waitFor({ state: 'attached' });
  page.on('dialog', (d) => d.accept());
  // The tab comes back long after: what it remembers sending is two
  // minutes old, longer than the server could still be receiving it.
  await page.addInitScript(() => {
    for (let i = 0; i < sessionStorage.length; i++) {
      const key = sessionStorage.key(i);
      if (!key.endsWith(':pending')) continue;
      const all = JSON.parse(sessionStorage.getItem(key));
      for (const e of Object.values(all)) e.at -= 120000;
      sessionStorage.setItem(key, JSON.stringify(all));
    }
  });
  await page.unroute((url) => url.pathname === '/commands');
  await page.reload();
  await page.getByTestId('error-badge').waitFor();
  assert.equal(await page.getByTestId('error-count').innerText(), '1');
  await page.getByTestId('error-badge').click();
  const item = page.getByTestId('error-item').first();
  assert.match(await item.innerText(), /never reached the server/);
  await item.click();
  const reopened = page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`);
  await reopened.waitFor();
  assert.equal(await reopened.getByTestId('input-name').inputValue(), `${name} Renamed`);
  await done(page);
});

test('a price typed with a decimal comma is that decimal; one that is no number is refused beside it', T, async () => {
  const name = `De Ci ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  await page.getByTestId('tab-orders').click();
  await page.getByTestId('new-item').click();
  let s = await screen(page);
  const orderId = await s.getAttribute('data-id');
  await s.getByTestId('customer-search').fill(name);
  await s.locator(`[data-testid=select-customer] option[value="${customerId}"]`).waitFor({ state: 'attached' });
  await s.getByTestId('select-customer').selectOption(customerId);
  const line = s.getByTestId('line').nth(0);
  await line.locator('[name=sku]').fill('INK');
  await line.locator('[name=qty]').fill('2');
  await line.locator('[name=price]').fill('abc');
  await s.getByTestId('submit').click();
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${orderId}"]`);
  const note = s.locator('[data-testid=annotation][data-path="lines[0].price"]');
  await note.waitFor();
  assert.equal(await s.getByTestId('line').nth(0).locator('[name=price]').inputValue(), 'abc', 'what was typed stays');
  await s.getByTestId('line').nth(0).locator('[name=price]').fill('1,5');
  assert.equal(await s.getByTestId('total-preview').innerText(), '3.00');
  await s.getByTestId('submit').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.waitForFunction(async (id) => {
    const r = await fetch(`/aggregates/order/${id}`);
    return r.ok && (await r.json()).state.lines?.[0]?.price === 1.5;
  }, orderId);
  await done(page);
});

test('reopening a rejected create or place asks for no instance that is not there', T, async () => {
  const name = `No Ask ${unique()}`;
  const customerId = await createCustomer(name);
  const page = await openApp(browser);
  const failed = failedRequests(page);
  await page.getByTestId('tab-customers').click();
  await page.getByTestId('new-item').click();
  let s = await screen(page);
  await s.getByTestId('input-name').fill(name);
  await s.getByTestId('input-email').fill('not an address');
  await s.getByTestId('submit').click();
  await page.locator('[data-testid=screen][data-ready=true] [data-testid=annotation][data-path=email]').waitFor();

  await page.getByTestId('tab-orders').click();
  await page.getByTestId('new-item').click();
  s = await screen(page);
  const orderId = await s.getAttribute('data-id');
  await s.getByTestId('customer-search').fill(name);
  await s.locator(`[data-testid=select-customer] option[value="${customerId}"]`).waitFor({ state: 'attached' });
  await s.getByTestId('select-customer').selectOption(customerId);
  await s.getByTestId('line').nth(0).locator('[name=sku]').fill('PEN');
  await s.getByTestId('line').nth(0).locator('[name=qty]').fill('0');
  await s.getByTestId('line').nth(0).locator('[name=price]').fill('1');
  await s.getByTestId('submit').click();
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${orderId}"]`);
  await s.locator('[data-testid=annotation][data-path="lines[0].qty"]').waitFor();
  assert.deepEqual(failed, [], 'no request failed');
  await done(page);
});

test('a customer screen shows all its orders on asking, and keeps them up to date from the relay', T, async () => {
  const name = `Many Ord ${unique()}`;
  const customerId = await createCustomer(name);
  const orderIds = [];
  for (let i = 0; i < 7; i++) orderIds.push(await placeOrder(customerId, [{ sku: `SKU-${i}`, qty: 1, price: i + 1 }]));
  const page = await openApp(browser);
  await search(page, 'customers', name);
  await page.locator(`[data-testid=customer-row][data-id="${customerId}"]`).click();
  const s = await screen(page);
  const orders = s.getByTestId('customer-order');
  await orders.first().waitFor();
  assert.equal(await orders.count(), 5, 'the newest five at first');
  assert.equal(await orders.first().getAttribute('data-id'), orderIds[6]);

  // Asked for more, it shows the rest, and the focus goes to the first of them.
  await s.getByTestId('more-customer-orders').focus();
  await page.keyboard.press('Enter');
  await orders.nth(6).waitFor();
  assert.equal(await orders.count(), 7);
  await s.getByTestId('more-customer-orders').waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), orderIds[1]);

  // Changed elsewhere: a new order joins them at the top, a shipped one says so.
  const newest = await placeOrder(customerId);
  await s.locator(`[data-testid=customer-order][data-id="${newest}"]`).waitFor();
  assert.equal(await orders.first().getAttribute('data-id'), newest);
  await command('order', orderIds[0], 'ship', {});
  await s.locator(`[data-testid=customer-order][data-id="${orderIds[0]}"] [data-testid=order-status]`).filter({ hasText: 'shipped' }).waitFor();
  assert.equal(await orders.count(), 8);

  // Drawn again from the version a rename made (the email's change is
  // kept, not sent yet), the screen still shows all eight.
  await s.getByTestId('input-email').fill('many.ord@example.org');
  await s.getByTestId('input-name').fill(`${name} Jr`);
  await s.getByTestId('input-name').press('Enter');
  await page.locator('[data-testid=screen]:not([inert]) [data-testid=screen-title]').filter({ hasText: `${name} Jr` }).waitFor();
  assert.equal(await s.getByTestId('input-email').inputValue(), 'many.ord@example.org');
  assert.equal(await orders.count(), 8, 'the orders asked for stay shown');
  await done(page);
});

test('a search finds names whatever their case and accents, and keeps up with renames', T, async () => {
  const tag = unique();
  const zoeId = await createCustomer(`Zoë Ünal ${tag}`);
  const bobId = await createCustomer(`Bob ${tag}`);
  const page = await openApp(browser);
  await search(page, 'customers', `zoe unal ${tag.toLowerCase()}`);
  await page.locator(`[data-testid=customer-row][data-id="${zoeId}"]`).waitFor();
  assert.equal(await page.locator(`[data-testid=customer-row][data-id="${bobId}"]`).count(), 0);
  // Renamed to a name the search finds, in capitals, the customer joins
  // the list from the relay.
  await command('customer', bobId, 'rename', { name: `ZOE UNAL ${tag} Jr` });
  await page.locator(`[data-testid=customer-row][data-id="${bobId}"]`).waitFor();
  // The picker of a new order searches alike.
  await page.getByTestId('tab-orders').click();
  await page.getByTestId('list-title').filter({ hasText: 'Orders' }).waitFor();
  await page.getByTestId('new-item').click();
  const s = page.locator('[data-testid=screen][data-ready=true][data-type=order]');
  await s.waitFor();
  await s.getByTestId('customer-search').fill(`ZOË ÜNAL ${tag}`);
  await s.locator(`[data-testid=select-customer] option[value="${zoeId}"]`).waitFor({ state: 'attached' });
  await done(page);
});
