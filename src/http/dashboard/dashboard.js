// heartwatch dashboard: live from /api/v1/events, initial state from /api/v1/clients.
//
// No framework, no build step, no external fetch: the server compiles this file into its
// binary. Everything the server sends is written with textContent, never parsed as HTML.
//
// The event stream is read with fetch() rather than EventSource, because EventSource cannot
// send an Authorization header: this way the token (auth.http_token) travels in a header, as
// for every other request, and never in a URL where proxies, logs and browser history keep it.
'use strict';

(() => {
  const TOKEN_KEY = 'heartwatch.token';
  const PAGE_SIZE = 50;
  const FEED_MAX = 200;
  const LIST_PAGE = 1000;
  const RENDER_EVERY_MS = 200;
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 30000;

  // The state an event kind puts its client in, when the event does not say (`state`).
  // Kinds not listed here (and events without a `proj`) only go to the feed, and a client's
  // record is re-read once when it gets an event of an unknown kind.
  const EVENT_STATE = {
    online: 'online', offline: 'offline', late: 'late', paused: 'paused',
    resumed: 'online', flapping: 'flapping', stable: 'online',
  };
  // Sort order of states: trouble first. Unknown states sort after these, by name.
  const STATE_RANK = { offline: 0, late: 1, flapping: 2, paused: 3, online: 4 };
  const KNOWN_STATES = ['online', 'late', 'flapping', 'paused', 'offline'];
  // Offline reasons in words; others are shown as sent, underscores as spaces.
  const REASONS = { offline: 'sent offline', timeout_after_restart: 'timeout after restart' };
  const reasonText = (r) => (r == null ? '' : REASONS[r] ?? String(r).replace(/_/g, ' '));

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  /** proj -> client: {proj, state, lastSeen (ms), timeout_ms, addr, node, since, reason, record} */
  const clients = new Map();
  const view = {
    filter: '', state: '', sort: 'state', desc: false, page: 0,
    rows: [], // the filtered, sorted clients of the last render
    active: 0, // index on the page of the row that takes the focus (roving tabindex)
    selected: null, // proj shown in the detail panel
  };
  let token = sessionStorage.getItem(TOKEN_KEY);
  let dirty = false;
  let renderTimer = null;
  let lastRender = 0;
  let renderCost = 0; // how long the last render took, in ms
  let retryMs = RETRY_MIN_MS;
  let stream = null; // the AbortController of the open event stream
  let running = false; // whether run() is looping
  let seenNode = false;
  let feedQueue = []; // events not yet in the feed: it is drawn with the table, not per event

  // ------------------------------------------------------------------ formatting

  function parseTime(text) {
    if (typeof text !== 'string') return null;
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? null : ms;
  }

  function fmtDuration(ms) {
    if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    let s = ms / 1000;
    if (s < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
    s = Math.round(s);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), r = s % 60;
    if (d) return h ? `${d} d ${h} h` : `${d} d`;
    if (h) return m ? `${h} h ${m} m` : `${h} h`;
    return r ? `${m} m ${r} s` : `${m} m`;
  }

  function fmtAgo(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return `${s} s ago`;
    return `${fmtDuration(s * 1000)} ago`;
  }

  /** "Last seen" of a client. The dashboard learns of heartbeats only through events: an
   *  online client whose last known heartbeat is older than its timeout has beaten since
   *  (its watchdog would have fired otherwise), so it is shown as "< timeout ago". */
  function lastSeenText(c, now) {
    if (c.lastSeen == null) return '';
    const age = now - c.lastSeen;
    if (c.state === 'online' && c.timeout_ms && age > c.timeout_ms) {
      return `< ${fmtDuration(c.timeout_ms)} ago`;
    }
    return fmtAgo(age);
  }

  // One formatter: toLocaleTimeString() builds a new one per call, which costs more than
  // everything else the feed does.
  const clockFormat = new Intl.DateTimeFormat(undefined, {
    hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
  });

  function fmtClock(ms) {
    if (ms == null) return '';
    return clockFormat.format(ms);
  }

  // ------------------------------------------------------------------ filtering

  /** A proj filter: text without glob characters matches anywhere, ignoring case; a glob
   *  (`*`, `?`, `[a-z]`, `[!a-z]`) must match the whole proj, with case, like the
   *  server's auth.proj_tokens patterns. */
  function compileFilter(text) {
    if (!text) return () => true;
    if (!/[*?[]/.test(text)) {
      const needle = text.toLowerCase();
      return (proj) => proj.toLowerCase().includes(needle);
    }
    let re = '^';
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (ch === '*') re += '.*';
      else if (ch === '?') re += '.';
      else if (ch === '[') {
        const end = text.indexOf(']', i + 2);
        if (end < 0) { re += '\\['; continue; }
        let set = text.slice(i + 1, end);
        const negate = set.startsWith('!');
        if (negate) set = set.slice(1);
        re += `[${negate ? '^' : ''}${set.replace(/[\\\]^]/g, '\\$&')}]`;
        i = end;
      } else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }
    try {
      const compiled = new RegExp(`${re}$`, 'u');
      return (proj) => compiled.test(proj);
    } catch (_) {
      return () => false;
    }
  }

  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  const rank = (s) => (s in STATE_RANK ? STATE_RANK[s] : 10);
  // The proj order, computed with the (slow) collator once per change of the set of clients
  // rather than in every comparison: a render with 10,000 clients then sorts on integers.
  let projRank = new Map();
  let projsChanged = true;
  function rankProjs() {
    if (!projsChanged) return;
    const all = [...clients.keys()].sort(collator.compare);
    projRank = new Map(all.map((proj, i) => [proj, i]));
    projsChanged = false;
  }
  const SORTS = {
    proj: (a, b) => projRank.get(a.proj) - projRank.get(b.proj),
    state: (a, b) => rank(a.state) - rank(b.state) || collator.compare(a.state, b.state),
    last_seen: (a, b) => (b.lastSeen ?? 0) - (a.lastSeen ?? 0),
    timeout_ms: (a, b) => (a.timeout_ms ?? 0) - (b.timeout_ms ?? 0),
    addr: (a, b) => collator.compare(a.addr ?? '', b.addr ?? ''),
    node: (a, b) => collator.compare(a.node ?? '', b.node ?? ''),
  };

  // ------------------------------------------------------------------ the model

  function fromRecord(record) {
    if (!record || typeof record.proj !== 'string') return;
    let c = clients.get(record.proj);
    if (!c) { c = { proj: record.proj, events: 0 }; projsChanged = true; }
    c.record = record;
    c.state = typeof record.state === 'string' ? record.state : (c.state ?? 'online');
    const seen = parseTime(record.last_seen);
    if (seen != null) c.lastSeen = seen;
    if (typeof record.timeout_ms === 'number') c.timeout_ms = record.timeout_ms;
    if (record.addr != null) c.addr = String(record.addr);
    if (record.node != null) { c.node = String(record.node); seenNode = true; }
    if (c.state !== 'offline') c.reason = undefined;
    clients.set(c.proj, c);
  }

  function applyEvent(ev) {
    feedQueue.push(ev);
    markDirty();
    if (typeof ev.proj !== 'string') return;
    let c = clients.get(ev.proj);
    if (!c) {
      c = { proj: ev.proj, state: 'online', events: 0 };
      clients.set(ev.proj, c);
      projsChanged = true;
    }
    c.events = (c.events ?? 0) + 1;
    const at = parseTime(ev.at) ?? Date.now();
    const next = typeof ev.state === 'string' ? ev.state : EVENT_STATE[ev.event];
    if (next) c.state = next;
    // Events do not carry the whole record (timeout, heartbeats, ...): read it once.
    if (!next || c.state !== 'offline') wantRecord(ev.proj);
    if (ev.addr != null) c.addr = String(ev.addr);
    if (ev.node != null) { c.node = String(ev.node); seenNode = true; }
    if (typeof ev.timeout_ms === 'number') c.timeout_ms = ev.timeout_ms;
    // Events read before the snapshot was applied are older than it: never move back.
    let seen = parseTime(ev.last_seen);
    if (seen == null && (ev.event === 'online' || ev.event === 'resumed')) seen = at;
    if (seen != null) c.lastSeen = Math.max(c.lastSeen ?? seen, seen);
    c.reason = c.state === 'offline' ? ev.reason : undefined;
    c.since = at;
    c.lastEvent = ev.event;
    markDirty();
    if (view.selected === ev.proj) renderDetail();
  }

  /** A whole snapshot from /api/v1/clients. A client the dashboard knew as not offline
   *  that the server no longer lists went offline while the stream was down. */
  function applySnapshot(records) {
    const listed = new Set();
    for (const record of records) {
      fromRecord(record);
      if (record && typeof record.proj === 'string') listed.add(record.proj);
    }
    for (const c of clients.values()) {
      if (!listed.has(c.proj) && c.state !== 'offline') {
        c.state = 'offline';
        c.reason = 'missed while disconnected';
        c.since = Date.now();
      }
    }
    markDirty();
  }

  // ------------------------------------------------------------------ HTTP

  class Unauthorized extends Error {}

  function headers() {
    const h = { Accept: 'application/json' };
    if (token) h.Authorization = `Bearer ${token}`;
    return h;
  }

  async function getJson(path) {
    const res = await fetch(path, { headers: headers(), cache: 'no-store' });
    if (res.status === 401) throw new Unauthorized();
    if (res.status === 404) return { status: 404, body: null };
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return { status: res.status, body: await res.json() };
  }

  /** Every client, a page of LIST_PAGE at a time. */
  async function loadAll() {
    const all = [];
    let after = null;
    for (;;) {
      const q = new URLSearchParams({ limit: String(LIST_PAGE) });
      if (after != null) q.set('after', after);
      const { body } = await getJson(`/api/v1/clients?${q}`);
      if (!Array.isArray(body)) throw new Error('/api/v1/clients: not a list');
      all.push(...body);
      if (body.length < LIST_PAGE) return all;
      after = body[body.length - 1].proj;
    }
  }

  /** The number of events `proj` has had: a record read while another event arrived may
   *  be older than that event, and is dropped. */
  const eventsOf = (proj) => clients.get(proj)?.events ?? 0;

  /** Re-reads the record of `proj`. */
  async function refreshOne(proj) {
    const before = eventsOf(proj);
    try {
      const { status, body } = await getJson(`/api/v1/clients/${encodeURIComponent(proj)}`);
      if (status === 200 && eventsOf(proj) === before) { fromRecord(body); markDirty(); }
      if (view.selected === proj) renderDetail();
    } catch (e) {
      if (e instanceof Unauthorized) askToken(true);
    }
  }

  // Records to re-read, gathered for a moment: a burst of events (a fleet restarting) costs
  // one paged read of the list instead of one request per client.
  const wanted = new Set();
  let wantTimer = null;
  const WANT_BATCH_MS = 100;
  const WANT_ONE_BY_ONE = 20;

  function wantRecord(proj) {
    wanted.add(proj);
    if (wantTimer == null) wantTimer = setTimeout(readWanted, WANT_BATCH_MS);
  }

  async function readWanted() {
    wantTimer = null;
    const projs = [...wanted];
    wanted.clear();
    if (projs.length <= WANT_ONE_BY_ONE) {
      await Promise.all(projs.map(refreshOne));
      return;
    }
    const before = new Map(projs.map((p) => [p, eventsOf(p)]));
    try {
      for (const record of await loadAll()) {
        if (record && before.get(record.proj) === eventsOf(record.proj)) fromRecord(record);
      }
      markDirty();
    } catch (e) {
      if (e instanceof Unauthorized) askToken(true);
    }
  }

  /** Splits a text/event-stream body into events: calls `onEvent(name, data)` for each,
   *  and `onOpen()` at the first block (the server's greeting comment). */
  async function readStream(res, onOpen, onEvent) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let opened = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n?/g, '\n');
      // One split per chunk: a chunk may hold thousands of events (a fleet restarting).
      const blocks = buf.split('\n\n');
      buf = blocks.pop();
      for (const block of blocks) {
        if (!opened) { opened = true; await onOpen(); }
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') name = val;
          else if (field === 'data') data.push(val);
        }
        if (data.length) onEvent(name, data.join('\n'));
      }
    }
  }

  /** One life of the event stream: subscribe, read the snapshot (buffering the events that
   *  arrive meanwhile), then apply events as they come. Returns when the stream ends. */
  async function follow() {
    stream = new AbortController();
    setConn('connecting', 'connecting…');
    const res = await fetch('/api/v1/events', {
      headers: { ...headers(), Accept: 'text/event-stream' },
      cache: 'no-store',
      signal: stream.signal,
    });
    if (res.status === 401) throw new Unauthorized();
    if (!res.ok) throw new Error(`/api/v1/events: HTTP ${res.status}`);
    let buffered = [];
    const onEvent = (name, data) => {
      if (name === 'lagged') {
        setConn('reconnecting', 'fell behind the stream, reloading…');
        stream.abort();
        return;
      }
      if (name !== 'message') return;
      let ev;
      try { ev = JSON.parse(data); } catch (_) { return; }
      if (!ev || typeof ev !== 'object') return;
      if (buffered) buffered.push(ev);
      else applyEvent(ev);
    };
    const onOpen = async () => {
      // Subscribed: from here on no event is missed, so the snapshot cannot be stale.
      applySnapshot(await loadAll());
      const pending = buffered;
      buffered = null;
      pending.forEach(applyEvent);
      retryMs = RETRY_MIN_MS;
      $('forget-token').hidden = !token;
      setConn('live', 'live');
    };
    await readStream(res, onOpen, onEvent);
  }

  async function run() {
    if (running) { if (stream) stream.abort(); return; }
    running = true;
    for (;;) {
      try {
        await follow();
        setConn('reconnecting', 'stream ended, reconnecting…');
      } catch (e) {
        if (e instanceof Unauthorized) {
          askToken(Boolean(token));
          running = false;
          return; // the token dialog starts run() again
        }
        setConn('reconnecting', `disconnected (${e.message || e}), retrying in ${Math.round(retryMs / 1000)} s`);
      }
      await new Promise((r) => setTimeout(r, retryMs * (0.8 + Math.random() * 0.4)));
      retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
    }
  }

  // ------------------------------------------------------------------ rendering

  function setConn(status, text) {
    const conn = $('conn');
    conn.dataset.status = status;
    conn.textContent = text;
  }

  function markDirty() {
    dirty = true;
    if (renderTimer != null) return;
    // At least RENDER_EVERY_MS apart, and four times as long as a render takes: with tens of
    // thousands of clients a render (filter, sort) takes tens of ms, and a burst of events
    // must still leave the page most of its time to answer the keyboard and the mouse.
    const every = Math.max(RENDER_EVERY_MS, 4 * renderCost);
    const wait = Math.max(0, lastRender + every - performance.now());
    renderTimer = setTimeout(() => {
      renderTimer = null;
      requestAnimationFrame(render);
    }, wait);
  }

  function badge(state) {
    const b = el('span', 'badge', state);
    b.dataset.state = state;
    return b;
  }

  /** state -> its count button, created once (so that keyboard focus stays on it). */
  const countButtons = new Map();

  function renderCounts() {
    const counts = new Map(KNOWN_STATES.map((s) => [s, 0]));
    for (const c of clients.values()) counts.set(c.state, (counts.get(c.state) ?? 0) + 1);
    for (const [state, n] of [['', clients.size], ...counts]) {
      let b = countButtons.get(state);
      if (!b) {
        b = el('button');
        b.type = 'button';
        b.dataset.count = state || 'all';
        b.append(el('span', 'n'), state ? badge(state) : el('span', null, 'all clients'));
        b.addEventListener('click', () => setStateFilter(view.state === state ? '' : state));
        const li = el('li');
        li.append(b);
        $('counts').append(li);
        countButtons.set(state, b);
      }
      b.firstChild.textContent = String(n);
      b.setAttribute('aria-pressed', String(view.state === state));
    }
    // The state filter offers every state there is, known or new.
    const select = $('state-filter');
    const have = new Set([...select.options].map((o) => o.value));
    for (const state of counts.keys()) {
      if (!have.has(state)) select.append(new Option(state, state));
    }
    select.value = view.state;
  }

  function ensureRows() {
    const body = $('rows');
    while (body.children.length < PAGE_SIZE) {
      const tr = el('tr');
      tr.hidden = true;
      tr.tabIndex = -1;
      for (const cls of ['proj', 'state', 'seen', 'timeout', 'addr', 'node']) tr.append(el('td', cls));
      tr.addEventListener('click', () => select(tr.dataset.proj, Number(tr.dataset.index)));
      body.append(tr);
    }
    return body.children;
  }

  function render() {
    dirty = false;
    lastRender = performance.now();
    const match = compileFilter(view.filter);
    const rows = [];
    for (const c of clients.values()) {
      if ((!view.state || c.state === view.state) && match(c.proj)) rows.push(c);
    }
    rankProjs();
    const cmp = SORTS[view.sort] ?? SORTS.proj;
    rows.sort((a, b) => {
      const r = cmp(a, b) || SORTS.proj(a, b);
      return view.desc ? -r : r;
    });
    view.rows = rows;
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    view.page = Math.min(view.page, pages - 1);
    const first = view.page * PAGE_SIZE;
    const shown = rows.slice(first, first + PAGE_SIZE);
    view.active = Math.min(view.active, Math.max(0, shown.length - 1));

    const table = $('clients');
    table.classList.toggle('with-node', seenNode);
    const trs = ensureRows();
    const now = Date.now();
    const focused = document.activeElement;
    for (let i = 0; i < PAGE_SIZE; i++) {
      const tr = trs[i];
      const c = shown[i];
      if (!c) { tr.hidden = true; tr.removeAttribute('data-proj'); continue; }
      tr.hidden = false;
      tr.dataset.proj = c.proj;
      tr.dataset.state = c.state;
      tr.dataset.index = String(i);
      tr.tabIndex = i === view.active ? 0 : -1;
      tr.setAttribute('aria-selected', String(c.proj === view.selected));
      const [proj, state, seen, timeout, addr, node] = tr.children;
      proj.textContent = c.proj;
      proj.title = c.proj;
      state.replaceChildren(badge(c.state));
      if (c.reason) state.append(el('span', 'why', ` ${reasonText(c.reason)}`));
      seen.textContent = lastSeenText(c, now);
      seen.title = c.lastSeen != null ? new Date(c.lastSeen).toISOString() : '';
      timeout.textContent = fmtDuration(c.timeout_ms);
      addr.textContent = c.addr ?? '';
      addr.className = 'addr';
      node.textContent = c.node ?? '';
      node.className = 'node';
    }
    if (focused && focused.parentElement === $('rows') && !focused.hidden) {
      trs[view.active].focus({ preventScroll: true });
    }
    $('empty').hidden = clients.size > 0;
    $('page-info').textContent = rows.length
      ? `${first + 1}–${first + shown.length} of ${rows.length}` + (rows.length !== clients.size ? ` (${clients.size} in all)` : '')
      : (clients.size ? `none of ${clients.size} match` : '');
    $('prev').disabled = view.page === 0;
    $('next').disabled = view.page >= pages - 1;
    for (const th of table.tHead.rows[0].cells) {
      const key = th.querySelector('button').dataset.sort;
      th.setAttribute('aria-sort', key === view.sort ? (view.desc ? 'descending' : 'ascending') : 'none');
    }
    renderCounts();
    renderFeed();
    renderCost = performance.now() - lastRender;
  }

  /** Adds the queued events to the feed: at most FEED_MAX of them, however many came. */
  function renderFeed() {
    if (!feedQueue.length) return;
    const list = $('feed');
    const fragment = document.createDocumentFragment();
    for (const ev of feedQueue.slice(-FEED_MAX).reverse()) fragment.append(feedItem(ev));
    feedQueue = [];
    list.prepend(fragment);
    while (list.children.length > FEED_MAX) list.lastElementChild.remove();
    $('feed-empty').hidden = true;
  }

  /** Every second: the "ago" cells of the visible rows (nothing is fetched). */
  function tick() {
    const now = Date.now();
    for (const tr of $('rows').children) {
      if (tr.hidden) continue;
      const c = clients.get(tr.dataset.proj);
      if (c) tr.children[2].textContent = lastSeenText(c, now);
    }
    if (view.selected) {
      const c = clients.get(view.selected);
      const seen = $('detail-fields').querySelector('[data-field="last seen"]');
      if (c && seen) seen.textContent = lastSeenText(c, now);
    }
  }

  /** One line of the feed or of a history. */
  function feedItem(ev) {
    const li = el('li');
    const at = parseTime(ev.at);
    const time = el('time', null, fmtClock(at ?? Date.now()));
    if (at != null) time.dateTime = new Date(at).toISOString();
    const kind = typeof ev.event === 'string' ? ev.event : 'event';
    li.dataset.event = kind;
    if (typeof ev.proj === 'string') li.dataset.proj = ev.proj;
    const what = el('span', 'what', typeof ev.proj === 'string' ? ev.proj : '');
    const details = [];
    if (ev.reason) details.push(reasonText(ev.reason));
    if (ev.addr) details.push(String(ev.addr));
    if (ev.node) details.push(`node ${ev.node}`);
    if (details.length) what.append(el('span', 'why', ` ${details.join(' · ')}`));
    li.append(time, badge(kind), what);
    return li;
  }

  // ------------------------------------------------------------------ details

  function select(proj, index) {
    if (!proj) return;
    view.selected = proj;
    if (index != null) view.active = index;
    $('detail').hidden = false;
    renderDetail();
    markDirty();
    refreshOne(proj);
    loadHistory(proj);
  }

  function closeDetail() {
    const proj = view.selected;
    view.selected = null;
    $('detail').hidden = true;
    markDirty();
    const row = [...$('rows').children].find((tr) => tr.dataset.proj === proj);
    (row ?? $('filter')).focus();
  }

  function renderDetail() {
    const c = clients.get(view.selected);
    if (!c) return;
    $('detail-title').textContent = c.proj;
    const dl = $('detail-fields');
    dl.replaceChildren();
    const add = (name, value) => {
      if (value == null || value === '') return;
      const dd = el('dd');
      dd.dataset.field = name;
      if (value instanceof Node) dd.append(value);
      else dd.textContent = String(value);
      dl.append(el('dt', null, name), dd);
    };
    add('state', badge(c.state));
    add('reason', reasonText(c.reason));
    add('last seen', lastSeenText(c, Date.now()));
    add('last heartbeat', c.lastSeen != null ? new Date(c.lastSeen).toISOString() : null);
    add('timeout', fmtDuration(c.timeout_ms));
    add('address', c.addr);
    add('node', c.node);
    add('last event', c.lastEvent ? `${c.lastEvent} at ${new Date(c.since).toISOString()}` : null);
    // Whatever else the server's record carries (heartbeats, interval statistics, ...).
    const shown = new Set(['proj', 'state', 'last_seen', 'timeout_ms', 'addr', 'node']);
    for (const [key, value] of Object.entries(c.record ?? {})) {
      if (shown.has(key)) continue;
      add(key.replace(/_/g, ' '), typeof value === 'object' ? JSON.stringify(value) : value);
    }
  }

  /** A history's statistics as a line of text. */
  function summary(key, value) {
    if (value === null || typeof value !== 'object') return String(value);
    const ms = (v) => (typeof v === 'number' ? `${v} ms` : '?');
    const pct = (v) => (typeof v === 'number' ? `${(v * 100).toFixed(2)} %` : '?');
    if (key === 'intervals') {
      return `mean ${ms(value.mean_ms)}, p50 ${ms(value.p50_ms)}, p99 ${ms(value.p99_ms)}, ` +
        `max ${ms(value.max_ms)} (last ${value.samples} intervals)`;
    }
    if (key === 'uptime') {
      return `${pct(value.last_hour)} over the last hour, ${pct(value.last_day)} over the last day` +
        (value.known_since ? ` (known since ${value.known_since})` : '');
    }
    return JSON.stringify(value);
  }

  /** The client's history, if the server has the endpoint (404: no history section). */
  async function loadHistory(proj) {
    const section = $('history');
    section.hidden = true;
    let result;
    try {
      result = await getJson(`/api/v1/clients/${encodeURIComponent(proj)}/history`);
    } catch (e) {
      if (e instanceof Unauthorized) askToken(true);
      return;
    }
    if (view.selected !== proj || result.status !== 200) return;
    const body = result.body;
    const items = Array.isArray(body) ? body : (body && Array.isArray(body.events) ? body.events : null);
    const list = $('history-list');
    list.replaceChildren();
    if (items) {
      for (const item of items) list.append(feedItem(item && typeof item === 'object' ? item : { event: String(item) }));
    }
    if (body && !Array.isArray(body)) {
      for (const [key, value] of Object.entries(body)) {
        // The proj and state are in the detail above.
        if (key === 'events' || key === 'proj' || key === 'state') continue;
        const li = el('li');
        li.dataset.key = key;
        li.append(el('span', 'why', key.replace(/_/g, ' ')), el('span', null, ''),
          el('span', 'what', summary(key, value)));
        list.append(li);
      }
    }
    section.hidden = false;
  }

  // ------------------------------------------------------------------ token

  function askToken(refused) {
    setConn('unauthorized', 'token required');
    $('login-error').hidden = !refused;
    const dialog = $('login');
    if (!dialog.open) dialog.showModal();
    $('login-token').focus();
  }

  $('login-form').addEventListener('submit', () => {
    token = $('login-token').value.trim();
    $('login-token').value = '';
    sessionStorage.setItem(TOKEN_KEY, token);
    run();
  });

  // The dialog stays until a token is given: without one there is nothing to show.
  $('login').addEventListener('cancel', (e) => e.preventDefault());

  $('forget-token').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    token = null;
    if (stream) stream.abort();
    location.reload();
  });

  // ------------------------------------------------------------------ controls and keys

  function setStateFilter(state) {
    view.state = state;
    view.page = 0;
    markDirty();
  }

  $('controls').addEventListener('submit', (e) => e.preventDefault());
  $('filter').addEventListener('input', (e) => { view.filter = e.target.value.trim(); view.page = 0; markDirty(); });
  $('state-filter').addEventListener('change', (e) => setStateFilter(e.target.value));
  $('clear-offline').addEventListener('click', () => {
    for (const [proj, c] of clients) if (c.state === 'offline') clients.delete(proj);
    projsChanged = true;
    markDirty();
  });
  $('prev').addEventListener('click', () => { view.page = Math.max(0, view.page - 1); markDirty(); });
  $('next').addEventListener('click', () => { view.page += 1; markDirty(); });
  $('detail-close').addEventListener('click', closeDetail);
  for (const button of document.querySelectorAll('th button')) {
    button.addEventListener('click', () => {
      const key = button.dataset.sort;
      view.desc = view.sort === key ? !view.desc : false;
      view.sort = key;
      markDirty();
    });
  }

  $('rows').addEventListener('keydown', (e) => {
    const trs = $('rows').children;
    const visible = Math.min(PAGE_SIZE, view.rows.length - view.page * PAGE_SIZE);
    const move = (to) => {
      view.active = Math.max(0, Math.min(visible - 1, to));
      for (let i = 0; i < trs.length; i++) trs[i].tabIndex = i === view.active ? 0 : -1;
      trs[view.active].focus();
    };
    switch (e.key) {
      case 'ArrowDown': move(view.active + 1); break;
      case 'ArrowUp': move(view.active - 1); break;
      case 'Home': move(0); break;
      case 'End': move(visible - 1); break;
      case 'Enter': case ' ': select(trs[view.active].dataset.proj, view.active); break;
      default: return;
    }
    e.preventDefault();
  });

  document.addEventListener('keydown', (e) => {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
    if (e.key === '/' && !typing && !$('login').open) {
      e.preventDefault();
      $('filter').focus();
    } else if (e.key === 'Escape' && !$('login').open) {
      if (view.selected) closeDetail();
      else if (e.target === $('filter')) { $('filter').value = ''; view.filter = ''; markDirty(); }
    } else if (e.key === 'PageDown' && !typing) {
      e.preventDefault(); if (!$('next').disabled) $('next').click();
    } else if (e.key === 'PageUp' && !typing) {
      e.preventDefault(); if (!$('prev').disabled) $('prev').click();
    }
  });

  setInterval(tick, 1000);
  markDirty();
  run();
})();
