// @ts-check
/**
 * The Pulse demo page: a tiny photo app whose notifications arrive live.
 *
 * Everything the page does goes through `client.js` (REST + the live socket); this file is only
 * the screen. No framework, no build step; user-provided text only ever reaches the DOM through
 * `textContent`/attributes, never through HTML parsing.
 *
 * Sessions: the token lives in sessionStorage, so each tab holds its own user. `/?slot=a` and
 * `/?slot=b` (used by /two, whose two iframes share one sessionStorage) keep separate tokens.
 *
 * Stable hooks for tests (data-testid; the element id is the same unless noted):
 *   auth-view        signed-out screen          app-view        signed-in screen
 *   auth-form        sign-up / sign-in form     auth-username   auth-password
 *   signup-button    signin-button              auth-error      (role=alert)
 *   me               signed-in username         signout-button
 *   slot-label       "A"/"B" when ?slot= is set
 *   conn-state       connection indicator; attribute data-state = connecting | live |
 *                    reconnecting | signed-out | offline; text "live", "reconnecting…", …;
 *                    attribute data-transport = websocket | sse (what carries live frames:
 *                    the event stream where WebSockets cannot be opened; text "live (SSE)")
 *   bell             opens the inbox            badge           unread groups (hidden when 0)
 *   inbox            inbox panel (hidden when closed)           inbox-list, inbox-empty
 *   group-<id>       one inbox row per notification group (class is-unread while unread;
 *                    attributes data-group-id, data-post-id), updated in place as the group
 *                    changes; it contains group-text (the server's sentence, with the names of
 *                    the people it starts with as note-actor, newest first)
 *   mark-all-read    inbox-close
 *   toasts           the aria-live="polite" region              toast   one live toast
 *   upload-panel     find-panel   <details> around the two side forms (folded on phones)
 *   upload-form      upload-file (input type=file)              upload-caption
 *   upload-submit    upload-preview             upload-error
 *   find-form        find-username              find-submit     find-error
 *   find-result      found-name, follow-button (inside find-result; aria-pressed = following)
 *   feed             feed-refresh               feed-empty      feed-more
 *   post-<id>        one post card (attribute data-post-id), containing:
 *                    post-image, post-author, post-caption, like-button (aria-pressed = liked),
 *                    like-count (just the number)
 *   post-author, note-actor, found-name   a person's name; for anyone but you a button that opens
 *                    person-menu: person-menu-status, block-button ("Block"/"Unblock"),
 *                    mute-button ("Mute"/"Unmute")
 *   notify-panel     <details> around the notification settings:
 *   push-control     Web Push for this tab's token; attribute data-state = unknown | busy | on |
 *                    off | unavailable | blocked | error; it holds push-status (the sentence) and
 *                    push-toggle ("Enable notifications" / "Turn off notifications")
 *   prefs-form       the preferences: prefs-fields (disabled until loaded), the checkboxes
 *                    pref-<like|comment|follow>-<inbox|push> and pref-from-following,
 *                    prefs-status ("Saving…", "Saved.") and prefs-error (role=alert)
 */
import { PulseClient, ProblemError, base64UrlToBytes } from './client.js';

/** @typedef {import('./client.js').Post} Post */
/** @typedef {import('./client.js').User} User */
/** @typedef {import('./client.js').UserSummary} UserSummary */
/** @typedef {import('./client.js').Notification} PulseNotification */
/** @typedef {import('./client.js').NotificationGroup} NotificationGroup */
/** @typedef {import('./client.js').GroupInbox} GroupInbox */
/** @typedef {import('./client.js').ConnectionState} ConnectionState */
/** @typedef {import('./client.js').NotificationPreferences} NotificationPreferences */
/** @typedef {import('./client.js').PreferencesUpdate} PreferencesUpdate */

const FEED_PAGE = 12;
const INBOX_PAGE = 30;
/** New posts are not pushed by the API, so the feed's first page is re-read now and then. */
const FEED_POLL_MS = 20_000;
const TOAST_MS = 6_000;
const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;
/** How long the browser may take to subscribe to push before the page calls it unavailable. */
const PUSH_SUBSCRIBE_TIMEOUT_MS = 15_000;

// --- session ---------------------------------------------------------------------------------

const slot = (new URLSearchParams(window.location.search).get('slot') ?? '')
  .toLowerCase()
  .replace(/[^a-z0-9]/g, '')
  .slice(0, 16);
const TOKEN_KEY = slot ? `pulse.token.${slot}` : 'pulse.token';

/** @param {string} key */
function readStorage(key) {
  try {
    return window.sessionStorage.getItem(key);
  } catch {
    return null; // storage disabled: the session lasts as long as the page
  }
}

const client = new PulseClient({
  token: readStorage(TOKEN_KEY),
  onTokenChange(token) {
    try {
      if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
      else window.sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* see readStorage */
    }
  },
});

// --- DOM helpers -----------------------------------------------------------------------------

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{ new (): T, prototype: T }} [type]
 * @returns {T}
 */
function byId(id, type) {
  const el = document.getElementById(id);
  if (!el || (type && !(el instanceof type))) throw new Error(`#${id} is missing from the page`);
  return /** @type {T} */ (el);
}

/** @typedef {string | number | boolean | null | undefined | ((event: Event) => void)} AttrValue */
/** @typedef {Node | string | null | undefined | false} Child */

/**
 * Creates an element. `class` sets the class list, `on<event>` adds a listener, `true` sets an
 * empty attribute, `false`/null/undefined set nothing. Strings become text nodes (never HTML).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, AttrValue>} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = String(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

/** Static, trusted icon markup only (no user data ever reaches this). */
const ICONS = {
  heart:
    '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 21s-7.5-4.6-9.6-9.3C.9 8.2 3 4.5 6.6 4.5c2.1 0 3.6 1.2 4.4 2.6h2c.8-1.4 2.3-2.6 4.4-2.6 3.6 0 5.7 3.7 4.2 7.2C19.5 16.4 12 21 12 21z"/></svg>',
  comment:
    '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M21 12a8 8 0 0 1-11.8 7L3 21l2-5.6A8 8 0 1 1 21 12z"/></svg>',
  follow:
    '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="9" cy="8" r="4"/><path d="M2 21c0-4 3-6.5 7-6.5s7 2.5 7 6.5"/><path d="M19 8v6M16 11h6"/></svg>',
  close: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18"/></svg>',
};

/** @param {keyof typeof ICONS} name @param {string} [className] */
function icon(name, className = 'icon') {
  const template = document.createElement('template');
  template.innerHTML = ICONS[name];
  const svg = /** @type {SVGElement} */ (template.content.firstElementChild);
  svg.setAttribute('class', className);
  return svg;
}

/** A stable, pleasant colour per username. @param {string} name */
function hue(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return hash % 360;
}

/** @param {UserSummary} user @param {string} [size] */
function avatar(user, size = '') {
  const el = h('span', { class: `avatar ${size}`, 'aria-hidden': 'true' });
  fillAvatar(el, user);
  return el;
}

/** @param {HTMLElement} el @param {UserSummary} user */
function fillAvatar(el, user) {
  const name = user.display_name || user.username;
  el.textContent = [...name][0]?.toUpperCase() ?? '?';
  el.style.setProperty('--hue', String(hue(user.username)));
}

const relativeTime = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });
const plainNumber = new Intl.NumberFormat();

/** "just now", "3 min. ago", "yesterday"… @param {string} iso */
function ago(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) return '';
  const abs = Math.abs(seconds);
  if (abs < 45) return 'just now';
  if (abs < 3600) return relativeTime.format(Math.round(seconds / 60), 'minute');
  if (abs < 86400) return relativeTime.format(Math.round(seconds / 3600), 'hour');
  if (abs < 86400 * 7) return relativeTime.format(Math.round(seconds / 86400), 'day');
  return new Date(iso).toLocaleDateString();
}

/** @param {string} iso */
function timeEl(iso) {
  return h('time', { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso));
}

function refreshTimes() {
  for (const el of document.querySelectorAll('time[datetime]')) {
    const iso = el.getAttribute('datetime');
    if (iso) el.textContent = ago(iso);
  }
}

/** A sentence for a person, from any error. @param {unknown} error */
function describe(error) {
  if (error instanceof ProblemError) {
    // "username: may contain only …" reads better as "Username may contain only …."
    if (error.errors.length) {
      return error.errors
        .map((e) => `${e.field.charAt(0).toUpperCase()}${e.field.slice(1).replace(/_/g, ' ')} ${e.message}`.replace(/\.?$/, '.'))
        .join(' ');
    }
    return error.detail || error.title || `The server answered ${error.status}.`;
  }
  if (error instanceof TypeError) return 'Cannot reach the Pulse server. Is it running?';
  return error instanceof Error ? error.message : String(error);
}

/**
 * A 404: the thing is gone, or its owner blocked you (the API does not say which, on purpose).
 * @param {unknown} error
 */
function isGone(error) {
  return error instanceof ProblemError && error.status === 404;
}

const ACCOUNT_UNAVAILABLE = 'This account isn’t available.';
const PHOTO_UNAVAILABLE = 'This photo is no longer available.';

/** @param {HTMLElement} el @param {string | null} message */
function showError(el, message) {
  el.textContent = message ?? '';
  el.hidden = !message;
}

/** Restarts a CSS animation class on an element. @param {Element} el @param {string} className */
function pulse(el, className) {
  el.classList.remove(className);
  void (/** @type {HTMLElement} */ (el).offsetWidth); // reflow so the animation runs again
  el.classList.add(className);
}

// --- elements --------------------------------------------------------------------------------

const ui = {
  authView: byId('auth-view'),
  appView: byId('app-view'),
  main: byId('main'),
  authForm: byId('auth-form', HTMLFormElement),
  authUsername: byId('auth-username', HTMLInputElement),
  authPassword: byId('auth-password', HTMLInputElement),
  authError: byId('auth-error'),
  userArea: byId('user-area'),
  me: byId('me'),
  meAvatar: byId('me-avatar'),
  slotLabel: byId('slot-label'),
  signout: byId('signout-button', HTMLButtonElement),
  conn: byId('conn-state'),
  bell: byId('bell', HTMLButtonElement),
  badge: byId('badge'),
  inbox: byId('inbox'),
  inboxList: byId('inbox-list'),
  inboxEmpty: byId('inbox-empty'),
  markAllRead: byId('mark-all-read', HTMLButtonElement),
  inboxClose: byId('inbox-close', HTMLButtonElement),
  toasts: byId('toasts'),
  personMenu: byId('person-menu'),
  uploadPanel: byId('upload-panel', HTMLDetailsElement),
  findPanel: byId('find-panel', HTMLDetailsElement),
  notifyPanel: byId('notify-panel', HTMLDetailsElement),
  pushControl: byId('push-control'),
  pushStatus: byId('push-status'),
  pushToggle: byId('push-toggle', HTMLButtonElement),
  prefsForm: byId('prefs-form', HTMLFormElement),
  prefsFields: byId('prefs-fields', HTMLFieldSetElement),
  prefFromFollowing: byId('pref-from-following', HTMLInputElement),
  prefsStatus: byId('prefs-status'),
  prefsError: byId('prefs-error'),
  uploadForm: byId('upload-form', HTMLFormElement),
  uploadFile: byId('upload-file', HTMLInputElement),
  uploadCaption: byId('upload-caption', HTMLTextAreaElement),
  uploadPreview: byId('upload-preview', HTMLImageElement),
  uploadDropText: byId('upload-drop-text'),
  uploadError: byId('upload-error'),
  uploadSubmit: byId('upload-submit', HTMLButtonElement),
  findForm: byId('find-form', HTMLFormElement),
  findUsername: byId('find-username', HTMLInputElement),
  findError: byId('find-error'),
  findResult: byId('find-result'),
  feed: byId('feed'),
  feedEmpty: byId('feed-empty'),
  feedMore: byId('feed-more', HTMLButtonElement),
  feedRefresh: byId('feed-refresh', HTMLButtonElement),
};

// --- page state ------------------------------------------------------------------------------

/** @type {User | null} */
let me = null;

/**
 * @typedef {object} PostView
 * @property {Post} post
 * @property {HTMLElement} el
 * @property {HTMLButtonElement} button
 * @property {HTMLElement} count
 * @property {HTMLElement} countLabel
 * @property {boolean} pending a like/unlike request is in flight
 */
/** @type {Map<number, PostView>} */
const posts = new Map();
/** @type {string | null} */
let feedCursor = null;

/** The notification groups known to this page, by id (the inbox page + live changes). */
/** @type {Map<number, NotificationGroup>} */
const groups = new Map();
/**
 * Groups the server removed, with the version of the removal: an inbox page read before that
 * must not revive them.
 * @type {Map<number, number>}
 */
const removedGroups = new Map();
/** The inbox rows on screen, by group id: changed in place, never duplicated. */
/** @type {Map<number, HTMLLIElement>} */
const groupRows = new Map();
/**
 * Unread groups the server counts that this page does not hold (past the page it read). The
 * badge shows these plus the unread groups in `groups`.
 */
let hiddenUnread = 0;
/** The newest notification id of the last inbox page: a live group at or below it is not new. */
let pageNewestNotification = 0;
/** Inbox page requests: an answer older than one already applied is dropped. */
let inboxRequests = 0;
let inboxApplied = 0;
/** The newest User seen for each person, for their `blocked_by_me` / `muted_by_me`. */
/** @type {Map<number, User>} */
const people = new Map();
/** The person shown in the find panel. */
/** @type {User | null} */
let found = null;
let unreadCount = 0;
let wasLive = false;
/** @type {ReturnType<typeof setInterval> | null} */
let feedTimer = null;

// --- connection indicator ----------------------------------------------------------------------

/** @param {ConnectionState | 'offline'} state @param {{ attempt?: number, delayMs?: number }} [detail] */
function renderConn(state, detail = {}) {
  const labels = {
    connecting: 'connecting…',
    live: 'live',
    reconnecting: 'reconnecting…',
    'signed-out': 'signed out',
    closed: 'offline',
    offline: 'offline',
  };
  const shown = state === 'closed' ? 'offline' : state;
  const sse = client.transport === 'sse';
  ui.conn.dataset.state = shown;
  ui.conn.dataset.transport = client.transport;
  const text = ui.conn.querySelector('.conn__text');
  if (text) text.textContent = state === 'live' && sse ? 'live (SSE)' : labels[state];
  ui.conn.title =
    state === 'reconnecting' && detail.delayMs !== undefined
      ? `Connection lost. Attempt ${detail.attempt ?? 1}, retrying in ${(detail.delayMs / 1000).toFixed(1)} s.`
      : state === 'live'
        ? sse
          ? 'Connected over server-sent events (this network does not let WebSockets through): notifications arrive the instant they happen.'
          : 'Connected: notifications arrive the instant they happen.'
        : 'Live connection to the server';
}

// --- badge and inbox -------------------------------------------------------------------------

/** @param {number} count */
function setUnread(count) {
  unreadCount = Math.max(0, count);
  ui.badge.textContent = unreadCount > 99 ? '99+' : String(unreadCount);
  ui.badge.hidden = unreadCount === 0;
  ui.bell.setAttribute(
    'aria-label',
    unreadCount ? `Notifications, ${unreadCount} unread` : 'Notifications, none unread',
  );
  document.title = `${unreadCount ? `(${unreadCount}) ` : ''}Pulse${slot ? ` · ${slot.toUpperCase()}` : ''}`;
  ui.markAllRead.disabled = unreadCount === 0;
}

/** How many of the groups this page holds are unread. */
function unreadHere() {
  let count = 0;
  for (const g of groups.values()) if (!g.read) count++;
  return count;
}

/** The badge: unread groups held here, plus those the server counted past the page. */
function updateBadge() {
  setUnread(hiddenUnread + unreadHere());
}

/**
 * The server's number of unread groups (a `read` frame, a mark-read answer): what this page
 * does not hold is the rest.
 * @param {number} count
 */
function setServerUnread(count) {
  // Every group that became read came as a `group` frame first. A group that turned unread
  // after the count was taken may already be here: then the count is below what is held.
  hiddenUnread = Math.max(0, count - unreadHere());
  updateBadge();
}

/**
 * Takes a fresh page of groups as the truth, except where the socket already told of something
 * newer: a group's later version wins, a removal after the page was read stays removed, and a
 * group that changed after the page (a version above all of its versions) stays.
 * @param {GroupInbox} page
 */
function applyGroups(page) {
  const pageVersion = page.items.reduce((max, g) => Math.max(max, g.version), 0);
  /** @type {Map<number, NotificationGroup>} */
  const fresh = new Map();
  for (const g of page.items) {
    const removedAt = removedGroups.get(g.id);
    if (removedAt !== undefined && removedAt > g.version) continue;
    const local = groups.get(g.id);
    fresh.set(g.id, local && local.version > g.version ? local : g);
  }
  for (const g of groups.values()) if (!fresh.has(g.id) && g.version > pageVersion) fresh.set(g.id, g);
  groups.clear();
  for (const [id, g] of fresh) groups.set(id, g);
  // With more pages, the server counted unread groups this page does not hold.
  const unreadInPage = page.items.filter((g) => !g.read).length;
  hiddenUnread = page.next_cursor ? Math.max(0, page.unread_count - unreadInPage) : 0;
  pageNewestNotification = page.items.reduce((max, g) => Math.max(max, g.latest_notification_id), 0);
  client.noteGroupVersion(pageVersion);
  updateBadge();
  renderInbox();
}

async function loadInbox() {
  const request = ++inboxRequests;
  const page = await client.groups({ limit: INBOX_PAGE });
  if (request < inboxApplied) return; // a later request was answered first
  inboxApplied = request;
  applyGroups(page);
}

/** Newest `updated_at` first, as the server pages them. @param {NotificationGroup} a @param {NotificationGroup} b */
function newestFirst(a, b) {
  return Date.parse(b.updated_at) - Date.parse(a.updated_at) || b.id - a.id;
}

/** Brings the rows in line with `groups`: rows change in place, in the server's order. */
function renderInbox() {
  const items = [...groups.values()].sort(newestFirst).slice(0, 100);
  const shown = new Set(items.map((g) => g.id));
  for (const [id, row] of groupRows) {
    if (!shown.has(id)) {
      row.remove();
      groupRows.delete(id);
    }
  }
  items.forEach((g, index) => {
    let row = groupRows.get(g.id);
    if (!row) {
      row = groupRow(g.id);
      groupRows.set(g.id, row);
    }
    const openable = g.post_id !== null && posts.has(g.post_id);
    // Only a changed group (or one whose photo came or went) is redrawn: a name's open menu
    // stays attached to an unchanged row.
    const look = `${g.version}:${g.read}:${openable}`;
    if (row.dataset.look !== look) {
      fillGroupRow(row, g, openable);
      row.dataset.look = look;
    }
    const at = ui.inboxList.children[index];
    if (at !== row) ui.inboxList.insertBefore(row, at ?? null);
  });
  ui.inboxEmpty.hidden = items.length > 0;
}

/** @param {PulseNotification['kind']} kind */
function kindIcon(kind) {
  return icon(kind === 'like' ? 'heart' : kind === 'comment' ? 'comment' : 'follow', `kind kind--${kind}`);
}

/**
 * The group's sentence, as the server wrote it, with the names it starts with as buttons
 * (block, mute): "carol and bob liked your photo." names carol, then bob.
 * @param {NotificationGroup} g
 * @returns {Child[]}
 */
function groupSentence(g) {
  /** @type {Child[]} */
  const parts = [];
  let rest = g.text;
  for (const [index, actor] of g.actors.slice(0, 2).entries()) {
    const lead = index === 0 ? '' : [', ', ' and '].find((sep) => rest.startsWith(`${sep}${actor.username}`));
    if (lead === undefined || !rest.startsWith(`${lead}${actor.username}`)) break;
    if (lead) parts.push(lead);
    parts.push(personName(actor, 'note-actor', actor.username));
    rest = rest.slice(lead.length + actor.username.length);
  }
  parts.push(rest);
  return parts;
}

/** An empty row for a group; `fillGroupRow` draws it. @param {number} id */
function groupRow(id) {
  return h('li', {
    class: 'note',
    id: `group-${id}`,
    'data-testid': `group-${id}`,
    'data-group-id': id,
    // The whole row opens the post; its buttons (the names, View) do their own thing.
    onclick: (event) => {
      if (!(event.target instanceof Element && event.target.closest('button'))) openGroup(id);
    },
  });
}

/** @param {HTMLLIElement} row @param {NotificationGroup} g @param {boolean} openable */
function fillGroupRow(row, g, openable) {
  row.className = `note${g.read ? '' : ' is-unread'}${openable ? ' is-openable' : ''}`;
  if (g.post_id === null) row.removeAttribute('data-post-id');
  else row.dataset.postId = String(g.post_id);
  const faces = g.actors.slice(0, 2);
  row.replaceChildren(
    h(
      'span',
      { class: `note__avatar${faces.length > 1 ? ' note__avatar--pair' : ''}` },
      ...faces.map((actor) => avatar(actor)),
      kindIcon(g.kind),
    ),
    h(
      'p',
      { class: 'note__text' },
      h('span', { 'data-testid': 'group-text' }, ...groupSentence(g)),
      h('br'),
      timeEl(g.updated_at),
    ),
    ...(openable ? [h('button', { type: 'button', class: 'btn btn--ghost btn--sm', onclick: () => openGroup(g.id) }, 'View')] : []),
    ...(g.read ? [] : [h('span', { class: 'note__dot', 'aria-label': 'unread' })]),
  );
}

/** Opens a group's photo, and marks the group read: it has been seen. @param {number} id */
function openGroup(id) {
  const g = groups.get(id);
  if (!g || g.post_id === null || !posts.has(g.post_id)) return;
  closeInbox();
  focusPost(g.post_id);
  if (!g.read) {
    client
      .markGroupsRead([id])
      .then((answer) => {
        const now = groups.get(id);
        if (now) now.read = true;
        setServerUnread(answer.unread_group_count);
        renderInbox();
      })
      .catch((error) => toastError(describe(error)));
  }
}

function openInbox() {
  ui.inbox.hidden = false;
  ui.bell.setAttribute('aria-expanded', 'true');
  renderInbox();
  ui.markAllRead.disabled ? ui.inboxClose.focus() : ui.markAllRead.focus();
  loadInbox().catch((error) => toastError(describe(error)));
}

function closeInbox() {
  if (ui.inbox.hidden) return;
  ui.inbox.hidden = true;
  ui.bell.setAttribute('aria-expanded', 'false');
}

/**
 * Marks read everything up to the newest notification of the groups on screen: each group whose
 * notifications are then all read is read too, on every screen (`group` and `read` frames).
 */
async function markAllRead() {
  const upTo = Math.max(0, ...[...groups.values()].map((g) => g.latest_notification_id));
  if (!upTo) return;
  ui.markAllRead.disabled = true;
  try {
    const answer = await client.markReadUpTo(upTo);
    for (const g of groups.values()) if (g.latest_notification_id <= upTo) g.read = true;
    setServerUnread(answer.unread_group_count);
    renderInbox();
  } catch (error) {
    ui.markAllRead.disabled = false;
    toastError(describe(error));
  }
}

// --- toasts ----------------------------------------------------------------------------------

/**
 * @param {{ text: string, actor?: UserSummary, kind?: PulseNotification['kind'], error?: boolean,
 *           onOpen?: () => void, notificationId?: number }} toast
 */
function showToast({ text, actor, kind, error = false, onOpen, notificationId }) {
  const el = h(
    'div',
    {
      class: `toast${error ? ' toast--error' : ''}`,
      'data-testid': 'toast',
      'data-notification-id': notificationId,
      role: error ? 'alert' : false,
    },
    actor ? h('span', { class: 'note__avatar' }, avatar(actor), kind && kindIcon(kind)) : null,
    h('p', { class: 'toast__text' }, text),
  );
  const dismiss = () => {
    el.classList.add('is-leaving');
    el.addEventListener('animationend', () => el.remove(), { once: true });
    setTimeout(() => el.remove(), 400); // reduced-motion: no animationend
  };
  if (onOpen) {
    el.append(h('button', { type: 'button', class: 'btn btn--ghost btn--sm', onclick: () => (dismiss(), onOpen()) }, 'View'));
  }
  el.append(
    h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Dismiss', onclick: dismiss }, icon('close')),
  );
  ui.toasts.prepend(el);
  while (ui.toasts.children.length > 3) ui.toasts.lastElementChild?.remove();
  let timer = setTimeout(dismiss, TOAST_MS);
  el.addEventListener('mouseenter', () => clearTimeout(timer));
  el.addEventListener('mouseleave', () => (timer = setTimeout(dismiss, TOAST_MS / 2)));
}

/** @param {string} text */
function toastError(text) {
  showToast({ text, error: true });
}

// --- live events -----------------------------------------------------------------------------

/**
 * A new notification: a toast, the bell rings. Its row and the badge come with the `group`
 * frame that follows it.
 * @param {PulseNotification} n
 */
function onNotification(n) {
  if (n.read) return; // replayed after a drop, and already read elsewhere
  pulse(ui.bell, 'is-ringing');
  const postId = n.post_id;
  const onPage = postId !== null && posts.has(postId);
  if (onPage) pulse(/** @type {PostView} */ (posts.get(postId)).el, 'is-glowing');
  showToast({
    text: n.text,
    actor: n.actor,
    kind: n.kind,
    notificationId: n.id,
    onOpen: onPage ? () => focusPost(postId) : openInbox,
  });
}

/**
 * A group was created or changed: its row changes in place (or appears), and the badge with it.
 * @param {NotificationGroup} g
 */
function onGroup(g) {
  const local = groups.get(g.id);
  if (local && local.version >= g.version) return;
  const removedAt = removedGroups.get(g.id);
  if (removedAt !== undefined) {
    if (removedAt >= g.version) return;
    removedGroups.delete(g.id);
  }
  // A group this page never held, older than its inbox page, was counted in hiddenUnread.
  if (!local && !g.read && g.latest_notification_id <= pageNewestNotification && hiddenUnread > 0) hiddenUnread--;
  groups.set(g.id, g);
  updateBadge();
  renderInbox();
}

/** @param {number} groupId @param {number} version */
function onGroupRemoved(groupId, version) {
  groups.delete(groupId);
  removedGroups.set(groupId, version);
  updateBadge();
  renderInbox();
}

/**
 * The server deleted notifications this page may show (you blocked their actor): their toasts
 * go. The groups they were in come as `group`/`group_removed` frames, and the count as `read`.
 * @param {number[]} ids
 */
function onNotificationsRemoved(ids) {
  for (const id of ids) ui.toasts.querySelector(`[data-notification-id="${id}"]`)?.remove();
}

/** @param {number} postId @param {number} likeCount */
function onLikeCount(postId, likeCount) {
  const view = posts.get(postId);
  if (!view || view.pending) return; // our own request's answer is about to set it
  if (view.post.like_count !== likeCount) setLikes(view, view.post.liked_by_me, likeCount, true);
}

/**
 * Read (or removed) somewhere: the `group` frames for the groups that changed came first, this
 * is the server's count of unread groups after them.
 * @param {number} _count @param {number} [groupCount]
 */
function onRead(_count, groupCount) {
  if (groupCount === undefined) {
    loadInbox().catch(() => {});
    return;
  }
  setServerUnread(groupCount);
  renderInbox();
}

/** @param {ConnectionState} state @param {{ attempt: number, delayMs?: number, code?: number }} detail */
function onState(state, detail) {
  renderConn(state, detail);
  if (state === 'live') {
    if (wasLive) {
      // Back after a drop: notifications were replayed with ?since=, but counts and read
      // marks may have moved meanwhile.
      refreshFeed().catch(() => {});
      loadInbox().catch(() => {});
    }
    wasLive = true;
  } else if (state === 'signed-out') {
    showSignedOut('Your session ended (signed out elsewhere, or it expired). Please sign in again.');
  }
}

// --- feed ------------------------------------------------------------------------------------

/** Watches the like counts of the posts that are on screen (or nearly). */
const visibility = new IntersectionObserver(
  (entries) => {
    /** @type {number[]} */
    const show = [];
    /** @type {number[]} */
    const hide = [];
    for (const entry of entries) {
      const id = Number(/** @type {HTMLElement} */ (entry.target).dataset.postId);
      (entry.isIntersecting ? show : hide).push(id);
    }
    if (show.length) client.watch(show);
    if (hide.length) client.unwatch(hide);
  },
  { rootMargin: '300px 0px' },
);

/** @param {PostView} view @param {boolean} liked @param {number} count @param {boolean} [live] */
function setLikes(view, liked, count, live = false) {
  const changed = view.post.like_count !== count;
  view.post.liked_by_me = liked;
  view.post.like_count = count;
  view.button.setAttribute('aria-pressed', String(liked));
  view.button.setAttribute('aria-label', liked ? 'Unlike' : 'Like');
  view.count.textContent = String(count);
  view.countLabel.textContent = count === 1 ? ' like' : ' likes';
  if (changed && live) pulse(view.count.parentElement ?? view.count, 'is-bumped');
}

/** The feed column's width in CSS pixels (`.feed` in app.css), for `sizes`. */
const FEED_IMAGE_SIZES = '(max-width: 600px) 100vw, 600px';
/** The server's default thumbnail side (PULSE_THUMBNAIL_MAX_SIDE); only a hint for `srcset`. */
const THUMBNAIL_SIDE = 640;

/**
 * The feed image's sources: the thumbnail by default, and the display image through `srcset`
 * for screens dense enough to show it, so a phone loads a 640-pixel file instead of 2048.
 * Posts without a thumbnail of their own (older ones, or a server without them) get the image.
 * @param {Post} post
 */
function imageSources(post) {
  const display = client.mediaUrl(post.image_url);
  const thumbnailPath = post.thumbnail_url ?? post.image_url;
  if (thumbnailPath === post.image_url || !post.width || !post.height) {
    return { src: display, srcset: false, sizes: false };
  }
  const thumbnail = client.mediaUrl(thumbnailPath);
  const longest = Math.max(post.width, post.height);
  const thumbnailWidth = longest <= THUMBNAIL_SIDE ? post.width : Math.round((post.width * THUMBNAIL_SIDE) / longest);
  return {
    src: thumbnail,
    srcset: `${thumbnail} ${thumbnailWidth}w, ${display} ${post.width}w`,
    sizes: FEED_IMAGE_SIZES,
  };
}

/** @param {Post} post */
function renderPost(post) {
  const author = post.author;
  const mine = me !== null && author.id === me.id;
  const button = h('button', { type: 'button', class: 'like', 'data-testid': 'like-button' }, icon('heart', 'like__icon'));
  const count = h('span', { 'data-testid': 'like-count' });
  const countLabel = h('span', {});
  const image = h('img', {
    'data-testid': 'post-image',
    ...imageSources(post),
    alt: post.caption ? `Photo by ${author.username}: ${post.caption}` : `Photo by ${author.username}`,
    width: post.width || false,
    height: post.height || false,
    loading: 'lazy',
    decoding: 'async',
  });
  const media = h('div', { class: 'post__media' }, image, icon('heart', 'burst'));
  if (post.width && post.height) media.style.aspectRatio = `${post.width} / ${post.height}`;
  const el = h(
    'article',
    {
      class: `post card${mine ? ' post--mine' : ''}`,
      id: `post-${post.id}`,
      'data-testid': `post-${post.id}`,
      'data-post-id': post.id,
      tabindex: '-1',
      'aria-label': `Photo by ${author.display_name || author.username}`,
    },
    h(
      'header',
      { class: 'post__head' },
      avatar(author),
      h(
        'span',
        { class: 'post__who' },
        personName(author, 'post-author'),
        h('span', { class: 'muted' }, ` @${author.username}${mine ? ' · you' : ''}`),
      ),
      timeEl(post.created_at),
    ),
    media,
    h(
      'div',
      { class: 'post__actions' },
      button,
      h('span', { class: 'likes' }, count, countLabel),
    ),
    post.caption
      ? h('p', { class: 'post__caption' }, h('strong', {}, author.username), ' ', h('span', { 'data-testid': 'post-caption' }, post.caption))
      : h('p', { class: 'post__caption muted' }, h('span', { 'data-testid': 'post-caption' }, '')),
  );
  /** @type {PostView} */
  const view = { post, el, button, count, countLabel, pending: false };
  setLikes(view, post.liked_by_me, post.like_count);
  button.addEventListener('click', () => toggleLike(post.id));
  media.addEventListener('dblclick', () => {
    pulse(media, 'is-bursting');
    if (!view.post.liked_by_me) toggleLike(post.id);
  });
  image.addEventListener('error', () => media.classList.add('is-broken'), { once: true });
  return view;
}

/** @param {Post} post @param {'top' | 'bottom'} where */
function addPost(post, where) {
  const existing = posts.get(post.id);
  if (existing) {
    if (!existing.pending) setLikes(existing, post.liked_by_me, post.like_count);
    return;
  }
  const view = renderPost(post);
  posts.set(post.id, view);
  if (where === 'top') {
    // Ids grow with time: keep newest first even when several arrive at once.
    const after = [...posts.values()]
      .filter((v) => v.post.id < post.id && v.el.isConnected)
      .sort((a, b) => b.post.id - a.post.id)[0];
    if (after) after.el.before(view.el);
    else ui.feed.append(view.el);
  } else {
    ui.feed.append(view.el);
  }
  visibility.observe(view.el);
  ui.feedEmpty.hidden = true;
}

function clearFeed() {
  for (const view of posts.values()) visibility.unobserve(view.el);
  client.unwatch(client.watchedPostIds);
  posts.clear();
  ui.feed.replaceChildren();
  feedCursor = null;
}

/** Takes someone's posts off the feed (you blocked them: the follow is gone). @param {number} userId */
function dropPostsBy(userId) {
  const gone = [...posts.values()].filter((view) => view.post.author.id === userId);
  for (const view of gone) {
    visibility.unobserve(view.el);
    view.el.remove();
    posts.delete(view.post.id);
  }
  client.unwatch(gone.map((view) => view.post.id));
  ui.feedEmpty.hidden = posts.size > 0;
}

async function loadFeed() {
  const page = await client.feed({ limit: FEED_PAGE });
  clearFeed();
  for (const post of page.items) addPost(post, 'bottom');
  feedCursor = page.next_cursor;
  ui.feedMore.hidden = !feedCursor;
  ui.feedEmpty.hidden = posts.size > 0;
}

/** Merges the first page: new posts go on top, counts of known ones are brought up to date. */
async function refreshFeed() {
  const page = await client.feed({ limit: FEED_PAGE });
  for (const post of page.items) addPost(post, 'top');
  ui.feedEmpty.hidden = posts.size > 0;
}

async function loadMore() {
  if (!feedCursor) return;
  ui.feedMore.disabled = true;
  try {
    const page = await client.feed({ limit: FEED_PAGE, cursor: feedCursor });
    for (const post of page.items) addPost(post, 'bottom');
    feedCursor = page.next_cursor;
    ui.feedMore.hidden = !feedCursor;
  } catch (error) {
    toastError(describe(error));
  } finally {
    ui.feedMore.disabled = false;
  }
}

/** @param {number} postId */
async function toggleLike(postId) {
  const view = posts.get(postId);
  if (!view || view.pending) return;
  const { liked_by_me: wasLiked, like_count: before } = view.post;
  view.pending = true;
  view.button.setAttribute('aria-busy', 'true');
  setLikes(view, !wasLiked, Math.max(0, before + (wasLiked ? -1 : 1))); // optimistic
  if (!wasLiked) pulse(view.button, 'is-popping');
  try {
    const answer = wasLiked ? await client.unlike(postId) : await client.like(postId);
    setLikes(view, answer.liked, answer.like_count);
  } catch (error) {
    setLikes(view, wasLiked, before);
    toastError(isGone(error) ? PHOTO_UNAVAILABLE : describe(error));
  } finally {
    view.pending = false;
    view.button.removeAttribute('aria-busy');
  }
}

/** @param {number} postId */
function focusPost(postId) {
  const view = posts.get(postId);
  if (!view) return;
  view.el.scrollIntoView({ behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth', block: 'center' });
  view.el.focus({ preventScroll: true });
  pulse(view.el, 'is-glowing');
}

// --- upload ----------------------------------------------------------------------------------

/** @type {string | null} */
let previewUrl = null;

function resetUpload() {
  ui.uploadForm.reset();
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
  ui.uploadPreview.hidden = true;
  ui.uploadPreview.removeAttribute('src');
  ui.uploadDropText.hidden = false;
  showError(ui.uploadError, null);
}

function onFileChosen() {
  const file = ui.uploadFile.files?.[0];
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
  showError(ui.uploadError, null);
  if (!file) {
    ui.uploadPreview.hidden = true;
    ui.uploadDropText.hidden = false;
    return;
  }
  if (file.size > MAX_UPLOAD_BYTES) showError(ui.uploadError, 'That file is over 10 MiB; the server will refuse it.');
  previewUrl = URL.createObjectURL(file);
  ui.uploadPreview.src = previewUrl;
  ui.uploadPreview.alt = `Preview of ${file.name}`;
  ui.uploadPreview.hidden = false;
  ui.uploadDropText.hidden = true;
}

/** @param {SubmitEvent} event */
async function onUpload(event) {
  event.preventDefault();
  const file = ui.uploadFile.files?.[0];
  if (!file) {
    showError(ui.uploadError, 'Choose a photo first.');
    ui.uploadFile.focus();
    return;
  }
  ui.uploadSubmit.disabled = true;
  ui.uploadSubmit.textContent = 'Posting…';
  showError(ui.uploadError, null);
  try {
    /** @type {Post} */
    const post = await client.post('/posts', { caption: ui.uploadCaption.value, image: file });
    resetUpload();
    addPost(post, 'top');
    focusPost(post.id);
  } catch (error) {
    showError(ui.uploadError, describe(error));
  } finally {
    ui.uploadSubmit.disabled = false;
    ui.uploadSubmit.textContent = 'Post';
  }
}

// --- find and follow -------------------------------------------------------------------------

/** @param {User} user */
function renderFound(user) {
  found = user;
  rememberPerson(user);
  const isMe = me !== null && user.id === me.id;
  const follow = h(
    'button',
    {
      type: 'button',
      class: `btn btn--sm ${user.followed_by_me ? '' : 'btn--primary'}`,
      'data-testid': 'follow-button',
      id: 'follow-button',
      'aria-pressed': String(user.followed_by_me),
    },
    user.followed_by_me ? 'Following' : 'Follow',
  );
  follow.addEventListener('click', async () => {
    follow.disabled = true;
    try {
      const updated = user.followed_by_me ? await client.unfollow(user.id) : await client.follow(user.id);
      renderFound(updated);
      await loadFeed(); // their posts join (or leave) the feed
    } catch (error) {
      follow.disabled = false;
      showError(ui.findError, isGone(error) ? ACCOUNT_UNAVAILABLE : describe(error));
    }
  });
  ui.findResult.replaceChildren(
    avatar(user, 'avatar--lg'),
    h(
      'div',
      { class: 'find__who' },
      h('span', {}, personName(user, 'found-name')),
      h('span', { class: 'muted' }, `@${user.username}`),
      h(
        'span',
        { class: 'find__stats muted' },
        `${plainNumber.format(user.post_count)} posts · ${plainNumber.format(user.follower_count)} followers`,
      ),
    ),
    isMe ? h('span', { class: 'muted' }, 'That’s you') : follow,
  );
  ui.findResult.hidden = false;
}

/** @param {SubmitEvent} event */
async function onFind(event) {
  event.preventDefault();
  const name = ui.findUsername.value.trim().replace(/^@/, '');
  showError(ui.findError, null);
  ui.findResult.hidden = true;
  if (!name) return;
  try {
    renderFound(await client.user(name));
  } catch (error) {
    showError(
      ui.findError,
      error instanceof ProblemError && error.status === 404 ? `Nobody is called “${name}” here.` : describe(error),
    );
  }
}

// --- a person's name: block and mute ---------------------------------------------------------

/** The person menu: which name opened it, and for whom. */
/** @type {{ trigger: HTMLElement, person: UserSummary } | null} */
let menuFor = null;

/** "blocked", "muted", "blocked · muted" or "" for a person, as far as this page knows. @param {number} id */
function relationTag(id) {
  const user = people.get(id);
  if (!user) return '';
  return [user.blocked_by_me && 'blocked', user.muted_by_me && 'muted'].filter(Boolean).join(' · ');
}

/** Records a User and updates the tag next to every name of theirs on the page. @param {User} user */
function rememberPerson(user) {
  people.set(user.id, user);
  for (const tag of document.querySelectorAll(`.person[data-person-id="${user.id}"] .person__tag`)) {
    tag.textContent = relationTag(user.id);
  }
}

/**
 * A person's name. For anyone but you it is a button that opens the block/mute menu, followed
 * by a tag saying whether you blocked or muted them.
 * @param {UserSummary} person @param {string} testId @param {string} [label]
 */
function personName(person, testId, label = person.display_name || person.username) {
  if (me !== null && person.id === me.id) return h('strong', { 'data-testid': testId }, label);
  const button = h(
    'button',
    {
      type: 'button',
      class: 'person__name',
      'data-testid': testId,
      'aria-haspopup': 'true',
      'aria-expanded': 'false',
      'aria-controls': 'person-menu',
      title: `Block or mute @${person.username}`,
    },
    label,
  );
  button.addEventListener('click', () => {
    if (menuFor?.trigger === button) closePersonMenu();
    else void openPersonMenu(button, person);
  });
  return h('span', { class: 'person', 'data-person-id': person.id }, button, h('span', { class: 'person__tag' }, relationTag(person.id)));
}

/**
 * Opens the menu under a name, then asks the server how you stand with that person.
 * @param {HTMLElement} trigger @param {UserSummary} person
 */
async function openPersonMenu(trigger, person) {
  closePersonMenu();
  menuFor = { trigger, person };
  trigger.setAttribute('aria-expanded', 'true');
  ui.personMenu.hidden = false;
  renderPersonMenu(person, {});
  try {
    const user = await client.user(person.username);
    rememberPerson(user);
    if (menuFor?.trigger !== trigger) return;
    renderPersonMenu(person, { user });
    if (document.activeElement === trigger) ui.personMenu.querySelector('button')?.focus();
  } catch (error) {
    if (menuFor?.trigger === trigger) renderPersonMenu(person, { error: isGone(error) ? ACCOUNT_UNAVAILABLE : describe(error) });
  }
}

/** @param {boolean} [returnFocus] */
function closePersonMenu(returnFocus = false) {
  if (!menuFor) return;
  const { trigger } = menuFor;
  menuFor = null;
  ui.personMenu.hidden = true;
  trigger.setAttribute('aria-expanded', 'false');
  if (returnFocus && trigger.isConnected) trigger.focus();
}

/** @param {User} user */
function relationText(user) {
  if (user.blocked_by_me && user.muted_by_me) return 'You blocked and muted them.';
  if (user.blocked_by_me) return 'You blocked them: they can’t see you or reach you.';
  if (user.muted_by_me) return 'You muted them: what they do doesn’t notify you.';
  return 'Block: they can’t see you or reach you. Mute: they stop notifying you.';
}

/**
 * The menu's content: loading (neither `user` nor `error`), the two actions, or why not.
 * @param {UserSummary} person @param {{ user?: User, error?: string }} state
 */
function renderPersonMenu(person, { user, error }) {
  const label = person.display_name || person.username;
  ui.personMenu.setAttribute('aria-label', `Block or mute @${person.username}`);
  ui.personMenu.replaceChildren(
    h('p', { class: 'person-menu__who' }, h('strong', {}, label), label !== person.username && h('span', { class: 'muted' }, ` @${person.username}`)),
    h(
      'p',
      { class: `person-menu__status${error ? ' form-error' : ' muted'}`, 'data-testid': 'person-menu-status', role: error ? 'alert' : false },
      error ?? (user ? relationText(user) : 'Loading…'),
    ),
    ...(user ? [relationButton(user, 'block'), relationButton(user, 'mute')] : []),
  );
  placePersonMenu();
}

/** @param {User} user @param {'block' | 'mute'} kind */
function relationButton(user, kind) {
  const on = kind === 'block' ? user.blocked_by_me : user.muted_by_me;
  const label = kind === 'block' ? (on ? 'Unblock' : 'Block') : on ? 'Unmute' : 'Mute';
  return h(
    'button',
    { type: 'button', class: 'btn btn--sm person-menu__item', 'data-testid': `${kind}-button`, onclick: () => void changeRelation(user, kind, !on) },
    label,
  );
}

/** @param {User} user @param {'block' | 'mute'} kind @param {boolean} on */
function relationCall(user, kind, on) {
  if (kind === 'block') return on ? client.block(user.id) : client.unblock(user.id);
  return on ? client.mute(user.id) : client.unmute(user.id);
}

/** @param {User} user @param {'block' | 'mute'} kind @param {boolean} on */
function relationToast(user, kind, on) {
  const name = user.display_name || user.username;
  if (kind === 'block') return on ? `You blocked ${name}. They can’t see you, and their notifications are gone.` : `You unblocked ${name}.`;
  return on ? `You muted ${name}. Their likes, comments and follows won’t notify you.` : `You unmuted ${name}.`;
}

/**
 * Blocks, unblocks, mutes or unmutes from the menu, then shows the result everywhere.
 * @param {User} user @param {'block' | 'mute'} kind @param {boolean} on
 */
async function changeRelation(user, kind, on) {
  for (const button of ui.personMenu.querySelectorAll('button')) button.disabled = true;
  const stillOpen = () => menuFor?.person.id === user.id;
  try {
    const updated = await relationCall(user, kind, on);
    rememberPerson(updated);
    if (stillOpen()) closePersonMenu(true);
    if (kind === 'block' && on) dropPostsBy(updated.id);
    if (found?.id === updated.id && !ui.findResult.hidden) renderFound(updated);
    showToast({ text: relationToast(updated, kind, on), actor: updated });
  } catch (error) {
    const message = isGone(error) ? ACCOUNT_UNAVAILABLE : describe(error);
    if (stillOpen()) renderPersonMenu(user, { user, error: message });
    else toastError(message);
  }
}

/** Keeps the menu under its name. A name re-rendered meanwhile leaves the menu where it is. */
function placePersonMenu() {
  const trigger = menuFor?.trigger;
  if (!trigger?.isConnected) return;
  const menu = ui.personMenu;
  const box = trigger.getBoundingClientRect();
  const margin = 8;
  const below = box.bottom + 4;
  const fitsBelow = below + menu.offsetHeight <= window.innerHeight - margin;
  menu.style.left = `${Math.max(margin, Math.min(box.left, window.innerWidth - menu.offsetWidth - margin))}px`;
  menu.style.top = `${fitsBelow ? below : Math.max(margin, box.top - menu.offsetHeight - 4)}px`;
}

// --- notifications: Web Push and preferences -------------------------------------------------

const PUSH_UNAVAILABLE =
  'Push notifications aren’t available in this browser; you’ll still see them live while the page is open.';
const PUSH_BLOCKED =
  'Notifications are blocked for this site. Allow them in your browser’s site settings to get them with the page closed; you’ll still see them live while it is open.';
const PUSH_NOT_ALLOWED =
  'You didn’t allow notifications, so none will come with the page closed; you’ll still see them live while it is open.';

/** @typedef {'unknown' | 'busy' | 'on' | 'off' | 'unavailable' | 'blocked' | 'error'} PushState */

/** @type {PushState} */
let pushState = 'unknown';

/** What Web Push needs: a secure context (localhost counts), service workers, PushManager, notifications. */
function pushSupported() {
  return window.isSecureContext && 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

/** @param {PushState} state @param {string} [message] the status sentence, when not the usual one */
function renderPush(state, message) {
  pushState = state;
  /** @type {Record<PushState, string>} */
  const usual = {
    unknown: 'Checking whether this browser gets notifications…',
    busy: 'Just a moment…',
    on: 'On: this browser shows a notification when no page of yours is open.',
    off: 'Off: you see notifications live while the page is open. Turn them on to get them with the page closed too.',
    unavailable: PUSH_UNAVAILABLE,
    blocked: PUSH_BLOCKED,
    error: 'Something went wrong.',
  };
  ui.pushControl.dataset.state = state;
  ui.pushStatus.textContent = message ?? usual[state];
  ui.pushStatus.classList.toggle('push__status--warn', state === 'unavailable' || state === 'blocked' || state === 'error');
  ui.pushToggle.disabled = state === 'busy' || state === 'unknown';
  ui.pushToggle.textContent = state === 'on' ? 'Turn off notifications' : 'Enable notifications';
  ui.pushToggle.classList.toggle('btn--primary', state === 'off');
}

/** Whether this device (this tab's token) has a push subscription on the server. */
async function loadPushState() {
  const who = me;
  renderPush('unknown');
  try {
    const saved = await client.getPushSubscription();
    if (me !== who) return;
    if (saved) renderPush('on');
    else if (!pushSupported()) renderPush('unavailable');
    else if (Notification.permission === 'denied') renderPush('blocked');
    else renderPush('off');
  } catch (error) {
    if (me === who) renderPush('error', describe(error));
  }
}

/**
 * Rejects when `promise` has not settled within `ms` (a browser without a reachable push
 * service may never answer).
 * @template T @param {Promise<T>} promise @param {number} ms @returns {Promise<T>}
 */
function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** @param {ArrayBuffer | null} a @param {Uint8Array} b */
function sameBytes(a, b) {
  if (!a || a.byteLength !== b.byteLength) return false;
  const bytes = new Uint8Array(a);
  return bytes.every((byte, i) => byte === b[i]);
}

/**
 * The browser's push subscription for the server's key: the service worker registered (scope
 * `/`), then the existing subscription, or a new one. One made for another key is dropped.
 * @param {string} key the VAPID public key, base64url
 */
async function subscribeBrowser(key) {
  await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  const registration = await navigator.serviceWorker.ready;
  const applicationServerKey = base64UrlToBytes(key);
  const existing = await registration.pushManager.getSubscription();
  if (existing) {
    if (sameBytes(existing.options.applicationServerKey, applicationServerKey)) return existing;
    await existing.unsubscribe();
  }
  return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
}

/** "Enable notifications": permission, the service worker, a subscription, and the server told. */
async function enablePush() {
  const who = me;
  if (!pushSupported()) {
    renderPush('unavailable');
    return;
  }
  renderPush('busy', 'Asking your browser…');
  try {
    // Asked first, while the click still counts as the person's own gesture.
    const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
    if (me !== who) return;
    if (permission !== 'granted') {
      renderPush('blocked', permission === 'denied' ? PUSH_BLOCKED : PUSH_NOT_ALLOWED);
      return;
    }
    const key = await client.pushKey();
    /** @type {PushSubscription} */
    let subscription;
    try {
      subscription = await withTimeout(subscribeBrowser(key), PUSH_SUBSCRIBE_TIMEOUT_MS);
    } catch (error) {
      // No push service (headless browsers, some privacy settings), or no service worker.
      console.info(`Web Push is not available here: ${error instanceof Error ? `${error.name}: ${error.message}` : error}`);
      if (me === who) renderPush('unavailable');
      return;
    }
    if (me !== who) return;
    await client.putPushSubscription(subscription);
    if (me === who) renderPush('on');
  } catch (error) {
    if (me !== who) return;
    const refused = error instanceof ProblemError && error.status === 422;
    renderPush('error', refused ? `The server can’t send push messages to this browser. ${describe(error)}` : describe(error));
  }
}

/** "Turn off notifications": the server forgets this device's subscription, the browser its own. */
async function disablePush() {
  const who = me;
  renderPush('busy', 'Turning notifications off…');
  try {
    await client.deletePushSubscription();
  } catch (error) {
    if (me === who) renderPush('on', `Notifications are still on: ${describe(error)}`);
    return;
  }
  try {
    // In /two both sides share this browser's one subscription: it ends for both.
    const registration = pushSupported() ? await navigator.serviceWorker.getRegistration('/') : undefined;
    await (await registration?.pushManager.getSubscription())?.unsubscribe();
  } catch {
    /* the server no longer pushes to it either way */
  }
  if (me === who) renderPush('off');
}

/** The preferences as last saved (null until loaded). @type {NotificationPreferences | null} */
let prefs = null;
/** Saves are sent one after the other, in the order of the clicks. */
let prefsQueue = Promise.resolve();
let prefsPending = 0;

/** @returns {HTMLInputElement[]} the six kind × channel checkboxes */
function channelBoxes() {
  return [...ui.prefsFields.querySelectorAll('input[data-kind]')].filter((el) => el instanceof HTMLInputElement);
}

/** @param {NotificationPreferences} p */
function renderPreferences(p) {
  for (const box of channelBoxes()) {
    const kind = /** @type {'like' | 'comment' | 'follow'} */ (box.dataset.kind);
    const channel = /** @type {'inbox' | 'push'} */ (box.dataset.channel);
    box.checked = p[kind][channel];
  }
  ui.prefFromFollowing.checked = p.from === 'following';
}

async function loadPreferences() {
  const who = me;
  ui.prefsFields.disabled = true;
  showError(ui.prefsError, null);
  try {
    const loaded = await client.preferences();
    if (me !== who) return;
    prefs = loaded;
    renderPreferences(loaded);
    ui.prefsFields.disabled = false;
  } catch (error) {
    if (me === who) showError(ui.prefsError, describe(error));
  }
}

/** A box changed: only that change is sent, after the ones before it. @param {Event} event */
function onPreferenceChange(event) {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || !prefs) return;
  /** @type {PreferencesUpdate} */
  const change =
    box === ui.prefFromFollowing
      ? { from: box.checked ? 'following' : 'everyone' }
      : /** @type {PreferencesUpdate} */ ({ [String(box.dataset.kind)]: { [String(box.dataset.channel)]: box.checked } });
  const who = me;
  prefsPending++;
  ui.prefsForm.setAttribute('aria-busy', 'true');
  ui.prefsStatus.textContent = 'Saving…';
  showError(ui.prefsError, null);
  prefsQueue = prefsQueue.then(async () => {
    if (me !== who) return;
    /** @type {string | null} */
    let failed = null;
    try {
      const saved = await client.putPreferences(change);
      if (me === who) prefs = saved;
    } catch (error) {
      failed = describe(error);
    }
    if (me !== who) return;
    prefsPending--;
    if (failed) showError(ui.prefsError, `Not saved: ${failed}`);
    // Once nothing else is on its way, the boxes show what the server holds (a failed change
    // goes back).
    if (prefsPending === 0) {
      if (prefs) renderPreferences(prefs);
      ui.prefsForm.removeAttribute('aria-busy');
      ui.prefsStatus.textContent = failed ? '' : 'Saved.';
    }
  });
}

function resetNotifySettings() {
  prefs = null;
  prefsPending = 0;
  ui.prefsForm.removeAttribute('aria-busy');
  ui.prefsFields.disabled = true;
  ui.prefsStatus.textContent = '';
  showError(ui.prefsError, null);
  renderPush('unknown');
}

// --- auth ------------------------------------------------------------------------------------

/** @param {SubmitEvent} event */
async function onAuth(event) {
  event.preventDefault();
  const mode = event.submitter instanceof HTMLButtonElement ? event.submitter.value : 'signin';
  const username = ui.authUsername.value.trim();
  const password = ui.authPassword.value;
  showError(ui.authError, null);
  ui.authUsername.removeAttribute('aria-invalid');
  ui.authPassword.removeAttribute('aria-invalid');
  if (!/^[A-Za-z0-9._]{3,30}$/.test(username)) {
    showError(ui.authError, 'Usernames are 3–30 letters, digits, dots or underscores.');
    ui.authUsername.focus();
    return;
  }
  if ([...password].length < 8) {
    showError(ui.authError, 'Passwords are at least 8 characters.');
    ui.authPassword.focus();
    return;
  }
  const buttons = ui.authForm.querySelectorAll('button');
  for (const b of buttons) b.disabled = true;
  try {
    const session = mode === 'signup' ? await client.register(username, password) : await client.login(username, password);
    ui.authForm.reset();
    await showSignedIn(session.user);
  } catch (error) {
    let message = describe(error);
    /** @type {HTMLInputElement | null} */
    let blamed = null;
    if (error instanceof ProblemError) {
      if (error.status === 409) {
        message = `“${username.toLowerCase()}” is taken. If it is yours, press Sign in instead.`;
        blamed = ui.authUsername;
      } else if (error.status === 401) {
        message = 'Wrong username or password.';
        blamed = ui.authPassword;
      } else if (error.fieldMessage('username')) {
        blamed = ui.authUsername;
      } else if (error.fieldMessage('password')) {
        blamed = ui.authPassword;
      }
    }
    showError(ui.authError, message);
    if (blamed) {
      blamed.setAttribute('aria-invalid', 'true');
      blamed.setAttribute('aria-errormessage', 'auth-error');
      blamed.focus();
    }
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

/** @param {string} [message] */
function showSignedOut(message) {
  client.disconnect();
  me = null;
  wasLive = false;
  if (feedTimer !== null) clearInterval(feedTimer);
  feedTimer = null;
  clearFeed();
  closePersonMenu();
  groups.clear();
  removedGroups.clear();
  hiddenUnread = 0;
  pageNewestNotification = 0;
  inboxApplied = ++inboxRequests; // a page still on its way belonged to the session that ended
  people.clear();
  found = null;
  resetNotifySettings();
  setUnread(0);
  closeInbox();
  renderInbox();
  ui.findResult.hidden = true;
  resetUpload();
  ui.appView.hidden = true;
  ui.userArea.hidden = true;
  ui.authView.hidden = false;
  renderConn(message ? 'signed-out' : 'offline');
  // Signed out there is no connection to speak of, unless it explains why the session ended.
  ui.conn.hidden = !message;
  showError(ui.authError, message ?? null);
  ui.authUsername.focus();
}

/** @param {User} user */
async function showSignedIn(user) {
  me = user;
  ui.me.textContent = user.username;
  fillAvatar(ui.meAvatar, user);
  // The form that had focus is about to disappear: hand focus to the page's main region.
  const focusWasInForm = ui.authView.contains(document.activeElement) || document.activeElement === document.body;
  ui.authView.hidden = true;
  ui.appView.hidden = false;
  ui.userArea.hidden = false;
  ui.conn.hidden = false;
  if (focusWasInForm) ui.main.focus({ preventScroll: true });
  void loadPushState();
  void loadPreferences();
  const [, , newest] = await Promise.all([loadFeed(), loadInbox(), client.notifications({ limit: 1 })]);
  // Resume from what was read: the newest notification (a toast for anything committed since)
  // and the newest group version of the inbox page (every group changed since comes again).
  // A notification can be newer than every group shown: its group was removed (an unlike).
  const since = Math.max(pageNewestNotification, newest.items[0]?.id ?? 0);
  const groupsSince = Math.max(0, ...[...groups.values()].map((g) => g.version));
  client.connect(
    {
      onNotification,
      onGroup,
      onGroupRemoved,
      onLikeCount,
      onRead,
      onNotificationsRemoved,
      onState,
      onGap: () => void loadInbox().catch(() => {}),
    },
    { since, groups: true, groupsSince },
  );
  if (feedTimer !== null) clearInterval(feedTimer);
  feedTimer = setInterval(() => {
    if (document.visibilityState === 'visible') refreshFeed().catch(() => {});
  }, FEED_POLL_MS);
}

async function signOut() {
  ui.signout.disabled = true;
  try {
    await client.logout();
  } catch {
    /* the token is forgotten locally either way */
  } finally {
    ui.signout.disabled = false;
  }
  showSignedOut();
}

// --- wiring ----------------------------------------------------------------------------------

ui.authForm.addEventListener('submit', (e) => void onAuth(/** @type {SubmitEvent} */ (e)));
ui.uploadForm.addEventListener('submit', (e) => void onUpload(/** @type {SubmitEvent} */ (e)));
ui.uploadFile.addEventListener('change', onFileChosen);
ui.findForm.addEventListener('submit', (e) => void onFind(/** @type {SubmitEvent} */ (e)));
ui.signout.addEventListener('click', () => void signOut());
ui.bell.addEventListener('click', () => (ui.inbox.hidden ? openInbox() : closeInbox()));
ui.inboxClose.addEventListener('click', () => {
  closeInbox();
  ui.bell.focus();
});
ui.markAllRead.addEventListener('click', () => void markAllRead());
ui.pushToggle.addEventListener('click', () => void (pushState === 'on' ? disablePush() : enablePush()));
ui.prefsForm.addEventListener('change', onPreferenceChange);
ui.prefsForm.addEventListener('submit', (event) => event.preventDefault());
ui.feedMore.addEventListener('click', () => void loadMore());
ui.feedRefresh.addEventListener('click', async () => {
  ui.feedRefresh.disabled = true;
  try {
    await refreshFeed();
  } catch (error) {
    toastError(describe(error));
  } finally {
    ui.feedRefresh.disabled = false;
  }
});
document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape') return;
  if (menuFor) {
    closePersonMenu(true);
  } else if (!ui.inbox.hidden) {
    closeInbox();
    ui.bell.focus();
  }
});
document.addEventListener('click', (event) => {
  const target = event.target;
  if (!(target instanceof Node) || ui.personMenu.contains(target)) return;
  if (menuFor && !menuFor.trigger.contains(target)) closePersonMenu();
  if (!ui.inbox.hidden && !ui.inbox.contains(target) && !ui.bell.contains(target)) closeInbox();
});
document.addEventListener('scroll', placePersonMenu, { capture: true, passive: true });
window.addEventListener('resize', placePersonMenu);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && me) refreshFeed().catch(() => {});
});
setInterval(refreshTimes, 30_000);

// Side panels: always open on wide screens; folded (and foldable) on narrow ones, so the feed
// is what a phone shows first.
const narrow = window.matchMedia('(max-width: 860px)');
function applyFolds() {
  for (const panel of [ui.uploadPanel, ui.findPanel, ui.notifyPanel]) {
    panel.open = !narrow.matches;
    const summary = panel.querySelector('summary');
    if (summary) summary.tabIndex = narrow.matches ? 0 : -1;
  }
}
for (const panel of [ui.uploadPanel, ui.findPanel, ui.notifyPanel]) {
  panel.querySelector('summary')?.addEventListener('click', (event) => {
    if (!narrow.matches) event.preventDefault();
  });
}
narrow.addEventListener('change', applyFolds);
applyFolds();

if (slot) {
  ui.slotLabel.textContent = slot.toUpperCase();
  ui.slotLabel.hidden = false;
}
setUnread(0);

/** For poking around from the devtools console: `pulseDemo.client.get('/me')`. */
Object.assign(window, { pulseDemo: { client } });

async function boot() {
  if (!client.token) {
    showSignedOut();
    return;
  }
  renderConn('connecting');
  try {
    await showSignedIn(await client.me());
  } catch (error) {
    if (error instanceof ProblemError && error.status === 401) {
      client.setToken(null);
      showSignedOut('Your session has ended. Please sign in again.');
    } else {
      showSignedOut();
      showError(ui.authError, describe(error));
    }
  }
}

void boot();
