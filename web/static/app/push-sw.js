/* Web Push in the executor app's service worker (decision 0043).
 *
 * Imported by the app's service worker: importScripts('/static/app/push-sw.js');
 * The payload (JSON, encrypted by the server, RFC 8291) is what models/rules/alerts.py
 * `push_payload` builds: {title, body, ticket_id, url: "/app/tickets/<id>", tag, emergency,
 * require_interaction}. A tap opens (or focuses) the ticket in the app. */
'use strict';

function openadsPushData(event) {
  if (!event.data) return null;
  try {
    return event.data.json();
  } catch (e) {
    return {title: 'ОткрытаяАДС', body: event.data.text(), url: '/app/'};
  }
}

function openadsTicketUrl(data) {
  var id = data && Number(data.ticket_id);
  return id > 0 ? '/app/tickets/' + id : '/app/';
}

self.addEventListener('push', function (event) {
  var data = openadsPushData(event);
  if (!data) return;
  var options = {
    body: data.body || '',
    tag: data.tag || undefined,
    renotify: Boolean(data.tag),
    requireInteraction: Boolean(data.require_interaction),
    icon: '/static/app/icon-192.png',
    badge: '/static/app/icon-192.png',
    vibrate: data.emergency ? [300, 100, 300, 100, 300] : [200],
    data: {url: openadsTicketUrl(data), ticket_id: data.ticket_id || null}
  };
  event.waitUntil(self.registration.showNotification(data.title || 'Новая заявка', options));
});

self.addEventListener('notificationclick', function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || '/app/';
  var target = new URL(url, self.location.origin).href;
  event.waitUntil(self.clients.matchAll({type: 'window', includeUncontrolled: true}).then(function (list) {
    for (var i = 0; i < list.length; i++) {
      var client = list[i];
      if (client.url === target && 'focus' in client) return client.focus();
    }
    for (var j = 0; j < list.length; j++) {
      var c = list[j];
      if (new URL(c.url).pathname.indexOf('/app') === 0 && 'navigate' in c) {
        return c.navigate(target).then(function (w) { return w ? w.focus() : null; });
      }
    }
    return self.clients.openWindow ? self.clients.openWindow(target) : null;
  }));
});
