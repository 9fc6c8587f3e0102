// orderdesk: the demo user interface of Plait, on plait.js and nothing else.
//
// The page shows one list at a time (the orderList view, or the customers)
// and at most one detail screen, for one aggregate instance. Submitting a
// command closes the screen as soon as the server confirms delivery; its
// outcome comes later over the relay:
//
//   - accepted: the events update the lists in place; the items the command
//     will change are greyed out until the events that change them arrive;
//   - rejected: if the user has not opened another screen since, the screen
//     opens again with what was typed and the annotations beside the fields;
//     otherwise the error badge counts it, and its list reopens it.
//
// A list item opens the screens of the aggregates its fields came from, by
// their lineage: an order's customer name opens the customer, its total and
// status the order. Detail screens send expectedSeq, the version they showed,
// so that a change made meanwhile by someone else is a clear conflict.

import { Client, ProblemError, applyViewEvent, newId, randomChars, searchKey } from './plait.js';

const PAGE_SIZE = 10;
/** How long an item stays greyed out waiting for its update before it is fetched. */
const MARK_TIMEOUT_MS = 10000;

const client = new Client({ types: ['customer', 'order', 'orderList'] });

// ------------------------------------------------------------------ helpers

/**
 * Makes an element: h('button', {class: 'x', onclick: f}, 'text', child).
 * Attributes whose value is null, undefined or false are left out.
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);

/**
 * A decimal number written as s ("4.50", "1e+21"), exactly, as
 * [digits, scale]: its value is digits × 10^-scale. Null if s is none.
 */
function parseDecimal(s) {
  const m = /^(-?)(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i.exec(String(s).trim());
  if (!m || (m[2] === '' && !m[3])) return null;
  let digits = (m[2] || '0') + (m[3] ?? '');
  let scale = (m[3] ?? '').length - Number(m[4] ?? 0);
  if (scale < 0) {
    digits += '0'.repeat(-scale);
    scale = 0;
  }
  if (scale > 40 || digits.length > 60) return null;
  return [BigInt(digits) * (m[1] ? -1n : 1n), scale];
}

/** Σ qty × price of lines, exactly, as parseDecimal gives it. */
function sumLines(lines) {
  let sum = 0n;
  let scale = 0;
  for (const { qty, price } of lines) {
    const p = parseDecimal(price);
    if (!p || !Number.isInteger(Number(qty))) continue;
    const [n, sc] = p;
    if (sc > scale) {
      sum *= 10n ** BigInt(sc - scale);
      scale = sc;
    }
    sum += BigInt(Number(qty)) * n * 10n ** BigInt(scale - sc);
  }
  return [sum, scale];
}

/**
 * An amount for people, as written, never rounded: at least two decimals,
 * thousands grouped ("1,234.50", "1.005"). A number is taken as its
 * shortest decimal form, the one the server's decimal sums give back.
 */
function money(v) {
  const d = Array.isArray(v) ? v : (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'string' ? parseDecimal(v) : null;
  if (!d) return '…';
  const [n, scale] = d;
  const digits = (n < 0n ? -n : n).toString().padStart(scale + 1, '0');
  const whole = digits.slice(0, digits.length - scale).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = digits.slice(digits.length - scale).replace(/0+$/, '').padEnd(2, '0');
  return `${n < 0n ? '-' : ''}${whole}.${frac}`;
}

/** The currency of the desk: amounts in it are shown without its code. */
const HOME_CURRENCY = 'EUR';

/** An amount in a currency: its code follows unless it is the desk's own. */
function amount(v, currency) {
  return currency && currency !== HOME_CURRENCY ? `${money(v)} ${currency}` : money(v);
}

function when(iso) {
  if (!iso) return '…';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '…' : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

const VERBS = {
  create: 'Create', rename: 'Rename', changeEmail: 'Change the email of',
  place: 'Place', ship: 'Ship', cancel: 'Cancel',
};

/**
 * Says what a command does, for people, as it was sent: "Rename customer
 * to Ann Smith", "Change the email of customer Ann Lee to ann@example.com".
 * The instance is named by its label, what the command sets by its data.
 */
function describe(cmd) {
  // What users typed is isolated from the sentence around it: a name
  // holding a right-to-left override turns only itself around.
  const sent = (f) => (typeof cmd.data?.[f] === 'string' && cmd.data[f].trim() ? isolate(cmd.data[f].trim()) : '');
  const label = isolate(ui.labels.get(cmd.aggregateId) || '') || sent('name') || cmd.aggregateId;
  const verb = VERBS[cmd.name] ?? cmd.name;
  if (cmd.name === 'create') return `${verb} ${cmd.type} ${sent('name') || cmd.aggregateId}`;
  if (cmd.name === 'rename' && sent('name')) return `${verb} ${cmd.type} to ${sent('name')}`;
  if (cmd.name === 'changeEmail' && sent('email')) return `${verb} ${cmd.type} ${label} to ${sent('email')}`;
  return `${verb} ${cmd.type} ${label}`;
}

/** Text of a user's, isolated for its direction (FSI … PDI), as <bdi> would; "" stays "". */
function isolate(s) {
  return s ? `\u2068${s}\u2069` : '';
}

/**
 * The message of an annotation, with advice for a conflict: to send again
 * only if form, drawn from the current version, can still send it.
 */
function annotationText(e, form) {
  if (e.code === 'conflict') {
    const possible = !form?.querySelector('button[type=submit]')?.disabled;
    return possible
      ? `${e.message}. The screen now shows the current version: check it, then send again.`
      : `${e.message}. The screen now shows the current version, where this can no longer be done.`;
  }
  return e.message || e.code;
}

function toast(text, kind = 'info') {
  const t = h('div', { class: `toast toast-${kind}`, 'data-testid': 'toast', role: 'status' }, text);
  $('.toasts').append(t);
  setTimeout(() => t.remove(), 4000);
}

// -------------------------------------------------------------------- state

/** What the page shows and what it is waiting for. */
const ui = {
  tab: 'orders',
  /** Where the focus goes back to once a greyed-out list row is usable. */
  focusWanted: null,
  /** Per list: the page shown and how to get the neighbouring ones. */
  pages: {
    orders: { items: [], next: null, after: null, cursors: [], search: '', load: 0, error: null, loaded: false, unplaced: new Map(), touched: new Map(), relayed: [], joining: 0 },
    customers: { items: [], next: null, after: null, cursors: [], search: '', load: 0, error: null, loaded: false, unplaced: new Map(), touched: new Map(), relayed: [], joining: 0 },
  },
  /**
   * The open screen: {type, id, seq, gen, reopen, touched, own, waiting},
   * or null; reopen is the rejection it shows, touched whether the user
   * has worked on it, own the ids of the commands sent from it, waiting
   * the command whose outcome it waits for, when it stayed open for other
   * changes.
   */
  screen: null,
  /** What had the focus before the screen opened, to get it back (see openerOf). */
  opener: null,
  /** Counts the screens opened: a rejection reopens its screen only if none was opened since. */
  generation: 0,
  /** Command id → the generation when it was sent. */
  sent: new Map(),
  /** The rejections the user has not looked at yet, newest last. */
  rejections: [],
  /** "type/id" of an item → Map(correlation id → timer): the updates it waits for. */
  marks: new Map(),
  /** Aggregate id → a name for people. */
  labels: new Map(),
};

/** The two lists: where their items come from and how they look. */
const LISTS = {
  orders: {
    title: 'Orders', type: 'orderList', sort: '-placedAt', search: 'customerName',
    searchLabel: 'Search orders by customer name', newLabel: 'New order', empty: 'No orders yet.',
  },
  customers: {
    title: 'Customers', type: 'customer', sort: 'name', search: 'name',
    searchLabel: 'Search customers by name', newLabel: 'New customer', empty: 'No customers yet.',
  },
};

// -------------------------------------------------------------------- lists

/**
 * Loads the current page of a list and shows it if it is the current tab.
 * With busy (the user asked for another page, or another search), the list
 * shows it is busy until the page is in.
 */
async function loadList(name, { busy = false } = {}) {
  const L = LISTS[name];
  const p = ui.pages[name];
  const load = ++p.load;
  if (busy) {
    p.busy = true;
    if (ui.tab === name) renderBusy();
  }
  clearTimeout(p.reload);
  p.reload = undefined;
  // What the relay changes while the page is on its way is newer than
  // the page may be: it is taken again once the page is in.
  const touched = new Map();
  p.touched = touched;
  // Events relayed meanwhile are applied again to the page once it is in,
  // for the items it brings that the list did not show before.
  const relayed = [];
  p.relayed = relayed;
  p.loading = true;
  try {
    // A page restored from the URL by its number: its cursor is found first.
    if (p.after?.skip) {
      const after = await cursorAfter(name, p.after.skip);
      if (load !== p.load) return;
      // Fewer items than that (a link from before some went): the first page.
      if (after === null) p.cursors = [];
      p.after = after;
      syncUrl();
    }
    const q = { sort: L.sort, limit: PAGE_SIZE, after: p.after ?? undefined };
    if (p.search) q.search = { [L.search]: p.search };
    const page = await client.list(L.type, q);
    if (load !== p.load) return;
    // Items placed optimistically stay until their events arrive, in
    // their place, if they match the search the page was read for.
    const placeholders = p.after ? [] : p.items.filter((it) => it.placeholder && matchesSearch(name, it) && !page.items.some((x) => x.id === it.id));
    // A newer version taken from the relay may no longer match the
    // search, or sort elsewhere.
    const items = page.items.map((it) => {
      const newer = touched.get(it.id);
      return newer && (newer.seq ?? 0) > (it.seq ?? 0) ? newer : it;
    }).filter((it) => matchesSearch(name, it)).sort((a, b) => (sortsBefore(name, a, b) ? -1 : sortsBefore(name, b, a) ? 1 : 0));
    p.items = items;
    p.next = page.next;
    for (const it of placeholders) insertInOrder(name, it);
    for (const [id, it] of touched) {
      if (!p.after && !items.some((x) => x.id === id) && matchesSearch(name, it)) insertInOrder(name, it);
    }
    p.unplaced.clear();
    p.error = null;
    for (const it of page.items) if (name === 'customers') ui.labels.set(it.id, it.name);
  } catch (err) {
    if (load !== p.load) return;
    p.error = `The list could not be loaded: ${err.message}`;
  }
  p.loaded = true;
  p.loading = false;
  p.busy = false;
  if (ui.tab === name) renderList();
  for (const [ev, fold] of relayed) applyToList(name, ev, fold);
}

/**
 * The cursor of the page after the first n items of a list (as searched),
 * or null if it has no more than n: read by their ids alone, up to the
 * most a page of the server holds at a time.
 */
async function cursorAfter(name, n) {
  const L = LISTS[name];
  const p = ui.pages[name];
  let after;
  while (n > 0) {
    const q = { sort: L.sort, limit: Math.min(n, 1000), fields: ['id'], after };
    if (p.search) q.search = { [L.search]: p.search };
    const page = await client.list(L.type, q);
    if (!page.next || page.items.length === 0) return null;
    n -= page.items.length;
    after = page.next;
  }
  return after;
}

/**
 * Goes to page n (from 1) of a list, from the page it shows: the next or
 * the previous by their cursors, any other by its number (see cursorAfter),
 * as when the URL names it.
 */
function setPage(name, n) {
  const p = ui.pages[name];
  const shown = p.cursors.length + 1;
  if (n === shown) return;
  if (n === shown + 1 && p.next) {
    p.cursors.push(p.after);
    p.after = p.next;
  } else if (n === shown - 1) {
    p.after = p.cursors.pop();
  } else {
    // Page i+1 comes after i pages: a cursor known once it is asked for.
    p.cursors = Array.from({ length: n - 1 }, (_, i) => (i === 0 ? null : { skip: i * PAGE_SIZE }));
    p.after = n > 1 ? { skip: (n - 1) * PAGE_SIZE } : null;
  }
  // The next page's cursor comes with the page: until then there is no
  // further page to go to.
  p.next = null;
}

function isPending(key) {
  return (ui.marks.get(key)?.size ?? 0) > 0;
}

/** Renders the current tab's list, toolbar and pager. */
function renderList() {
  const name = ui.tab;
  const L = LISTS[name];
  const p = ui.pages[name];
  $('[data-testid=list-title]').textContent = L.title;
  const search = $('[data-testid=search]');
  search.placeholder = L.searchLabel;
  search.setAttribute('aria-label', L.searchLabel);
  if (document.activeElement !== search) search.value = p.search;
  const add = $('[data-testid=new-item]');
  add.textContent = L.newLabel;
  add.dataset.kind = name;
  renderTabLinks();
  for (const a of document.querySelectorAll('.tab')) {
    a.classList.toggle('active', a.dataset.tab === name);
    if (a.dataset.tab === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }

  const list = $('[data-testid=list]');
  list.dataset.kind = name;
  const focus = focusInList();
  if (p.error) {
    list.replaceChildren(h('p', { class: 'empty error', role: 'alert' }, p.error, ' ',
      h('button', { type: 'button', 'data-testid': 'retry-list', onclick: () => loadList(name, { busy: true }) }, 'Try again')));
  } else if (!p.loaded) {
    list.replaceChildren(h('p', { class: 'empty' }, 'Loading…'));
  } else if (p.items.length === 0) {
    list.replaceChildren(h('p', { class: 'empty', 'data-testid': 'empty' }, p.search ? 'Nothing matches.' : L.empty));
  } else if (name === 'orders') {
    list.replaceChildren(h('table', { class: 'items orders' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'Order'), h('th', {}, 'Customer'), h('th', { class: 'num' }, 'Lines'),
        h('th', { class: 'num' }, 'Total'), h('th', {}, 'Status'), h('th', {}, 'Placed'))),
      h('tbody', {}, p.items.map(orderRow))));
  } else {
    list.replaceChildren(h('table', { class: 'items customers' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Email'))),
      h('tbody', {}, p.items.map(customerRow))));
  }
  restoreFocus(focus);
  renderBusy();
  const prev = $('[data-testid=prev-page]');
  const next = $('[data-testid=next-page]');
  const had = document.activeElement;
  prev.disabled = p.cursors.length === 0;
  next.disabled = !p.next;
  // The pager button that had the focus and now goes nowhere (on the first
  // page, the last) hands it to the other one, or to the list.
  if ((had === prev || had === next) && had.disabled) {
    const other = had === prev ? next : prev;
    if (!other.disabled) other.focus();
    else {
      list.setAttribute('tabindex', '-1');
      list.focus();
    }
  }
}

/**
 * Shows whether the current tab's list waits for the page the user asked
 * for: its rows greyed and busy, and the pager saying so.
 */
function renderBusy() {
  const p = ui.pages[ui.tab];
  const list = $('[data-testid=list]');
  if (p.busy) list.setAttribute('aria-busy', 'true');
  else list.removeAttribute('aria-busy');
  const page = p.cursors.length + 1;
  $('[data-testid=page-number]').textContent = p.busy ? `Loading page ${page}…` : `Page ${page}`;
}

/** Replaces the row of one item, where it is. */
function renderRow(name, id) {
  if (ui.tab !== name) return;
  const it = ui.pages[name].items.find((x) => x.id === id);
  const old = $(`[data-testid=list] tr[data-id="${CSS.escape(id)}"]`);
  if (!it || !old) return;
  const focus = focusInList();
  old.replaceWith(name === 'orders' ? orderRow(it) : customerRow(it));
  restoreFocus(focus);
}

/**
 * Where the focus is in the list, or was wanted while its element was
 * greyed out: a row drawn anew puts it back.
 */
function focusInList() {
  const el = document.activeElement;
  const list = $('[data-testid=list]');
  if (el && el !== list && list.contains(el)) return openerOf(el);
  // Lost only with no screen open: a click on a screen's text leaves the
  // focus on the body too, and the screen keeps it.
  const lost = !ui.screen && (!el || el === document.body || el === list);
  return lost ? ui.focusWanted : null;
}

/** Gives the focus back to the element a list drawn anew has in its place. */
function restoreFocus(where) {
  ui.focusWanted = null;
  const now = document.activeElement;
  const elsewhere = now && now !== document.body && now !== $('[data-testid=list]') && now.isConnected;
  if (!where?.selector || elsewhere) return;
  const el = $(where.selector);
  if (!el) return;
  if (el.disabled) ui.focusWanted = where; // once it is usable again
  else el.focus({ preventScroll: true });
}

/**
 * A link to the screen of an instance, in the list as it is: a click opens
 * the screen here, a click that asks for a new tab or window (the middle
 * button, Ctrl or ⌘) opens the page there, at that screen. A pending one
 * (its item waits for an update) opens nothing here.
 */
function screenLink(type, id, { pending = false, ...attrs }, text) {
  return h('a', {
    ...attrs,
    href: hashOf({ ...shownRoute(), screen: { type, id } }),
    'aria-disabled': pending ? 'true' : null,
    onclick: (e) => {
      if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      if (!pending) openScreen(type, id);
    },
  }, text);
}

/** Attributes every row shares: its id and whether it waits for an update. */
function rowAttrs(testid, key, it) {
  const pending = isPending(key);
  return {
    class: ['row', pending && 'pending', it.placeholder && 'placeholder'].filter(Boolean).join(' '),
    'data-testid': testid,
    'data-id': it.id,
    'data-pending': pending,
    'aria-disabled': pending ? 'true' : null,
    title: pending ? 'Being updated…' : null,
  };
}

/** One orderList item: each field opens the aggregate it came from. */
function orderRow(it) {
  const pending = isPending(`orderList/${it.id}`);
  const orderSource = it.lineage?.status ?? it.lineage?.total ?? { type: 'order', aggregateId: it.id };
  const nameSource = it.lineage?.customerName;
  const openOrder = () => openScreen(orderSource.type, orderSource.aggregateId);
  const tr = h('tr', {
    ...rowAttrs('order-row', `orderList/${it.id}`, it),
    onclick: (e) => {
      if (!pending && !e.target.closest('button, a')) openOrder();
    },
  },
  h('td', { 'data-label': 'Order' },
    screenLink(orderSource.type, orderSource.aggregateId, { class: 'link mono', 'data-testid': 'open-order', pending,
      title: `Open order ${orderSource.aggregateId}` }, it.id)),
  h('td', { 'data-label': 'Customer', 'data-testid': 'customer-name' },
    nameSource
      ? screenLink(nameSource.type, nameSource.aggregateId, {
        class: 'link', 'data-testid': 'open-customer', pending,
        title: `Open customer ${nameSource.aggregateId} (version ${nameSource.seq})`,
      }, it.customerName || '—')
      : h('span', { class: 'muted' }, it.customerName || 'unknown customer')),
  h('td', { class: 'num', 'data-label': 'Lines' }, it.lines ?? '…'),
  h('td', { class: 'num', 'data-label': 'Total', 'data-testid': 'order-total' }, amount(it.total, it.currency)),
  h('td', { 'data-label': 'Status' },
    h('span', { class: `status status-${it.status ?? 'unknown'}`, 'data-testid': 'order-status' }, it.status ?? '…')),
  h('td', { 'data-label': 'Placed' }, when(it.placedAt)));
  return tr;
}

/** One customer. */
function customerRow(it) {
  const pending = isPending(`customer/${it.id}`);
  const open = () => openScreen('customer', it.id);
  return h('tr', {
    ...rowAttrs('customer-row', `customer/${it.id}`, it),
    onclick: (e) => {
      if (!pending && !e.target.closest('button, a')) open();
    },
  },
  h('td', { 'data-label': 'Name' },
    screenLink('customer', it.id, { class: 'link', 'data-testid': 'open-customer', pending }, it.name ?? '…')),
  h('td', { 'data-label': 'Email', 'data-testid': 'customer-email' }, it.email ?? '…'));
}

/**
 * Applies a relayed event to the list it concerns, in place: the item is
 * updated from the event alone, without asking the server, unless the
 * event shows that an earlier one was missed.
 */
function applyToList(name, ev, fold) {
  const p = ui.pages[name];
  if (p.loading) p.relayed.push([ev, fold]);
  const i = p.items.findIndex((x) => x.id === ev.aggregateId);
  if (i >= 0) {
    const it = p.items[i];
    if (ev.seq <= (it.seq ?? 0)) return;
    if (!it.placeholder && ev.seq > (it.seq ?? 0) + 1) {
      refetchItem(name, ev.type, ev.aggregateId);
      return;
    }
    const next = fold(it, ev);
    delete next.placeholder;
    if (p.loading) p.touched.set(next.id, next);
    if (name === 'customers') ui.labels.set(next.id, next.name);
    replaceItem(name, i, next);
    return;
  }
  // An item the search left out that a change makes match it (a
  // customer renamed to the name searched for): read whole, it joins the
  // page if it belongs there.
  const L = LISTS[name];
  if (ev.seq > 1 && p.search && p.loaded && !p.unplaced.has(ev.aggregateId) && ev.data && L.search in ev.data) {
    if (!matchesSearch(name, { [L.search]: ev.data[L.search] })) return;
    if (p.joining < MAX_JOINING) {
      p.joining++;
      refetchItem(name, ev.type, ev.aggregateId).finally(() => p.joining--);
    } else {
      // Many at once (a customer with many orders renamed): the page is
      // read again rather than each of them.
      readAgainSoon(name);
    }
    return;
  }
  // A new instance: shown on the first page, in its place in the list's
  // order, if it belongs there. A view item's first events may lack the
  // field the list is sorted or searched by: it waits aside until one
  // brings it.
  if (p.after || !p.loaded) return;
  let item;
  if (ev.seq === 1) {
    item = fold({ id: ev.aggregateId, seq: 0 }, ev);
  } else {
    const aside = p.unplaced.get(ev.aggregateId);
    if (!aside || ev.seq !== aside.seq + 1) return;
    item = fold(aside, ev);
  }
  const sortField = L.sort.replace(/^-/, '');
  if (item[sortField] === undefined || (p.search && item[L.search] === undefined)) {
    p.unplaced.set(item.id, item);
    if (p.unplaced.size > MAX_UNPLACED) p.unplaced.delete(p.unplaced.keys().next().value);
    return;
  }
  p.unplaced.delete(item.id);
  if (!matchesSearch(name, item)) return;
  if (name === 'customers') ui.labels.set(item.id, item.name);
  if (p.loading) p.touched.set(item.id, item);
  if (insertInOrder(name, item) && ui.tab === name) renderList();
}

/** Whether an item matches its list's search, if there is one. */
function matchesSearch(name, item) {
  const p = ui.pages[name];
  return !p.search || searchKey(String(item[LISTS[name].search] ?? '')).startsWith(searchKey(p.search));
}

/** How many items a list reads one by one at once, when a change makes them match its search. */
const MAX_JOINING = 4;

/** How many new items a list keeps aside, waiting for their sort or search field. */
const MAX_UNPLACED = 100;

/**
 * Whether item a comes before item b in the list's order: by its sort
 * field, then by id, as the server's keyset pages are.
 */
function sortsBefore(name, a, b) {
  const sort = LISTS[name].sort;
  const desc = sort.startsWith('-');
  const field = desc ? sort.slice(1) : sort;
  const c = compareText(String(a[field] ?? ''), String(b[field] ?? ''));
  if (c !== 0) return desc ? c > 0 : c < 0;
  return compareText(String(a.id), String(b.id)) < 0;
}

/**
 * Compares two texts by code point, as the server sorts them (by their
 * UTF-8 bytes), rather than by UTF-16 code unit as < does: the two differ
 * between characters beyond U+FFFF (an emoji) and those from U+E000 to
 * U+FFFF (fullwidth forms). Negative if a comes first.
 */
function compareText(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i), y = b.codePointAt(i);
    if (x !== y) return x - y;
    if (x > 0xffff) i++; // the same pair of surrogates in both
  }
  return a.length - b.length;
}

/**
 * Inserts an item where the list's order puts it on the page shown, and
 * reports whether it did: an item that sorts after the page's last while
 * more pages follow belongs to one of those, and so does one that sorts
 * before the first item of a page that is not the first.
 */
function insertInOrder(name, item) {
  const p = ui.pages[name];
  const j = p.items.findIndex((it) => sortsBefore(name, item, it));
  if (j < 0 && p.next) return false;
  if (j === 0 && p.after) return false;
  p.items.splice(j < 0 ? p.items.length : j, 0, item);
  // A page that grew well past its size is asked for again, for the
  // cursor of its new last item: the list stays a page, however many
  // items arrive.
  if (p.items.length > PAGE_SIZE * 2) readAgainSoon(name);
  return true;
}

/**
 * Replaces the i-th item of a list with its newer version, in its row, or,
 * when its sort or search field changed (renamed, say), where it now
 * belongs: out of the page if it no longer matches the search or sorts
 * onto another page, else in its new place. A page left short is read
 * again.
 */
function replaceItem(name, i, item) {
  const p = ui.pages[name];
  const L = LISTS[name];
  const sortField = L.sort.replace(/^-/, '');
  if (item[sortField] === p.items[i][sortField] && item[L.search] === p.items[i][L.search]) {
    p.items[i] = item;
    renderRow(name, item.id);
    return;
  }
  p.items.splice(i, 1);
  if (!matchesSearch(name, item) || !insertInOrder(name, item)) readAgainSoon(name);
  if (ui.tab === name) renderList();
}

/** Reads the list's page again shortly, unless that is under way. */
function readAgainSoon(name) {
  const p = ui.pages[name];
  if (p.reload || p.loading) return;
  p.reload = setTimeout(() => { p.reload = undefined; loadList(name); }, 200);
}

/** Folds a customer event into a customer list item. */
function applyCustomerEvent(it, ev) {
  const next = { ...it, seq: ev.seq };
  for (const f of ['name', 'email']) if (ev.data && f in ev.data) next[f] = ev.data[f];
  return next;
}

/**
 * Fetches one item again: when its events cannot be trusted to be
 * complete, or when an item the list does not show may have come to
 * belong to it.
 */
async function refetchItem(name, type, id) {
  const agg = await client.aggregate(type, id).catch(() => null);
  if (!agg) return;
  const p = ui.pages[name];
  const item = { id, seq: agg.seq, ...agg.state, lineage: agg.lineage };
  const i = p.items.findIndex((x) => x.id === id);
  if (i >= 0) {
    if ((p.items[i].seq ?? 0) > agg.seq) return;
    if (p.loading) p.touched.set(id, item);
    replaceItem(name, i, item);
    return;
  }
  if (!p.loaded || !matchesSearch(name, item)) return;
  if (p.loading) p.touched.set(id, item);
  if (insertInOrder(name, item) && ui.tab === name) renderList();
}

// -------------------------------------------------------------------- marks

/** Greys out an item until an event of correlation cid reaches it. */
function mark(key, cid) {
  let m = ui.marks.get(key);
  if (!m) ui.marks.set(key, (m = new Map()));
  clearTimeout(m.get(cid));
  m.set(cid, setTimeout(() => {
    unmark(key, cid);
    const [type, id] = splitKey(key);
    refetchItem(type === 'orderList' ? 'orders' : 'customers', type, id);
  }, MARK_TIMEOUT_MS));
  refreshKey(key);
}

function unmark(key, cid) {
  const m = ui.marks.get(key);
  if (!m || !m.has(cid)) return;
  clearTimeout(m.get(cid));
  m.delete(cid);
  if (m.size === 0) ui.marks.delete(key);
  refreshKey(key);
}

/** Ends every wait of correlation cid: its command was rejected or refused. */
function unmarkAll(cid) {
  for (const [key, m] of [...ui.marks]) if (m.has(cid)) unmark(key, cid);
}

function splitKey(key) {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

function refreshKey(key) {
  const [type, id] = splitKey(key);
  if (type === 'orderList') renderRow('orders', id);
  if (type === 'customer') renderRow('customers', id);
}

/**
 * Marks what a command is about to change, before it is sent: the items it
 * updates, and a placeholder for an instance it creates.
 */
function expectChanges(cmd) {
  const orders = ui.pages.orders;
  const customers = ui.pages.customers;
  if (cmd.type === 'customer') {
    if (cmd.name === 'create' && !customers.after && matchesSearch('customers', cmd.data)
      && !customers.items.some((x) => x.id === cmd.aggregateId)
      && insertInOrder('customers', { id: cmd.aggregateId, seq: 0, placeholder: true, ...cmd.data })
      && ui.tab === 'customers') {
      renderList();
    }
    mark(`customer/${cmd.aggregateId}`, cmd.id);
    if (cmd.name === 'rename') {
      // Every order item showing this customer's name will change.
      for (const it of orders.items) {
        if (it.lineage?.customerName?.aggregateId === cmd.aggregateId) mark(`orderList/${it.id}`, cmd.id);
      }
    }
  } else if (cmd.type === 'order') {
    const customerName = ui.labels.get(cmd.data.customerId) ?? '';
    if (cmd.name === 'place' && !orders.after && matchesSearch('orders', { customerName })
      && !orders.items.some((x) => x.id === cmd.aggregateId)) {
      const lines = cmd.data.lines ?? [];
      orders.items.unshift({
        id: cmd.aggregateId, seq: 0, placeholder: true,
        customerName,
        total: sumLines(lines.map((l) => ({ qty: l.qty ?? 0, price: String(l.price ?? 0) }))),
        lines: lines.length, status: 'placed', placedAt: new Date().toISOString(),
        lineage: { customerName: { type: 'customer', aggregateId: cmd.data.customerId, seq: 0 } },
      });
      if (ui.tab === 'orders') renderList();
    }
    mark(`orderList/${cmd.aggregateId}`, cmd.id);
  }
}

/** Undoes expectChanges for a command that was refused or rejected. */
function forgetChanges(cmd) {
  unmarkAll(cmd.id);
  if (cmd.name === 'create' || cmd.name === 'place') {
    const name = cmd.type === 'customer' ? 'customers' : 'orders';
    const p = ui.pages[name];
    const i = p.items.findIndex((x) => x.id === cmd.aggregateId && x.placeholder);
    if (i >= 0) {
      p.items.splice(i, 1);
      if (ui.tab === name) renderList();
    }
  }
}

// ------------------------------------------------------------------ screens

const screenEl = () => $('[data-testid=screen]');

/** The id of an instance a new screen is to create: ord-… or cus-…. */
const newScreenId = (type) => `${type === 'order' ? 'ord' : 'cus'}-${randomChars(8)}`;

/**
 * Opens the screen of one aggregate instance. options.isNew opens the form
 * that creates it; options.reopen (an outcome) fills the form of the
 * rejected command with its data and annotations; options.customerId
 * preselects the customer of a new order.
 */
async function openScreen(type, id, options = {}) {
  // A redraw keeps the unsent changes; any other opening asks first.
  if (!options.keep && !mayReplaceScreen(type, id)) return;
  ui.focusWanted = null;
  const other = ui.screen && (ui.screen.type !== type || ui.screen.id !== id);
  // A rejection reopened on screen that another screen replaces before it
  // was sent again is kept in the badge, not lost.
  if (ui.screen?.reopen && (!ui.screen.touched || (other && screenEl().querySelector(UNSENT)))) keepRejection(ui.screen.reopen);
  if (!ui.screen) ui.opener = openerOf(document.activeElement);
  // Drawn again, a customer screen keeps the orders it shows, as many as
  // its user asked for, and goes on taking the relayed ones meanwhile.
  const orders = options.keep && !other ? ui.screen?.orders : undefined;
  const gen = ++ui.generation;
  ui.screen = {
    type, id, seq: 0, gen, reopen: options.reopen, touched: false, own: new Set(options.own ?? []),
    isNew: Boolean(options.isNew), customerId: options.customerId, orders,
  };
  // A screen of its own is a step of the history; one drawn again is not.
  syncUrl(!options.keep);
  const el = screenEl();
  // A new screen is never busy with another's command.
  el.inert = false;
  el.removeAttribute('aria-busy');
  el.hidden = false;
  el.dataset.type = type;
  el.dataset.id = id;
  el.dataset.ready = 'false';
  document.body.classList.add('has-screen');
  el.replaceChildren(screenHeader(type === 'order' ? 'Order' : 'Customer', id), h('p', { class: 'empty' }, 'Loading…'));

  let agg = null;
  // A create or place rejected for what it carried was made on no instance:
  // there is none to read, and asking would only be answered 404.
  if (!options.isNew && !(options.reopen && createdNothing(options.reopen))) {
    try {
      agg = await client.aggregate(type, id);
    } catch (err) {
      if (ui.screen?.gen !== gen) return;
      // A rejection it reopens is shown nowhere now: closing this screen
      // keeps it in the badge, rather than lose it.
      ui.screen.failed = true;
      // fetch fails with a TypeError when the server cannot be reached.
      const why = err instanceof TypeError ? 'The server could not be reached.' : err.message;
      el.replaceChildren(screenHeader('Error', id), h('p', { class: 'empty error', role: 'alert' }, why, ' ',
        h('button', { type: 'button', 'data-testid': 'retry-screen', onclick: () => openScreen(type, id, options) }, 'Try again')));
      el.dataset.ready = 'true';
      return;
    }
    if (ui.screen?.gen !== gen) return;
    const creates = options.reopen && (options.reopen.name === 'create' || options.reopen.name === 'place');
    if (!agg && !creates) {
      // A link to an instance that is not there (mistyped, or made of an
      // id that was never created) says so.
      el.replaceChildren(screenHeader('Not found', id),
        h('p', { class: 'empty', 'data-testid': 'not-found', role: 'alert' }, `There is no ${type} ${id}: the link may be wrong, or it was never created.`));
      el.querySelector('[data-testid=close-screen]')?.focus();
      el.dataset.ready = 'true';
      return;
    }
  }
  ui.screen.seq = agg?.seq ?? 0;
  // A rejection reopened is based on the version its user saw when
  // sending it (its expectedSeq), not on a newer one: a change made since
  // by someone else is told as on a stale screen, and sending again meets
  // it as a conflict rather than overwriting it. (A conflict's own
  // rejection shows the current version: its annotation says so.)
  const seen = options.reopen?.expectedSeq;
  if (agg && seen != null && seen < agg.seq && !options.reopen.errors?.some((e) => e.code === 'conflict')) {
    ui.screen.seq = seen;
    if ((ui.screen.newest?.seq ?? 0) < agg.seq) ui.screen.newest = { type, aggregateId: id, seq: agg.seq };
  }
  const body = type === 'customer' ? customerScreen(id, agg) : await orderScreen(id, agg, options);
  if (ui.screen?.gen !== gen) return;
  el.replaceChildren(...body);
  if (options.keep) restoreEdits(el, options.keep);
  if (options.reopen) fillAndAnnotate(el, options.reopen);
  // A change relayed while the screen loaded may be newer than what came.
  if (agg && (ui.screen.newest?.seq ?? 0) > ui.screen.seq) showStale(ui.screen, ui.screen.newest);
  el.dataset.ready = 'true';
  // A form to fill in gets the focus; an existing instance's screen gives
  // it to its title, so that a stray Enter sends nothing (such as a cancel).
  const title = el.querySelector('[data-testid=screen-title]');
  // A rejection annotating no field (a conflict) gives the focus to the
  // first field of the form it reopens, where the user goes on; never to a
  // button, which a stray Enter would press.
  const reopened = options.reopen && el.querySelector(`form[data-command="${CSS.escape(options.reopen.name)}"]`);
  const focus = el.querySelector('[aria-invalid=true]')
    ?? reopened?.querySelector('input:not([type=hidden]):not([disabled]), select')
    ?? (agg && !options.keep ? null : el.querySelector('input:not([type=hidden]):not([disabled]), select'))
    ?? title;
  if (!focus?.matches('input, select, textarea')) title?.setAttribute('tabindex', '-1');
  // A screen drawn again (keep) takes the focus only from nowhere or from
  // itself: the user may be typing elsewhere meanwhile.
  const active = document.activeElement;
  if (!options.keep || !active || active === document.body || el.contains(active)) focus?.focus();
}

/**
 * Codes of a rejected create or place that leave open whether its instance
 * exists: it does (exists, conflict), the command may have arrived after
 * all (unreachable), or the server did not say (forbidden, internal).
 */
const INSTANCE_MAY_EXIST = new Set(['exists', 'conflict', 'unreachable', 'forbidden', 'internal']);

/**
 * Whether rejection o shows that the instance it would have made does not
 * exist: a create or place annotated for what it carried (the aggregate
 * checks that it exists first), or refused at the door, its id one a new
 * screen made afresh.
 */
function createdNothing(o) {
  return (o.name === 'create' || o.name === 'place') && !o.errors.some((e) => INSTANCE_MAY_EXIST.has(e.code));
}

/** The values of the screen's forms with changes not sent: form → field → value. */
function unsentEdits(el) {
  const edits = {};
  for (const form of el.querySelectorAll('form[data-dirty]')) {
    const fields = {};
    for (const input of form.querySelectorAll('input[name], select[name]')) fields[input.name] = input.value;
    edits[form.dataset.command] = fields;
  }
  return edits;
}

/** Puts unsentEdits back into a screen drawn again, still marked unsent. */
function restoreEdits(el, edits) {
  for (const [name, fields] of Object.entries(edits)) {
    const form = el.querySelector(`form[data-command="${CSS.escape(name)}"]`);
    if (!form) continue;
    for (const [k, v] of Object.entries(fields)) {
      const input = form.elements.namedItem(k);
      if (input && 'value' in input) input.value = v;
    }
    form.dataset.dirty = 'true';
  }
}

/**
 * What to give the focus back to when the screen closes: a list row is
 * found again by its id, as the list may have been drawn anew meanwhile.
 */
function openerOf(el) {
  const row = el?.closest?.('tr[data-id]');
  if (row && el.dataset.testid) {
    return { selector: `tr[data-testid="${CSS.escape(row.dataset.testid)}"][data-id="${CSS.escape(row.dataset.id)}"] [data-testid="${CSS.escape(el.dataset.testid)}"]` };
  }
  return { element: el };
}

/**
 * Closes the screen at the user's asking (Escape, ×). Changes typed and not
 * sent would be lost: the first asking says so, and the second closes.
 */
function askToClose() {
  if (!warnUnsent('Your changes are not sent. Close again (Escape or ×) to discard them.', 'close')) closeScreen();
}

/** A form with changes not sent: one whose command is on its way (busy) holds none. */
const UNSENT = 'form[data-dirty]:not([aria-busy])';

/**
 * Whether the screen of type/id may replace the one open: another screen
 * does not replace one with changes not sent at the first asking; the user
 * is told, and the second asking goes ahead. A rejection reopened and not
 * touched since goes to the badge instead.
 */
function mayReplaceScreen(type, id) {
  const s = ui.screen;
  if (!s || (s.reopen && !s.touched)) return true;
  const same = s.type === type && s.id === id;
  return !warnUnsent(same ? 'Your changes are not sent. Open it again to discard them and show it as stored.'
    : 'Your changes are not sent. Open the other again to discard them.', `open ${type}/${id}`);
}

/**
 * Says so on the screen if it holds changes not sent, and reports whether
 * it did: the first asking to leave them by one action (closing, opening
 * a given screen) is warned, the same asking again goes ahead.
 */
function warnUnsent(text, action) {
  const s = ui.screen;
  const el = screenEl();
  if (!s || s.discardAsked === action || !el.querySelector(UNSENT)) return false;
  s.discardAsked = action;
  el.querySelector('[data-testid=discard-notice]')?.remove();
  const header = el.querySelector('.screen-header');
  const note = h('p', { class: 'notice', role: 'alert', 'data-testid': 'discard-notice' }, text);
  if (header) header.after(note);
  else el.prepend(note);
  return true;
}

/**
 * Closes the screen, giving the focus back to what had it before, unless
 * the user has moved it elsewhere meanwhile.
 */
function closeScreen() {
  if (ui.screen?.reopen && ui.screen.failed) keepRejection(ui.screen.reopen);
  ui.screen = null;
  const el = screenEl();
  const active = document.activeElement;
  const focusHere = !active || active === document.body || el.contains(active);
  el.hidden = true;
  el.inert = false;
  el.removeAttribute('aria-busy');
  el.replaceChildren();
  delete el.dataset.type;
  delete el.dataset.id;
  document.body.classList.remove('has-screen');
  syncUrl(true);
  const opener = ui.opener;
  ui.opener = null;
  if (!focusHere) return;
  const back = opener?.selector ? $(opener.selector) : opener?.element;
  if (back?.isConnected && back !== document.body && !back.closest('[data-testid=screen]') && !back.closest('[hidden]') && !back.disabled) {
    back.focus();
  } else if (back?.closest?.('[data-testid=list]')) {
    // Its row waits for the command's events, its button disabled: the
    // list itself, rather than nowhere.
    const list = $('[data-testid=list]');
    list.setAttribute('tabindex', '-1');
    list.focus();
    ui.focusWanted = opener;
  } else {
    // What opened it is gone (an entry of the error list): the badge, or
    // the button that makes a new item.
    const badge = $('[data-testid=error-badge]');
    (badge.hidden ? $('[data-testid=new-item]') : badge).focus();
  }
}

function screenHeader(title, subtitle, extra) {
  return h('header', { class: 'screen-header' },
    h('div', {},
      h('h2', { id: 'screen-title', 'data-testid': 'screen-title' }, title),
      subtitle ? h('p', { class: 'muted mono' }, subtitle) : null),
    extra ?? null,
    h('button', { type: 'button', class: 'icon', 'data-testid': 'close-screen', 'aria-label': 'Close', onclick: askToClose }, '×'));
}

/** A notice shown when the instance on screen changes meanwhile. */
function staleNotice() {
  return h('p', { class: 'notice', 'data-testid': 'stale-notice', role: 'status', hidden: true });
}

/** A field: label, control, and room for annotations. */
function field(label, control, hint) {
  return h('div', { class: 'field' }, h('label', {}, h('span', { class: 'label' }, label), control), hint ? h('p', { class: 'hint' }, hint) : null);
}

/**
 * A form sending one command: build returns the command's data. The form
 * closes the screen once the server confirms delivery.
 */
function commandForm(type, id, name, build, ...content) {
  const form = h('form', { class: 'command', 'data-command': name, 'data-testid': `form-${name}`, novalidate: true },
    h('div', { class: 'form-errors', 'data-testid': 'form-errors' }), ...content);
  // A form with changes not sent yet keeps its screen open when another
  // form of the screen sends its command.
  form.addEventListener('input', (e) => {
    // Only the controls of the command's data make a change: a search
    // that helps to fill one in (it has no name) is not one.
    if (!e.target.name) return;
    // Typed back to what the state holds, a form has no change left.
    if (unchanged(form, build(form))) delete form.dataset.dirty;
    else form.dataset.dirty = 'true';
    // Typed after a warning: leaving is asked about again.
    if (ui.screen?.discardAsked) {
      ui.screen.discardAsked = null;
      screenEl().querySelector('[data-testid=discard-notice]')?.remove();
    }
  });
  builders.set(form, build);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (form.getAttribute('aria-busy') === 'true') return; // sent already, on its way
    const data = build(form);
    // A form that edits the state and still shows it sends nothing: there
    // is no change to make, and an event saying so would only travel.
    if (unchanged(form, data)) {
      annotate(form, [{ path: '', code: 'unchanged', message: 'Nothing to send: this is what it already is.' }]);
      form.querySelector('input, textarea, select')?.focus();
      return;
    }
    // Sent again after it was lost on the way, the same command keeps its
    // id: if the first did arrive, it is carried out once all the same.
    const lost = lostCommands.get(form);
    if (lost && JSON.stringify(lost.data) === JSON.stringify(data)) {
      send(form, lost);
      return;
    }
    const cmd = { id: newId(), type, aggregateId: id, name, data };
    if (ui.screen && ui.screen.seq > 0 && name !== 'create' && name !== 'place') cmd.expectedSeq = ui.screen.seq;
    send(form, cmd);
  });
  return form;
}

/**
 * Marks a form as an edit of the state: while its data is what the state
 * already holds (current, as the form builds it), it is not sent.
 */
function editing(current, form) {
  form.dataset.current = JSON.stringify(current);
  return form;
}

/**
 * Whether data, built from an editing form, is what the state holds. Not
 * on a screen that is out of date: what it shows is no longer what the
 * state holds, and the command goes out (to meet a conflict).
 */
function unchanged(form, data) {
  const stale = (ui.screen?.newest?.seq ?? 0) > (ui.screen?.seq ?? 0);
  return !stale && form.dataset.current !== undefined && form.dataset.current === JSON.stringify(data);
}

/** What Go's unicode.IsSpace takes for a space (JavaScript's \s also takes U+FEFF, and not U+0085). */
const SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const AROUND_NAME = new RegExp(`^[${SPACE}\\p{Cf}]+|[${SPACE}\\p{Cf}]+$`, 'gu');
const AROUND_EMAIL = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, 'gu');

/**
 * A name as the server stores it: without the spaces and invisible format
 * characters (a zero-width space) around it. Sent so, and compared so with
 * what is stored, a name with a space added is no change.
 */
const trimName = (s) => s.replace(AROUND_NAME, '');

/** An email address as the server stores it: without spaces around it. */
const trimEmail = (s) => s.replace(AROUND_EMAIL, '');

/** Form → the command it sent that was lost on the way, to send again. */
const lostCommands = new WeakMap();

/** Form → the function that builds its command's data from its fields. */
const builders = new WeakMap();

/**
 * Sends a command from a form: closes the screen once it is delivered.
 * Until then the whole screen is busy, so that no second command goes out
 * from the version the first is changing.
 */
async function send(form, cmd) {
  clearAnnotations(form);
  // The screen the command is sent from: the user may open another while
  // it is on the way, which this one's answer must leave alone.
  const s = screenEl().contains(form) ? ui.screen : null;
  const here = () => s !== null && ui.screen === s && form.isConnected;
  // A rejection reopens the screen only if none was opened since the send.
  const gen = ui.generation;
  form.setAttribute('aria-busy', 'true');
  if (s) {
    // Sent again, a reopened rejection is no longer to be shown again by
    // a reload or by coming back to this step of the history.
    if (s.reopen && !s.sentAgain) {
      s.sentAgain = true;
      markSentAgain(s.reopen.id);
      if (ui.screen === s) syncUrl();
    }
    s.own.add(cmd.id);
    screenEl().setAttribute('aria-busy', 'true');
    screenEl().inert = true;
  }
  expectChanges(cmd);
  try {
    const sent = client.submit(cmd);
    updatePending(); // pending from the moment it is sent
    await sent;
  } catch (err) {
    forgetChanges(cmd);
    let errors;
    if (err instanceof ProblemError && !err.mayHaveArrived) {
      lostCommands.delete(form);
      errors = err.errors.length ? err.errors : [{ path: '', code: 'refused', message: err.message }];
    } else {
      // Lost on the way, or the server failed: it may have arrived, and
      // is sent again under its id.
      lostCommands.set(form, cmd);
      const why = err instanceof ProblemError ? 'The server failed to confirm this' : 'The server could not be reached';
      errors = [{
        path: '', code: 'unreachable',
        message: `${why}: it may not have arrived. Send it again: it is carried out once, however often it is sent.`,
      }];
    }
    updatePending();
    if (!here()) {
      // Its screen is gone: the failure is kept in the badge, whose list
      // reopens the screen with what was sent.
      keepRejection({ ...cmd, status: 'rejected', errors, mine: true });
      return;
    }
    form.removeAttribute('aria-busy');
    screenEl().removeAttribute('aria-busy');
    screenEl().inert = false;
    annotate(form, errors);
    (form.querySelector('[aria-invalid=true]') ?? form.querySelector('button[type=submit]'))?.focus();
    return;
  }
  lostCommands.delete(form);
  ui.sent.set(cmd.id, gen);
  updatePending();
  if (!here()) return;
  const screen = screenEl();
  delete form.dataset.dirty;
  form.removeAttribute('aria-busy');
  if (!screen.querySelector('form[data-dirty]')) {
    closeScreen();
    return;
  }
  // Another form holds changes not sent yet: the screen stays, busy until
  // this command's outcome, then shows the version it made, with those
  // changes kept, so that the next command goes from it.
  s.waiting = cmd.id;
  form.querySelector('.form-errors').append(h('p', { class: 'sent-note', 'data-testid': 'sent-note' },
    `Sent: ${describe(cmd)}. Your other change is not sent yet.`));
  // No outcome for long (the relay is down): drawn again from the version
  // the store has, the changes kept, rather than left on the old one.
  s.release = setTimeout(() => {
    releaseScreen(s);
    if (ui.screen === s) redraw(s);
  }, MARK_TIMEOUT_MS);
}

/**
 * Draws screen s again from the version the store has now, keeping its
 * unsent changes and what it knows of its own commands, with the
 * rejection reopen's annotations if one is given.
 */
function redraw(s, reopen) {
  return openScreen(s.type, s.id, { keep: unsentEdits(screenEl()), own: s.own, reopen });
}

/** Ends the wait of a screen kept open for its other changes. */
function releaseScreen(s) {
  clearTimeout(s.release);
  s.waiting = null;
  if (ui.screen !== s) return;
  const el = screenEl();
  el.inert = false;
  el.removeAttribute('aria-busy');
  // The focus moves in only if it is nowhere else: the user may be typing.
  const active = document.activeElement;
  if (!active || active === document.body || el.contains(active)) {
    el.querySelector('form[data-dirty] input, form[data-dirty] select')?.focus();
  }
}

function clearAnnotations(root) {
  for (const n of root.querySelectorAll('.annotation')) n.remove();
  for (const n of root.querySelectorAll('[aria-invalid]')) {
    n.removeAttribute('aria-invalid');
    n.removeAttribute('aria-describedby');
  }
}

/** Counts the annotations shown, for their ids. */
let annotations = 0;

/**
 * Shows each annotation next to the field its path names, or atop the
 * form. A field annotated describes itself by its notes, so that a screen
 * reader tells why it is invalid, not only that it is.
 */
function annotate(form, errors) {
  clearAnnotations(form);
  for (const e of errors) {
    const note = h('p', {
      id: `annotation-${++annotations}`,
      class: `annotation${e.code === 'conflict' ? ' conflict' : ''}`, role: 'alert',
      'data-testid': 'annotation', 'data-path': e.path ?? '', 'data-code': e.code ?? '',
    }, annotationText(e, form));
    const target = e.path ? form.querySelector(`[data-path="${CSS.escape(e.path)}"]`) : null;
    if (target) {
      target.setAttribute('aria-invalid', 'true');
      target.setAttribute('aria-describedby', [target.getAttribute('aria-describedby'), note.id].filter(Boolean).join(' '));
      (target.closest('.field') ?? target.parentElement).append(note);
    } else {
      form.querySelector('.form-errors').append(note);
    }
  }
}

/** Puts a rejected command's data back into its form, with its annotations. */
function fillAndAnnotate(root, o) {
  const form = root.querySelector(`form[data-command="${CSS.escape(o.name)}"]`);
  if (!form) {
    const box = h('div', { class: 'form-errors' });
    root.querySelector('.screen-header')?.after(box);
    for (const e of o.errors) {
      box.append(h('p', { class: 'annotation', role: 'alert', 'data-testid': 'annotation', 'data-path': e.path, 'data-code': e.code }, annotationText(e)));
    }
    return;
  }
  const data = o.data ?? {};
  if (o.name === 'place') {
    setLines(form, data.lines ?? []); // the customer is chosen by newOrderScreen
  } else {
    for (const [k, v] of Object.entries(data)) {
      const input = form.elements.namedItem(k);
      if (input && 'value' in input) input.value = v ?? '';
    }
  }
  form.classList.add('reopened');
  form.dataset.dirty = 'true'; // what was sent is not carried out: unsent
  if (o.errors.some((e) => e.code === 'unreachable')) {
    // It may have arrived: sent again unchanged, it goes under its id.
    lostCommands.set(form, {
      id: o.id, type: o.type, aggregateId: o.aggregateId, name: o.name, data: o.data,
      ...(o.expectedSeq != null ? { expectedSeq: o.expectedSeq } : {}),
    });
  }
  form.prepend(h('p', { class: 'reopen-note', 'data-testid': 'reopen-note' },
    `Not done: ${describe(o)}. What you sent is kept below, with notes on what to change.`));
  annotate(form, o.errors);
}

// ---- the customer screen

function customerScreen(id, agg) {
  if (!agg) {
    return [
      screenHeader('New customer', null),
      commandForm('customer', id, 'create', (f) => ({ name: trimName(f.elements.name.value), email: trimEmail(f.elements.email.value) }),
        field('Name', h('input', { name: 'name', 'data-path': 'name', 'data-testid': 'input-name', autocomplete: 'off' })),
        field('Email', h('input', { name: 'email', type: 'email', 'data-path': 'email', 'data-testid': 'input-email', autocomplete: 'off' })),
        h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', 'data-testid': 'submit' }, 'Create customer'))),
    ];
  }
  const s = agg.state;
  ui.labels.set(id, s.name);
  const orders = customerOrders(id);

  return [
    screenHeader(s.name, `${id} · version ${agg.seq}`),
    staleNotice(),
    editing({ name: s.name }, commandForm('customer', id, 'rename', (f) => ({ name: trimName(f.elements.name.value) }),
      field('Name', h('input', { name: 'name', value: s.name, 'data-path': 'name', 'data-testid': 'input-name', autocomplete: 'off' })),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', 'data-testid': 'submit-rename' }, 'Rename')))),
    editing({ email: s.email }, commandForm('customer', id, 'changeEmail', (f) => ({ email: trimEmail(f.elements.email.value) }),
      field('Email', h('input', { name: 'email', type: 'email', value: s.email, 'data-path': 'email', 'data-testid': 'input-email', autocomplete: 'off' })),
      h('div', { class: 'actions' }, h('button', { type: 'submit', 'data-testid': 'submit-changeEmail' }, 'Change email')))),
    h('section', { class: 'panel' },
      h('div', { class: 'panel-header' },
        h('h3', {}, 'Orders'),
        h('button', {
          type: 'button', 'data-testid': 'place-order-for-customer',
          onclick: () => openScreen('order', newScreenId('order'), { isNew: true, customerId: id }),
        }, 'Place an order')),
      orders.list, orders.more),
  ];
}

/** How many of a customer's orders its screen shows at first, and adds at each asking for more. */
const CUSTOMER_ORDERS_FIRST = 5;
const CUSTOMER_ORDERS_MORE = 20;

/**
 * The orders of a customer, newest first, for its screen: the first few,
 * and a button that shows more until all are. The relay keeps them up to
 * date in place (see applyToCustomerOrders): a new order of the customer
 * joins them, a shipped or cancelled one shows so.
 */
function customerOrders(customerId) {
  const kept = ui.screen?.orders;
  if (kept?.customerId === customerId) {
    if (kept.loaded && !kept.loading) renderCustomerOrders(kept);
    return kept;
  }
  const view = {
    customerId, items: [], next: null, loaded: false, loading: false,
    /** Events relayed while a page is on its way: applied again once it is in. */
    relayed: [],
    list: h('ul', { class: 'related', 'data-testid': 'customer-orders' }, h('li', { class: 'muted' }, 'Loading…')),
    more: h('button', { type: 'button', class: 'more', 'data-testid': 'more-customer-orders', hidden: true }, 'Show more orders'),
  };
  view.more.addEventListener('click', () => loadCustomerOrders(view));
  // The screen being opened is ui.screen: its relayed events reach the view.
  if (ui.screen) ui.screen.orders = view;
  loadCustomerOrders(view);
  return view;
}

/** Reads the next page of a customer's orders, the first if none is shown yet. */
async function loadCustomerOrders(view) {
  if (view.loading) return;
  view.loading = true;
  // Not disabled, which would drop the keyboard's focus: a second asking
  // while the page is on its way goes nowhere.
  view.more.setAttribute('aria-busy', 'true');
  const shown = view.items.length;
  try {
    const page = await client.list('order', {
      eq: { customerId: view.customerId }, sort: '-placedAt',
      limit: view.loaded ? CUSTOMER_ORDERS_MORE : CUSTOMER_ORDERS_FIRST, after: view.next ?? undefined,
    });
    // The relay may have brought one of them already.
    for (const o of page.items) if (!view.items.some((x) => x.id === o.id)) view.items.push(o);
    view.next = page.next;
    view.error = null;
  } catch {
    view.error = view.loaded ? 'More orders could not be loaded.' : 'The orders could not be loaded.';
  }
  view.loaded = true;
  view.loading = false;
  const relayed = view.relayed;
  view.relayed = [];
  for (const ev of relayed) applyToCustomerOrders(view, ev, false);
  const asked = document.activeElement === view.more;
  renderCustomerOrders(view);
  // Shown more, the focus goes to the first of those added, rather than
  // staying on a button that may have gone.
  if (shown > 0 && asked) {
    view.list.querySelectorAll('[data-testid=open-customer-order]')[shown]?.focus();
  }
}

function renderCustomerOrders(view) {
  const items = view.items.map((o) => h('li', { 'data-testid': 'customer-order', 'data-id': o.id },
    screenLink('order', o.id, { class: 'link mono', 'data-testid': 'open-customer-order' }, o.id),
    ' ', h('span', { class: `status status-${o.status}`, 'data-testid': 'order-status' }, o.status), ' ', amount(o.total, o.currency)));
  if (items.length === 0 && !view.error) items.push(h('li', { class: 'muted' }, 'No orders yet.'));
  if (view.error) items.push(h('li', { class: 'muted', role: 'alert' }, view.error));
  view.list.replaceChildren(...items);
  view.more.hidden = !view.next && !view.error;
  view.more.removeAttribute('aria-busy');
  view.more.textContent = view.error ? 'Try again' : 'Show more orders';
}

/**
 * Applies a relayed order event to the open customer screen's orders, in
 * place: an order shown takes its new status, a new order of the customer
 * joins them where it sorts (unless more pages follow it). An event that
 * shows an earlier one was missed has the order read again.
 */
function applyToCustomerOrders(view, ev, render = true) {
  // While a page is on its way, the event is applied again once it is in,
  // to the orders that page brings.
  if (view.loading) view.relayed.push(ev);
  if (!view.loaded) return;
  const i = view.items.findIndex((o) => o.id === ev.aggregateId);
  if (i >= 0) {
    const it = view.items[i];
    if (ev.seq <= (it.seq ?? 0)) return;
    if (ev.seq > (it.seq ?? 0) + 1) {
      refetchCustomerOrder(view, ev.aggregateId);
      return;
    }
    view.items[i] = applyOrderEvent(it, ev);
  } else if (ev.name === 'placed' && ev.seq === 1 && ev.data?.customerId === view.customerId) {
    const it = applyOrderEvent({ id: ev.aggregateId, seq: 0 }, ev);
    const j = view.items.findIndex((o) => placedBefore(it, o));
    if (j < 0 && view.next) return; // it belongs to a page not shown yet
    view.items.splice(j < 0 ? view.items.length : j, 0, it);
  } else {
    return;
  }
  if (render) renderCustomerOrders(view);
}

/** Whether order a comes before order b, newest first, as the server sorts by -placedAt. */
function placedBefore(a, b) {
  const c = compareText(String(a.placedAt ?? ''), String(b.placedAt ?? ''));
  return c !== 0 ? c > 0 : compareText(String(a.id), String(b.id)) < 0;
}

/** Folds an order event into an order as the customer screen lists it. */
function applyOrderEvent(it, ev) {
  const next = { ...it, seq: ev.seq };
  if (ev.name === 'placed') {
    for (const f of ['customerId', 'total', 'currency', 'placedAt']) if (ev.data && f in ev.data) next[f] = ev.data[f];
    next.status = 'placed';
  } else if (ev.name === 'shipped' || ev.name === 'cancelled') {
    next.status = ev.name;
  }
  return next;
}

/** Reads one order of a customer screen again, when its events cannot be trusted to be complete. */
async function refetchCustomerOrder(view, id) {
  const agg = await client.aggregate('order', id).catch(() => null);
  const i = view.items.findIndex((o) => o.id === id);
  if (!agg || i < 0 || (view.items[i].seq ?? 0) >= agg.seq) return;
  view.items[i] = { id, seq: agg.seq, ...agg.state };
  if (ui.screen?.orders === view) renderCustomerOrders(view);
}

// ---- the order screen

async function orderScreen(id, agg, options) {
  if (!agg) return newOrderScreen(id, options);
  const s = agg.state;
  const placed = s.status === 'placed';
  const customerName = h('span', {}, ui.labels.get(s.customerId) ?? s.customerId);
  client.aggregate('customer', s.customerId).then((c) => {
    if (c) customerName.textContent = c.state.name;
  }).catch(() => {});
  return [
    screenHeader(`Order ${id}`, `version ${agg.seq}`,
      h('span', { class: `status status-${s.status}`, 'data-testid': 'order-status' }, s.status)),
    staleNotice(),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Customer'),
      h('dd', {}, screenLink('customer', s.customerId, { class: 'link', 'data-testid': 'open-order-customer' }, customerName)),
      h('dt', {}, 'Placed'), h('dd', {}, when(s.placedAt)),
      h('dt', {}, 'Total'), h('dd', { 'data-testid': 'order-total' }, amount(s.total, s.currency))),
    h('table', { class: 'lines-view' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Article'), h('th', { class: 'num' }, 'Qty'), h('th', { class: 'num' }, 'Price'), h('th', { class: 'num' }, 'Amount'))),
      h('tbody', {}, (s.lines ?? []).map((l) => h('tr', {},
        h('td', {}, l.sku), h('td', { class: 'num' }, l.qty), h('td', { class: 'num' }, money(l.price)), h('td', { class: 'num' }, money(sumLines([l]))))))),
    commandForm('order', id, 'ship', () => ({}),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary', 'data-testid': 'submit-ship', disabled: !placed }, 'Ship order'))),
    commandForm('order', id, 'cancel', (f) => ({ reason: f.elements.reason.value }),
      field('Reason for cancelling', h('input', { name: 'reason', 'data-path': 'reason', 'data-testid': 'input-reason', disabled: !placed, autocomplete: 'off' })),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'danger', 'data-testid': 'submit-cancel', disabled: !placed }, 'Cancel order'))),
  ];
}

async function newOrderScreen(id, options) {
  const select = h('select', { name: 'customerId', 'data-path': 'customerId', 'data-testid': 'select-customer', 'aria-label': 'Customer' });
  const search = h('input', {
    type: 'search', placeholder: 'Find a customer by name', 'aria-label': 'Find a customer',
    'data-testid': 'customer-search', autocomplete: 'off',
  });
  const lines = h('tbody', { 'data-testid': 'lines' });
  // Not announced on every key typed: read when the user goes to it.
  const total = h('output', { 'data-testid': 'total-preview', 'aria-live': 'off' }, '0.00');
  const form = commandForm('order', id, 'place', (f) => ({
    customerId: f.elements.customerId.value,
    lines: [...lines.querySelectorAll('tr')].map((tr) => ({
      sku: tr.querySelector('[name=sku]').value.trim(),
      qty: given(tr.querySelector('[name=qty]').value),
      price: given(tr.querySelector('[name=price]').value),
    })),
  }),
  field('Customer', h('div', { class: 'picker' }, search, select)),
  h('div', { class: 'field lines-field' },
    h('span', { class: 'label' }, 'Lines'),
    h('table', { class: 'lines-edit', 'data-path': 'lines' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Article'), h('th', {}, 'Qty'), h('th', {}, 'Price'), h('th', {}, h('span', { class: 'visually-hidden' }, 'Remove')))),
      lines),
    h('button', { type: 'button', 'data-testid': 'add-line', onclick: () => { addLine(form); form.querySelector('tbody tr:last-child input')?.focus(); } }, '+ Add a line')),
  h('p', { class: 'total' }, 'Total ', total),
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', 'data-testid': 'submit' }, 'Place order')));
  form.addEventListener('input', () => updateTotal(form));
  addLine(form);

  let searchTimer;
  // Enter in the search box searches at once; it does not send the order.
  search.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault();
    clearTimeout(searchTimer);
    loadCustomerOptions(select, search.value, select.value);
  });
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => loadCustomerOptions(select, search.value, select.value), 200);
  });
  await loadCustomerOptions(select, '', options.customerId ?? options.reopen?.data?.customerId ?? '');
  return [screenHeader('New order', id), form];
}

/**
 * The number typed in a field, or undefined (left out of the command) when
 * none is, so that the server annotates it as required rather than take 0.
 * A decimal comma is a decimal point (1,5 is 1.5); text that is no number
 * is sent as it is, for the server to say so beside the field.
 */
function given(s) {
  const t = decimalPoint(s);
  if (t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

/** s trimmed, with a decimal comma made a point: "1,5" → "1.5". */
function decimalPoint(s) {
  const t = String(s).trim();
  return /^-?\d*,\d+$/.test(t) ? t.replace(',', '.') : t;
}

/** Fills the customer picker with the customers whose name starts with prefix, case and accents aside, keeping chosen selected. */
async function loadCustomerOptions(select, prefix, chosen) {
  select.dataset.loading = 'true';
  const q = { sort: 'name', limit: 50, fields: ['name'] };
  if (prefix) q.search = { name: prefix };
  let items = [];
  try {
    items = (await client.list('customer', q)).items;
  } catch {
    // the picker keeps what it had
  }
  if (chosen && !items.some((c) => c.id === chosen)) {
    const c = await client.aggregate('customer', chosen).catch(() => null);
    items.unshift({ id: chosen, name: c?.state.name ?? chosen });
  }
  for (const c of items) ui.labels.set(c.id, c.name);
  select.replaceChildren(h('option', { value: '' }, items.length ? 'Choose a customer…' : 'No customer found'),
    ...items.map((c) => h('option', { value: c.id, selected: c.id === chosen }, c.name)));
  if (!chosen && prefix && items.length === 1) select.value = items[0].id;
  select.dataset.loading = 'false';
}

function addLine(form, line = { sku: '', qty: 1 }) {
  const tbody = form.querySelector('[data-testid=lines]');
  const tr = h('tr', { 'data-testid': 'line' },
    h('td', { 'data-label': 'Article' }, h('div', { class: 'field' }, h('input', { name: 'sku', value: line.sku, 'aria-label': 'Article', placeholder: 'SKU', autocomplete: 'off' }))),
    h('td', { 'data-label': 'Qty' }, h('div', { class: 'field' }, h('input', { name: 'qty', type: 'number', min: 1, step: 1, value: line.qty, 'aria-label': 'Quantity', inputmode: 'numeric' }))),
    h('td', { 'data-label': 'Price' }, h('div', { class: 'field' }, h('input', { name: 'price', type: 'text', value: line.price, 'aria-label': 'Price', inputmode: 'decimal', autocomplete: 'off', placeholder: '0.00' }))),
    h('td', {}, h('button', {
      type: 'button', class: 'icon', 'aria-label': 'Remove this line', 'data-testid': 'remove-line',
      onclick: () => {
        // The focus goes to the neighbouring line's remove button, or to
        // the button that adds one, rather than nowhere.
        const near = (tr.nextElementSibling ?? tr.previousElementSibling)?.querySelector('[data-testid=remove-line]');
        tr.remove();
        numberLines(form);
        updateTotal(form);
        (near ?? form.querySelector('[data-testid=add-line]'))?.focus();
      },
    }, '×')));
  tbody.append(tr);
  numberLines(form);
  updateTotal(form);
}

/** What each input of an order line is, for people. */
const LINE_LABELS = { sku: 'Article', qty: 'Quantity', price: 'Price' };

/**
 * Gives each line's inputs the paths the server's annotations use, and
 * names with the line's number ("Article, line 2", "Remove line 2"), so
 * that the lines' controls can be told apart without seeing them.
 */
function numberLines(form) {
  form.querySelectorAll('[data-testid=lines] tr').forEach((tr, i) => {
    for (const input of tr.querySelectorAll('input')) {
      input.dataset.path = `lines[${i}].${input.name}`;
      input.setAttribute('aria-label', `${LINE_LABELS[input.name]}, line ${i + 1}`);
    }
    tr.querySelector('[data-testid=remove-line]')?.setAttribute('aria-label', `Remove line ${i + 1}`);
  });
}

function setLines(form, lines) {
  form.querySelector('[data-testid=lines]').replaceChildren();
  for (const l of lines) addLine(form, l);
  if (lines.length === 0) updateTotal(form);
}

function updateTotal(form) {
  const lines = [...form.querySelectorAll('[data-testid=lines] tr')].map((tr) => ({
    qty: tr.querySelector('[name=qty]').value.trim() || '0',
    price: decimalPoint(tr.querySelector('[name=price]').value) || '0',
  }));
  form.querySelector('[data-testid=total-preview]').textContent = money(sumLines(lines));
}

// ------------------------------------------------------------------ outcomes

/**
 * A command of this tab that never reached the server (the page was
 * reloaded while it was being sent, say): kept in the badge, whose list
 * reopens its screen with what it carried, to send it again.
 */
function onUndelivered(cmd) {
  ui.sent.delete(cmd.id);
  updatePending();
  if (ui.rejections.some((r) => r.outcome.id === cmd.id)) return;
  keepRejection({
    ...cmd, status: 'rejected', mine: true,
    errors: [{ path: '', code: 'unreachable', message: 'It never reached the server. Send it again: it is carried out once, however often it is sent.' }],
  });
}

function onOutcome(o) {
  if (!o.mine) return;
  const gen = ui.sent.get(o.id) ?? 0; // 0: sent before this page was loaded
  ui.sent.delete(o.id);
  updatePending();
  // A badge entry of the same command (it failed on the way, and did
  // arrive) gives way to its outcome.
  const stale = ui.rejections.length;
  ui.rejections = ui.rejections.filter((r) => r.outcome.id !== o.id);
  if (ui.rejections.length !== stale) renderRejections();
  const s = ui.screen;
  if (s?.waiting === o.id) {
    // The screen stayed open for the user's other changes: it is drawn
    // again from the version the outcome left, with those changes kept,
    // and the rejection's annotations if it was one.
    releaseScreen(s);
    if (o.status === 'rejected') forgetChanges(o);
    else toast(`Done: ${describe(o)}`, 'ok');
    redraw(s, o.status === 'rejected' ? o : undefined);
    return;
  }
  // A command whose answer was lost, on the screen still: its outcome is
  // known now.
  const lostOn = s && [...screenEl().querySelectorAll('form')].find((f) => lostCommands.get(f)?.id === o.id);
  if (lostOn) {
    const lost = lostCommands.get(lostOn);
    lostCommands.delete(lostOn);
    const build = builders.get(lostOn);
    if (build && JSON.stringify(build(lostOn)) !== JSON.stringify(lost.data)) {
      // The user has typed since: their fields stay as they are, with what
      // became of the command beside them.
      if (o.status === 'rejected') {
        forgetChanges(o);
        annotate(lostOn, o.errors);
        return;
      }
      // Done: drawn again from the version it made, what was typed kept.
      const name = lostOn.dataset.command;
      redraw(s).then(() => {
        const form = screenEl().querySelector(`form[data-command="${CSS.escape(name)}"]`);
        if (form) annotate(form, [{ path: '', code: 'done', message: `It did arrive: ${describe(o)} is done. What you typed since is below, not sent.` }]);
      });
      return;
    }
    if (o.status === 'accepted') {
      toast(`Done: ${describe(o)}`, 'ok');
      delete lostOn.dataset.dirty;
      if (!screenEl().querySelector('form[data-dirty]')) closeScreen();
      else redraw(s);
    } else {
      forgetChanges(o);
      redraw(s, o);
    }
    return;
  }
  if (o.status === 'accepted') {
    toast(`Done: ${describe(o)}`, 'ok');
    return; // the marks go when the events arrive
  }
  forgetChanges(o);
  // Reopened only for a user who has not moved on: no other screen opened,
  // and not typing somewhere else, whose keys would land in the screen.
  const busy = document.activeElement?.matches?.('input, textarea, select, [contenteditable]');
  // A command sent before a reload, whose screen the reloaded page opened
  // again from its URL: the screen it was sent from, still untouched.
  const sentFrom = gen === 0 && ui.screen?.type === o.type && ui.screen.id === o.aggregateId
    && !ui.screen.touched && !ui.screen.reopen && !screenEl().querySelector(UNSENT);
  if (((!ui.screen && ui.generation === gen) || sentFrom) && !busy) {
    openScreen(o.type, o.aggregateId, { reopen: o });
  } else {
    keepRejection(o);
  }
}

/**
 * Tells on screen s that its instance has changed since the version it
 * shows, ev being the newest change, with a way to show the current one.
 */
function showStale(s, ev) {
  const notice = $('[data-testid=stale-notice]', screenEl());
  if (!notice) return; // still loading: told once drawn, if still so
  notice.hidden = false;
  notice.replaceChildren(`This ${ev.type} was changed meanwhile (${ev.name ? `${ev.name}, ` : ''}now version ${ev.seq}). `,
    h('button', { type: 'button', class: 'link', 'data-testid': 'reload-screen', onclick: () => redraw(s) }, 'Show the current version'));
}

/** Counts a rejection in the badge, whose list reopens its screen. */
function keepRejection(o) {
  // Reopened from a step of the history, and kept again on leaving it.
  if (ui.rejections.some((r) => r.outcome.id === o.id)) return;
  ui.rejections.push({ outcome: o, at: new Date() });
  renderRejections();
  toast(`Rejected: ${describe(o)}`, 'error');
}

function onEvent(ev) {
  const s = ui.screen;
  if (s && s.type === ev.type && s.id === ev.aggregateId) {
    if ((s.newest?.seq ?? 0) < ev.seq) s.newest = ev;
    if (s.own.has(ev.correlationId) && ev.seq === s.seq + 1) {
      s.seq = ev.seq; // the user's own change, made from this screen
    } else if (ev.seq > s.seq) {
      showStale(s, ev);
    }
  }
  if (ev.type === 'order' && s?.orders) applyToCustomerOrders(s.orders, ev);
  if (ev.type === 'orderList') applyToList('orders', ev, applyViewEvent);
  else if (ev.type === 'customer') applyToList('customers', ev, applyCustomerEvent);
  unmark(`${ev.type}/${ev.aggregateId}`, ev.correlationId);
}

/** Takes a rejection out of the badge: its screen reopens it. */
function dropRejection(id) {
  const n = ui.rejections.length;
  ui.rejections = ui.rejections.filter((r) => r.outcome.id !== id);
  if (ui.rejections.length !== n) renderRejections();
}

/** Where the ids of the rejections sent again are kept, for the steps of the history that reopened them. */
const SENT_AGAIN_KEY = 'orderdesk.sentAgain';

/** The ids of the rejections sent again in this tab, the latest last. */
function sentAgain() {
  try {
    const ids = JSON.parse(sessionStorage.getItem(SENT_AGAIN_KEY) ?? '[]');
    return Array.isArray(ids) ? ids : [];
  } catch {
    return [];
  }
}

/** Records that the rejection id was sent again: no step of the history reopens it any more. */
function markSentAgain(id) {
  try {
    // A tab's history holds 50 steps or so: the last 200 ids are plenty.
    sessionStorage.setItem(SENT_AGAIN_KEY, JSON.stringify([...sentAgain().filter((x) => x !== id), id].slice(-200)));
  } catch {
    // storage full or refused: the step may reopen it, as before
  }
}

/** Where the badge's rejections are kept, so that a reload of the tab keeps them. */
const REJECTIONS_KEY = 'orderdesk.rejections';

function saveRejections() {
  try {
    sessionStorage.setItem(REJECTIONS_KEY, JSON.stringify(ui.rejections.map((r) => ({ outcome: r.outcome, at: r.at.toISOString() }))));
  } catch {
    // No storage, or full: they are kept for as long as the page is.
  }
}

function loadRejections() {
  try {
    const kept = JSON.parse(sessionStorage.getItem(REJECTIONS_KEY) ?? '[]');
    if (!Array.isArray(kept)) return [];
    return kept.filter((r) => r?.outcome?.id && Array.isArray(r.outcome.errors)).map((r) => ({ outcome: r.outcome, at: Number.isNaN(Date.parse(r.at)) ? new Date() : new Date(r.at) }));
  } catch {
    return [];
  }
}

function renderRejections() {
  const n = ui.rejections.length;
  saveRejections();
  const badge = $('[data-testid=error-badge]');
  badge.hidden = n === 0;
  $('[data-testid=error-count]').textContent = String(n);
  const panel = $('[data-testid=error-list]');
  if (n === 0) toggleRejections(false);
  // An entry with the keyboard focus keeps it when the list is drawn
  // again, or gives it to the one now in its place.
  const ul = panel.querySelector('ul');
  const entries = () => [...ul.querySelectorAll('[data-testid=error-item]')];
  const focused = ul.contains(document.activeElement) ? document.activeElement : null;
  const focusedAt = focused ? entries().indexOf(focused) : -1;
  ul.replaceChildren(...ui.rejections.map((r, i) => h('li', {},
    h('button', {
      type: 'button', class: 'error-item', 'data-testid': 'error-item', 'data-command-id': r.outcome.id,
      onclick: () => {
        // The focus leaves the entry, about to go, for the badge: what the
        // screen gives it back to on closing (or, with no rejection left,
        // the new-item button).
        toggleRejections(false);
        // Kept while the open screen's unsent changes hold it back.
        if (!mayReplaceScreen(r.outcome.type, r.outcome.aggregateId)) return;
        ui.rejections.splice(i, 1);
        renderRejections();
        openScreen(r.outcome.type, r.outcome.aggregateId, { reopen: r.outcome });
      },
    },
    h('strong', {}, describe(r.outcome)),
    h('span', {}, r.outcome.errors.map((e) => annotationText(e)).join(' · ')),
    h('time', { class: 'muted' }, r.at.toLocaleTimeString())))));
  if (focused && !panel.hidden) {
    const now = entries();
    (now.find((b) => b.dataset.commandId === focused.dataset.commandId) ?? now[Math.min(focusedAt, now.length - 1)])?.focus();
  }
}

function toggleRejections(show) {
  const panel = $('[data-testid=error-list]');
  const badge = $('[data-testid=error-badge]');
  const open = show ?? panel.hidden;
  const focusWasIn = panel.contains(document.activeElement);
  panel.hidden = !open;
  badge.setAttribute('aria-expanded', String(open));
  // Closed with the focus inside: back to the badge, or, when no
  // rejection is left, to the button that makes a new item.
  if (!open && focusWasIn) (badge.hidden ? $('[data-testid=new-item]') : badge).focus();
}

function updatePending() {
  const n = client.pending().length;
  const el = $('[data-testid=pending-count]');
  el.hidden = n === 0;
  el.textContent = `${n} pending`;
}

function onStatus(status, info) {
  const el = $('[data-testid=connection]');
  el.dataset.state = status;
  const labels = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', closed: 'Offline' };
  el.querySelector('.connection-label').textContent = labels[status] ?? status;
  // A stream started afresh says nothing of what happened before it: the
  // list is read again once, rather than trusted. A list that could not
  // be loaded while the server was out of reach is read again too.
  const p = ui.pages[ui.tab];
  if (status === 'live' && info && p.loaded && (!info.resumed || p.error)) loadList(ui.tab);
}

// ---------------------------------------------------------------------- URL

// What the page shows is in its URL's hash, so that a reload shows it
// again, a link or a bookmark opens it, and Back and Forward go through it:
//
//   #/orders                          the order list (#/customers: the customers)
//   #/orders?q=Ann&page=2             searched for names starting with "Ann", its second page
//   #/orders/order/ord-1              with the screen of order ord-1 open
//   #/orders/customer/cus-1           with the screen of customer cus-1 open
//   #/customers/new/customer          with the screen that creates a customer
//   #/customers/new/order?customer=cus-1   that places an order for cus-1
//
// Opening a screen, closing it and going to another page are steps of the
// history; typing a search is not (it replaces the step it is in).

/** The types a screen shows. */
const SCREEN_TYPES = new Set(['order', 'customer']);

/** What a hash asks to show: {tab, search, page, screen: null or {type, id} or {type, isNew, customerId}}. */
function parseRoute(hash) {
  const raw = hash.replace(/^#\/?/, '');
  const at = raw.indexOf('?');
  const decode = (x) => {
    try {
      return decodeURIComponent(x);
    } catch {
      return x; // a stray %: taken as it is
    }
  };
  const parts = (at < 0 ? raw : raw.slice(0, at)).split('/').map(decode);
  const params = new URLSearchParams(at < 0 ? '' : raw.slice(at + 1));
  let screen = null;
  if (parts[1] === 'new' && SCREEN_TYPES.has(parts[2])) {
    screen = { type: parts[2], isNew: true, customerId: parts[2] === 'order' ? params.get('customer') || undefined : undefined };
  } else if (SCREEN_TYPES.has(parts[1]) && parts[2]) {
    screen = { type: parts[1], id: parts[2] };
  }
  return {
    tab: LISTS[parts[0]] ? parts[0] : 'orders',
    search: (params.get('q') ?? '').trim(),
    page: Math.max(1, Number.parseInt(params.get('page'), 10) || 1),
    screen,
  };
}

/** The hash of a route, as parseRoute reads it. */
function hashOf(r) {
  let path = `#/${r.tab}`;
  if (r.screen?.isNew) path += `/new/${r.screen.type}`;
  else if (r.screen) path += `/${r.screen.type}/${encodeURIComponent(r.screen.id)}`;
  const q = new URLSearchParams();
  if (r.search) q.set('q', r.search);
  if (r.page > 1) q.set('page', String(r.page));
  if (r.screen?.isNew && r.screen.customerId) q.set('customer', r.screen.customerId);
  const query = q.toString();
  return query ? `${path}?${query}` : path;
}

/** The screen open, as a route has it. */
function screenRoute() {
  const s = ui.screen;
  if (!s) return null;
  return s.isNew ? { type: s.type, isNew: true, customerId: s.customerId } : { type: s.type, id: s.id };
}

/** What the page shows now, as a route. */
function shownRoute(tab = ui.tab) {
  const p = ui.pages[tab];
  return { tab, search: p.search, page: p.cursors.length + 1, screen: screenRoute() };
}

/** Whether a route's screen is the one open. */
function isShown(screen) {
  const s = ui.screen;
  if (!screen || !s) return !screen && !s;
  return screen.isNew ? Boolean(s.isNew) && s.type === screen.type : !s.isNew && s.type === screen.type && s.id === screen.id;
}

/** True while the page follows its URL: what it shows is then written back in the same step. */
let following = false;

/**
 * Writes what the page shows into its URL, as a new step of the history
 * (push) or in the step it is in. A screen that reopens a rejection keeps
 * it in its step, so that a reload or coming back to it shows it again.
 */
function syncUrl(push = false) {
  renderTabLinks();
  const hash = hashOf(shownRoute());
  const state = ui.screen?.reopen && !ui.screen.sentAgain ? { reopen: ui.screen.reopen } : null;
  if (hash === location.hash && JSON.stringify(state) === JSON.stringify(history.state)) return;
  if (push && !following && hash !== location.hash) history.pushState(state, '', hash);
  else history.replaceState(state, '', hash);
}

/** Each tab links to its list as it was left, with the screen open kept. */
function renderTabLinks() {
  for (const a of document.querySelectorAll('.tab')) a.href = hashOf(shownRoute(a.dataset.tab));
}

/**
 * Shows what the URL asks for: the list, its search and page, and the
 * screen. A screen with changes not sent is not left at the first asking
 * (see warnUnsent): the URL goes back to it, as a step of its own, and the
 * same asking again goes ahead.
 */
function followUrl() {
  const r = parseRoute(location.hash);
  following = true;
  try {
    const p = ui.pages[r.tab];
    const tabChanged = r.tab !== ui.tab;
    const searchChanged = r.search !== p.search;
    if (searchChanged) {
      p.search = r.search;
      p.cursors = [];
      p.after = null;
    }
    const pageChanged = r.page !== p.cursors.length + 1;
    setPage(r.tab, r.page);
    if (tabChanged || searchChanged || pageChanged || !p.loaded) {
      ui.tab = r.tab;
      renderList();
      loadList(r.tab, { busy: p.loaded && (searchChanged || pageChanged) });
    }
    if (!isShown(r.screen)) {
      const refused = r.screen
        ? !mayReplaceScreen(r.screen.type, r.screen.id ?? 'new')
        : warnUnsent('Your changes are not sent. Go back again, or close the screen, to discard them.', 'close');
      if (refused) {
        following = false;
        syncUrl(true);
        return;
      }
      if (!r.screen) {
        closeScreen();
      } else {
        // A step that reopened a rejection reopens it again (after a reload, say).
        // One sent again since, from another step or the badge, is not.
        const reopen = history.state?.reopen;
        const reopens = reopen && !r.screen.isNew && reopen.type === r.screen.type && reopen.aggregateId === r.screen.id
          && !sentAgain().includes(reopen.id);
        if (reopens) dropRejection(reopen.id);
        openScreen(r.screen.type, r.screen.isNew ? newScreenId(r.screen.type) : r.screen.id, {
          isNew: r.screen.isNew, customerId: r.screen.customerId, reopen: reopens ? reopen : undefined,
        });
      }
    }
    syncUrl(); // a hash written otherwise (#orders, an id escaped otherwise) is written as hashOf does
  } finally {
    following = false;
  }
}

// --------------------------------------------------------------------- start

function start() {
  ui.rejections = loadRejections();
  if (ui.rejections.length) renderRejections();
  client.onOutcome(onOutcome);
  client.onUndelivered(onUndelivered);
  client.onEvent(onEvent);
  client.onStatus(onStatus);
  client.onPending(updatePending);

  // Back, Forward, a link followed, a hash typed: the page shows what the
  // URL says. (Both may come of one step: the second finds nothing to do.)
  window.addEventListener('popstate', followUrl);
  window.addEventListener('hashchange', followUrl);
  // Closing or reloading the tab over changes not sent, or while a command
  // is on its way: the browser asks first, as closing the screen does. (A
  // page reloaded meanwhile still follows the command; a tab closed does
  // not, and its user would never hear of its outcome.)
  window.addEventListener('beforeunload', (e) => {
    if (ui.screen && screenEl().querySelector(`${UNSENT}, form[aria-busy]`)) e.preventDefault();
  });
  $('[data-testid=new-item]').addEventListener('click', (e) => {
    const type = e.currentTarget.dataset.kind === 'customers' ? 'customer' : 'order';
    openScreen(type, newScreenId(type), { isNew: true });
  });
  let searchTimer;
  $('[data-testid=search]').addEventListener('input', (e) => {
    clearTimeout(searchTimer);
    const value = e.target.value.trim();
    searchTimer = setTimeout(() => {
      const p = ui.pages[ui.tab];
      p.search = value;
      p.after = null;
      p.cursors = [];
      loadList(ui.tab, { busy: true });
      syncUrl(); // in the step it is in: typing is no step of the history
    }, 250);
  });
  $('[data-testid=next-page]').addEventListener('click', () => {
    const p = ui.pages[ui.tab];
    if (!p.next) return;
    // Until the next page is in there is no further page to go to, and a
    // second click goes nowhere. (The button stays enabled, so that it
    // keeps the keyboard's focus.)
    setPage(ui.tab, p.cursors.length + 2);
    loadList(ui.tab, { busy: true });
    syncUrl(true);
  });
  $('[data-testid=prev-page]').addEventListener('click', () => {
    const p = ui.pages[ui.tab];
    if (p.cursors.length === 0) return;
    setPage(ui.tab, p.cursors.length);
    loadList(ui.tab, { busy: true });
    syncUrl(true);
  });
  $('[data-testid=error-badge]').addEventListener('click', () => toggleRejections());
  // A click anywhere else closes the error list, as Escape does.
  document.addEventListener('pointerdown', (e) => {
    const panel = $('[data-testid=error-list]');
    if (!panel.hidden && !panel.contains(e.target) && !$('[data-testid=error-badge]').contains(e.target)) toggleRejections(false);
  });
  $('[data-testid=clear-errors]').addEventListener('click', () => {
    ui.rejections = [];
    renderRejections();
  });
  // A reopened rejection the user has worked on is theirs to close.
  for (const kind of ['input', 'pointerdown', 'keydown']) {
    screenEl().addEventListener(kind, () => { if (ui.screen) ui.screen.touched = true; });
  }
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    // In a search box with text, Escape clears that search, and only that:
    // the screen stays. In an empty one, it closes the screen as elsewhere.
    const box = e.target.closest?.('input[type=search]');
    if (box && box.value !== '') {
      e.preventDefault(); // cleared here, where what it filters hears of it
      box.value = '';
      box.dispatchEvent(new Event('input', { bubbles: true }));
      return;
    }
    if (!$('[data-testid=error-list]').hidden) toggleRejections(false);
    else if (ui.screen) askToClose();
  });

  // What a command of this tab, sent before a reload, is still to change
  // is greyed again until the command has its outcome.
  for (const { command: cmd } of client.pending()) {
    if (cmd.type === 'customer') mark(`customer/${cmd.aggregateId}`, cmd.id);
    else if (cmd.type === 'order') mark(`orderList/${cmd.aggregateId}`, cmd.id);
  }
  followUrl();
  updatePending();
  client.connect();
}

start();

// For the curious, and for the end-to-end tests: the client and the state.
window.orderdesk = { client, ui };
