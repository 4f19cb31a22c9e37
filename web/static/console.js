/* OpenADS dispatcher console: live call strip, missed-call queue with countdowns, the right-zone card,
   sound + banner alerts, the missed count in the tab title, console shortcuts. No dependencies.
   Every live change fetches one server-rendered item (the same partial the page was built from). */
(function () {
  "use strict";

  var SOON_MS = 2 * 60 * 1000;
  var ALERT_MS = 20000;

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function withId(template, id) { return template.replace("/0/", "/" + id + "/").replace(/\/0$/, "/" + id); }
  function fragment(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }
  function get(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (r.status === 204) return null;
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.text();
    });
  }

  var queue = $("#missed-queue");
  if (!queue) return;
  var consoleEl = $("#console");
  var strip = $("#call-strip");
  var detail = $("#console-detail");
  var alertBox = $("#console-alert");
  var root = consoleEl || queue;
  var serverNow = Date.parse(root.dataset.serverNow || queue.dataset.serverNow || "");
  var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();  /* countdowns follow the server's clock */
  function now() { return Date.now() + skew; }

  /* ---------------- sound and banner: nothing silent ---------------- */
  var audio = null;
  // Browsers keep sound off until the first click or key press on the page: say so, visibly,
  // until then (the hint goes as soon as sound is allowed).
  var soundHint = document.getElementById("sound-hint");
  function soundAllowed() {
    if (soundHint) soundHint.hidden = true;
  }
  function unlockAudio() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === "suspended") audio.resume().then(soundAllowed, function () {});
      else soundAllowed();
    } catch (e) { audio = null; }
  }
  if (soundHint) {
    try {
      var probe = new (window.AudioContext || window.webkitAudioContext)();
      if (probe.state === "running") { audio = probe; soundAllowed(); } else { audio = probe; soundHint.hidden = false; }
    } catch (e) { soundHint.hidden = false; }
  }
  document.addEventListener("keydown", unlockAudio, { once: true });
  document.addEventListener("click", unlockAudio, { once: true });
  function beep(times) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      for (var i = 0; i < times; i++) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        var at = audio.currentTime + i * 0.45;
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.25, at);
        gain.gain.exponentialRampToValueAtTime(0.001, at + 0.35);
        osc.connect(gain);
        gain.connect(audio.destination);
        osc.start(at);
        osc.stop(at + 0.36);
      }
    } catch (e) { /* no audio device: the banner still shows */ }
  }
  var alertTimer = null;
  function alarm(text, urgent) {
    beep(urgent ? 3 : 2);
    if (!alertBox) return;
    alertBox.textContent = text;
    alertBox.className = "console-alert" + (urgent ? " urgent" : "");
    alertBox.hidden = false;
    clearTimeout(alertTimer);
    alertTimer = setTimeout(function () { alertBox.hidden = true; }, ALERT_MS);
  }
  if (alertBox) alertBox.addEventListener("click", function () { alertBox.hidden = true; });

  /* ---------------- countdowns ---------------- */
  function mmss(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var sec = s % 60;
    return Math.floor(s / 60) + ":" + (sec < 10 ? "0" : "") + sec;
  }
  function paint(elem, left) {
    var css = left < 0 ? "cd-overdue" : left < SOON_MS ? "cd-soon" : "cd-ok";
    var label = left < 0 ? "ПРОСРОЧЕН" : left < SOON_MS ? "меньше 2 минут" : "осталось";
    var time = elem.querySelector(".cd-time");
    var lab = elem.querySelector(".cd-label");
    if (time) time.textContent = (left < 0 ? "+" : "") + mmss(left);
    if (lab) lab.textContent = label;
    ["cd-ok", "cd-soon", "cd-overdue"].forEach(function (c) { elem.classList.toggle(c, c === css); });
    return css;
  }
  function tick() {
    var t = now();
    $all(".missed-item[data-deadline]", queue).forEach(function (li) {
      var before = li.dataset.state;
      var state = paint(li, Date.parse(li.dataset.deadline) - t);
      li.dataset.state = state;
      if (before === "cd-ok" && state === "cd-soon") alarm("Осталось меньше 2 минут: перезвоните " + li.dataset.phone, true);
    });
    $all(".countdown.big[data-deadline]").forEach(function (d) { paint(d, Date.parse(d.dataset.deadline) - t); });
  }
  $all(".missed-item[data-deadline]", queue).forEach(function (li) {
    li.dataset.state = paint(li, Date.parse(li.dataset.deadline) - now());
  });
  setInterval(tick, 1000);

  /* ---------------- counters and the tab title ---------------- */
  function recount() {
    var n = $all(".missed-item", queue).length;
    var counter = $("#missed-counter");
    if (counter) {
      counter.textContent = consoleEl ? (n ? String(n) : "нет") : (n ? "ждут ответа: " + n : "очередь пуста");
      counter.className = "mark " + (n ? "mark-overdue" : "mark-ok");
    }
    var empty = $("#missed-empty");
    if (empty) empty.hidden = n > 0;
    if (strip && $("#strip-empty")) $("#strip-empty").hidden = $all(".call-item", strip).length > 0;
    if (window.OpenADS && window.OpenADS.setTitle) window.OpenADS.setTitle("missed", n ? "(" + n + " пропущ.) " : "");
  }
  var zoneUrl = consoleEl && consoleEl.dataset.zone;
  if (!zoneUrl) recount();  /* the console counts once its zone has arrived (loadZone) */

  /* ---------------- the right zone ---------------- */
  var shown = null;  /* {kind, id} of the card in the right zone */
  function showDetail(url, kind, id) {
    if (!detail || !url) return Promise.resolve();
    shown = { kind: kind, id: String(id) };
    return get(url).then(function (html) {
      if (!shown || shown.kind !== kind || shown.id !== String(id)) return;
      detail.innerHTML = html || "";
      tick();
    }).catch(function () { detail.textContent = "Не удалось загрузить карточку — повторите."; });
  }
  function reloadDetailIf(kind, id) {
    if (shown && shown.kind === kind && shown.id === String(id)) {
      var li = document.getElementById((kind === "call" ? "call-" : "missed-") + id);
      var url = li ? li.dataset.url : (kind === "call" ? "/calls/" + id : "/missed-calls/" + id) + "?partial=1";
      showDetail(url, kind, id);
    }
  }
  function select(li, kind) {
    $all(".missed-item.selected, .call-item.selected").forEach(function (x) { x.classList.remove("selected"); });
    li.classList.add("selected");
    return showDetail(li.dataset.url, kind, li.dataset.id);
  }
  function clickable(ev) { return !ev.target.closest("a, button, form, audio, input, select, textarea"); }
  queue.addEventListener("click", function (ev) {
    var li = ev.target.closest(".missed-item");
    if (li && clickable(ev) && detail) select(li, "missed");
  });
  if (strip) strip.addEventListener("click", function (ev) {
    var li = ev.target.closest(".call-item");
    if (li && clickable(ev)) select(li, "call");
  });
  document.addEventListener("openads:row-selected", function (ev) {
    if (!detail) return;
    var tr = ev.detail;
    shown = { kind: "ticket", id: tr.dataset.id };
    var sec = document.createElement("section");
    sec.className = "detail ticket-detail";
    var head = document.createElement("div");
    head.className = "card-head";
    var h = document.createElement("h1");
    h.textContent = "Заявка";
    head.appendChild(h);
    head.appendChild(tr.querySelector(".c-num").cloneNode(true).firstElementChild);
    head.appendChild(tr.querySelector(".c-org").cloneNode(true).firstElementChild);
    sec.appendChild(head);
    var dl = document.createElement("dl");
    dl.className = "fields";
    [["Регистрация", ".c-time"], ["Адрес", ".c-addr"], ["Заявитель", ".c-reporter"], ["Категория", ".c-cat"],
     ["Статус", ".c-status"], ["Исполнитель", ".c-exec"], ["Срок", ".c-due"], ["ЕДДС", ".c-edds"]].forEach(function (f) {
      var cell = tr.querySelector(f[1]);
      if (!cell) return;
      var dt = document.createElement("dt");
      dt.textContent = f[0];
      var dd = document.createElement("dd");
      dd.innerHTML = cell.innerHTML;
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
    var dt = document.createElement("dt");
    dt.textContent = "Описание";
    var dd = document.createElement("dd");
    dd.className = "desc";
    dd.textContent = tr.querySelector(".c-desc").getAttribute("title");
    dl.appendChild(dt);
    dl.appendChild(dd);
    sec.appendChild(dl);
    var open = document.createElement("a");
    open.className = "btn btn-primary";
    open.href = tr.dataset.href;
    open.textContent = "Открыть карточку заявки (Enter)";
    sec.appendChild(open);
    detail.innerHTML = "";
    detail.appendChild(sec);
  });

  /* ---------------- live updates ---------------- */
  function placeMissed(li) {
    var deadline = Date.parse(li.dataset.deadline);
    var before = $all(".missed-item", queue).find(function (x) {
      return x !== li && Date.parse(x.dataset.deadline) > deadline;
    });
    queue.insertBefore(li, before || null);
  }
  function refreshMissed(id, created) {
    return get(withId(queue.dataset.itemUrl, id)).then(function (html) {
      var cur = document.getElementById("missed-" + id);
      if (!html) { if (cur) cur.remove(); recount(); reloadDetailIf("missed", id); return; }
      var li = fragment(html);
      li.dataset.state = paint(li, Date.parse(li.dataset.deadline) - now());
      if (cur) {
        if (cur.classList.contains("selected")) li.classList.add("selected");
        cur.replaceWith(li);
        placeMissed(li);
      } else {
        li.classList.add("fresh");
        placeMissed(li);
        if (created) alarm("Пропущенный звонок: " + li.dataset.phone + " — перезвоните в течение 10 минут", false);
      }
      recount();
      reloadDetailIf("missed", id);
    }).catch(function () { /* the next event or a reload catches up */ });
  }
  function refreshCall(id) {
    if (!strip) return;
    get(withId(strip.dataset.itemUrl, id)).then(function (html) {
      var cur = document.getElementById("call-" + id);
      if (!html) { if (cur) cur.remove(); recount(); reloadDetailIf("call", id); return; }
      var li = fragment(html);
      if (cur) {
        if (cur.classList.contains("selected")) li.classList.add("selected");
        cur.replaceWith(li);
      } else {
        li.classList.add("fresh");
        strip.appendChild(li);
      }
      recount();
      reloadDetailIf("call", id);
    }).catch(function () {});
  }

  /* ---------------- the left zone, loaded after the page ---------------- */
  /* Items a live event put in or took out while the zone was on its way win over the zone's copy. */
  var gone = {};
  function loadZone() {
    var loading = $("#zone-loading");
    get(zoneUrl).then(function (html) {
      var box = document.createElement("div");
      box.innerHTML = html || "";
      if (strip) $all("#zone-strip > .call-item", box).forEach(function (li) {
        if (!gone[li.id] && !document.getElementById(li.id)) strip.appendChild(li);
      });
      $all("#zone-missed > .missed-item", box).forEach(function (li) {
        if (gone[li.id] || document.getElementById(li.id)) return;
        li.dataset.state = paint(li, Date.parse(li.dataset.deadline) - now());
        placeMissed(li);
      });
      if (loading) loading.remove();
      recount();
    }).catch(function () {
      if (loading) loading.textContent = "Не удалось загрузить звонки — обновите страницу.";
    });
  }

  var streamUrl = (consoleEl && consoleEl.dataset.stream) || queue.dataset.stream;
  var es = window.OpenADS && window.OpenADS.stream ? window.OpenADS.stream(streamUrl) : null;
  if (es) {
    var on = function (name, fn) { es.addEventListener(name, function (ev) { fn(JSON.parse(ev.data)); }); };
    on("call.ringing", function (d) { refreshCall(d.call_id); });
    on("call.answered", function (d) { refreshCall(d.call_id); });
    on("call.ended", function (d) {
      gone["call-" + d.call_id] = true;
      var cur = document.getElementById("call-" + d.call_id);
      if (cur) cur.remove();
      recount();
      reloadDetailIf("call", d.call_id);
    });
    on("missed_call.created", function (d) { refreshMissed(d.missed_call_id, true); });
    on("missed_call.updated", function (d) { refreshMissed(d.missed_call_id, false); });
    on("missed_call.closed", function (d) {
      gone["missed-" + d.missed_call_id] = true;
      var cur = document.getElementById("missed-" + d.missed_call_id);
      if (cur) cur.remove();
      recount();
      reloadDetailIf("missed", d.missed_call_id);
    });
    /* an emergency's executor did not accept it (decision 0043): the row turns red (app.js), the console sounds */
    on("ticket.unacknowledged", function (d) {
      alarm("Не подтверждено: аварийная заявка № " + d.number + " — " + d.executor + " не ответил. Переназначьте.", true);
    });
  }

  if (zoneUrl) loadZone();

  /* ---------------- console shortcuts ---------------- */
  function typing(target) {
    var tag = (target.tagName || "").toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }
  function nextMissed() {
    var items = $all(".missed-item", queue);
    if (!items.length) return Promise.resolve(null);
    var cur = items.findIndex(function (x) { return x.classList.contains("selected"); });
    var li = items[(cur + 1) % items.length];
    li.focus();
    return select(li, "missed").then(function () { return li; });
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
    var sel = $(".missed-item.selected", queue);
    switch (ev.key) {
      case "m": ev.preventDefault(); nextMissed(); break;
      case "p":
        if (sel) { ev.preventDefault(); sel.querySelector(".callback-form").submit(); }
        break;
      case "x":
        ev.preventDefault();
        (sel && shown && shown.kind === "missed" ? Promise.resolve(sel) : nextMissed()).then(function () {
          var reason = detail ? $(".close-reason", detail) : null;
          if (reason) reason.focus();
          else if (sel) location.href = sel.querySelector(".close-link").href;
        });
        break;
      case "t":
        var link = strip ? $(".call-item .new-ticket-link", strip) : null;
        if (link) { ev.preventDefault(); location.href = link.href; }
        break;
    }
  });
})();
