/* The executor app's service worker (decision 0042). The shell (page, script, styles, icons) is
   kept for offline use; API reads go to the network first and fall back to their last answer.
   Writes are never touched here: the page queues them in IndexedDB and sends them itself. */
'use strict';
const SHELL = 'openads-field-shell-{{ version }}';
const DATA = 'openads-field-data';
const SHELL_URLS = ['/app', '/app/manifest.webmanifest'{% for f in files %}, '/static/app/{{ f }}'{% endfor %}];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL).then((c) => c.addAll(SHELL_URLS)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(
    keys.filter((k) => k.startsWith('openads-field-shell-') && k !== SHELL).map((k) => caches.delete(k))
  )).then(() => self.clients.claim()));
});

self.addEventListener('message', (event) => {
  if (event.data === 'forget') {  // signed out: nothing of the tickets stays on the phone
    event.waitUntil(caches.delete(DATA));
  }
});

async function networkFirst(request) {
  const cache = await caches.open(DATA);
  try {
    const response = await fetch(request);
    if (response.ok) cache.put(request, response.clone());
    return response;
  } catch (err) {
    const cached = await cache.match(request);
    if (cached) return cached;
    throw err;
  }
}

async function shellFirst(request) {
  const cache = await caches.open(SHELL);
  const cached = await cache.match(request, {ignoreSearch: true});
  if (cached) return cached;
  return fetch(request);
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith('/api/v1/executor/')) {
    event.respondWith(networkFirst(request));
  } else if (request.mode === 'navigate' && (url.pathname === '/app' || url.pathname === '/app/')) {
    event.respondWith(fetch(request).catch(() => caches.open(SHELL).then((c) => c.match('/app'))));
  } else if (SHELL_URLS.includes(url.pathname)) {
    event.respondWith(shellFirst(request));
  }
});
