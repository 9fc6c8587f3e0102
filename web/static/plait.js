/**
 * plait.js — the browser client of a Plait application.
 *
 * A user interface built on Plait never waits for a command to be carried
 * out: it submits the command, learns that the server has stored it durably
 * ("confirmed delivery", HTTP 202), and moves on. The command's outcome — its
 * events, or its rejection with annotations — arrives later over the relay,
 * a Server-Sent Events stream that also carries the events that keep lists
 * up to date.
 *
 * This module does the bookkeeping that makes that safe:
 *
 * - every command gets a client-generated id (a ULID), its idempotency key;
 * - the commands this tab has submitted and whose outcome it has not yet
 *   seen are kept in sessionStorage, so that a page reloaded while one is
 *   pending asks the server for its outcome (GET /commands/{id}) and still
 *   reports it; another tab of the same browser has its own;
 * - a command whose POST failed on the way (the network, not the server)
 *   may have arrived: it stays pending until the server says whether it
 *   knows it, and submitting it again under the same id is safe;
 * - outcomes and events come over one EventSource, which is reopened after a
 *   failure with the last frame id it saw, so nothing is missed; the id is
 *   kept in sessionStorage too, so a reloaded page resumes where it left off;
 * - when the stream was down, or has been quiet about a command for a few
 *   seconds, the pending commands are asked for by id: every command gets
 *   its outcome, never silence.
 *
 * It needs no framework and no build step:
 *
 * ```html
 * <script type="module">
 *   import { Client } from '/plait.js';
 *   const plait = new Client({ types: ['customer'] });
 *   plait.onOutcome((o) => console.log(o.id, o.status, o.errors));
 *   plait.connect();
 *   const sent = await plait.submit({
 *     type: 'customer', aggregateId: 'cus-1', name: 'create',
 *     data: { name: 'Ann Lee', email: 'ann@example.com' },
 *   });
 *   // delivered: close the screen; later, maybe:
 *   const outcome = await sent.outcome; // status "accepted" or "rejected"
 * </script>
 * ```
 *
 * The file is an ES module: load it with `<script type="module">` or
 * `import`, as above.
 *
 * @module plait
 */

/** Crockford's base 32, the alphabet of ULIDs. */
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * Returns a new ULID: 26 characters, sortable by creation time (to the
 * millisecond), with 80 random bits. Valid as a Plait command or aggregate id.
 *
 * @param {number} [now] milliseconds since the epoch; Date.now() by default
 * @returns {string}
 */
export function newId(now = Date.now()) {
  let time = '';
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[now % 32] + time;
    now = Math.floor(now / 32);
  }
  return time + randomChars(16);
}

/**
 * Returns n random characters of Crockford's base 32.
 *
 * @param {number} n
 * @returns {string}
 */
export function randomChars(n) {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  let s = '';
  for (const b of bytes) s += CROCKFORD[b % 32];
  return s;
}

/**
 * The form in which a list's search compares text, as the server's
 * (plait.SearchKey) near enough to tell whether an item changed on the
 * page still matches: decomposed, without marks, invisible format
 * characters and leading spaces, case folded. "Zoë" and "ZOE" have one key, as have "Straße" and "STRASSE"; "Işık" is "isık",
 * the dotless ı being a letter of its own.
 *
 * @param {string} s
 * @returns {string}
 */
export function searchKey(s) {
  // Without marks, invisible format characters and leading spaces.
  const unmarked = (t) => t.normalize('NFKD').replace(/[\p{Mn}\p{Cf}]/gu, '').replace(/^\s+/u, '');
  // Lower case, and what Unicode's full case folding does beyond it:
  // ß is ss, a final sigma is a sigma.
  return unmarked(unmarked(s).toLowerCase().replace(/ß/g, 'ss').replace(/ς/g, 'σ'));
}

/**
 * An HTTP answer other than success, with its RFC 9457 problem details.
 * For a command refused at the door (malformed, unknown type, too large, not
 * allowed) nothing was stored. A server error (5xx, from the server or a
 * proxy) is not a refusal: the command may have been stored, and
 * `mayHaveArrived` says so.
 */
export class ProblemError extends Error {
  /**
   * @param {number} status the HTTP status
   * @param {{type?: string, title?: string, detail?: string, errors?: FieldError[]}} problem
   */
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = 'ProblemError';
    /** @type {number} */
    this.status = status;
    /** The problem document as received. */
    this.problem = problem;
    /** @type {FieldError[]} the annotations, if the problem has any */
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    /** Whether the request may have been carried out all the same (a 5xx). */
    this.mayHaveArrived = status >= 500;
  }
}

/**
 * @typedef {object} FieldError one annotation of a rejected command
 * @property {string} path the field it concerns: "name", "lines[0].qty";
 *   "" for the whole command, "expectedSeq" for a conflict
 * @property {string} code required, invalid, too_long, exists, not_found,
 *   invalid_state, conflict, …
 * @property {string} message for people
 */

/**
 * @typedef {object} Command what a user asks of one aggregate instance
 * @property {string} [id] the idempotency key; a ULID is made if missing
 * @property {string} type the aggregate type
 * @property {string} aggregateId the instance
 * @property {string} name the command's name
 * @property {object} [data] the command's data
 * @property {number} [expectedSeq] the instance's seq the user saw: the
 *   command is rejected with code "conflict" if the instance has moved on
 */

/**
 * @typedef {object} Outcome what became of one command
 * @property {string} id the command's id
 * @property {string} type
 * @property {string} aggregateId
 * @property {string} name
 * @property {object} data the command's data, as submitted
 * @property {number} [expectedSeq]
 * @property {'accepted'|'rejected'} status
 * @property {FieldError[]} errors empty unless rejected
 * @property {object[]} [events] the command's events, when the outcome was
 *   asked for by id (over the stream they come as events of their own)
 * @property {string} [correlationId]
 * @property {boolean} mine whether this tab submitted the command (before a reload too)
 */

/**
 * @typedef {object} PlaitEvent a fact recorded by one aggregate instance
 * @property {string} id
 * @property {string} type
 * @property {string} aggregateId
 * @property {number} seq numbers the instance's events from 1, no gaps
 * @property {string} name
 * @property {object} data
 * @property {string} correlationId shared by everything one user command set off
 * @property {string} causationId the command that caused it
 * @property {string} user
 * @property {string} at
 * @property {Object<string, Lineage>} [lineage] for view aggregates: where
 *   each field the event sets comes from
 */

/**
 * @typedef {object} Lineage where a field of a view item comes from
 * @property {string} type the contributing aggregate type
 * @property {string} aggregateId the contributing instance
 * @property {number} seq the seq of the event that set the field
 */

/**
 * @typedef {object} Submission a command whose delivery is confirmed
 * @property {string} id the command's id
 * @property {Command} command the command as sent
 * @property {Promise<Outcome>} outcome settles when the outcome is known
 */

/**
 * @typedef {object} ListQuery
 * @property {Object<string, string>} [eq] field → value the field equals
 * @property {Object<string, string>} [prefix] field → prefix the field starts with
 * @property {Object<string, string>} [search] field → what the field starts
 *   with, case and accents aside (see searchKey); the field is one its type
 *   declares searchable, or personal data
 * @property {string} [sort] a field, "-field" for descending; by id if missing
 * @property {string[]} [fields] the fields to return; all by default
 * @property {number} [limit] the page size
 * @property {string} [after] the cursor of the previous page (its `next`)
 */

/** How long after delivery a command is asked for by id if no outcome came. */
const ASK_AFTER_MS = 3000;

/**
 * How long a POST of a command may take before it is taken as lost on the
 * way (it may have arrived: it stays pending, and may be sent again).
 */
const SUBMIT_TIMEOUT_MS = 30000;

/** The longest token the stream is given in a cookie rather than its URL. */
const MAX_COOKIE_TOKEN = 3500;
/**
 * How long a command a server failed on (a 5xx) is asked for while the
 * server does not know it: it may still be on its way into the store.
 */
const UNCERTAIN_MS = 60000;
/**
 * Whether the page is going away (reloaded, closed, navigated from): a
 * request it cuts off may have reached the server, and the next page asks
 * for it as for one a server failed on. Set at beforeunload, whose leaving
 * the user may still refuse: then it clears a few seconds later.
 */
let leaving = false;
if (typeof window !== 'undefined' && window.addEventListener) {
  let stay;
  window.addEventListener('beforeunload', () => {
    leaving = true;
    clearTimeout(stay);
    stay = setTimeout(() => { leaving = false; }, 3000);
  });
  window.addEventListener('pagehide', () => { leaving = true; clearTimeout(stay); });
  window.addEventListener('pageshow', () => { leaving = false; });
}

/** How long a query may take before it fails, rather than hang. */
const QUERY_TIMEOUT_MS = 30000;
/** The longest pause between two attempts to reopen the stream. */
const MAX_RETRY_MS = 10000;

/**
 * A connection to one Plait server: commands, queries and the relay.
 *
 * Listeners registered with {@link Client#onOutcome}, {@link Client#onEvent}
 * and {@link Client#onStatus} are called synchronously, in arrival order;
 * each returns a function that unregisters it.
 */
export class Client {
  /** @type {string} */ #base;
  /** @type {string|(() => string|undefined)|undefined} */ #token;
  /** @type {string[]|undefined} */ #types;
  /** @type {Storage|null} */ #storage;
  /** @type {string} */ #key;
  /** @type {number} */ #unknownAfterMs;
  /** @type {EventSource|null} */ #source = null;
  #status = 'closed';
  #retryMs = 500;
  /** @type {ReturnType<typeof setTimeout>|undefined} */ #retryTimer;
  /** @type {ReturnType<typeof setInterval>|undefined} */ #askTimer;
  #wanted = false;
  #listeners = { outcome: new Set(), event: new Set(), status: new Set(), pending: new Set(), undelivered: new Set() };
  /** Commands being posted by this page: id → outcome if it came first. */
  #inflight = new Map();
  /** Outcome promises: id → {promise, resolve}. */
  #waiters = new Map();
  /** Recent outcomes, by command id, so a late outcome(id) still settles. */
  #done = new Recent(500);
  /** Recent event ids, so an event relayed twice is reported once. */
  #seenEvents = new Recent(5000);
  /** Commands being asked for by id right now. */
  #asking = new Set();

  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] the server's URL; this page's origin by default
   * @param {string|(() => string|undefined)} [options.token] a bearer
   *   token (JWT), or a function returning the current one, called for every
   *   request and every opening of the relay: the server ends a stream when
   *   its token expires, and the relay reopens with the token of then. The
   *   server is trusted to identify the user by a cookie or not at all
   *   otherwise
   * @param {string[]} [options.types] the aggregate types whose outcomes and
   *   events to follow; all the user may see by default
   * @param {Storage|null} [options.storage] where pending commands and the
   *   resume token are kept; sessionStorage by default (this tab's, across
   *   reloads), null for nowhere
   * @param {string} [options.namespace] separates the keys of several
   *   clients sharing one storage ("plait" by default)
   * @param {number} [options.forgetUnknownAfterMs] how long after its
   *   delivery a pending command the server says it does not know (its data
   *   was reset, or this is another server) is still asked for, before it is
   *   dropped from the pending ones; 10 minutes by default, longer than a
   *   scaled-out server takes to learn of a command another instance took
   */
  constructor(options = {}) {
    this.#base = (options.baseUrl ?? '').replace(/\/$/, '');
    this.#token = options.token;
    this.#types = options.types;
    this.#storage = options.storage === undefined ? globalThis.sessionStorage ?? null : options.storage;
    this.#key = options.namespace ?? 'plait';
    this.#unknownAfterMs = options.forgetUnknownAfterMs ?? 10 * 60 * 1000;
  }

  // ---------------------------------------------------------------- commands

  /**
   * Submits a command. Resolves once the server has stored it durably (202):
   * from then on it will get exactly one outcome, reported to onOutcome
   * listeners and through the returned submission's `outcome` promise, never
   * before this promise has resolved. Rejects with a {@link ProblemError} if
   * the server refused the command at the door (nothing stored, no outcome
   * will follow). Rejects with a TypeError if the request or its answer was
   * lost on the way (a TimeoutError after 30 s without an answer), or with a ProblemError whose `mayHaveArrived` is set if
   * the server or a proxy failed (a 5xx) — the command may or may not have
   * arrived: it stays in
   * {@link Client#pending} until the server says whether it has it (its
   * outcome is then reported), and submitting it again with the same id is
   * safe: it is carried out at most once.
   *
   * @param {Command} command
   * @returns {Promise<Submission>}
   */
  async submit(command) {
    const sent = {
      id: command.id || newId(),
      type: command.type,
      aggregateId: command.aggregateId,
      name: command.name,
      data: command.data ?? {},
    };
    if (command.expectedSeq !== undefined && command.expectedSeq !== null) sent.expectedSeq = command.expectedSeq;

    // Remembered before it is posted: a page closed in between leaves an
    // entry that the next page asks the server about.
    this.#remember(sent.id, { command: sent, delivered: false, at: Date.now() });
    this.#inflight.set(sent.id, null);
    let res;
    try {
      res = await fetch(`${this.#base}/commands`, {
        method: 'POST',
        headers: this.#headers({ 'Content-Type': 'application/json' }),
        body: JSON.stringify(sent),
        signal: AbortSignal.timeout(SUBMIT_TIMEOUT_MS),
      });
    } catch (err) {
      return this.#lostOnTheWay(sent, err);
    }
    if (!res.ok) {
      const problem = await problemOf(res);
      if (problem.mayHaveArrived) return this.#lostOnTheWay(sent, problem);
      this.#inflight.delete(sent.id);
      this.#forget(sent.id);
      throw problem;
    }
    const early = this.#inflight.get(sent.id);
    this.#inflight.delete(sent.id);
    // Sent again after its answer was lost, it may have its outcome
    // already: then it is pending no more.
    if (this.#done.get(sent.id)) this.#forget(sent.id);
    else this.#remember(sent.id, { command: sent, delivered: true, at: Date.now() });
    const outcome = this.outcome(sent.id);
    // The caller hears of the delivery first, then of the outcome.
    if (early) setTimeout(() => this.#finish(early), 0);
    return { id: sent.id, command: sent, outcome };
  }

  /**
   * Ends a submission whose request or answer was lost on the way, or
   * failed in the server: the command may have been stored. It stays
   * pending, to be asked for by id, and err is thrown, unless its outcome
   * came over the relay meanwhile, which proves it stored.
   */
  #lostOnTheWay(sent, err) {
    const early = this.#inflight.get(sent.id);
    this.#inflight.delete(sent.id);
    if (!early) {
      // A server that failed after it took the command (a 5xx), or that
      // took longer than SUBMIT_TIMEOUT_MS to answer, or whose request the
      // page cut off as it went away, may yet store it,
      // later than the first asking: unknown to it for a while is no proof
      // that it never will be (UNCERTAIN_MS). A request that failed on the
      // way has almost always never arrived: unknown, it is dropped.
      const uncertain = err instanceof ProblemError || err?.name === 'TimeoutError' || err?.name === 'AbortError' || leaving;
      this.#remember(sent.id, { command: sent, delivered: false, ...(uncertain ? { uncertain } : { lost: true }), at: Date.now() });
      throw err;
    }
    this.#remember(sent.id, { command: sent, delivered: true, at: Date.now() });
    setTimeout(() => this.#finish(early), 0);
    return { id: sent.id, command: sent, outcome: this.outcome(sent.id) };
  }

  /**
   * Returns a promise of the outcome of command id: it resolves when the
   * outcome arrives, or at once if it arrived recently. A command submitted
   * by this tab before a reload is followed as well.
   *
   * @param {string} id
   * @returns {Promise<Outcome>}
   */
  outcome(id) {
    const known = this.#done.get(id);
    if (known) return Promise.resolve(known);
    let w = this.#waiters.get(id);
    if (!w) {
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      w = { promise, resolve };
      this.#waiters.set(id, w);
    }
    return w.promise;
  }

  /**
   * Returns the commands submitted from this tab whose outcome is not known
   * yet, oldest first: those lost on the way too (delivered: false) until
   * the server says whether it has them.
   *
   * @returns {{command: Command, delivered: boolean, at: number}[]}
   */
  pending() {
    return Object.values(this.#read()).sort((a, b) => a.at - b.at);
  }

  /**
   * Asks the server for the outcome of every pending command, reporting
   * those that have one. Called by itself when the stream opens and for
   * commands that have been waiting a while; call it after a reload if you
   * do not call {@link Client#connect}.
   *
   * @param {(entry: {delivered: boolean, at: number}) => boolean} [which]
   * @returns {Promise<void>}
   */
  async reconcile(which = () => true) {
    const asks = [];
    for (const [id, entry] of Object.entries(this.#read())) {
      if (this.#inflight.has(id) || this.#asking.has(id) || !which(entry)) continue;
      asks.push(this.#ask(id, entry));
    }
    await Promise.all(asks);
  }

  /** Asks for the status of one pending command and reports its outcome. */
  async #ask(id, entry) {
    this.#asking.add(id);
    try {
      const status = await this.command(id);
      if (status === null) {
        // Never arrived: it was remembered, then the page went away before
        // the server confirmed. Or the server that took it no longer has
        // it. There is no outcome to report, and none will come.
        if (Date.now() - entry.at > this.#askedForMs(entry)) {
          this.#forget(id);
          // One whose sending failed was reported to its sender then; any
          // other is told now, so that what it carried is not lost unsaid.
          if (!entry.lost) this.#emit('undelivered', entry.command);
        }
        return;
      }
      if (status.status === 'accepted' || status.status === 'rejected') {
        this.#finish({ ...entry.command, ...status, errors: status.errors ?? [] });
        // The relay may have missed them (it was down, or started afresh).
        for (const e of status.events ?? []) {
          if (!this.#types || this.#types.includes(e.type)) this.#eventFrame(e);
        }
      }
    } catch {
      // Unreachable for now: the next attempt asks again.
    } finally {
      this.#asking.delete(id);
    }
  }

  /**
   * How long after entry was remembered a pending command the server does
   * not know is still asked for: one delivered, forgetUnknownAfterMs; one
   * whose request failed on the way, not at all; one a server failed on, or
   * one a page went away from before its answer came (reloaded while it
   * was posted: the request may be in the server, or still on the way),
   * UNCERTAIN_MS at most.
   */
  #askedForMs(entry) {
    if (entry.delivered) return this.#unknownAfterMs;
    if (entry.lost) return -1;
    return Math.min(UNCERTAIN_MS, this.#unknownAfterMs);
  }

  /** Reports an outcome once, to its waiters and to the listeners. */
  #finish(outcome) {
    const id = outcome.id;
    if (this.#done.get(id)) return;
    const entry = this.#read()[id];
    if (entry && this.#inflight.has(id)) {
      this.#inflight.set(id, outcome); // reported once delivery is confirmed
      return;
    }
    const o = {
      ...(entry ? entry.command : {}),
      ...outcome,
      errors: outcome.errors ?? [],
      mine: Boolean(entry),
    };
    this.#forget(id);
    this.#done.set(id, o);
    const w = this.#waiters.get(id);
    if (w) {
      this.#waiters.delete(id);
      w.resolve(o);
    }
    this.#emit('outcome', o);
  }

  // ----------------------------------------------------------------- queries

  /**
   * Returns one page of a list of instances of an aggregate type, from the
   * materialized state: `{items, next}`, where each item is
   * `{id, seq, ...fields, lineage?}` and `next` is the cursor of the next
   * page, or null.
   *
   * @param {string} type
   * @param {ListQuery} [query]
   * @returns {Promise<{items: object[], next: string|null}>}
   */
  async list(type, query = {}) {
    const q = new URLSearchParams();
    for (const [f, v] of Object.entries(query.eq ?? {})) q.append(`eq.${f}`, v);
    for (const [f, v] of Object.entries(query.prefix ?? {})) q.append(`prefix.${f}`, v);
    for (const [f, v] of Object.entries(query.search ?? {})) q.append(`search.${f}`, v);
    if (query.sort) q.set('sort', query.sort);
    if (query.fields) q.set('fields', query.fields.join(','));
    if (query.limit) q.set('limit', String(query.limit));
    if (query.after) q.set('after', query.after);
    const page = await this.#get(`/lists/${enc(type)}?${q}`);
    return { items: page.items ?? [], next: page.next ?? null };
  }

  /**
   * Returns an aggregate instance, `{type, id, seq, state, lineage?,
   * updatedAt}`, or null if it has no events.
   *
   * @param {string} type
   * @param {string} id
   * @returns {Promise<object|null>}
   */
  aggregate(type, id) {
    return this.#get(`/aggregates/${enc(type)}/${enc(id)}`, true);
  }

  /**
   * Returns the events of an aggregate instance in seq order.
   *
   * @param {string} type
   * @param {string} id
   * @param {{after?: number, limit?: number}} [range]
   * @returns {Promise<PlaitEvent[]>}
   */
  async events(type, id, range = {}) {
    const q = new URLSearchParams();
    if (range.after) q.set('after', String(range.after));
    if (range.limit) q.set('limit', String(range.limit));
    return (await this.#get(`/aggregates/${enc(type)}/${enc(id)}/events?${q}`)) ?? [];
  }

  /**
   * Returns where a command stands, `{id, status, events | errors}`, or null
   * if the server does not know it.
   *
   * @param {string} id
   * @returns {Promise<object|null>}
   */
  command(id) {
    return this.#get(`/commands/${enc(id)}`, true);
  }

  /** GETs path as JSON; null on 404 if allowed, a ProblemError otherwise. */
  async #get(path, nullIfMissing = false) {
    const res = await fetch(this.#base + path, {
      headers: this.#headers({ Accept: 'application/json' }),
      signal: AbortSignal.timeout(QUERY_TIMEOUT_MS),
    });
    if (res.status === 404 && nullIfMissing) return null;
    if (!res.ok) throw await problemOf(res);
    return res.json();
  }

  #headers(h) {
    const token = this.#tokenNow();
    if (token) h.Authorization = `Bearer ${token}`;
    return h;
  }

  /** The token to send now: see the token option. */
  #tokenNow() {
    return typeof this.#token === 'function' ? this.#token() : this.#token;
  }

  // ------------------------------------------------------------------- relay

  /**
   * Opens the relay: one EventSource for every outcome and event of the
   * followed types. It resumes after the last frame seen (by this page, or
   * before the page was reloaded), reopens after failures with growing
   * pauses, and asks for pending commands each time it opens. Also starts
   * asking for commands that stay pending a few seconds.
   */
  connect() {
    this.#wanted = true;
    this.#open();
    if (!this.#askTimer) {
      this.#askTimer = setInterval(() => {
        // Delivered and still waiting, or lost on the way: ask by id.
        const before = Date.now() - ASK_AFTER_MS;
        this.reconcile((e) => e.at < before);
      }, ASK_AFTER_MS);
    }
    this.reconcile();
  }

  /** Closes the relay; {@link Client#connect} opens it again. */
  close() {
    this.#wanted = false;
    this.#pinning = 0; // a start being pinned is not taken
    this.#pinTried = false;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#askTimer);
    this.#askTimer = undefined;
    this.#source?.close();
    this.#source = null;
    this.#setStatus('closed');
  }

  /**
   * The relay's state: "connecting", "live", "reconnecting" or "closed".
   * @returns {string}
   */
  get status() {
    return this.#status;
  }

  /**
   * The id of the last frame received: where the stream resumes.
   * @returns {string|null}
   */
  get lastEventId() {
    return this.#storage?.getItem(`${this.#key}:lastEventId`) ?? this.#memLastId ?? null;
  }

  #memLastId = null;
  /** Whether the resume token is a start pinned for a fresh stream. */
  #pinned = false;
  /** Whether this opening has tried to pin a start already. */
  #pinTried = false;
  /** The number of the pinning in flight, 0 if none; see #pinStart. */
  #pinning = 0;
  #pinnings = 0;

  /**
   * Before a stream that starts afresh, learns from HEAD /stream the
   * position it would start after (an EventSource cannot read its own
   * answer's headers): should the stream end before its first frame, it
   * resumes from there, with nothing missed. Kept in memory only.
   */
  async #pinStart(n) {
    const q = new URLSearchParams();
    if (this.#types) q.set('types', this.#types.join(','));
    try {
      const res = await fetch(`${this.#base}/stream?${q}`, { method: 'HEAD', headers: this.#headers({}) });
      const start = res.ok ? res.headers.get('Plait-Last-Event-ID') : null;
      // Taken only by the opening that asked, still wanted: a close, or a
      // close and a connect, meanwhile leave it.
      if (start && n === this.#pinning && !this.lastEventId) {
        this.#memLastId = start;
        this.#pinned = true;
      }
    } catch {
      // unreachable: the stream's own retries take over
    }
  }

  #open() {
    if (this.#source || !this.#wanted || this.#pinning) return;
    if (!this.lastEventId && !this.#pinTried) {
      this.#pinTried = true;
      const n = ++this.#pinnings;
      this.#pinning = n;
      this.#setStatus(this.#status === 'closed' ? 'connecting' : 'reconnecting');
      this.#pinStart(n).then(() => {
        if (this.#pinning !== n) return;
        this.#pinning = 0;
        this.#open();
      });
      return;
    }
    this.#pinTried = false;
    const q = new URLSearchParams();
    if (this.#types) q.set('types', this.#types.join(','));
    const last = this.lastEventId;
    const fresh = !last || this.#pinned;
    if (last) q.set('lastEventId', last);
    const token = this.#tokenNow();
    // An EventSource cannot send a header. To a server of this page's
    // origin the token goes in a cookie of this stream's own, scoped to
    // the stream, for a minute, so that it stays out of URLs (and so out
    // of proxies' logs and the history), and no other tab's stream takes
    // it; to another origin, or too long for a cookie, in the URL.
    const cookie = token ? this.#streamCookie(token) : null;
    if (cookie) q.set('access_cookie', cookie.name);
    else if (token) q.set('access_token', token);
    // Still connecting if a pinning began it.
    this.#setStatus(this.#status === 'closed' || this.#status === 'connecting' ? 'connecting' : 'reconnecting');
    const url = `${this.#base}/stream?${q}`;
    const es = new EventSource(url);
    this.#source = es;
    let opened = false;
    es.addEventListener('open', () => {
      cookie?.clear(); // sent with the request, no longer needed
      opened = true;
      this.#retryMs = 500;
      // From its pinned start on, a stream reopened resumes.
      if (this.lastEventId === last) this.#pinned = false;
      this.#setStatus('live', { resumed: !fresh });
      // Whatever happened while the stream was down, pending commands
      // learn their outcome.
      this.reconcile();
    });
    es.addEventListener('outcome', (m) => this.#frame(m, (o) => this.#outcomeFrame(o)));
    es.addEventListener('event', (m) => this.#frame(m, (e) => this.#eventFrame(e)));
    es.addEventListener('error', () => {
      cookie?.clear();
      // Reopened by hand rather than by the EventSource, so that the URL
      // carries the latest resume token whatever the server reads first.
      es.close();
      if (this.#source !== es) return;
      this.#source = null;
      if (!this.#wanted) return;
      this.#setStatus('reconnecting');
      const retry = () => {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => this.#open(), this.#retryMs);
        this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
      };
      if (opened || !last) {
        retry();
        return;
      }
      // Refused at once with a resume token: if the server does not know
      // the token (its data was reset), start afresh rather than forever
      // retrying with it.
      this.#statusOf(url).then((status) => {
        if (status === 400 && this.lastEventId === last) {
          this.#memLastId = null;
          this.#pinned = false;
          this.#storage?.removeItem(`${this.#key}:lastEventId`);
        }
        retry();
      });
    });
  }

  /**
   * Sets a cookie of one stream's own, plait_token_NAME, holding the token
   * for the stream of a server of this page's origin, good for a minute.
   * Returns {name, clear}, or null where a cookie cannot carry it.
   */
  #streamCookie(token) {
    if (typeof document === 'undefined' || typeof location === 'undefined') return null;
    let stream;
    try {
      stream = new URL(`${this.#base}/stream`, location.href);
    } catch {
      return null;
    }
    // Browsers drop a cookie over about 4 KB without a word.
    if (stream.origin !== location.origin || token.length > MAX_COOKIE_TOKEN || !/^[A-Za-z0-9._~+/=-]+$/.test(token)) return null;
    const name = randomChars(16);
    const attrs = `Path=${stream.pathname}; SameSite=Strict${location.protocol === 'https:' ? '; Secure' : ''}`;
    document.cookie = `plait_token_${name}=${token}; Max-Age=60; ${attrs}`;
    return { name, clear: () => { document.cookie = `plait_token_${name}=; Max-Age=0; ${attrs}`; } };
  }

  /** The HTTP status a GET of url answers with, 0 if unreachable. */
  async #statusOf(url) {
    const abort = new AbortController();
    try {
      const res = await fetch(url, { signal: abort.signal, headers: this.#headers({ Accept: 'text/event-stream' }) });
      return res.status;
    } catch {
      return 0;
    } finally {
      abort.abort(); // a stream that did open is not read
    }
  }

  /** Parses a frame, hands it on, then records its id as the resume token. */
  #frame(m, handle) {
    let data;
    try {
      data = JSON.parse(m.data);
    } catch {
      return;
    }
    try {
      handle(data);
    } finally {
      if (m.lastEventId) {
        this.#memLastId = m.lastEventId;
        this.#pinned = false;
        try {
          this.#storage?.setItem(`${this.#key}:lastEventId`, m.lastEventId);
        } catch {
          // storage full or denied: resuming after a reload starts afresh
        }
      }
    }
  }

  #outcomeFrame(f) {
    if (f.status !== 'accepted' && f.status !== 'rejected') return;
    this.#finish({ ...f, errors: f.errors ?? [] });
  }

  #eventFrame(e) {
    if (this.#seenEvents.get(e.id)) return;
    this.#seenEvents.set(e.id, true);
    this.#emit('event', e);
  }

  // --------------------------------------------------------------- listeners

  /**
   * Calls fn with every outcome: of the commands of this tab (with
   * `mine: true`, exactly once each, including after a reload), and of the
   * other commands of the followed types that the relay brings.
   *
   * @param {(o: Outcome) => void} fn
   * @returns {() => void} unregisters fn
   */
  onOutcome(fn) {
    return this.#on('outcome', fn);
  }

  /**
   * Calls fn with every event of the followed types, once each: those the
   * relay brings, and those of this tab's commands whose outcome was
   * asked for by id (the relay may have missed them).
   *
   * @param {(e: PlaitEvent) => void} fn
   * @returns {() => void} unregisters fn
   */
  onEvent(fn) {
    return this.#on('event', fn);
  }

  /**
   * Calls fn when the relay's state changes, with the new state and, when
   * it becomes "live", `{resumed}`: false when the stream started afresh, so
   * that what happened before is not known from it (reload the lists).
   *
   * @param {(status: string, info?: {resumed: boolean}) => void} fn
   * @returns {() => void} unregisters fn
   */
  onStatus(fn) {
    return this.#on('status', fn);
  }

  /**
   * Calls fn whenever a command leaves {@link Client#pending}: its outcome
   * came, or the server turned out never to have had it.
   *
   * @param {() => void} fn
   * @returns {() => void} unregisters fn
   */
  onPending(fn) {
    return this.#on('pending', fn);
  }

  /**
   * Calls fn with a command of this tab that left {@link Client#pending}
   * without an outcome: the server never had it (the page went away while
   * it was being sent, say) or no longer has it (its data was reset), after
   * asking for it long enough. No outcome will come for it; sending it
   * again, under its id, carries it out once. A command whose sending
   * failed is not reported here: its sender was told then.
   *
   * @param {(command: Command) => void} fn
   * @returns {() => void} unregisters fn
   */
  onUndelivered(fn) {
    return this.#on('undelivered', fn);
  }

  #on(kind, fn) {
    this.#listeners[kind].add(fn);
    return () => this.#listeners[kind].delete(fn);
  }

  #emit(kind, ...args) {
    for (const fn of [...this.#listeners[kind]]) {
      try {
        fn(...args);
      } catch (err) {
        console.error(`plait: ${kind} listener:`, err);
      }
    }
  }

  #setStatus(status, info) {
    if (status === this.#status && status !== 'live') return;
    this.#status = status;
    this.#emit('status', status, info);
  }

  // ----------------------------------------------------------------- storage

  /** The pending commands as stored: id → entry. */
  #read() {
    if (!this.#storage) return this.#mem;
    try {
      return JSON.parse(this.#storage.getItem(`${this.#key}:pending`) || '{}');
    } catch {
      return {};
    }
  }

  #mem = {};

  /** Stores one entry, merging with what other pages may have stored. */
  #remember(id, entry) {
    const all = this.#read();
    all[id] = entry;
    this.#write(all);
  }

  #forget(id) {
    const all = this.#read();
    if (!(id in all)) return;
    delete all[id];
    this.#write(all);
    this.#emit('pending');
  }

  #write(all) {
    if (!this.#storage) {
      this.#mem = all;
      return;
    }
    try {
      this.#storage.setItem(`${this.#key}:pending`, JSON.stringify(all));
    } catch {
      this.#mem = all;
    }
  }
}

/**
 * Returns a view item with a view event applied: each field the event sets
 * (the keys of its lineage) takes the value of the same name in the event's
 * data, and its lineage. The seq becomes the event's. The item is not
 * changed; an event not newer than the item returns the item itself.
 *
 * This is the convention of Plait's view aggregates: an event of a view
 * carries the fields it sets under their state names.
 *
 * @template {{seq?: number, lineage?: Object<string, Lineage>}} T
 * @param {T} item
 * @param {PlaitEvent} event
 * @returns {T}
 */
export function applyViewEvent(item, event) {
  if ((item.seq ?? 0) >= event.seq) return item;
  const next = { ...item, seq: event.seq, lineage: { ...(item.lineage ?? {}) } };
  for (const [field, source] of Object.entries(event.lineage ?? {})) {
    if (event.data && field in event.data) next[field] = event.data[field];
    next.lineage[field] = source;
  }
  return next;
}

/** Reads a failed response as a ProblemError. */
async function problemOf(res) {
  let problem;
  try {
    problem = await res.json();
  } catch {
    problem = { title: res.statusText || `HTTP ${res.status}` };
  }
  if (typeof problem !== 'object' || problem === null) problem = { title: String(problem) };
  return new ProblemError(res.status, problem);
}

function enc(s) {
  return encodeURIComponent(s);
}

/** A map that keeps its most recent entries only. */
class Recent {
  #max;
  #map = new Map();

  constructor(max) {
    this.#max = max;
  }

  get(k) {
    return this.#map.get(k);
  }

  set(k, v) {
    this.#map.set(k, v);
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value);
  }
}
