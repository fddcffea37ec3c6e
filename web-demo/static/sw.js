// @ts-check
/// <reference lib="webworker" />
/**
 * The demo's service worker: shows Pulse's Web Push messages while no page of the demo is open
 * (the server pushes only what no live socket of the user showed), and brings the demo back
 * when one is clicked. Registered by app.js from "Enable notifications", with scope `/`.
 *
 * A push message is the decrypted JSON the server sends: `{ notification, unread_count, group }`
 * (see `PushPayload` in client.js). One system notification per notification group (its tag is
 * `group-<id>`), so "carol and bob liked your photo." replaces "bob liked your photo." instead
 * of stacking under it.
 *
 * Type-checked on its own with the webworker library (tsconfig.sw.json): the page's files use
 * the DOM one, and the two do not mix.
 */

const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

/** The page a click opens when no page of the demo is open. */
const HOME = '/';

/**
 * What a push message carries (only what is shown is typed here).
 * @typedef {{
 *   notification?: { id: number, kind: string, text: string, post_id: number | null, created_at?: string },
 *   unread_count?: number,
 *   group?: { id: number, text: string, updated_at?: string } | null
 * }} PushPayload
 */

/** @param {PushMessageData | null} data @returns {PushPayload} */
function readPayload(data) {
  if (!data) return {};
  try {
    const parsed = data.json();
    return typeof parsed === 'object' && parsed !== null ? parsed : {};
  } catch {
    return {};
  }
}

/**
 * The notification to show for a push: title "Pulse", the group's sentence (else the
 * notification's), tagged by group so a newer push for the same group replaces the older one.
 * @param {PushPayload} payload
 * @returns {{ title: string, options: NotificationOptions & { renotify?: boolean, timestamp?: number } }}
 */
function notificationFor(payload) {
  const { notification, group } = payload;
  const body = group?.text || notification?.text || 'Something new happened on Pulse.';
  const tag = group ? `group-${group.id}` : notification ? `notification-${notification.id}` : 'pulse';
  const at = Date.parse(group?.updated_at ?? notification?.created_at ?? '');
  return {
    title: 'Pulse',
    options: {
      body,
      tag,
      // A replaced notification alerts again: it says something new.
      renotify: true,
      timestamp: Number.isFinite(at) ? at : Date.now(),
      data: { url: new URL(HOME, sw.location.origin).href, unreadCount: payload.unread_count ?? null },
    },
  };
}

sw.addEventListener('install', () => {
  // Nothing to cache: take over from an older version of this file at once.
  void sw.skipWaiting();
});

sw.addEventListener('activate', (event) => {
  event.waitUntil(sw.clients.claim());
});

sw.addEventListener('push', (event) => {
  const { title, options } = notificationFor(readPayload(event.data));
  // userVisibleOnly: every push must show something, or the browser shows its own message.
  event.waitUntil(sw.registration.showNotification(title, options));
});

sw.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = /** @type {{ url?: unknown } | null} */ (event.notification.data);
  const url = typeof data?.url === 'string' ? data.url : new URL(HOME, sw.location.origin).href;
  event.waitUntil(openDemo(url));
});

/**
 * Focuses an open page of the demo (the bell there is live already), or opens one.
 * @param {string} url
 */
async function openDemo(url) {
  const pages = await sw.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const ours = pages.filter((page) => new URL(page.url).origin === sw.location.origin);
  // A tab of its own rather than a frame of /two, when there is one.
  const demo = ours.find((page) => page.frameType === 'top-level') ?? ours[0];
  if (demo) {
    try {
      await demo.focus();
      return;
    } catch {
      /* focusing is not allowed here: open a page instead */
    }
  }
  await sw.clients.openWindow(url);
}
