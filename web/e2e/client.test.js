// Tests of plait.js, the browser client library, in headless Chromium
// against a real plait server: each runs in a blank page of the server's
// origin that imports /plait.js.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, command, createCustomer, hs256, launch, startServer, unique } from './harness.js';

/** @type {import('playwright-core').Browser} */
let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const T = { timeout: 60000 };

/** A blank page of the server's origin (base), with plait.js imported as window.plait. */
async function blankPage(base = BASE) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(err));
  await page.route(`${base}/blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>plait.js</title>' }));
  await page.goto(`${base}/blank.html`);
  await page.evaluate(async () => { window.plait = await import('/plait.js'); });
  return page;
}

async function close(page) {
  const errors = page.errors;
  await page.context().close();
  assert.deepEqual(errors.map(String), []);
}

test('newId makes sortable ids the server accepts', T, async () => {
  const page = await blankPage();
  const ids = await page.evaluate(() => [plait.newId(1000), plait.newId(2000), plait.newId(), plait.newId()]);
  for (const id of ids) assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.ok(ids[0] < ids[1], 'later ids sort after earlier ones');
  assert.notEqual(ids[2], ids[3]);
  await close(page);
});

test('submit resolves on delivery, then the outcome and events arrive once', T, async () => {
  const page = await blankPage();
  const id = `cus-${unique()}`;
  const result = await page.evaluate(async (aggregateId) => {
    const client = new plait.Client({ types: ['customer'], namespace: 't1' });
    const outcomes = [];
    const events = [];
    client.onOutcome((o) => outcomes.push(o));
    client.onEvent((e) => events.push(e));
    const live = new Promise((r) => client.onStatus((s) => s === 'live' && r()));
    client.connect();
    await live;
    const sent = await client.submit({ type: 'customer', aggregateId, name: 'create', data: { name: 'Lib Test', email: 'lib@example.com' } });
    const pendingAfterDelivery = client.pending().map((p) => [p.command.id, p.delivered]);
    const heardBeforeResolve = outcomes.length;
    const outcome = await sent.outcome;
    await new Promise((r) => setTimeout(r, 300)); // anything twice would show by now
    client.close();
    return { sent: { id: sent.id, command: sent.command }, pendingAfterDelivery, heardBeforeResolve, outcome, outcomes, events, pendingAtEnd: client.pending().length };
  }, id);
  assert.equal(result.heardBeforeResolve, 0, 'the outcome is never reported before submit resolves');
  assert.deepEqual(result.pendingAfterDelivery, [[result.sent.id, true]]);
  assert.equal(result.outcome.status, 'accepted');
  assert.equal(result.outcome.mine, true);
  assert.deepEqual(result.outcome.data, { name: 'Lib Test', email: 'lib@example.com' });
  assert.equal(result.outcomes.length, 1);
  const mine = result.events.filter((e) => e.causationId === result.sent.id);
  assert.equal(mine.length, 1);
  assert.equal(mine[0].name, 'created');
  assert.equal(mine[0].aggregateId, id);
  assert.equal(result.pendingAtEnd, 0);
  await close(page);
});

test('a rejection carries the annotations; a refused command throws and leaves nothing pending', T, async () => {
  const page = await blankPage();
  const result = await page.evaluate(async () => {
    const client = new plait.Client({ types: ['customer'], namespace: 't2' });
    client.connect();
    const sent = await client.submit({ type: 'customer', aggregateId: `cus-${plait.randomChars(8)}`, name: 'create', data: { name: '', email: 'x' } });
    const outcome = await sent.outcome;
    let refused;
    try {
      await client.submit({ type: 'nosuchtype', aggregateId: 'x1', name: 'create', data: {} });
    } catch (err) {
      refused = { isProblem: err instanceof plait.ProblemError, status: err.status, message: err.message };
    }
    client.close();
    return { outcome, refused, pending: client.pending().length };
  });
  assert.equal(result.outcome.status, 'rejected');
  assert.deepEqual(result.outcome.errors.map((e) => [e.path, e.code]).sort(), [['email', 'invalid'], ['name', 'required']]);
  assert.equal(result.refused.isProblem, true);
  assert.equal(result.refused.status, 400);
  assert.equal(result.pending, 0);
  await close(page);
});

test('pending commands survive a reload and get their outcome by id', T, async () => {
  const page = await blankPage();
  // No relay at all: the outcome can come only from GET /commands/{id}.
  const { id, customer } = await page.evaluate(async () => {
    const client = new plait.Client({ namespace: 't3' });
    const customer = `cus-${plait.randomChars(8)}`;
    const sent = await client.submit({ type: 'customer', aggregateId: customer, name: 'create', data: { name: 'Re Load', email: 're@example.com' } });
    return { id: sent.id, customer };
  });
  await page.reload();
  const after = await page.evaluate(async (id) => {
    const plait = await import('/plait.js');
    const client = new plait.Client({ namespace: 't3', types: ['customer'] });
    const before = client.pending().map((p) => p.command.id);
    const events = [];
    client.onEvent((e) => events.push(e));
    const heard = new Promise((r) => client.onOutcome(r));
    await client.reconcile();
    const outcome = await heard;
    return { before, outcome, events, pending: client.pending().length };
  }, id);
  assert.deepEqual(after.before, [id]);
  assert.equal(after.outcome.id, id);
  assert.equal(after.outcome.status, 'accepted');
  assert.equal(after.outcome.mine, true);
  assert.equal(after.outcome.aggregateId, customer, 'the outcome carries the command as it was sent');
  assert.deepEqual(after.events.map((e) => e.name), ['created'], 'its events are reported too');
  assert.equal(after.pending, 0);
  await close(page);
});

test('the relay resumes after the last frame seen, across a reconnection', T, async () => {
  const page = await blankPage();
  const name = `Res ${unique()}`;
  const customerId = await createCustomer(name);
  await page.evaluate(async () => {
    const client = new plait.Client({ types: ['customer'], namespace: 't4' });
    window.client = client;
    window.events = [];
    client.onEvent((e) => window.events.push(e));
    const live = new Promise((r) => client.onStatus((s) => s === 'live' && r()));
    client.connect();
    await live;
  });
  // One frame seen, so there is a resume token; then the stream is closed.
  await command('customer', customerId, 'rename', { name: `${name} 2` });
  await page.waitForFunction(() => window.events.length >= 1);
  const token = await page.evaluate(() => { window.client.close(); return window.client.lastEventId; });
  assert.ok(token, 'a resume token is kept');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('t4:lastEventId')), token);

  // What happens while it is closed arrives once it reopens.
  await command('customer', customerId, 'rename', { name: `${name} 3` });
  await command('customer', customerId, 'changeEmail', { email: 'res@example.com' });
  await page.evaluate(() => window.client.connect());
  await page.waitForFunction(() => window.events.length >= 3);
  await new Promise((r) => setTimeout(r, 300));
  const names = await page.evaluate(() => window.events.map((e) => `${e.name}:${e.seq}`));
  assert.deepEqual(names, ['renamed:2', 'renamed:3', 'emailChanged:4']);
  await page.evaluate(() => window.client.close());
  await close(page);
});

test('a relay closed before its first frame resumes from where it started', T, async () => {
  const page = await blankPage();
  const name = `Pin ${unique()}`;
  const customerId = await createCustomer(name);
  const first = await page.evaluate(async () => {
    const client = new plait.Client({ types: ['customer'], namespace: 't8' });
    window.client = client;
    window.events = [];
    client.onEvent((e) => window.events.push(e));
    const live = new Promise((r) => client.onStatus((s, info) => s === 'live' && r(info)));
    client.connect();
    const info = await live;
    client.close(); // before any frame
    return { info, token: client.lastEventId, stored: sessionStorage.getItem('t8:lastEventId') };
  });
  assert.deepEqual(first.info, { resumed: false }, 'a stream started afresh says so');
  assert.ok(first.token, 'the start of the stream is known without a frame');
  assert.equal(first.stored, null, 'and kept in memory only');

  // What happens while it is closed arrives once it reopens.
  await command('customer', customerId, 'rename', { name: `${name} 2` });
  const again = await page.evaluate(async () => {
    const live = new Promise((r) => window.client.onStatus((s, info) => s === 'live' && r(info)));
    window.client.connect();
    return live;
  });
  assert.deepEqual(again, { resumed: true });
  await page.waitForFunction(() => window.events.length >= 1);
  assert.deepEqual(await page.evaluate(() => window.events.map((e) => `${e.aggregateId}:${e.name}:${e.seq}`)), [`${customerId}:renamed:2`]);
  await page.evaluate(() => window.client.close());
  await close(page);
});

test('a relay closed while its start is being pinned keeps no start', T, async () => {
  const page = await blankPage();
  const after = await page.evaluate(async () => {
    const client = new plait.Client({ namespace: 't9' });
    client.connect();
    client.close(); // while HEAD /stream is in flight
    await new Promise((r) => setTimeout(r, 500));
    return { token: client.lastEventId, status: client.status };
  });
  assert.deepEqual(after, { token: null, status: 'closed' });
  await close(page);
});

test('a resume token the server does not know is dropped, and the relay starts afresh', T, async () => {
  const page = await blankPage();
  const status = await page.evaluate(async () => {
    sessionStorage.setItem('t6:lastEventId', '999999999'); // from a server whose data was reset
    const client = new plait.Client({ namespace: 't6' });
    const live = new Promise((r) => client.onStatus((s, info) => s === 'live' && r(info)));
    client.connect();
    const info = await live;
    client.close();
    return { info, token: sessionStorage.getItem('t6:lastEventId') };
  });
  assert.deepEqual(status, { info: { resumed: false }, token: null });
  await close(page);
});

test('queries: lists with filters and paging, aggregates, events, commands', T, async () => {
  const page = await blankPage();
  const prefix = `Q${unique()}`;
  const ids = [];
  for (const n of ['a', 'b', 'c']) ids.push(await createCustomer(`${prefix} ${n}`));
  const r = await page.evaluate(async ({ prefix, ids }) => {
    const client = new plait.Client({ namespace: 't5' });
    const first = await client.list('customer', { prefix: { name: prefix }, sort: 'name', limit: 2, fields: ['name'] });
    const second = await client.list('customer', { prefix: { name: prefix }, sort: 'name', limit: 2, after: first.next });
    const eq = await client.list('customer', { eq: { name: `${prefix} b` } });
    const searched = await client.list('customer', { search: { name: `${prefix.toLowerCase()} B` }, fields: ['name'] });
    const keys = ['Zoë', 'STRASSE', 'Straße', 'ﬁle', 'Ǆ', 'Işık', 'ΟΔΟΣ', 'οδος', 'İstanbul', '  Ann ', '\u200bZo\u00ade', '\u3000Zoë',
      'ПРИВЕТ Ёлка', 'ᎠᎡᎢ ꭰꭱꭲ', 'ＡＢＣ１２３', '한국', 'Ωmega ΐ', 'ŉ ﬀ ﬃ'].map(plait.searchKey);
    const agg = await client.aggregate('customer', ids[0]);
    const missing = await client.aggregate('customer', 'no-such-customer');
    const events = await client.events('customer', ids[0]);
    const unknownCommand = await client.command('no-such-command');
    let bad;
    try {
      await client.list('customer', { eq: { nosuchfield: 'x' } });
    } catch (err) {
      bad = err.status;
    }
    return { first, second, eq, searched, keys, agg, missing, events, unknownCommand, bad };
  }, { prefix, ids });
  assert.deepEqual(r.first.items.map((i) => i.name), [`${prefix} a`, `${prefix} b`]);
  assert.deepEqual(Object.keys(r.first.items[0]).sort(), ['id', 'name', 'seq']);
  assert.ok(r.first.next);
  assert.deepEqual(r.second.items.map((i) => i.id), [ids[2]]);
  assert.equal(r.second.next, null);
  assert.deepEqual(r.eq.items.map((i) => i.id), [ids[1]]);
  assert.deepEqual(r.searched.items.map((i) => i.id), [ids[1]], 'a search is of case and accents aside');
  // As plait.SearchKey gives them (see TestSearchKey).
  assert.deepEqual(r.keys, ['zoe', 'strasse', 'strasse', 'file', 'dz', 'isık', 'οδοσ', 'οδοσ', 'istanbul', 'ann ', 'zoe', 'zoe',
    'привет елка', 'ꭰꭱꭲ ꭰꭱꭲ', 'abc123', '\u1112\u1161\u11ab\u1100\u116e\u11a8', 'ωmega ι', 'ʼn ff ffi']);
  assert.equal(r.agg.seq, 1);
  assert.equal(r.agg.state.name, `${prefix} a`);
  assert.equal(r.missing, null);
  assert.deepEqual(r.events.map((e) => e.name), ['created']);
  assert.equal(r.unknownCommand, null);
  assert.equal(r.bad, 400);
  await close(page);
});

test('applyViewEvent folds a view event into a list item by its lineage', T, async () => {
  const page = await blankPage();
  const r = await page.evaluate(() => {
    const item = { id: 'o1', seq: 2, customerName: 'Ann', total: 9, lineage: { customerName: { type: 'customer', aggregateId: 'c1', seq: 1 } } };
    const ev = {
      type: 'orderList', aggregateId: 'o1', seq: 3, name: 'customerNameSet',
      data: { source: { type: 'customer', aggregateId: 'c1', seq: 2 }, customerName: 'Ann Smith' },
      lineage: { customerName: { type: 'customer', aggregateId: 'c1', seq: 2 } },
    };
    const next = plait.applyViewEvent(item, ev);
    return { next, item, again: plait.applyViewEvent(next, ev) === next };
  });
  assert.equal(r.next.customerName, 'Ann Smith');
  assert.equal(r.next.total, 9);
  assert.equal(r.next.seq, 3);
  assert.equal(r.next.lineage.customerName.seq, 2);
  assert.equal(r.next.source, undefined, 'only the fields of the lineage are taken');
  assert.equal(r.item.customerName, 'Ann', 'the item is not changed');
  assert.equal(r.again, true, 'an event applied twice changes nothing');
  await close(page);
});

test("a token function renews the relay's token when the server ends the stream at its expiry", T, async () => {
  const secret = `e2e-${unique()}-secret-of-at-least-32-bytes`;
  const server = await startServer(['--jwt-secret', secret]);
  try {
    const page = await blankPage(server.base);
    const streams = [];
    page.on('request', (r) => { if (r.method() === 'GET' && new URL(r.url()).pathname === '/stream') streams.push(r); });
    // Expiring now, accepted for the leeway the server grants (5 s): the
    // stream opened with it ends within 4 to 5 s (room for a slow machine
    // to open it before then).
    const now = Math.floor(Date.now() / 1000);
    const expiring = hs256(secret, { sub: 'ann', exp: now });
    const fresh = hs256(secret, { sub: 'ann', exp: now + 3600 });
    const result = await page.evaluate(async ({ expiring, fresh }) => {
      window.token = expiring;
      let asked = 0;
      const client = new plait.Client({ token: () => { asked++; return window.token; }, namespace: 'tok' });
      const states = [];
      client.onStatus((s) => states.push(s));
      const live = () => new Promise((r) => { const off = client.onStatus((s) => { if (s === 'live') { off(); r(); } }); });
      let first = live();
      client.connect();
      await first;
      window.token = fresh;
      const again = live(); // after the server ended the expiring stream
      await again;
      const sent = await client.submit({ type: 'customer', aggregateId: 'tok1', name: 'create', data: { name: 'Tok Ann', email: 'tok@example.com' } });
      const outcome = await sent.outcome;
      client.close();
      return { states, asked, status: outcome.status };
    }, { expiring, fresh });
    assert.equal(result.status, 'accepted');
    assert.ok(result.asked >= 3, `the token function was asked ${result.asked} times, want each request and opening`);
    const reopened = result.states.indexOf('reconnecting', result.states.indexOf('live'));
    assert.ok(reopened > 0 && result.states.indexOf('live', reopened) > reopened, `states ${result.states}: want live, then reconnecting, then live`);
    // The token went to each stream in a cookie of its own, which the URL
    // names, never in the URL; and the cookie is gone once it opened.
    assert.ok(streams.length >= 2, `${streams.length} streams opened`);
    const tokens = [];
    const names = new Set();
    for (const r of streams) {
      const q = new URL(r.url()).searchParams;
      assert.equal(q.has('access_token'), false, r.url());
      const name = q.get('access_cookie');
      assert.match(name ?? '', /^[0-9A-Z]{16}$/);
      names.add(name);
      const cookie = (await r.allHeaders()).cookie ?? '';
      tokens.push(new RegExp(`plait_token_${name}=([^;]+)`).exec(cookie)?.[1]);
    }
    assert.equal(names.size, streams.length, 'a cookie per stream');
    assert.equal(tokens[0], expiring);
    assert.equal(tokens.at(-1), fresh);
    const left = (await page.context().cookies(server.base)).filter((c) => c.name.startsWith('plait_token'));
    assert.deepEqual(left.map((c) => c.name), [], 'the cookies of streams that opened');
    await close(page);
  } finally {
    await server.stop();
  }
});

test('a delivered command the server no longer knows is dropped from the pending ones in time', T, async () => {
  const page = await blankPage();
  // The POST is answered 202 without reaching the server: as a server whose
  // data was reset since would answer GET /commands/{id} with 404.
  await page.route((url) => url.pathname === '/commands', (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    const id = JSON.parse(route.request().postData()).id;
    return route.fulfill({ status: 202, contentType: 'application/json', headers: { Location: `/commands/${id}` }, body: JSON.stringify({ id, status: 'pending' }) });
  });
  const [pending, undelivered] = await page.evaluate(async () => {
    const counts = [];
    const told = [];
    for (const forgetUnknownAfterMs of [undefined, 0]) {
      const client = new plait.Client({ namespace: `t-unknown-${forgetUnknownAfterMs}`, forgetUnknownAfterMs });
      client.onUndelivered((cmd) => told.push(`${forgetUnknownAfterMs}: ${cmd.data.name}`));
      await client.submit({ type: 'customer', aggregateId: `cus-${plait.randomChars(8)}`, name: 'create', data: { name: 'Go Ne', email: 'go@example.com' } });
      await new Promise((r) => setTimeout(r, 5));
      await client.reconcile();
      counts.push(client.pending().length);
    }
    return [counts, told];
  });
  assert.deepEqual(pending, [1, 0], 'kept while it may still come, dropped once it is long unknown');
  assert.deepEqual(undelivered, ['0: Go Ne'], 'the one dropped is reported undelivered, with what it carried');
  await close(page);
});

test('a command the server failed on, unknown to it for a while, still gets its outcome', T, async () => {
  const page = await blankPage();
  // The first POST fails in the server before it stores anything; the
  // command arrives later (sent again by another way, as a proxy's retry
  // would), under the same id.
  let first = true;
  await page.route((url) => url.pathname === '/commands', (route) => {
    if (route.request().method() !== 'POST' || !first) return route.continue();
    first = false;
    return route.fulfill({ status: 504, contentType: 'application/problem+json', body: JSON.stringify({ title: 'Gateway Timeout', status: 504 }) });
  });
  const result = await page.evaluate(async () => {
    const client = new plait.Client({ namespace: 't-504' });
    const outcomes = [];
    client.onOutcome((o) => outcomes.push(o));
    const cmd = { id: plait.newId(), type: 'customer', aggregateId: `cus-${plait.randomChars(8)}`, name: 'create', data: { name: '', email: 'x@example.com' } };
    let refused;
    try { await client.submit(cmd); } catch (err) { refused = { mayHaveArrived: err.mayHaveArrived }; }
    await client.reconcile(); // unknown to the server: kept
    const keptWhileUnknown = client.pending().length;
    await client.submit(cmd); // it arrives now
    await client.reconcile();
    await new Promise((r) => setTimeout(r, 50));
    return { refused, keptWhileUnknown, outcomes: outcomes.map((o) => ({ status: o.status, mine: o.mine })), pending: client.pending().length };
  });
  assert.deepEqual(result.refused, { mayHaveArrived: true });
  assert.equal(result.keptWhileUnknown, 1);
  assert.deepEqual(result.outcomes, [{ status: 'rejected', mine: true }]);
  assert.equal(result.pending, 0);
  await close(page);
});
