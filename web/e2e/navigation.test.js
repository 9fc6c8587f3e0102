// End-to-end scenarios of the orderdesk UI's URL: what the page shows (the
// list, its search and page, the screen open) is in its hash, so that a
// reload, a link and Back and Forward show it. Their customers are named
// Zn …, after those of the other scenarios, which find theirs on the first
// page of the customers.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createCustomer, done, failedRequests, launch, openApp, placeOrder, screen, search, unique,
} from './harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const T = { timeout: 60000 };

const hashOf = (page) => decodeURIComponent(new URL(page.url()).hash);

test('a reload shows the same list, search, page and screen', T, async () => {
  const prefix = `Zn Reload ${unique()}`;
  const ids = [];
  for (let i = 0; i < 12; i++) ids.push(await createCustomer(`${prefix} ${String(i).padStart(2, '0')}`));
  const page = await openApp(browser);
  await search(page, 'customers', prefix);
  await page.getByTestId('customer-row').first().waitFor();
  await page.getByTestId('next-page').click();
  await page.locator(`[data-testid=customer-row][data-id="${ids[10]}"]`).click();
  await screen(page);
  assert.equal(hashOf(page), `#/customers/customer/${ids[10]}?q=${prefix.replaceAll(' ', '+')}&page=2`);

  await page.reload();
  const s = page.locator(`[data-testid=screen][data-ready=true][data-id="${ids[10]}"]`);
  await s.waitFor();
  await page.locator(`[data-testid=customer-row][data-id="${ids[11]}"]`).waitFor();
  assert.equal(await page.getByTestId('page-number').innerText(), 'Page 2');
  assert.equal(await page.getByTestId('search').inputValue(), prefix);
  assert.equal(await page.getByTestId('list-title').innerText(), 'Customers');
  // From a page restored by its number, Previous goes to the first.
  await page.keyboard.press('Escape');
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await page.getByTestId('prev-page').click();
  await page.locator(`[data-testid=customer-row][data-id="${ids[0]}"]`).waitFor();
  assert.equal(await page.getByTestId('page-number').innerText(), 'Page 1');
  await done(page);
});

test('Back closes a screen and goes to the page before, Forward comes back', T, async () => {
  const prefix = `Zn Back ${unique()}`;
  const ids = [];
  for (let i = 0; i < 11; i++) ids.push(await createCustomer(`${prefix} ${String(i).padStart(2, '0')}`));
  const page = await openApp(browser);
  await search(page, 'customers', prefix);
  await page.getByTestId('customer-row').first().waitFor();
  await page.getByTestId('next-page').click();
  await page.locator(`[data-testid=customer-row][data-id="${ids[10]}"] [data-testid=open-customer]`).click();
  await screen(page);

  await page.goBack();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'open-customer', 'the focus is back on what opened the screen');
  await page.goBack();
  await page.locator(`[data-testid=customer-row][data-id="${ids[0]}"]`).waitFor();
  assert.equal(await page.getByTestId('page-number').innerText(), 'Page 1');

  await page.goForward();
  await page.locator(`[data-testid=customer-row][data-id="${ids[10]}"]`).waitFor();
  await page.goForward();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${ids[10]}"]`).waitFor();

  // Changes not sent are not lost at the first Back: the screen says so,
  // and the second Back discards them.
  await page.getByTestId('input-name').fill(`${prefix} changed`);
  await page.goBack();
  await page.getByTestId('discard-notice').waitFor();
  assert.equal(await page.getByTestId('screen').getAttribute('data-id'), ids[10]);
  await page.goBack();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  await done(page);
});

test('a link opens its screen in a new tab; a link to nothing says so', T, async () => {
  const customerId = await createCustomer(`Zn Link ${unique()}`);
  const orderId = await placeOrder(customerId);
  let page = await openApp(browser, { path: `/#/orders/order/${orderId}` });
  const s = page.locator(`[data-testid=screen][data-ready=true][data-id="${orderId}"]`);
  await s.waitFor();
  assert.equal(await s.getByTestId('order-status').textContent(), 'placed');
  await s.getByTestId('open-order-customer').click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`).waitFor();
  assert.equal(hashOf(page), `#/orders/customer/${customerId}`);
  await done(page);

  // A new order for a customer, from a link.
  page = await openApp(browser, { path: `/#/customers/new/order?customer=${customerId}` });
  const order = await screen(page);
  assert.equal(await order.getByTestId('screen-title').innerText(), 'New order');
  assert.equal(await order.getByTestId('select-customer').inputValue(), customerId);
  await done(page);

  page = await openApp(browser, { path: '/#/orders/customer/cus-NOSUCHONE' });
  const missing = await screen(page);
  assert.match(await missing.getByTestId('not-found').innerText(), /There is no customer cus-NOSUCHONE/);
  await page.keyboard.press('Escape');
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  assert.equal(hashOf(page), '#/orders');
  await done(page);
});

test('a rejected new customer reopened stays so across a reload, asking for nothing that is not there', T, async () => {
  const page = await openApp(browser, { path: '/#/customers/new/customer' });
  const failed = failedRequests(page);
  let s = await screen(page);
  const customerId = await s.getAttribute('data-id');
  await s.getByTestId('input-name').fill('Re Load');
  await s.getByTestId('input-email').fill('not an address');
  await s.getByTestId('submit').click();
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`);
  await s.getByTestId('reopen-note').waitFor();
  await page.reload();
  await s.locator('[data-testid=annotation][data-path=email]').waitFor();
  assert.equal(await s.getByTestId('input-email').inputValue(), 'not an address');
  assert.equal(await page.getByTestId('error-badge').isHidden(), true, 'not in the badge as well');
  assert.deepEqual(failed, []);
  await done(page);
});

test('a list item and a screen link to the screens they open: Ctrl+click opens one in a new tab', T, async () => {
  const name = `Zn Tab ${unique()}`;
  const customerId = await createCustomer(name);
  const orderId = await placeOrder(customerId);
  const page = await openApp(browser);
  await search(page, 'customers', name);
  const link = page.locator(`[data-testid=customer-row][data-id="${customerId}"] [data-testid=open-customer]`);
  assert.equal(decodeURIComponent(await link.getAttribute('href')), `#/customers/customer/${customerId}?q=${name.replaceAll(' ', '+')}`);
  const [tab] = await Promise.all([page.context().waitForEvent('page'), link.click({ modifiers: ['Control'] })]);
  await tab.locator(`[data-testid=screen][data-ready=true][data-id="${customerId}"]`).waitFor();
  // The first tab stays as it was; a plain click opens the screen in it.
  assert.equal(await page.getByTestId('screen').isHidden(), true);
  await link.click();
  const s = await screen(page);
  assert.equal(await s.getAttribute('data-id'), customerId);
  // The customer's order links to its screen too, and opens it in place.
  const order = s.locator(`[data-testid=customer-order][data-id="${orderId}"] [data-testid=open-customer-order]`);
  assert.match(decodeURIComponent(await order.getAttribute('href')), new RegExp(`/order/${orderId}`));
  await order.click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${orderId}"]`).waitFor();
  await tab.close();
  await done(page);
});

test('a rejection sent again from the badge is not reopened by the step of the history that first showed it', T, async () => {
  const prefix = `Zn Again ${unique()}`;
  const first = await createCustomer(`${prefix} A`);
  const second = await createCustomer(`${prefix} B`);
  const page = await openApp(browser);
  await search(page, 'customers', prefix);
  await page.locator(`[data-testid=customer-row][data-id="${first}"]`).click();
  let s = await screen(page);
  await s.getByTestId('input-email').fill('not an address');
  await s.getByTestId('submit-changeEmail').click();
  await s.getByTestId('reopen-note').waitFor();
  // Another screen: the rejection goes to the badge, and is sent again from there.
  await page.locator(`[data-testid=customer-row][data-id="${second}"]`).click();
  await page.locator(`[data-testid=screen][data-ready=true][data-id="${second}"]`).waitFor();
  await page.getByTestId('error-badge').click();
  await page.getByTestId('error-item').first().click();
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${first}"]`);
  await s.getByTestId('reopen-note').waitFor();
  await s.getByTestId('input-email').fill('again@example.com');
  await s.getByTestId('submit-changeEmail').click();
  await page.getByTestId('screen').waitFor({ state: 'hidden' });
  // Back through the steps: the screen it was sent from, the other
  // customer's, and the one that first reopened it, which shows the
  // customer as it is now.
  for (const id of [first, second, first]) {
    await page.goBack();
    await page.locator(`[data-testid=screen][data-ready=true][data-id="${id}"]`).waitFor();
  }
  s = page.locator(`[data-testid=screen][data-ready=true][data-id="${first}"]`);
  assert.equal(await s.getByTestId('input-email').inputValue(), 'again@example.com');
  assert.equal(await s.getByTestId('reopen-note').count(), 0, 'the rejection sent again is not reopened');
  await done(page);
});
