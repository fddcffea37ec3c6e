// @ts-check
/**
 * Pulse browser client: REST calls and the live notification socket.
 *
 * A plain ES module with JSDoc types (checked by `tsc --checkJs --strict`), usable from any page
 * without a build step:
 *
 *   import { PulseClient, ProblemError } from '/client.js';
 *   const pulse = new PulseClient({ token: sessionStorage.getItem('pulse.token') });
 *   await pulse.login('alice', 'correct horse');
 *   const feed = await pulse.get('/feed');                        // { items: Post[], next_cursor }
 *   const post = await pulse.post('/posts', { caption: 'hi', image: file }); // multipart upload
 *   pulse.connect({ onNotification: (n) => console.log(n.text), onState: console.log });
 *   pulse.watch([42]); // live like counts for post 42
 *   // Grouped inbox: "carol and bob liked your photo.", kept true live
 *   const page = await pulse.groups({ limit: 30 });               // { items: NotificationGroup[], next_cursor, unread_count }
 *   pulse.connect({ onGroup: (g) => {}, onGroupRemoved: (id) => {} }, { groups: true });
 *   // Preferences, and Web Push for when no page is open
 *   await pulse.putPreferences({ like: { inbox: false } });       // the full preferences back
 *   const sub = await registration.pushManager.subscribe({
 *     userVisibleOnly: true, applicationServerKey: base64UrlToBytes(await pulse.pushKey()) });
 *   await pulse.putPushSubscription(sub);                         // getPushSubscription(): null when none
 *
 * REST: every path is relative to `/api/v1`; `Authorization: Bearer <token>` is added when the
 * client holds a token; a non-2xx answer throws a {@link ProblemError} (RFC 9457).
 *
 * Live socket (`GET /api/v1/ws`): a browser cannot set headers on a WebSocket, so every attempt
 * first trades the token for a single-use ticket (`POST /auth/ws-ticket`). The client resumes
 * with `?since=<last notification id seen>`, so the server replays what was missed while it was
 * away; it reconnects by itself with jittered exponential backoff, re-subscribes to the watched
 * posts after every reconnect, drops duplicate notification ids, and stops for good when the
 * server says the token is no longer valid (close code 4401, or a 401 for the ticket).
 *
 * Where WebSockets are broken (some corporate proxies and mobile networks), the client falls back
 * to the same stream as server-sent events (`GET /api/v1/events`, an `EventSource`): after
 * {@link SOCKET_FAILURES_BEFORE_SSE} sockets in a row close before the server's hello while the
 * server itself answers, it stays on the event stream for the rest of the connection
 * (`client.transport` says which is in use). The stream carries the same frames as events and
 * the same resume point; it cannot take frames from the client, so changing the watched posts
 * reopens it (with a fresh ticket and `?since=`, so nothing is missed).
 *
 * With `connect(…, { groups: true })` the socket is opened with `?groups=1` and also reports
 * notification groups (`onGroup`, `onGroupRemoved`, and `onRead`'s unread group count). Group
 * versions grow with every change to the user's groups: the client remembers the highest one
 * seen, resumes with `&groups_since=<it>` after a drop (the server then sends every group that
 * changed meanwhile, removals included), and drops frames at or below it.
 */

/** @typedef {{ id: number, username: string, display_name: string }} UserSummary */
/**
 * @typedef {{
 *   id: number, username: string, display_name: string, created_at: string,
 *   follower_count: number, following_count: number, post_count: number, followed_by_me: boolean,
 *   blocked_by_me: boolean, muted_by_me: boolean
 * }} User
 */
/**
 * @typedef {{
 *   id: number, author: UserSummary, caption: string, image_url: string,
 *   thumbnail_url: string, width: number, height: number, created_at: string,
 *   like_count: number, comment_count: number, liked_by_me: boolean
 * }} Post
 */
/**
 * @typedef {{
 *   id: number, kind: 'like' | 'comment' | 'follow', actor: UserSummary,
 *   post_id: number | null, comment_id: number | null, text: string,
 *   created_at: string, read: boolean, group_id: number | null
 * }} Notification
 */
/**
 * One line of the grouped inbox: "bob, carol and 2 others liked your photo." `actors` are the
 * newest members, newest first (at most 3); `text` is rendered by the server from them;
 * `version` is the user's group version of this group's latest change.
 * @typedef {{
 *   id: number, kind: 'like' | 'comment' | 'follow', post_id: number | null,
 *   actors: UserSummary[], actor_count: number, text: string,
 *   latest_notification_id: number, updated_at: string, read: boolean, version: number
 * }} NotificationGroup
 */
/** @template T @typedef {{ items: T[], next_cursor: string | null }} Page */
/** @typedef {Page<Notification> & { unread_count: number }} Inbox */
/** @typedef {Page<NotificationGroup> & { unread_count: number }} GroupInbox `unread_count`: unread groups */
/** @typedef {{ unread_count: number, unread_group_count: number }} UnreadCounts */
/** @typedef {{ user: User, token: string }} Session */
/** @typedef {{ post_id: number, liked: boolean, like_count: number }} LikeState */
/** @typedef {{ field: string, message: string }} FieldError */
/**
 * Where one kind of notification goes: `inbox` (created at all: the bell, the socket) and `push`
 * (Web Push to the devices with a subscription, when no socket of yours showed it live).
 * @typedef {{ inbox: boolean, push: boolean }} Channels
 */
/**
 * Your notification preferences: per kind, and from whom (`following`: only people you follow).
 * @typedef {{ like: Channels, comment: Channels, follow: Channels, from: 'everyone' | 'following' }} NotificationPreferences
 */
/**
 * A change to the preferences: any subset; what is left out stays as it is.
 * @typedef {{
 *   like?: Partial<Channels>, comment?: Partial<Channels>, follow?: Partial<Channels>,
 *   from?: 'everyone' | 'following'
 * }} PreferencesUpdate
 */
/**
 * A browser's `PushSubscription.toJSON()`: what `PUT /push/subscription` takes.
 * @typedef {{ endpoint: string, keys: { p256dh: string, auth: string }, expirationTime?: number | null }} PushSubscriptionBody
 */
/** This device's (this token's) push subscription, as the server keeps it. @typedef {{ id: number, endpoint: string, created_at: string }} PushSubscriptionInfo */
/**
 * What a push message carries, decrypted (a service worker's `event.data.json()`). The server
 * pushes only what no live socket of the user showed.
 * @typedef {{ notification: Notification, unread_count: number, group: NotificationGroup }} PushPayload
 */
/** @typedef {{ limit?: number, cursor?: string | null }} PageQuery */

/**
 * The states of the live socket, as reported to `onState`:
 * - `connecting`: first attempt after `connect()`;
 * - `live`: the server said hello; notifications flow;
 * - `reconnecting`: the socket dropped (or could not open); waiting for the next attempt;
 * - `signed-out`: the token was revoked or expired (4401 / 401); the client stopped trying;
 * - `closed`: `disconnect()` was called.
 * @typedef {'connecting' | 'live' | 'reconnecting' | 'signed-out' | 'closed'} ConnectionState
 */

/**
 * @typedef {object} LiveHandlers
 * @property {(notification: Notification) => void} [onNotification] each new notification, once
 * @property {(postId: number, likeCount: number) => void} [onLikeCount] a watched post's count
 * @property {(unreadCount: number, unreadGroupCount?: number) => void} [onRead] notifications were
 *   marked read somewhere (or removed): the unread counts now; `unreadGroupCount` only with
 *   `groups: true`
 * @property {(group: NotificationGroup) => void} [onGroup] a group was created or changed
 *   (`groups: true`): replace what is shown for its id
 * @property {(groupId: number, version: number) => void} [onGroupRemoved] a group no longer
 *   exists (`groups: true`): drop it
 * @property {(notificationIds: number[], unreadCount: number) => void} [onNotificationsRemoved]
 *   notifications that may be on screen no longer exist (you blocked their actor); drop them and
 *   show `unreadCount`, the inbox's count after the removal
 * @property {(state: ConnectionState, detail: { attempt: number, delayMs?: number, code?: number }) => void} [onState]
 * @property {(inbox: Inbox, beforeId: number) => void} [onGap] more than the server replays was
 *   missed; the client fetched the newest inbox page so the page can re-render from it
 * @property {(hello: { user_id: number, connection_id: string, heartbeat_s: number }) => void} [onHello]
 * @property {(code: string, message: string) => void} [onServerError] an `error` frame
 */

/**
 * @typedef {object} ConnectOptions
 * @property {number} [since] the last notification id already shown (e.g. the newest id of the
 *   inbox page just rendered), so nothing committed in between is missed
 * @property {boolean} [groups] open the socket with `?groups=1`: group frames and unread group
 *   counts (default false)
 * @property {number} [groupsSince] with `groups`: the highest group version already shown (e.g.
 *   the newest `version` of the groups page just rendered); replaces the remembered one, since
 *   versions belong to one user
 * @property {'auto' | 'websocket' | 'sse'} [transport] `auto` (the default): a WebSocket, or
 *   the event stream where sockets cannot be opened; `websocket` or `sse` to use only that one
 * @property {number} [minBackoffMs] first reconnect delay ceiling (default 250)
 * @property {number} [maxBackoffMs] largest reconnect delay ceiling (default 10000)
 */

const API_PREFIX = '/api/v1';
/** Close code the server uses for a revoked or expired token. */
export const CLOSE_TOKEN_INVALID = 4401;
/**
 * With `transport: 'auto'`: sockets in a row that closed before the server's hello (while the
 * ticket request worked, so the server is up) before the client switches to the event stream.
 */
export const SOCKET_FAILURES_BEFORE_SSE = 2;
/** The event types of the stream that carry frames (its `close` event is handled apart). */
const STREAM_FRAME_EVENTS = [
  'hello',
  'notification',
  'like_count',
  'read',
  'group',
  'group_removed',
  'notifications_removed',
  'gap',
  'subscribed',
];
/** How long watch()/unwatch() changes are gathered before the event stream is reopened. */
const RESTREAM_DELAY_MS = 100;
/** How many notification ids are remembered to drop duplicates (bounded on purpose). */
const SEEN_IDS_LIMIT = 2000;

/** An RFC 9457 problem document returned by the API, thrown for every non-2xx answer. */
export class ProblemError extends Error {
  /**
   * @param {{ type?: string, title?: string, status: number, detail?: string, errors?: FieldError[] }} problem
   */
  constructor(problem) {
    super(problem.detail || problem.title || `HTTP ${problem.status}`);
    this.name = 'ProblemError';
    /** A stable URI reference per kind of problem, e.g. `/problems/validation`. */
    this.type = problem.type ?? 'about:blank';
    /** @type {string} */
    this.title = problem.title ?? '';
    /** @type {number} */
    this.status = problem.status;
    /** @type {string} */
    this.detail = problem.detail ?? '';
    /** @type {FieldError[]} */
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }

  /**
   * The message for one field, when the server blamed that field.
   * @param {string} field
   */
  fieldMessage(field) {
    return this.errors.find((e) => e.field === field)?.message;
  }
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A multipart form from a plain object: Blobs become file parts (a Blob that is not a File is
 * named after its field), everything else its string form; null and undefined are left out.
 * @param {Record<string, unknown>} fields
 */
function toFormData(fields) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined || value === null) continue;
    if (value instanceof Blob) form.append(name, value, value instanceof File ? value.name : name);
    else form.append(name, String(value));
  }
  return form;
}

/** @param {PageQuery & Record<string, string | number | boolean | null | undefined>} query */
function queryString(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/**
 * Bytes from base64url (padded or not), e.g. the VAPID key for `applicationServerKey`.
 * @param {string} text
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function base64UrlToBytes(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  const binary = atob(base64.padEnd(base64.length + ((4 - (base64.length % 4)) % 4), '='));
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
}

export class PulseClient {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] origin of the server, e.g. `http://127.0.0.1:8080`;
   *   empty (the default) means the page's own origin
   * @param {string | null} [options.token] a token from an earlier register/login
   * @param {(token: string | null) => void} [options.onTokenChange] called whenever
   *   register/login/logout (or a 4401) changes the token, e.g. to keep it in sessionStorage
   */
  constructor({ baseUrl = '', token = null, onTokenChange } = {}) {
    /** @type {string} */
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    /** @type {string | null} */
    this.token = token;
    /** @private */
    this.onTokenChange = onTokenChange;

    // --- live socket state -------------------------------------------------------------------
    /** @private @type {WebSocket | null} */
    this.socket = null;
    /** @private @type {EventSource | null} */
    this.stream = null;
    /** @type {'websocket' | 'sse'} What carries the live frames (see `ConnectOptions.transport`). */
    this.transport = 'websocket';
    /** @private @type {'auto' | 'websocket' | 'sse'} */
    this.transportOption = 'auto';
    /** @private Sockets in a row that closed before their hello. */
    this.socketFailures = 0;
    /** @private @type {ReturnType<typeof setTimeout> | null} */
    this.restreamTimer = null;
    /** @private The watched posts the open event stream was asked for (`post_ids`). */
    this.streamPosts = '';
    /** @private @type {LiveHandlers} */
    this.handlers = {};
    /** @type {ConnectionState} */
    this.state = 'closed';
    /** @type {number | null} The newest notification id delivered; sent as `?since=`. */
    this.lastNotificationId = null;
    /** @private @type {Set<number>} */
    this.seenIds = new Set();
    /** Whether the socket asks for group frames (`?groups=1`). */
    this.groupsEnabled = false;
    /** @type {number | null} The highest group version delivered; sent as `?groups_since=`. */
    this.lastGroupVersion = null;
    /** @private @type {Set<number>} */
    this.watched = new Set();
    /** @private */
    this.attempt = 0;
    /** @private */
    this.minBackoffMs = 250;
    /** @private */
    this.maxBackoffMs = 10_000;
    /** @private @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
    /** @private @type {ReturnType<typeof setInterval> | null} */
    this.heartbeatTimer = null;
    /** @private */
    this.lastFrameAt = 0;
    /** @private Bumped by connect()/disconnect() so an abandoned attempt does nothing. */
    this.generation = 0;
    /** @private */
    this.onOnline = () => {
      if (this.state === 'reconnecting' && this.retryTimer !== null) {
        clearTimeout(this.retryTimer);
        this.retryTimer = null;
        void this.openSocket(this.generation);
      }
    };
  }

  // --- REST ----------------------------------------------------------------------------------

  /**
   * @param {string} method
   * @param {string} path relative to `/api/v1`, e.g. `/feed?limit=10`
   * @param {unknown} [body] a plain object (sent as JSON), FormData, or a plain object with a
   *   Blob/File among its values (both sent as `multipart/form-data`, e.g.
   *   `client.post('/posts', { caption, image })`)
   * @returns {Promise<any>} the parsed JSON answer, or `undefined` for 204
   */
  async request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    /** @type {BodyInit | undefined} */
    let payload;
    if (isObject(body) && !(body instanceof FormData) && Object.values(body).some((v) => v instanceof Blob)) {
      body = toFormData(body);
    }
    if (body instanceof FormData) {
      payload = body; // the browser sets the multipart boundary itself
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const response = await fetch(`${this.baseUrl}${API_PREFIX}${path}`, {
      method,
      headers,
      body: payload,
    });
    const type = response.headers.get('Content-Type') ?? '';
    const isJson = /\bjson\b/i.test(type);
    if (!response.ok) {
      /** @type {unknown} */
      let doc = null;
      if (isJson) doc = await response.json().catch(() => null);
      const problem = isObject(doc) ? doc : {};
      throw new ProblemError({
        type: typeof problem.type === 'string' ? problem.type : undefined,
        title: typeof problem.title === 'string' ? problem.title : response.statusText,
        status: typeof problem.status === 'number' ? problem.status : response.status,
        detail: typeof problem.detail === 'string' ? problem.detail : undefined,
        errors: Array.isArray(problem.errors) ? /** @type {FieldError[]} */ (problem.errors) : [],
      });
    }
    if (response.status === 204 || !isJson) return undefined;
    return response.json();
  }

  /** @param {string} path @returns {Promise<any>} */
  get(path) {
    return this.request('GET', path);
  }

  /** @param {string} path @param {unknown} [body] @returns {Promise<any>} */
  post(path, body) {
    return this.request('POST', path, body);
  }

  /** @param {string} path @param {unknown} [body] @returns {Promise<any>} */
  put(path, body) {
    return this.request('PUT', path, body);
  }

  /** @param {string} path @param {unknown} [body] @returns {Promise<any>} */
  delete(path, body) {
    return this.request('DELETE', path, body);
  }

  /**
   * An absolute URL for a media path such as `/media/abc` (for `<img src>`).
   * @param {string} path
   */
  mediaUrl(path) {
    return /^https?:/i.test(path) ? path : `${this.baseUrl}${path}`;
  }

  // --- session -------------------------------------------------------------------------------

  /**
   * Replaces the token (and tells `onTokenChange`); `null` forgets it without asking the server.
   * @param {string | null} token
   */
  setToken(token) {
    // Group versions count one user's changes: another token may be another user.
    if (token !== this.token) this.lastGroupVersion = null;
    this.token = token;
    this.onTokenChange?.(token);
  }

  /**
   * @param {string} username
   * @param {string} password
   * @param {string} [displayName]
   * @returns {Promise<Session>}
   */
  async register(username, password, displayName) {
    /** @type {Record<string, string>} */
    const body = { username, password };
    if (displayName) body.display_name = displayName;
    const session = /** @type {Session} */ (await this.post('/auth/register', body));
    this.setToken(session.token);
    return session;
  }

  /**
   * @param {string} username
   * @param {string} password
   * @returns {Promise<Session>}
   */
  async login(username, password) {
    const session = /** @type {Session} */ (await this.post('/auth/login', { username, password }));
    this.setToken(session.token);
    return session;
  }

  /** Revokes the token on the server (its sockets everywhere close with 4401) and forgets it. */
  async logout() {
    this.disconnect();
    try {
      if (this.token) await this.post('/auth/logout');
    } finally {
      this.setToken(null);
    }
  }

  // --- typed helpers for the endpoints the demo uses -----------------------------------------

  /** @returns {Promise<User>} */
  me() {
    return this.get('/me');
  }

  /** @param {string} username @returns {Promise<User>} */
  user(username) {
    return this.get(`/users/${encodeURIComponent(username)}`);
  }

  /** @param {number} userId @returns {Promise<User>} */
  follow(userId) {
    return this.put(`/users/${userId}/follow`);
  }

  /** @param {number} userId @returns {Promise<User>} */
  unfollow(userId) {
    return this.delete(`/users/${userId}/follow`);
  }

  /**
   * Blocks a user: the follows between you end, their notifications to you are removed (the
   * socket says which, see `onNotificationsRemoved`), and to them you no longer exist.
   * @param {number} userId @returns {Promise<User>} the user, with `blocked_by_me: true`
   */
  block(userId) {
    return this.put(`/users/${userId}/block`);
  }

  /** @param {number} userId @returns {Promise<User>} */
  unblock(userId) {
    return this.delete(`/users/${userId}/block`);
  }

  /**
   * Mutes a user: their likes, comments and follows no longer notify you.
   * @param {number} userId @returns {Promise<User>} the user, with `muted_by_me: true`
   */
  mute(userId) {
    return this.put(`/users/${userId}/mute`);
  }

  /** @param {number} userId @returns {Promise<User>} */
  unmute(userId) {
    return this.delete(`/users/${userId}/mute`);
  }

  /** The people you blocked, newest first. @param {PageQuery} [query] @returns {Promise<Page<UserSummary>>} */
  blocks(query = {}) {
    return this.get(`/blocks${queryString(query)}`);
  }

  /** The people you muted, newest first. @param {PageQuery} [query] @returns {Promise<Page<UserSummary>>} */
  mutes(query = {}) {
    return this.get(`/mutes${queryString(query)}`);
  }

  /** @param {PageQuery} [query] @returns {Promise<Page<Post>>} */
  feed(query = {}) {
    return this.get(`/feed${queryString(query)}`);
  }

  /**
   * `POST /posts` as multipart: the same as `client.post('/posts', { caption, image })`.
   * @param {Blob} image @param {string} caption @param {string} [filename] @returns {Promise<Post>}
   */
  createPost(image, caption, filename = 'photo') {
    const form = new FormData();
    form.append('image', image, image instanceof File ? image.name : filename);
    form.append('caption', caption);
    return this.post('/posts', form);
  }

  /** @param {number} postId @returns {Promise<LikeState>} */
  like(postId) {
    return this.put(`/posts/${postId}/like`);
  }

  /** @param {number} postId @returns {Promise<LikeState>} */
  unlike(postId) {
    return this.delete(`/posts/${postId}/like`);
  }

  /** @param {PageQuery & { unread_only?: boolean }} [query] @returns {Promise<Inbox>} */
  notifications(query = {}) {
    return this.get(`/notifications${queryString(query)}`);
  }

  /** @param {number} upToId @returns {Promise<UnreadCounts>} */
  markReadUpTo(upToId) {
    return this.post('/notifications/read', { up_to_id: upToId });
  }

  /**
   * The grouped inbox, newest `updated_at` first; `unread_count` counts unread groups.
   * @param {PageQuery & { unread_only?: boolean }} [query] @returns {Promise<GroupInbox>}
   */
  groups(query = {}) {
    return this.get(`/notifications/groups${queryString(query)}`);
  }

  /**
   * Marks these groups read, with every notification in them.
   * @param {number[]} groupIds @returns {Promise<UnreadCounts>}
   */
  markGroupsRead(groupIds) {
    return this.post('/notifications/read', { group_ids: groupIds });
  }

  /** Your notification preferences (everything on, from everyone, until changed). @returns {Promise<NotificationPreferences>} */
  preferences() {
    return this.get('/notifications/preferences');
  }

  /**
   * Changes some preferences, e.g. `putPreferences({ like: { inbox: false } })`; the rest stay.
   * @param {PreferencesUpdate} changes @returns {Promise<NotificationPreferences>} all of them, as saved
   */
  putPreferences(changes) {
    return this.put('/notifications/preferences', changes);
  }

  // --- Web Push --------------------------------------------------------------------------------

  /**
   * The server's VAPID public key (base64url of a 65-byte P-256 point): the
   * `applicationServerKey` for `PushManager.subscribe` (see {@link base64UrlToBytes}).
   * @returns {Promise<string>}
   */
  async pushKey() {
    const answer = /** @type {{ vapid_public_key: string }} */ (await this.get('/push/key'));
    return answer.vapid_public_key;
  }

  /**
   * Saves the browser's push subscription for this device (this token), replacing the one it
   * had. A 422 says the endpoint (https, on a public address) or the keys were refused.
   * @param {PushSubscription | PushSubscriptionBody} subscription a `PushSubscription` or its `toJSON()`
   * @returns {Promise<PushSubscriptionInfo>}
   */
  putPushSubscription(subscription) {
    const body = 'toJSON' in subscription && typeof subscription.toJSON === 'function' ? subscription.toJSON() : subscription;
    return this.put('/push/subscription', body);
  }

  /** This device's push subscription, or `null` when it has none (a 404). @returns {Promise<PushSubscriptionInfo | null>} */
  async getPushSubscription() {
    try {
      return await this.get('/push/subscription');
    } catch (error) {
      if (error instanceof ProblemError && error.status === 404) return null;
      throw error;
    }
  }

  /** Deletes this device's push subscription (nothing happens when it has none). @returns {Promise<void>} */
  async deletePushSubscription() {
    await this.delete('/push/subscription');
  }

  // --- live socket ---------------------------------------------------------------------------

  /**
   * Opens the live socket and keeps it open (reconnecting by itself) until `disconnect()`,
   * `logout()`, or the server rejects the token.
   * @param {LiveHandlers} handlers
   * @param {ConnectOptions} [options]
   */
  connect(handlers, options = {}) {
    this.disconnect();
    this.handlers = handlers;
    if (options.since !== undefined) this.noteSeen(options.since);
    this.groupsEnabled = options.groups ?? false;
    if (options.groupsSince !== undefined) {
      this.lastGroupVersion = Number.isSafeInteger(options.groupsSince) && options.groupsSince >= 0 ? options.groupsSince : null;
    }
    this.transportOption = options.transport ?? 'auto';
    this.transport = this.transportOption === 'sse' ? 'sse' : 'websocket';
    this.socketFailures = 0;
    if (options.minBackoffMs !== undefined) this.minBackoffMs = options.minBackoffMs;
    if (options.maxBackoffMs !== undefined) this.maxBackoffMs = options.maxBackoffMs;
    this.attempt = 0;
    const generation = ++this.generation;
    if (typeof window !== 'undefined') window.addEventListener('online', this.onOnline);
    this.setState('connecting', { attempt: 0 });
    void this.openSocket(generation);
  }

  /** Closes the live socket and stops reconnecting. */
  disconnect() {
    this.generation++;
    if (typeof window !== 'undefined') window.removeEventListener('online', this.onOnline);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopHeartbeat();
    this.dropStream();
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'bye');
    if (this.state !== 'closed' && this.state !== 'signed-out') this.setState('closed', { attempt: 0 });
  }

  /**
   * Live like counts for these posts (e.g. the ones on screen). Remembered across reconnects.
   * @param {Iterable<number>} postIds
   */
  watch(postIds) {
    const added = [...postIds].filter((id) => !this.watched.has(id));
    for (const id of added) this.watched.add(id);
    if (added.length) this.send({ type: 'subscribe', post_ids: added });
    if (added.length) this.restreamSoon();
  }

  /** @param {Iterable<number>} postIds */
  unwatch(postIds) {
    const removed = [...postIds].filter((id) => this.watched.has(id));
    for (const id of removed) this.watched.delete(id);
    if (removed.length) this.send({ type: 'unsubscribe', post_ids: removed });
    if (removed.length) this.restreamSoon();
  }

  /** The posts currently watched. */
  get watchedPostIds() {
    return [...this.watched];
  }

  /**
   * Records a notification id as already shown (e.g. one fetched from the inbox), so the
   * socket neither replays it nor reports it twice.
   * @param {number} id
   */
  noteSeen(id) {
    if (!Number.isSafeInteger(id) || id < 0) return;
    if (id > 0) {
      this.seenIds.add(id);
      if (this.seenIds.size > SEEN_IDS_LIMIT) {
        // Sets iterate in insertion order: drop the oldest remembered id.
        const oldest = this.seenIds.values().next().value;
        if (oldest !== undefined) this.seenIds.delete(oldest);
      }
    }
    if (this.lastNotificationId === null || id > this.lastNotificationId) this.lastNotificationId = id;
  }

  /**
   * Records a group version as already shown (e.g. the newest `version` of a groups page just
   * rendered): a reconnect resumes after it, and frames at or below it are dropped.
   * @param {number} version
   */
  noteGroupVersion(version) {
    if (!Number.isSafeInteger(version) || version < 0) return;
    if (this.lastGroupVersion === null || version > this.lastGroupVersion) this.lastGroupVersion = version;
  }

  /**
   * Whether a group frame of this version is new; remembers it.
   * @private @param {unknown} version
   */
  freshGroupVersion(version) {
    if (typeof version !== 'number' || !Number.isSafeInteger(version)) return false;
    if (this.lastGroupVersion !== null && version <= this.lastGroupVersion) return false; // replay overlap
    this.lastGroupVersion = version;
    return true;
  }

  /** @private @param {unknown} message */
  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN && this.state === 'live') {
      this.socket.send(JSON.stringify(message));
    }
    // Otherwise nothing is lost: every hello re-subscribes to everything watched.
  }

  /** @private @param {ConnectionState} state @param {{ attempt: number, delayMs?: number, code?: number }} detail */
  setState(state, detail) {
    this.state = state;
    this.handlers.onState?.(state, detail);
  }

  /**
   * The event stream takes its watched posts with the request: after a change, reopen it (once
   * per burst of changes). A socket subscribes with frames instead (see `send`).
   * @private
   */
  restreamSoon() {
    if (this.transport !== 'sse' || this.stream === null || this.restreamTimer !== null) return;
    const generation = this.generation;
    this.restreamTimer = setTimeout(() => {
      this.restreamTimer = null;
      if (generation !== this.generation || this.stream === null) return;
      // A page that unwatches and watches the same posts again (a re-render) changes nothing.
      if (this.watchedParam() === this.streamPosts) return;
      this.dropStream();
      void this.openSocket(generation);
    }, RESTREAM_DELAY_MS);
  }

  /** @private Closes the event stream, if one is open (an EventSource would reconnect by itself). */
  dropStream() {
    if (this.restreamTimer !== null) clearTimeout(this.restreamTimer);
    this.restreamTimer = null;
    const stream = this.stream;
    this.stream = null;
    stream?.close();
  }

  /**
   * A socket closed before its hello while the server answered the ticket request: WebSockets
   * may be broken on this network. With `transport: 'auto'`, enough of them in a row switch to
   * the event stream.
   * @private
   */
  noteSocketFailure() {
    this.socketFailures++;
    if (this.transportOption === 'auto' && this.socketFailures >= SOCKET_FAILURES_BEFORE_SSE) {
      this.transport = 'sse';
    }
  }

  /** The watched posts as `post_ids` takes them, in a stable order. @private */
  watchedParam() {
    return [...this.watched].sort((a, b) => a - b).join(',');
  }

  /** @private */
  streamUrl(/** @type {string} */ ticket) {
    const url = new URL(`${API_PREFIX}/events`, this.baseUrl || window.location.origin);
    url.searchParams.set('ticket', ticket);
    if (this.lastNotificationId !== null) url.searchParams.set('since', String(this.lastNotificationId));
    if (this.groupsEnabled) {
      url.searchParams.set('groups', '1');
      if (this.lastGroupVersion !== null) url.searchParams.set('groups_since', String(this.lastGroupVersion));
    }
    this.streamPosts = this.watchedParam();
    if (this.streamPosts) url.searchParams.set('post_ids', this.streamPosts);
    return url.toString();
  }

  /**
   * Opens the event stream with a ticket. Its `close` event says why the server ended it (the
   * socket's close codes); anything else that ends it is an `error` without data. Either way the
   * client reconnects itself, with a fresh ticket: an EventSource would retry with the used one.
   * @private @param {string} ticket @param {number} generation
   */
  openStream(ticket, generation) {
    const stream = new EventSource(this.streamUrl(ticket));
    this.stream = stream;
    const current = () => generation === this.generation && this.stream === stream;
    /** @param {Event} event */
    const onEvent = (event) => {
      if (!current()) return;
      this.lastFrameAt = Date.now();
      this.onFrame(/** @type {MessageEvent} */ (event).data, generation);
    };
    for (const type of STREAM_FRAME_EVENTS) stream.addEventListener(type, onEvent);
    stream.addEventListener('close', (event) => {
      if (!current()) return;
      /** @type {unknown} */
      let data = null;
      try {
        data = JSON.parse(/** @type {MessageEvent} */ (event).data);
      } catch {
        /* no code: reconnect */
      }
      const code = isObject(data) && typeof data.code === 'number' ? data.code : undefined;
      this.dropStream();
      if (code === CLOSE_TOKEN_INVALID) this.signedOut(code);
      else this.scheduleReconnect(generation, code);
    });
    stream.addEventListener('error', (event) => {
      if (!current()) return;
      const data = /** @type {MessageEvent} */ (event).data;
      // The server's own `error` frames arrive as events named `error` too, with data.
      if (typeof data === 'string') {
        this.onFrame(data, generation);
        return;
      }
      this.dropStream();
      this.scheduleReconnect(generation);
    });
  }

  /** @private */
  wsUrl(/** @type {string} */ ticket) {
    const base = this.baseUrl || window.location.origin;
    const url = new URL(`${API_PREFIX}/ws`, base);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('ticket', ticket);
    if (this.lastNotificationId !== null) url.searchParams.set('since', String(this.lastNotificationId));
    if (this.groupsEnabled) {
      url.searchParams.set('groups', '1');
      if (this.lastGroupVersion !== null) url.searchParams.set('groups_since', String(this.lastGroupVersion));
    }
    return url.toString();
  }

  /** @private @param {number} generation */
  async openSocket(generation) {
    /** @type {string} */
    let ticket;
    try {
      const answer = /** @type {{ ticket: string }} */ (await this.post('/auth/ws-ticket'));
      ticket = answer.ticket;
    } catch (error) {
      if (generation !== this.generation) return;
      if (error instanceof ProblemError && error.status === 401) {
        this.signedOut(401);
      } else {
        this.scheduleReconnect(generation);
      }
      return;
    }
    if (generation !== this.generation) return;
    if (this.transport === 'sse') {
      this.openStream(ticket, generation);
      return;
    }

    // The ticket travels in the query string: encode it (biscuits are base64url, but a
    // server is free to change the format).
    const socket = new WebSocket(this.wsUrl(ticket));
    this.socket = socket;
    socket.addEventListener('message', (event) => {
      if (generation !== this.generation || this.socket !== socket) return;
      this.lastFrameAt = Date.now();
      if (typeof event.data === 'string') this.onFrame(event.data, generation);
    });
    socket.addEventListener('close', (event) => {
      if (generation !== this.generation || this.socket !== socket) return;
      this.socket = null;
      this.stopHeartbeat();
      if (this.state !== 'live') this.noteSocketFailure();
      if (event.code === CLOSE_TOKEN_INVALID) {
        this.signedOut(event.code);
      } else {
        this.scheduleReconnect(generation, event.code);
      }
    });
    // 'error' is always followed by 'close', which does the work.
  }

  /** @private @param {string} data @param {number} generation */
  onFrame(data, generation) {
    /** @type {unknown} */
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!isObject(frame)) return;
    switch (frame.type) {
      case 'hello': {
        const hello = /** @type {{ user_id: number, connection_id: string, heartbeat_s: number }} */ (
          /** @type {unknown} */ (frame)
        );
        this.attempt = 0;
        this.socketFailures = 0;
        // An event stream reopened for other posts was live all along: not a reconnect.
        if (this.state !== 'live') this.setState('live', { attempt: 0 });
        if (this.transport === 'websocket') {
          if (this.watched.size) this.send({ type: 'subscribe', post_ids: [...this.watched] });
          this.startHeartbeat(typeof hello.heartbeat_s === 'number' ? hello.heartbeat_s : 20);
        }
        // An event stream watches its posts from the URL, and the browser notices its end.
        this.handlers.onHello?.(hello);
        break;
      }
      case 'notification': {
        const notification = /** @type {Notification} */ (frame.notification);
        if (!isObject(notification) || typeof notification.id !== 'number') return;
        if (this.seenIds.has(notification.id)) return; // duplicate (replay overlap): drop it
        this.noteSeen(notification.id);
        this.handlers.onNotification?.(notification);
        break;
      }
      case 'like_count':
        if (typeof frame.post_id === 'number' && typeof frame.like_count === 'number') {
          this.handlers.onLikeCount?.(frame.post_id, frame.like_count);
        }
        break;
      case 'read':
        if (typeof frame.unread_count === 'number') {
          const groups = typeof frame.unread_group_count === 'number' ? frame.unread_group_count : undefined;
          this.handlers.onRead?.(frame.unread_count, groups);
        }
        break;
      case 'group': {
        const group = /** @type {NotificationGroup} */ (frame.group);
        if (!isObject(group) || typeof group.id !== 'number') return;
        if (!this.freshGroupVersion(group.version)) return;
        this.handlers.onGroup?.(group);
        break;
      }
      case 'group_removed':
        if (typeof frame.group_id !== 'number' || !this.freshGroupVersion(frame.version)) return;
        this.handlers.onGroupRemoved?.(frame.group_id, /** @type {number} */ (frame.version));
        break;
      case 'notifications_removed': {
        const ids = Array.isArray(frame.notification_ids)
          ? frame.notification_ids.filter((id) => typeof id === 'number')
          : [];
        if (typeof frame.unread_count === 'number') this.handlers.onNotificationsRemoved?.(ids, frame.unread_count);
        break;
      }
      case 'gap': {
        const beforeId = typeof frame.before_id === 'number' ? frame.before_id : 0;
        // More was missed than the server replays: the newest page of the inbox is the truth.
        this.notifications({ limit: 50 })
          .then((inbox) => {
            if (generation !== this.generation) return;
            for (const n of inbox.items) this.noteSeen(n.id);
            this.handlers.onGap?.(inbox, beforeId);
          })
          .catch(() => {
            /* the replayed notifications still arrive; the next reconnect retries */
          });
        break;
      }
      case 'error':
        this.handlers.onServerError?.(String(frame.code ?? ''), String(frame.message ?? ''));
        break;
      default:
        // 'pong' and any message type added later: nothing to do.
        break;
    }
  }

  /** @private @param {number} generation @param {number} [code] */
  scheduleReconnect(generation, code) {
    if (generation !== this.generation) return;
    // Full jitter: a random delay below an exponentially growing ceiling, so a restarted server
    // is not hit by every client at the same instant.
    const ceiling = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** this.attempt);
    const delayMs = Math.round(Math.random() * ceiling);
    this.attempt++;
    this.setState('reconnecting', { attempt: this.attempt, delayMs, code });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (generation === this.generation) void this.openSocket(generation);
    }, delayMs);
  }

  /** @private @param {number} code */
  signedOut(code) {
    this.generation++;
    this.stopHeartbeat();
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.dropStream();
    this.socket = null;
    this.setToken(null);
    this.setState('signed-out', { attempt: this.attempt, code });
  }

  /**
   * Application-level keepalive: a ping every `heartbeat_s`, and a socket that has been silent
   * for 2.5 heartbeats is treated as dead (a half-open TCP connection never fires 'close').
   * @private @param {number} heartbeatS
   */
  startHeartbeat(heartbeatS) {
    this.stopHeartbeat();
    const periodMs = Math.max(1, heartbeatS) * 1000;
    this.lastFrameAt = Date.now();
    this.heartbeatTimer = setInterval(() => {
      const socket = this.socket;
      if (!socket) return;
      if (Date.now() - this.lastFrameAt > periodMs * 2.5) {
        // Do not wait for the closing handshake of a dead connection: abandon it now.
        this.socket = null;
        this.stopHeartbeat();
        socket.close(4000, 'heartbeat timeout');
        this.scheduleReconnect(this.generation);
        return;
      }
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'ping' }));
    }, periodMs);
  }

  /** @private */
  stopHeartbeat() {
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }
}
