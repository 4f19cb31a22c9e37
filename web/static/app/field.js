/* The executor app (issue 15 A; decision 0042): «Мои заявки», the ticket, one-tap actions, photos
   and voice notes, duty with position sharing — and all of it without network.

   Offline model: every change goes into an IndexedDB queue first (with a UUID made here), then the
   queue is sent in order whenever the network is there. The server is idempotent on the UUID, so a
   retry after a lost answer never repeats a change. A 409 (the ticket went to someone else, or is
   already done) is shown to the executor and the item leaves the queue. The list and every opened
   ticket are kept in IndexedDB and shown from there when the network is gone. */
(() => {
  'use strict';

  const API = '/api/v1';
  const POSITION_EVERY_MS = 60 * 1000;
  const PHOTO_MAX_SIDE = 1600;
  const STATUS_TITLES = {new: 'Новая', assigned: 'Назначена', in_progress: 'В работе', done: 'Выполнена',
    closed: 'Закрыта', cancelled: 'Отменена', rejected: 'Отклонена'};
  const ACTION_TITLES = {accept: 'Принял', en_route: 'Выехал', on_site: 'На месте', localized: 'Локализовано',
    done: 'Выполнено', decline: 'Не могу выполнить', comment: 'Комментарий', photo_before: 'Фото до',
    photo_after: 'Фото после', voice: 'Голосовая заметка'};
  const HISTORY_TITLES = {created: 'Зарегистрирована', assigned: 'Назначен исполнитель', status: 'Статус',
    accepted: 'Принята исполнителем', en_route: 'Исполнитель выехал', on_site: 'Исполнитель на месте',
    localized: 'Локализована', returned: 'Возвращена диспетчеру', commented: 'Комментарий',
    attached: 'Файл', edited: 'Изменена', reopened: 'Открыта повторно', municipality_notified: 'Сообщено в ОМСУ'};

  const $ = (id) => document.getElementById(id);
  const state = {user: null, csrf: null, skew: 0, view: 'list', ticketId: null, syncing: false,
    onDuty: false, geoWatch: null, geoTimer: null, lastFix: null, recorder: null, pendingAction: null};

  // --- IndexedDB ----------------------------------------------------------------------------------
  let dbPromise = null;
  function db() {
    if (!dbPromise) {
      dbPromise = new Promise((resolve, reject) => {
        const req = indexedDB.open('openads-field', 1);
        req.onupgradeneeded = () => {
          const d = req.result;
          d.createObjectStore('kv');
          d.createObjectStore('tickets', {keyPath: 'id'});
          d.createObjectStore('queue', {keyPath: 'seq', autoIncrement: true});
        };
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    }
    return dbPromise;
  }
  async function store(name, mode, fn) {
    const d = await db();
    return new Promise((resolve, reject) => {
      const tx = d.transaction(name, mode);
      const req = fn(tx.objectStore(name));
      let result;
      if (req) req.onsuccess = () => { result = req.result; };
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }
  const kvGet = (key) => store('kv', 'readonly', (s) => s.get(key));
  const kvSet = (key, value) => store('kv', 'readwrite', (s) => s.put(value, key));
  const ticketGet = (id) => store('tickets', 'readonly', (s) => s.get(id));
  const ticketPut = (t) => store('tickets', 'readwrite', (s) => s.put(t));
  const queueAll = () => store('queue', 'readonly', (s) => s.getAll());
  const queueAdd = (item) => store('queue', 'readwrite', (s) => s.add(item));
  const queueDelete = (seq) => store('queue', 'readwrite', (s) => s.delete(seq));
  const clearAll = () => Promise.all(['kv', 'tickets', 'queue'].map((n) => store(n, 'readwrite', (s) => s.clear())));

  // --- network ------------------------------------------------------------------------------------
  class Offline extends Error {}

  async function csrf(fresh) {
    if (state.csrf && !fresh) return state.csrf;
    const resp = await fetch('/app/csrf', {credentials: 'same-origin', cache: 'no-store'});
    const data = await resp.json();
    state.csrf = data.csrf_token;
    state.user = data.user;
    return state.csrf;
  }

  async function request(method, url, body, isForm, retried) {
    const headers = {Accept: 'application/json'};
    let payload;
    if (method !== 'GET') headers['X-CSRFToken'] = await csrf();
    if (isForm) payload = body;
    else if (body !== undefined) { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
    let resp;
    try {
      resp = await fetch(url, {method, headers, body: payload, credentials: 'same-origin'});
    } catch (err) {
      throw new Offline(String(err));
    }
    let data = null;
    try { data = await resp.json(); } catch (err) { data = null; }
    if (resp.status === 400 && data && data.error_id === 'csrf-failed' && !retried) {
      await csrf(true);
      return request(method, url, body, isForm, true);
    }
    return {status: resp.status, data};
  }

  // --- time ---------------------------------------------------------------------------------------
  const serverNow = () => Date.now() + state.skew;
  function noteServerTime(iso) { if (iso) state.skew = Date.parse(iso) - Date.now(); }
  const pad = (n) => String(n).padStart(2, '0');
  // Times in the organization's zone (the ticket says which), as the panel shows them.
  const formats = {};
  function fmt(iso, withDate) {
    const zone = (state.ticket && state.ticket.timezone) || state.zone || undefined;
    const key = `${zone}|${withDate}`;
    if (!formats[key]) {
      const opts = {hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: zone};
      if (withDate) Object.assign(opts, {day: '2-digit', month: '2-digit'});
      try { formats[key] = new Intl.DateTimeFormat('ru-RU', opts); } catch (err) { delete opts.timeZone; formats[key] = new Intl.DateTimeFormat('ru-RU', opts); }
    }
    return formats[key].format(new Date(iso)).replace(',', '');
  }
  const hhmm = (iso) => fmt(iso, false);
  const dateTime = (iso) => fmt(iso, true);
  function span(ms) {
    const minutes = Math.max(0, Math.floor(ms / 60000));
    const days = Math.floor(minutes / 1440);
    const hours = Math.floor((minutes % 1440) / 60);
    const mins = minutes % 60;
    if (days) return `${days} д ${hours} ч`;
    if (hours) return `${hours} ч ${pad(mins)} мин`;
    return `${mins} мин`;
  }
  function countdown(t) {
    const due = t.next_due_at || (['done', 'closed', 'cancelled', 'rejected'].includes(t.status) ? null : t.due_at);
    if (!due) return {text: '', level: ''};
    const left = Date.parse(due) - serverNow();
    const what = t.localize_due_at && !t.localized_at && due === t.localize_due_at ? 'локализация' : 'срок';
    if (left < 0) return {text: `${what}: просрочено на ${span(-left)}`, level: 'late'};
    return {text: `${what}: осталось ${span(left)}`, level: left < 30 * 60000 ? 'soon' : ''};
  }
  function tickCountdowns() {
    document.querySelectorAll('[data-countdown]').forEach((el) => {
      const t = JSON.parse(el.dataset.countdown);
      const c = countdown(t);
      el.textContent = c.text;
      el.className = `countdown ${c.level}`;
    });
  }

  // --- DOM helpers --------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  // replaceChildren writes a null as the text "null": absent parts are dropped first
  const fill = (node, ...children) => node.replaceChildren(...children.filter((c) => c !== null && c !== undefined));

  function show(view) {
    state.view = view;
    for (const id of ['login-view', 'list-view', 'ticket-view']) $(id).hidden = id !== `${view}-view`;
    $('back').hidden = view !== 'ticket';
    $('title').textContent = view === 'ticket' ? 'Заявка' : view === 'login' ? 'Открытая АДС' : 'Мои заявки';
  }

  // --- pending changes shown at once --------------------------------------------------------------
  function applyPending(ticket, items) {
    const t = Object.assign({}, ticket);
    t.pending = 0;
    t.comments = (ticket.comments || []).slice();
    t.attachments = (ticket.attachments || []).slice();
    for (const item of items) {
      if (item.ticketId !== t.id) continue;
      t.pending += 1;
      const at = new Date(item.createdAt).toISOString();
      const a = item.kind === 'action' ? item.body.action : null;
      if (a === 'accept') t.accepted_at = t.accepted_at || at;
      if (a === 'en_route') Object.assign(t, {status: 'in_progress', en_route_at: at, eta_at: item.body.eta,
        accepted_at: t.accepted_at || at});
      if (a === 'on_site') Object.assign(t, {status: 'in_progress', on_site_at: at, accepted_at: t.accepted_at || at});
      if (a === 'localized') t.localized_at = t.localized_at || at;
      if (a === 'done') Object.assign(t, {status: 'done', resolved_at: at});
      if (a === 'decline') Object.assign(t, {status: 'new', returned: true});
      if (a === 'comment') t.comments.push({text: item.body.text, visibility: item.body.visibility, created_at: at,
        author: state.user ? {full_name: state.user.full_name} : null, pending: true});
      if (item.kind === 'file') t.attachments.push({filename: item.filename, kind: item.fileKind, pending: true,
        meta: item.meta, created_at: at});
    }
    return t;
  }

  // --- the list -----------------------------------------------------------------------------------
  async function loadList() {
    let list = null;
    if (navigator.onLine) {
      try {
        const r = await request('GET', `${API}/executor/tickets`);
        if (r.status === 401) { await signedOut(); return; }
        if (r.status === 200) {
          noteServerTime(r.data.server_time);
          list = r.data.items;
          if (list.length) state.zone = list[0].timezone;
          await kvSet('list', {items: list, at: new Date().toISOString(), skew: state.skew});
          for (const t of list) {
            const old = await ticketGet(t.id);
            await ticketPut(Object.assign(old || {}, t));
          }
        }
      } catch (err) {
        if (!(err instanceof Offline)) throw err;
      }
    }
    if (list === null) {
      const saved = await kvGet('list');
      list = saved ? saved.items : [];
      if (saved) { state.skew = saved.skew || 0; $('list-updated').textContent = `Без сети: список на ${dateTime(saved.at)}`; }
    } else {
      $('list-updated').textContent = '';
    }
    const items = await queueAll();
    renderList(list.map((t) => applyPending(t, items)).filter((t) => !t.returned && t.status !== 'new'));
  }

  function renderList(list) {
    const ul = $('tickets');
    fill(ul);
    for (const t of list) {
      const c = countdown(t);
      const li = el('li', {class: `ticket${t.is_emergency ? ' emergency' : ''}`, 'data-id': t.id},
        el('a', {href: `#/t/${t.id}`, class: 'ticket-link'},
          el('div', {class: 'row'},
            el('strong', {class: 'number', text: `№ ${t.number}`}),
            t.is_emergency ? el('span', {class: 'badge danger', text: 'Аварийная'}) : null,
            el('span', {class: `badge status-${t.status}`, text: STATUS_TITLES[t.status] || t.status})),
          el('div', {class: 'category', text: t.category}),
          el('div', {class: 'address', text: [t.address, t.premise].filter(Boolean).join(', ') || 'адрес не указан'}),
          el('div', {class: `countdown ${c.level}`, 'data-countdown': JSON.stringify(pickDue(t)), text: c.text}),
          t.pending ? el('div', {class: 'pending', text: `Ждёт отправки: ${t.pending}`}) : null));
      ul.append(li);
    }
    $('empty').hidden = list.length > 0;
  }
  const pickDue = (t) => ({next_due_at: t.next_due_at, due_at: t.due_at, localize_due_at: t.localize_due_at,
    localized_at: t.localized_at, status: t.status});

  // --- one ticket ---------------------------------------------------------------------------------
  async function loadTicket(id) {
    let t = null;
    if (navigator.onLine) {
      try {
        const r = await request('GET', `${API}/executor/tickets/${id}`);
        if (r.status === 401) { await signedOut(); return; }
        if (r.status === 200) { noteServerTime(r.data.server_time); t = r.data; t.full = true; await ticketPut(t); }
        if (r.status === 404) { t = await ticketGet(id); if (t) t.gone = true; }
      } catch (err) {
        if (!(err instanceof Offline)) throw err;
      }
    }
    if (!t) t = await ticketGet(id);
    if (!t) {
      fill($('t-head'), el('p', {text: 'Заявка не найдена на этом телефоне: откройте её, когда будет сеть.'}));
      for (const id2 of ['t-where', 't-actions', 't-media']) $(id2).hidden = true;
      return;
    }
    renderTicket(applyPending(t, await queueAll()));
  }

  function mapLink(t) {
    const h = t.house || {};
    const address = (h.address || t.address || '').trim();
    if (h.latitude !== undefined && h.latitude !== null && h.longitude !== null) {
      return `geo:${h.latitude},${h.longitude}?q=${encodeURIComponent(address)}`;
    }
    return `geo:0,0?q=${encodeURIComponent(address)}`;
  }

  function renderTicket(t) {
    state.ticket = t;
    const c = countdown(t);
    fill($('t-head'), 
      el('div', {class: 'row'},
        el('strong', {class: 'number', text: `№ ${t.number}`}),
        t.is_emergency ? el('span', {class: 'badge danger', text: 'Аварийная'}) : null,
        el('span', {class: `badge status-${t.status}`, text: STATUS_TITLES[t.status] || t.status})),
      el('div', {class: 'category', text: typeof t.category === 'object' ? t.category.name : t.category}),
      el('div', {class: `countdown ${c.level}`, 'data-countdown': JSON.stringify(pickDue(t)), text: c.text}),
      el('p', {class: 'description', text: t.description || ''}),
      t.eta_at ? el('p', {class: 'muted', text: `Прибытие около ${hhmm(t.eta_at)}`}) : null,
      t.pending ? el('p', {class: 'pending', text: `Ждёт отправки: ${t.pending}`}) : null,
      t.gone ? el('p', {class: 'error', text: 'Заявка больше не назначена вам.'}) : null);
    const p = t.premise && typeof t.premise === 'object' ? t.premise : null;
    const resident = t.resident || {};
    const address = (t.house && t.house.address) || t.address || 'адрес не указан';
    $('t-where').hidden = false;
    fill($('t-where'), 
      el('a', {class: 'big link-button', href: mapLink(t), id: 'map-link'}, el('span', {text: address})),
      p ? el('p', {text: [p.label, p.entrance ? `подъезд ${p.entrance}` : null, p.floor ? `этаж ${p.floor}` : null]
        .filter(Boolean).join(', ')}) : (typeof t.premise === 'string' ? el('p', {text: t.premise}) : null),
      resident.name ? el('p', {text: resident.name}) : null,
      resident.phone ? el('a', {class: 'big link-button call', href: `tel:${resident.phone}`, id: 'call-link'},
        el('span', {}, 'Позвонить ', el('span', {class: 'number', text: resident.phone_display || resident.phone}))) : null,
      ...(t.house_notes || []).map((n) => el('p', {class: 'house-note', text: n})));
    renderActions(t);
    $('t-media').hidden = false;
    fill($('t-files'), ...(t.attachments || []).map((a) => el('li', {},
      el('span', {text: `${ACTION_TITLES[a.kind] || 'Файл'}${a.pending ? ' — ждёт отправки' : ''}`}),
      a.meta && a.meta.lat !== undefined ? el('span', {class: 'muted', text: ' · с координатами'}) : null)));
    fill($('t-comments'), ...(t.comments || []).map((cm) => el('li', {},
      el('div', {class: 'muted', text: `${cm.author ? cm.author.full_name : ''} · ${dateTime(cm.created_at)}`
        + `${cm.visibility === 'resident' ? ' · видит житель' : ''}${cm.pending ? ' · ждёт отправки' : ''}`}),
      el('div', {text: cm.text}))));
    fill($('t-history'), ...(t.history || []).slice().reverse().map((h) => el('li', {},
      el('div', {class: 'muted', text: `${dateTime(h.at)} · ${h.user ? h.user.full_name : 'система'}`}),
      el('div', {text: HISTORY_TITLES[h.action] || h.action}),
      h.reason ? el('div', {class: 'muted', text: h.reason}) : null)));
  }

  function renderActions(t) {
    const box = $('t-actions');
    box.hidden = false;
    const open = ['assigned', 'in_progress'].includes(t.status) && !t.gone && !t.returned;
    const buttons = [];
    if (open) {
      if (!t.accepted_at) buttons.push(['accept', 'Принял', 'primary']);
      if (!t.en_route_at && !t.on_site_at) buttons.push(['en_route', 'Выехал', t.accepted_at ? 'primary' : '']);
      if (!t.on_site_at) buttons.push(['on_site', 'На месте', t.en_route_at ? 'primary' : '']);
      if (t.is_emergency && t.localize_due_at && !t.localized_at) buttons.push(['localized', 'Локализовано', '']);
      buttons.push(['done', 'Выполнено', t.on_site_at ? 'primary' : '']);
      buttons.push(['decline', 'Не могу выполнить', 'danger']);
    }
    fill(box, ...buttons.map(([action, title, kind]) => el('button', {
      type: 'button', class: `big ${kind}`, id: `act-${action}`, 'data-action': action, text: title,
      onclick: () => onAction(action)})));
    if (!open) box.append(el('p', {class: 'muted', text: t.status === 'done' ? 'Заявка выполнена.' : 'Действий нет.'}));
  }

  function onAction(action) {
    $('t-eta').hidden = true;
    $('t-reason').hidden = true;
    if (action === 'en_route') { openEta(); return; }
    if (action === 'done' || action === 'decline') {
      state.pendingAction = action;
      $('reason-label').textContent = action === 'done' ? 'Что сделано (необязательно)' : 'Почему нельзя выполнить';
      $('reason-text').value = '';
      $('reason-text').required = action === 'decline';
      $('reason-send').textContent = action === 'done' ? 'Выполнено' : 'Вернуть диспетчеру';
      $('t-reason').hidden = false;
      $('reason-text').focus();
      return;
    }
    enqueueAction(state.ticketId, {action});
  }

  function openEta() {
    const quick = $('eta-quick');
    fill(quick, ...[15, 30, 45, 60, 90].map((m) => el('button', {type: 'button', class: 'big',
      text: `+${m} мин`, onclick: () => sendEta(new Date(serverNow() + m * 60000))})));
    const soon = new Date(serverNow() + 30 * 60000);
    $('eta-time').value = `${pad(soon.getHours())}:${pad(soon.getMinutes())}`;
    $('t-eta').hidden = false;
    $('t-eta').scrollIntoView({block: 'nearest'});
  }
  function sendEta(when) {
    $('t-eta').hidden = true;
    enqueueAction(state.ticketId, {action: 'en_route', eta: when.toISOString()});
  }
  function etaFromInput() {
    const [h, m] = ($('eta-time').value || '').split(':').map(Number);
    if (Number.isNaN(h) || Number.isNaN(m)) return null;
    const d = new Date(serverNow());
    d.setHours(h, m, 0, 0);
    if (d.getTime() <= serverNow()) d.setDate(d.getDate() + 1);  // a time past today: tomorrow's
    return d;
  }

  // --- the queue ----------------------------------------------------------------------------------
  async function enqueue(item) {
    item.clientId = crypto.randomUUID();
    item.createdAt = Date.now();
    await queueAdd(item);
    await refreshView();
    sync();
  }
  function enqueueAction(ticketId, body) {
    return enqueue({kind: 'action', ticketId, body: Object.assign({visibility: 'internal'}, body)});
  }

  async function sendItem(item) {
    if (item.kind === 'action') {
      return request('POST', `${API}/executor/tickets/${item.ticketId}/actions`,
        Object.assign({client_id: item.clientId}, item.body));
    }
    const form = new FormData();
    form.append('client_id', item.clientId);
    form.append('kind', item.fileKind);
    form.append('visibility', item.visibility);
    form.append('meta', JSON.stringify(item.meta || {}));
    form.append('file', item.blob, item.filename);
    return request('POST', `${API}/executor/tickets/${item.ticketId}/files`, form, true);
  }

  async function sync() {
    if (state.syncing || !navigator.onLine) { await showQueue(); return; }
    state.syncing = true;
    let sent = 0;
    try {
      for (;;) {
        const items = await queueAll();
        if (!items.length) break;
        const item = items[0];
        let r;
        try { r = await sendItem(item); } catch (err) { if (err instanceof Offline) break; throw err; }
        if (r.status === 200 || r.status === 201) {
          await queueDelete(item.seq);
          sent += 1;
        } else if (r.status === 401) {
          await signedOut();
          break;
        } else if ([400, 403, 404, 409, 413].includes(r.status)) {
          await queueDelete(item.seq);
          await addConflict(item, r.data);
        } else {
          break;  // the server is busy or down: try again later, in the same order
        }
      }
    } finally {
      state.syncing = false;
    }
    await showQueue();
    if (sent) await refreshView(true);
  }

  async function showQueue() {
    const n = (await queueAll()).length;
    const notice = $('sync-notice');
    notice.hidden = n === 0;
    notice.textContent = n ? `Ждут отправки: ${n}${navigator.onLine ? ' — отправляются' : ' — отправятся, когда появится сеть'}` : '';
  }

  async function addConflict(item, data) {
    const what = item.kind === 'action' ? ACTION_TITLES[item.body.action] : ACTION_TITLES[item.fileKind];
    const ticket = await ticketGet(item.ticketId);
    const list = (await kvGet('conflicts')) || [];
    list.push({id: item.clientId, ticketId: item.ticketId, number: ticket ? ticket.number : '',
      text: (data && data.message) || `Действие «${what}» не выполнено`, what});
    await kvSet('conflicts', list);
    await renderConflicts();
  }
  async function renderConflicts() {
    const list = (await kvGet('conflicts')) || [];
    fill($('conflicts'), ...list.map((c) => el('div', {class: 'notice conflict', role: 'alert'},
      el('p', {text: `${c.number ? `№ ${c.number}: ` : ''}${c.text}`}),
      el('button', {type: 'button', class: 'link', text: 'Понятно', onclick: async () => {
        await kvSet('conflicts', ((await kvGet('conflicts')) || []).filter((x) => x.id !== c.id));
        await renderConflicts();
      }}))));
  }

  // --- photos and voice ---------------------------------------------------------------------------
  // EXIF (JPEG APP1): DateTimeOriginal and the GPS position, read before the canvas drops them.
  function readExif(buffer) {
    const view = new DataView(buffer);
    const out = {};
    if (view.byteLength < 4 || view.getUint16(0) !== 0xFFD8) return out;
    let offset = 2;
    while (offset + 4 <= view.byteLength) {
      const marker = view.getUint16(offset);
      const size = view.getUint16(offset + 2);
      if (marker === 0xFFE1 && view.getUint32(offset + 4) === 0x45786966) {  // "Exif"
        return parseTiff(view, offset + 10, out);
      }
      if ((marker & 0xFF00) !== 0xFF00 || marker === 0xFFDA) break;
      offset += 2 + size;
    }
    return out;
  }
  function parseTiff(view, start, out) {
    const little = view.getUint16(start) === 0x4949;
    const u16 = (o) => view.getUint16(start + o, little);
    const u32 = (o) => view.getUint32(start + o, little);
    const entries = (ifd) => {
      const n = u16(ifd);
      const list = [];
      for (let i = 0; i < n; i += 1) {
        const e = ifd + 2 + i * 12;
        list.push({tag: u16(e), type: u16(e + 2), count: u32(e + 4), value: e + 8});
      }
      return list;
    };
    const ascii = (e) => {
      const at = e.count > 4 ? u32(e.value) : e.value;
      let s = '';
      for (let i = 0; i < e.count - 1; i += 1) s += String.fromCharCode(view.getUint8(start + at + i));
      return s;
    };
    const rationals = (e) => {
      const at = u32(e.value);
      const vals = [];
      for (let i = 0; i < e.count; i += 1) vals.push(u32(at + i * 8) / (u32(at + i * 8 + 4) || 1));
      return vals;
    };
    try {
      const ifd0 = u32(4);
      let exifIfd = null;
      let gpsIfd = null;
      for (const e of entries(ifd0)) {
        if (e.tag === 0x8769) exifIfd = u32(e.value);
        if (e.tag === 0x8825) gpsIfd = u32(e.value);
      }
      if (exifIfd) {
        let when = null;
        let zone = null;
        for (const e of entries(exifIfd)) {
          if (e.tag === 0x9003) when = ascii(e);
          if (e.tag === 0x9011) zone = ascii(e);
        }
        const m = when && when.match(/^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})/);
        if (m) out.taken_at = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${zone && /^[+-]\d{2}:\d{2}$/.test(zone) ? zone : ''}`;
      }
      if (gpsIfd) {
        const g = {};
        for (const e of entries(gpsIfd)) {
          if (e.tag === 1) g.latRef = ascii(e);
          if (e.tag === 2) g.lat = rationals(e);
          if (e.tag === 3) g.lonRef = ascii(e);
          if (e.tag === 4) g.lon = rationals(e);
        }
        const deg = (v) => v[0] + v[1] / 60 + v[2] / 3600;
        if (g.lat && g.lon && g.lat.length === 3 && g.lon.length === 3) {
          out.lat = Math.round(deg(g.lat) * (g.latRef === 'S' ? -1 : 1) * 1e6) / 1e6;
          out.lon = Math.round(deg(g.lon) * (g.lonRef === 'W' ? -1 : 1) * 1e6) / 1e6;
        }
      }
    } catch (err) {
      return out;  // a damaged EXIF block: the photo goes without it
    }
    return out;
  }

  async function compress(file) {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, PHOTO_MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement('canvas');
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.8));
    return {blob, width: canvas.width, height: canvas.height};
  }

  async function onPhoto(input, kind) {
    const file = input.files && input.files[0];
    input.value = '';
    if (!file) return;
    const meta = readExif(await file.arrayBuffer());
    const {blob, width, height} = await compress(file);
    Object.assign(meta, {width, height, original_bytes: file.size});
    await enqueue({kind: 'file', ticketId: state.ticketId, fileKind: kind, blob, meta,
      filename: `${kind}-${Date.now()}.jpg`, visibility: $('photo-resident').checked ? 'resident' : 'internal'});
  }

  async function onVoice() {
    const button = $('voice');
    if (state.recorder) { state.recorder.stop(); return; }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({audio: true});
    } catch (err) {
      alertText('Нет доступа к микрофону: разрешите его в настройках браузера');
      return;
    }
    const recorder = new MediaRecorder(stream);
    const chunks = [];
    const started = Date.now();
    const ticketId = state.ticketId;
    recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
    recorder.onstop = async () => {
      stream.getTracks().forEach((track) => track.stop());
      state.recorder = null;
      button.textContent = 'Голосовая заметка';
      const type = (recorder.mimeType || 'audio/webm').split(';')[0];
      const blob = new Blob(chunks, {type});
      await enqueue({kind: 'file', ticketId, fileKind: 'voice', blob, visibility: 'internal',
        meta: {duration_s: Math.round((Date.now() - started) / 100) / 10},
        filename: `voice-${Date.now()}.${type.includes('ogg') ? 'ogg' : 'webm'}`});
    };
    state.recorder = recorder;
    state.recordingSince = started;
    recorder.start();
    button.textContent = 'Остановить запись';
  }

  function alertText(text) {
    const box = el('div', {class: 'notice conflict', role: 'alert'}, el('p', {text}),
      el('button', {type: 'button', class: 'link', text: 'Понятно', onclick: () => box.remove()}));
    $('conflicts').append(box);
  }

  // --- duty and position --------------------------------------------------------------------------
  function renderDuty() {
    $('duty').checked = state.onDuty;
    $('duty-state').textContent = state.onDuty ? 'на смене' : 'не на смене';
    $('geo-notice').hidden = !state.onDuty;
  }
  async function sendPosition() {
    if (!state.onDuty || !state.lastFix || !navigator.onLine) return;
    const fix = state.lastFix;
    try {
      const r = await request('POST', `${API}/executor/position`, {lat: fix.lat, lon: fix.lon,
        accuracy_m: fix.accuracy, at: new Date(fix.at).toISOString()});
      if (r.status === 409) { state.onDuty = false; stopGeo(); renderDuty(); }
    } catch (err) {
      if (!(err instanceof Offline)) throw err;
    }
  }
  function startGeo() {
    if (!('geolocation' in navigator) || state.geoWatch !== null) return;
    state.geoWatch = navigator.geolocation.watchPosition((pos) => {
      const first = state.lastFix === null;
      state.lastFix = {lat: pos.coords.latitude, lon: pos.coords.longitude,
        accuracy: Math.min(pos.coords.accuracy || 0, 100000), at: Math.min(pos.timestamp || Date.now(), Date.now())};
      if (first) sendPosition();
    }, () => {}, {enableHighAccuracy: true, maximumAge: 30000});
    state.geoTimer = setInterval(sendPosition, POSITION_EVERY_MS);
  }
  function stopGeo() {
    if (state.geoWatch !== null) navigator.geolocation.clearWatch(state.geoWatch);
    if (state.geoTimer !== null) clearInterval(state.geoTimer);
    state.geoWatch = null;
    state.geoTimer = null;
    state.lastFix = null;
  }
  async function setDuty(on) {
    try {
      const r = await request('POST', `${API}/executor/duty`, {on_duty: on});
      if (r.status !== 200) throw new Offline('refused');
      state.onDuty = r.data.on_duty;
    } catch (err) {
      alertText(on ? 'Нет сети: выйти на смену можно, когда она появится' : 'Нет сети: уйти со смены можно, когда она появится');
    }
    if (state.onDuty) startGeo(); else stopGeo();
    renderDuty();
  }
  async function loadDuty() {
    try {
      const r = await request('GET', `${API}/executor/duty`);
      if (r.status === 200) state.onDuty = r.data.on_duty;
    } catch (err) {
      if (!(err instanceof Offline)) throw err;
    }
    if (state.onDuty) startGeo(); else stopGeo();
    renderDuty();
  }

  // --- sign in and out ----------------------------------------------------------------------------
  async function signedOut() {
    stopGeo();
    state.user = null;
    show('login');
  }
  async function onLogin(event) {
    event.preventDefault();
    const form = event.target;
    $('login-error').hidden = true;
    try {
      await csrf(true);
      const r = await request('POST', '/app/login', {login: form.login.value, password: form.password.value});
      if (r.status !== 200) {
        $('login-error').textContent = (r.data && r.data.message) || 'Не удалось войти';
        $('login-error').hidden = false;
        return;
      }
      state.csrf = r.data.csrf_token;
      state.user = r.data.user;
      form.password.value = '';
      await kvSet('user', state.user);
      location.hash = '#/';
      await start();
    } catch (err) {
      $('login-error').textContent = 'Нет сети: войти можно, когда она появится';
      $('login-error').hidden = false;
    }
  }
  async function onLogout() {
    if (state.onDuty) await setDuty(false);
    try { await request('POST', '/app/logout', {}); } catch (err) { /* offline: the cookie stays until it lapses */ }
    await clearAll();
    if (navigator.serviceWorker && navigator.serviceWorker.controller) navigator.serviceWorker.controller.postMessage('forget');
    await signedOut();
  }

  // --- routing ------------------------------------------------------------------------------------
  async function refreshView(fromServer) {
    const m = location.hash.match(/^#\/t\/(\d+)$/);
    if (m) {
      state.ticketId = Number(m[1]);
      show('ticket');
      if (fromServer || state.lastRendered !== location.hash) await loadTicket(state.ticketId);
      else renderTicket(applyPending(await ticketGet(state.ticketId) || state.ticket, await queueAll()));
    } else {
      state.ticketId = null;
      show('list');
      await loadList();
    }
    state.lastRendered = location.hash;
    await showQueue();
    await renderConflicts();
    document.body.dataset.ready = '1';
  }

  function netState() {
    $('net').textContent = navigator.onLine ? 'в сети' : 'нет сети';
    $('net').className = `net${navigator.onLine ? '' : ' off'}`;
  }

  async function start() {
    netState();
    let known = null;
    if (navigator.onLine) {
      try { await csrf(true); known = state.user; } catch (err) { known = null; }
    }
    if (!known) known = await kvGet('user');  // offline: whoever signed in on this phone
    if (!known) { show('login'); document.body.dataset.ready = '1'; return; }
    state.user = known;
    await refreshView(true);
    if (navigator.onLine) { await loadDuty(); sync(); }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('back').addEventListener('click', () => { location.hash = '#/'; });
    $('duty').addEventListener('change', (e) => setDuty(e.target.checked));
    $('photo-before').addEventListener('change', (e) => onPhoto(e.target, 'photo_before'));
    $('photo-after').addEventListener('change', (e) => onPhoto(e.target, 'photo_after'));
    $('voice').addEventListener('click', onVoice);
    $('eta-send').addEventListener('click', () => { const d = etaFromInput(); if (d) sendEta(d); });
    $('eta-cancel').addEventListener('click', () => { $('t-eta').hidden = true; });
    $('reason-cancel').addEventListener('click', () => { $('t-reason').hidden = true; });
    $('reason-send').addEventListener('click', () => {
      const text = $('reason-text').value.trim();
      if (state.pendingAction === 'decline' && !text) { $('reason-text').focus(); return; }
      $('t-reason').hidden = true;
      const body = state.pendingAction === 'done' ? {action: 'done', note: text} : {action: 'decline', reason: text};
      enqueueAction(state.ticketId, body);
    });
    $('comment-send').addEventListener('click', () => {
      const text = $('comment-text').value.trim();
      if (!text) return;
      $('comment-text').value = '';
      enqueueAction(state.ticketId, {action: 'comment', text,
        visibility: $('comment-resident').checked ? 'resident' : 'internal'});
    });
    window.addEventListener('hashchange', () => refreshView(false));
    window.addEventListener('online', () => { netState(); sync(); });
    window.addEventListener('offline', () => { netState(); showQueue(); });
    setInterval(tickCountdowns, 1000);
    setInterval(() => { if (navigator.onLine) sync(); }, 30000);
    if ('serviceWorker' in navigator) navigator.serviceWorker.register('/app/sw.js', {scope: '/app'});
    start();
  });

  window.fieldApp = {sync, queueAll, queueAdd, readExif,
    recordingMs: () => (state.recorder ? Date.now() - state.recordingSince : 0)};
})();
