/* OpenADS panel: live journal (SSE), keyboard shortcuts, lookups on the new-ticket form. No dependencies. */
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = csrfMeta ? csrfMeta.content : "";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function debounce(fn, ms) {
    var t = null;
    return function () { var args = arguments; clearTimeout(t); t = setTimeout(function () { fn.apply(null, args); }, ms); };
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  /* The organization's badge: web/panel/common.py org_badge_class computes the same hue class. */
  function orgBadge(orgId, text) { return el("span", "org-badge hue-" + Math.floor(((orgId * 137 + 200) % 360) / 10), text); }
  function withId(template, id) { return template.replace("/0/", "/" + id + "/").replace(/\/0$/, "/" + id); }

  /* POST with the CSRF header (for fetch-based actions). */
  window.OpenADS = {
    post: function (url, data) {
      return fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRFToken": CSRF, "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(data || {}).toString()
      });
    }
  };

  /* Selects that submit their form when changed (the CSP allows no inline on...= handlers). */
  $all("select[data-autosubmit]").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });

  /* "Скопировать" buttons: copy the text of the element whose id is in data-copy (a new API token).
     Hidden without script or without the clipboard API; the text stays selectable by hand. */
  $all("button[data-copy]").forEach(function (b) {
    var target = document.getElementById(b.dataset.copy);
    if (!target || !navigator.clipboard) return;
    b.hidden = false;
    b.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(
        function () { b.textContent = "Скопировано"; },
        function () { b.textContent = "Не удалось скопировать: выделите текст"; });
    });
  });

  /* ---------------- keyboard shortcuts ---------------- */
  function typing(target) {
    var tag = (target.tagName || "").toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }
  function rows() { return $all("#journal-rows tr.row"); }
  function selectRow(delta) {
    var list = rows();
    if (!list.length) return;
    var cur = list.findIndex(function (r) { return r.classList.contains("selected"); });
    var next = cur < 0 ? 0 : Math.min(list.length - 1, Math.max(0, cur + delta));
    list.forEach(function (r) { r.classList.remove("selected"); });
    list[next].classList.add("selected");
    list[next].focus();
    document.dispatchEvent(new CustomEvent("openads:row-selected", { detail: list[next] }));
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Escape" && typing(ev.target)) { ev.target.blur(); return; }
    if (typing(ev.target)) return;
    var nav = $("#nav-new");
    switch (ev.key) {
      case "n": if (nav) { ev.preventDefault(); location.href = nav.href; } break;
      case "/":
        ev.preventDefault();
        if ($("#q")) { $("#q").focus(); $("#q").select(); } else { location.href = $(".brand").href + "#search"; }
        break;
      case "g": ev.preventDefault(); location.href = $(".brand").href; break;
      case "j": ev.preventDefault(); selectRow(1); break;
      case "k": ev.preventDefault(); selectRow(-1); break;
      case "Enter":
        var sel = $("#journal-rows tr.row.selected");
        if (sel) { ev.preventDefault(); location.href = sel.dataset.href; }
        break;
      case "a": if ($("#executor")) { ev.preventDefault(); $("#executor").focus(); } break;
      case "c": if ($("#comment-text")) { ev.preventDefault(); $("#comment-text").focus(); } break;
    }
  });

  /* ---------------- live connection indicator ---------------- */
  function liveState(ok, text) {
    var s = $("#live-state");
    if (!s) return;
    s.hidden = false;
    s.classList.toggle("off", !ok);
    s.textContent = text || (ok ? "● онлайн" : "● нет связи — переподключение…");
  }

  /* The event stream (GET /events/stream). EventSource reconnects by itself after a dropped
     connection (sending Last-Event-ID), but gives up for good on any answer other than 200: 401
     (signed out), 429 (too many open streams for this user or address), 503 (the database is down), 5xx. Then we ask the
     server why, say it, and open a new EventSource after Retry-After (or a growing pause),
     resuming after the last event received (?last_id=). Listeners survive the reopening. */
  function LiveStream(url) {
    this.url = url;
    this.handlers = {};
    this.lastId = null;
    this.pause = 2;
    this.es = null;
    this.open();
  }
  LiveStream.prototype.target = function () {
    if (this.lastId === null) return this.url;
    var u = new URL(this.url, location.href);
    u.searchParams.set("last_id", this.lastId);
    return u.pathname + u.search;
  };
  LiveStream.prototype.open = function () {
    var self = this;
    var es = this.es = new EventSource(this.target());
    es.onopen = function () { self.pause = 2; liveState(true); };
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) self.gaveUp(); else liveState(false);
    };
    Object.keys(this.handlers).forEach(function (name) { self.attach(name); });
  };
  LiveStream.prototype.attach = function (name) {
    var self = this;
    this.es.addEventListener(name, function (ev) {
      if (ev.lastEventId) self.lastId = ev.lastEventId;
      self.handlers[name].forEach(function (fn) { fn(ev); });
    });
  };
  LiveStream.prototype.addEventListener = function (name, fn) {
    if (!this.handlers[name]) { this.handlers[name] = []; if (this.es) this.attach(name); }
    this.handlers[name].push(fn);
  };
  LiveStream.prototype.close = function () { if (this.es) this.es.close(); clearTimeout(this.timer); };
  LiveStream.prototype.retry = function (seconds) {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.open(); }, (seconds + Math.random() * 3) * 1000);
  };
  LiveStream.prototype.gaveUp = function () {
    var self = this;
    var ctl = window.AbortController ? new AbortController() : null;
    fetch(this.target(), { credentials: "same-origin", signal: ctl && ctl.signal }).then(function (resp) {
      if (ctl) ctl.abort();  /* a 200 is a stream: we only wanted its status */
      if (resp.status === 401) { liveState(false, "● сеанс завершён — обновите страницу и войдите снова"); return; }
      if (resp.status === 429) {
        var wait = parseInt(resp.headers.get("Retry-After"), 10) || 30;
        liveState(false, "● слишком много открытых вкладок панели — закройте лишние; повтор через " + wait + " с");
        self.retry(wait);
        return;
      }
      if (resp.status === 503 && resp.headers.get("Retry-After")) {  /* the database is down for now */
        var after = parseInt(resp.headers.get("Retry-After"), 10) || self.pause;
        liveState(false, "● база данных недоступна — повтор через " + after + " с");
        self.retry(after);
        return;
      }
      liveState(false);
      self.retry(resp.ok ? 0 : self.pause);
      self.pause = Math.min(self.pause * 2, 60);
    }).catch(function () {
      liveState(false);
      self.retry(self.pause);
      self.pause = Math.min(self.pause * 2, 60);
    });
  };

  /* One event stream per page, shared by the journal, the console and the card (browsers allow few connections). */
  var sharedStream = null;
  window.OpenADS.stream = function (url) {
    if (sharedStream || !window.EventSource) return sharedStream;
    sharedStream = new LiveStream(url);
    window.addEventListener("beforeunload", function () { sharedStream.close(); });
    return sharedStream;
  };
  /* The tab title: "(2 нов.) (3 пропущ.) Пульт диспетчера — …"; each part is set by its owner. */
  var titleParts = { fresh: "", missed: "" };
  var titleBase = document.title.replace(/^(\(\d+ [^)]*\) )+/, "");
  window.OpenADS.setTitle = function (part, text) {
    titleParts[part] = text;
    document.title = titleParts.fresh + titleParts.missed + titleBase;
  };

  /* ---------------- layout: menu button, dropdown groups, wide tables, theme ---------------- */
  var navToggle = $("#nav-toggle");
  var topbar = $(".topbar");
  if (navToggle && topbar) {
    navToggle.addEventListener("click", function () {
      var open = !topbar.classList.contains("nav-open");
      topbar.classList.toggle("nav-open", open);
      navToggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }
  /* One menu group open at a time; a click elsewhere or Esc closes it (the phone menu keeps its groups). */
  var groups = $all(".navgroup");
  var phoneMenu = function () { return navToggle && getComputedStyle(navToggle).display !== "none"; };
  groups.forEach(function (g) {
    g.addEventListener("toggle", function () {
      if (g.open && !phoneMenu()) groups.forEach(function (o) { if (o !== g) o.open = false; });
    });
  });
  document.addEventListener("click", function (ev) {
    if (phoneMenu()) return;
    groups.forEach(function (g) { if (g.open && !g.contains(ev.target)) g.open = false; });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") groups.forEach(function (g) { if (g.open) { g.open = false; } });
  });
  /* A wide table scrolls inside its own box: the page itself never scrolls sideways. */
  $all("main table").forEach(function (t) {
    if (t.closest(".scroll-x")) return;
    var box = el("div", "scroll-x");
    t.parentNode.insertBefore(box, t);
    box.appendChild(t);
  });
  /* A filter the browser refuses (the house typed but not picked) opens «Фильтры» so its message shows. */
  var filterPanel = $("#filter-panel");
  if (filterPanel) {
    $("#filters").addEventListener("invalid", function () { filterPanel.open = true; }, true);
  }
  var themeButton = $("#theme-toggle");
  if (themeButton) {
    themeButton.addEventListener("click", function () {
      var next = document.documentElement.dataset.theme === "light" ? "dark" : "light";
      document.documentElement.dataset.theme = next;
      try { localStorage.setItem("openads.theme", next); } catch (e) { /* private mode: this page only */ }
    });
  }

  /* ---------------- journal columns: chosen and ordered by the user, remembered per user ---------------- */
  var journalTable = $("#journal");
  if (journalTable) {
    var DEFAULTS = {
      console: ["num", "time", "addr", "cat", "status", "due", "exec"],
      /* «Авар.» in the chooser: an emergency row is already marked by its red edge and tint */
      journal: ["num", "time", "addr", "reporter", "cat", "desc", "status", "exec", "due"]
    };
    var kind = $("#console") ? "console" : "journal";
    var storeKey = "openads.columns." + (document.body.dataset.user || "0") + "." + kind;
    var heads = $all("thead th[data-col]", journalTable);
    var titles = {};
    heads.forEach(function (th) { titles[th.dataset.col] = th.textContent; });
    var all = heads.map(function (th) { return th.dataset.col; });
    var defaults = function () {
      var d = DEFAULTS[kind].slice();
      if (journalTable.dataset.multiOrg === "1") d.splice(2, 0, "org");
      return { order: all.filter(function (c) { return d.indexOf(c) >= 0; }).sort(function (a, b) { return d.indexOf(a) - d.indexOf(b); })
        .concat(all.filter(function (c) { return d.indexOf(c) < 0; })), shown: d };
    };
    var load = function () {
      try {
        var saved = JSON.parse(localStorage.getItem(storeKey) || "null");
        if (saved && Array.isArray(saved.order) && Array.isArray(saved.shown)) {
          var order = saved.order.filter(function (c) { return all.indexOf(c) >= 0; });
          all.forEach(function (c) { if (order.indexOf(c) < 0) order.push(c); });  /* a column added later */
          return { order: order, shown: saved.shown.filter(function (c) { return all.indexOf(c) >= 0; }) };
        }
      } catch (e) { /* unreadable: the defaults */ }
      return defaults();
    };
    var cols = load();
    var save = function () {
      try { localStorage.setItem(storeKey, JSON.stringify(cols)); } catch (e) { /* private mode: this visit only */ }
    };
    var arrange = function (tr) {
      var cells = {};
      Array.prototype.forEach.call(tr.children, function (cell) {
        var key = cell.dataset.col || (cell.className.match(/\bc-([a-z]+)\b/) || [])[1];
        if (key) cells[key] = cell;
      });
      cols.order.forEach(function (c) {
        var cell = cells[c];
        if (!cell) return;
        cell.hidden = cols.shown.indexOf(c) < 0;
        tr.appendChild(cell);
      });
    };
    var arrangeAll = function () { $all("tr", journalTable).forEach(arrange); };
    journalTable.classList.add("columns-" + kind);
    arrangeAll();
    /* rows that arrive live (app.js journal below) are arranged as they are inserted */
    new MutationObserver(function (records) {
      records.forEach(function (r) {
        Array.prototype.forEach.call(r.addedNodes, function (n) { if (n.nodeType === 1 && n.tagName === "TR") { arrange(n); tickRow(n); } });
      });
    }).observe($("#journal-rows"), { childList: true });

    var chooser = $("#col-chooser");
    var list = $("#col-list");
    var draw = function () {
      list.innerHTML = "";
      cols.order.forEach(function (c, i) {
        var li = el("li", "col-item");
        var label = el("label", "toggle");
        var box = document.createElement("input");
        box.type = "checkbox";
        box.checked = cols.shown.indexOf(c) >= 0;
        box.dataset.col = c;
        box.addEventListener("change", function () {
          cols.shown = cols.order.filter(function (k) { return k === c ? box.checked : cols.shown.indexOf(k) >= 0; });
          save(); arrangeAll();
        });
        label.appendChild(box);
        label.appendChild(document.createTextNode(" " + titles[c]));
        li.appendChild(label);
        [["↑", -1, "выше"], ["↓", 1, "ниже"]].forEach(function (m) {
          var b = el("button", "btn btn-small", m[0]);
          b.type = "button";
          b.setAttribute("aria-label", titles[c] + ": " + m[2]);
          b.disabled = (i + m[1] < 0) || (i + m[1] >= cols.order.length);
          b.addEventListener("click", function () {
            var j = i + m[1];
            cols.order[i] = cols.order[j]; cols.order[j] = c;
            save(); arrangeAll(); draw();
            var again = list.children[j] && list.children[j].querySelectorAll("button")[m[1] < 0 ? 0 : 1];
            if (again && !again.disabled) again.focus();
          });
          li.appendChild(b);
        });
        list.appendChild(li);
      });
    };
    if (chooser && list) {
      chooser.hidden = false;
      draw();
      $("#col-reset").addEventListener("click", function () {
        cols = defaults();
        try { localStorage.removeItem(storeKey); } catch (e) { /* nothing stored */ }
        arrangeAll(); draw();
      });
    }

    /* The deadline countdown of each row (the server's clock: data-server-now of the console). */
    var root = $("#console");
    var serverNow = root ? Date.parse(root.dataset.serverNow || "") : NaN;
    var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();
    var left = function (seconds) {
      var late = seconds < 0;
      var m = Math.floor(Math.abs(seconds) / 60);
      var text = m >= 1440 ? Math.floor(m / 1440) + " сут " + Math.floor((m % 1440) / 60) + " ч"
        : m >= 60 ? Math.floor(m / 60) + " ч " + (m % 60) + " мин" : m ? m + " мин" : "меньше минуты";
      return late ? "просрочено " + text : "ещё " + text;
    };
    var tickRow = function (tr) {
      $all(".countdown-cell[data-due]", tr).forEach(function (c) {
        var s = Number(c.dataset.due) - (Date.now() + skew) / 1000;
        c.textContent = left(Math.round(s));
        c.classList.toggle("due-late", s < 0);
        c.classList.toggle("due-soon", s >= 0 && s < 3600);
      });
    };
    var tickAll = function () { tickRow(journalTable); };
    tickAll();
    setInterval(tickAll, 30000);
  }

  /* ---------------- journal ---------------- */
  var table = $("#journal");
  if (table) {
    if (location.hash === "#search" && $("#q")) $("#q").focus();
    var tbody = $("#journal-rows");
    var fresh = 0;
    var counter = $("#new-counter");
    var showFresh = function () {
      window.OpenADS.setTitle("fresh", fresh ? "(" + fresh + " нов.) " : "");
      if (counter) { counter.hidden = !fresh; counter.innerHTML = ""; counter.appendChild(el("span", "mark mark-ok", "новых: " + fresh)); }
    };
    var resetFresh = function () { if (document.visibilityState === "visible" && document.hasFocus()) { fresh = 0; setTimeout(showFresh, 5000); } };
    window.addEventListener("focus", resetFresh);

    tbody.addEventListener("click", function (ev) {
      var tr = ev.target.closest("tr.row");
      if (!tr || ev.target.closest("a")) return;
      if ($("#console")) {  /* the console: a click selects, the card opens in the right zone; Enter opens the page */
        rows().forEach(function (r) { r.classList.remove("selected"); });
        tr.classList.add("selected");
        document.dispatchEvent(new CustomEvent("openads:row-selected", { detail: tr }));
        return;
      }
      location.href = tr.dataset.href;
    });

    var fetchRow = function (id) {
      var url = withId(table.dataset.rowUrl, id);
      var q = table.dataset.rowQuery;
      return fetch(url + (q ? "?" + q : ""), { credentials: "same-origin" }).then(function (r) {
        if (r.status === 204) return null;
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      });
    };
    var parseRow = function (html) {
      var t = document.createElement("tbody");
      t.innerHTML = html.trim();
      return t.querySelector("tr");
    };

    var onCreated = function (data) {
      if (document.getElementById("ticket-" + data.ticket_id)) return;
      fetchRow(data.ticket_id).then(function (html) {
        if (!html || document.getElementById("ticket-" + data.ticket_id)) return;
        var tr = parseRow(html);
        if (!tr) return;
        tr.classList.add("fresh");
        tbody.insertBefore(tr, tbody.firstChild);
        var empty = $("#journal-empty");
        if (empty) empty.remove();
        fresh += 1;
        showFresh();
      }).catch(function () { /* the next event or a reload will catch up */ });
    };
    var onChanged = function (data) {
      var old = document.getElementById("ticket-" + data.ticket_id);
      if (!old) return;
      fetchRow(data.ticket_id).then(function (html) {
        var cur = document.getElementById("ticket-" + data.ticket_id);
        if (!cur) return;
        if (!html) { cur.remove(); return; }
        var tr = parseRow(html);
        if (!tr) return;
        if (cur.classList.contains("selected")) tr.classList.add("selected");
        tr.classList.add("fresh");
        cur.replaceWith(tr);
      }).catch(function () {});
    };

    if (table.dataset.live === "1" && window.EventSource) {
      var es = window.OpenADS.stream(table.dataset.stream);
      es.addEventListener("ticket.created", function (ev) { onCreated(JSON.parse(ev.data)); });
      es.addEventListener("ticket.changed", function (ev) { onChanged(JSON.parse(ev.data)); });
      /* an emergency's executor did not accept (red «не подтверждено»), or accepted at last */
      es.addEventListener("ticket.unacknowledged", function (ev) { onChanged(JSON.parse(ev.data)); });
      es.addEventListener("ticket.accepted", function (ev) { onChanged(JSON.parse(ev.data)); });
    }

    var more = $("#more");
    if (more) {
      more.addEventListener("click", function (ev) {
        ev.preventDefault();
        var href = more.getAttribute("href");
        more.textContent = "Загрузка…";
        fetch(href + (href.indexOf("?") < 0 ? "?" : "&") + "partial=1", { credentials: "same-origin" }).then(function (r) {
          var next = r.headers.get("X-Next-Url");
          return r.text().then(function (html) {
            var t = document.createElement("tbody");
            t.innerHTML = html;
            $all("tr", t).forEach(function (tr) { if (!document.getElementById(tr.id)) tbody.appendChild(tr); });
            if (next) { more.setAttribute("href", next); more.textContent = "Показать ещё"; } else { more.parentNode.remove(); }
          });
        }).catch(function () { more.textContent = "Ошибка загрузки — нажмите ещё раз"; });
      });
    }
  }

  /* ---------------- journal filter: house by address (never a drop-down of every house) ---------------- */
  var houseSearch = $("#house-search");
  if (houseSearch) {
    var houseId = $("#house-id");
    var houseList = $("#house-results");
    var houseOrgs = JSON.parse(houseSearch.dataset.orgs || "{}");
    var houseFound = [];
    var houseActive = -1;
    var chosenLabel = houseSearch.value;
    var houseLabel = function (h) { return h.address + (houseOrgs[h.organization_id] ? " · " + houseOrgs[h.organization_id] : ""); };
    var houseClose = function () { houseList.hidden = true; houseSearch.setAttribute("aria-expanded", "false"); };
    var houseRender = function () {
      houseList.innerHTML = "";
      houseFound.forEach(function (h, i) {
        var li = el("li", i === houseActive ? "active" : "");
        li.setAttribute("role", "option");
        if (houseOrgs[h.organization_id]) {
          li.appendChild(orgBadge(h.organization_id, houseOrgs[h.organization_id]));
          li.appendChild(document.createTextNode(" "));
        }
        li.appendChild(document.createTextNode(h.address));
        li.addEventListener("mousedown", function (ev) { ev.preventDefault(); houseChoose(h); });
        houseList.appendChild(li);
      });
      if (!houseFound.length) houseList.appendChild(el("li", "muted", "Дом не найден"));
      houseList.hidden = false;
      houseSearch.setAttribute("aria-expanded", "true");
    };
    var houseChoose = function (h) {
      chosenLabel = houseLabel(h);
      houseSearch.value = chosenLabel;
      houseId.value = h.id;
      houseSearch.setCustomValidity("");
      houseClose();
    };
    var houseQuery = debounce(function () {
      var q = houseSearch.value.trim();
      if (q.length < 2) { houseFound = []; houseClose(); return; }
      var org = $("#filter-org");
      var url = houseSearch.dataset.url + "?limit=15&q=" + encodeURIComponent(q) + (org && org.value ? "&organization_id=" + org.value : "");
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : { items: [] }; }).then(function (d) {
        if (houseSearch.value.trim() !== q) return;
        houseFound = d.items || [];
        houseActive = houseFound.length ? 0 : -1;
        houseRender();
      }).catch(function () {});
    }, 200);
    houseSearch.addEventListener("input", function () {
      houseSearch.setCustomValidity("");
      if (houseSearch.value !== chosenLabel) houseId.value = "";
      if (!houseSearch.value.trim()) { chosenLabel = ""; houseId.value = ""; }
      houseQuery();
    });
    houseSearch.addEventListener("keydown", function (ev) {
      var open = !houseList.hidden && houseFound.length;
      if (ev.key === "ArrowDown" && open) { ev.preventDefault(); houseActive = Math.min(houseFound.length - 1, houseActive + 1); houseRender(); }
      else if (ev.key === "ArrowUp" && open) { ev.preventDefault(); houseActive = Math.max(0, houseActive - 1); houseRender(); }
      else if (ev.key === "Enter" && open && houseFound[houseActive]) { ev.preventDefault(); houseChoose(houseFound[houseActive]); }
      else if (ev.key === "Escape" && !houseList.hidden) { houseClose(); }
    });
    houseSearch.addEventListener("blur", houseClose);
    houseSearch.form.addEventListener("submit", function (ev) {
      if (houseSearch.value.trim() && !houseId.value) {
        ev.preventDefault();
        houseSearch.setCustomValidity("Выберите дом из списка или очистите поле");
        houseSearch.reportValidity();
      }
    });
  }

  /* ---------------- ticket card ---------------- */
  var card = $("#card");
  if (card && window.EventSource) {
    var cardEs = window.OpenADS.stream(card.dataset.stream);
    // The fields with an unsaved change in one of the card's forms (named as events name them).
    // The banner is raised only when another person changes one of them: the system's own
    // changes (notifications sent, ratings) and this user's changes never raise it.
    var editing = {};
    var FIELD_OF_INPUT = { to: "status", at: "localized_at", reason: null, text: null, visibility: null,
      csrf_token: null, is_emergency_shown: null, file: null };
    var markEditing = function (ev) {
      var el = ev.target;
      if (!el || !el.name || !el.form) return;
      var field = Object.prototype.hasOwnProperty.call(FIELD_OF_INPUT, el.name) ? FIELD_OF_INPUT[el.name] : el.name;
      if (field) editing[field] = true;
    };
    card.addEventListener("input", markEditing);
    card.addEventListener("change", markEditing);
    card.addEventListener("submit", function () { editing = {}; });
    cardEs.addEventListener("ticket.changed", function (ev) {
      var data = JSON.parse(ev.data);
      if (String(data.ticket_id) !== card.dataset.id) return;
      card.dataset.heard = String((parseInt(card.dataset.heard || "0", 10) || 0) + 1);  // changes heard (tests wait on it)
      if (data.by === null || data.by === undefined || String(data.by) === card.dataset.user) return;
      var hit = (data.fields || []).some(function (name) { return editing[name]; });
      if (hit) $("#changed-banner").hidden = false;
    });
  }
  /* ---------------- a background job's page ----------------
     The bar follows `job.progress` events of this job (the worker sends at most two a second);
     `job.finished` reloads the page for the result. A poll of /jobs/<id>/progress every few
     seconds is the floor (an event missed while the stream reconnected). */
  var jobBox = $("#job");
  if (jobBox && jobBox.dataset.finished !== "1") {
    var jobBar = $("#job-bar"), jobCount = $("#job-count");
    var jobDone = false;
    var jobShow = function (d) {
      if (d.total) { jobBar.max = d.total; jobBar.value = Math.min(d.done, d.total); }
      jobCount.textContent = d.total ? d.done + " из " + d.total : String(d.done || "");
      if (d.status === "running") $("#job-status").textContent = "выполняется";
    };
    var jobEnd = function () { if (!jobDone) { jobDone = true; location.reload(); } };
    var jobMine = function (ev) { var d = JSON.parse(ev.data); return String(d.job_id) === jobBox.dataset.id ? d : null; };
    if (window.EventSource) {
      var jobEs = window.OpenADS.stream(jobBox.dataset.stream);
      jobEs.addEventListener("job.progress", function (ev) { var d = jobMine(ev); if (d) jobShow(d); });
      jobEs.addEventListener("job.finished", function (ev) { if (jobMine(ev)) jobEnd(); });
    }
    setInterval(function () {
      fetch(jobBox.dataset.progress, { credentials: "same-origin" }).then(function (resp) {
        return resp.ok ? resp.json() : null;
      }).then(function (d) {
        if (!d) return;
        jobShow(d);
        if (d.finished) jobEnd();
      }).catch(function () {});
    }, 5000);
  }

  var upload = $("#upload-form");
  if (upload) {
    upload.addEventListener("submit", function (ev) {
      var input = upload.querySelector('input[type="file"]');
      var max = parseInt(upload.dataset.maxBytes, 10);
      var err = upload.querySelector(".upload-error");
      if (input.files.length && input.files[0].size > max) {
        ev.preventDefault();
        err.hidden = false;
        err.textContent = "Файл слишком большой: не более " + Math.round(max / 1048576) + " МБ";
      }
    });
  }

  /* ---------------- new ticket form ---------------- */
  var form = $("#new-ticket");
  if (form) {
    var orgSel = $("#organization");
    var catSel = $("#category");
    var catSearch = $("#category-search");
    var hint = $("#deadline-hint");
    var emergency = $("#is_emergency");
    var premiseSel = $("#premise_id");
    var results = $("#lookup-results");
    var lookupInput = $("#lookup");
    var active = -1;
    var found = [];

    var currentOrg = function () { return orgSel ? orgSel.value : ""; };
    var filterCategories = function () {
      var q = (catSearch.value || "").trim().toLowerCase();
      var org = currentOrg();
      $all("option", catSel).forEach(function (o) {
        var okOrg = !org || o.dataset.org === org;
        var okText = !q || o.textContent.toLowerCase().indexOf(q) >= 0;
        o.hidden = !(okOrg && okText);
        o.disabled = !okOrg;
      });
      $all("#executor_id option").forEach(function (o) {
        if (!o.value) return;
        var okOrg = !org || (o.dataset.orgs || "").split(",").indexOf(org) >= 0;
        o.hidden = !okOrg; o.disabled = !okOrg;
      });
    };
    var whyNot = $("#not-emergency-reason");
    var showWhyNot = function () {  /* an emergency category registered as not an emergency needs a reason */
      var opt = catSel.selectedOptions[0];
      if (whyNot) whyNot.hidden = !(opt && opt.dataset.emergency === "1" && !emergency.checked);
    };
    var showDeadline = function () {
      showWhyNot();
      var opt = catSel.selectedOptions[0];
      if (!opt) { hint.textContent = "Выберите категорию — срок появится здесь."; return; }
      hint.textContent = opt.dataset.deadline;
      var url = withId(form.dataset.deadline, opt.value) + "?emergency=" + (emergency.checked ? "1" : "0");
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) { if (d && catSel.value === opt.value) hint.textContent = d.text; }).catch(function () {});
    };
    catSearch.addEventListener("input", filterCategories);
    catSearch.addEventListener("keydown", function (ev) {
      if (ev.key === "ArrowDown" || ev.key === "Enter") {
        ev.preventDefault();
        var first = $all("option", catSel).find(function (o) { return !o.hidden; });
        if (first) { catSel.value = first.value; catSel.dispatchEvent(new Event("change")); }
        catSel.focus();
      }
    });
    catSel.addEventListener("change", function () {
      var opt = catSel.selectedOptions[0];
      if (opt) {
        emergency.checked = opt.dataset.emergency === "1";
        if (orgSel && !orgSel.value) { orgSel.value = opt.dataset.org; filterCategories(); }
      }
      showDeadline();
    });
    emergency.addEventListener("change", showDeadline);
    if (orgSel) orgSel.addEventListener("change", filterCategories);
    filterCategories();
    if (catSel.value) showDeadline();

    var setOrg = function (orgId) {
      if (orgSel && orgId) { orgSel.value = String(orgId); filterCategories(); }
    };
    var loadHouse = function (houseId, premiseId) {
      var url = withId(form.dataset.premises, houseId);
      return fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (d) {
        premiseSel.innerHTML = "";
        premiseSel.appendChild(new Option("—", ""));
        d.premises.forEach(function (p) { premiseSel.appendChild(new Option(p.label, p.id, false, String(p.id) === String(premiseId))); });
        var info = $("#house-info");
        info.innerHTML = "";
        d.incidents.forEach(function (i) { info.appendChild(el("div", "incident-banner", "Авария в доме: " + i.title + (i.announcement ? " — " + i.announcement : ""))); });
        d.notes.forEach(function (n) { info.appendChild(el("div", "note", "Заметка по дому: " + n)); });
      });
    };
    var choose = function (item) {
      var note = $("#resident-note");
      if (item.kind === "resident") {
        var r = item.data;
        $("#resident_id").value = r.id;
        $("#reporter_name").value = r.name;
        if (r.phones.length) {
          var typed = lookupInput.value.replace(/\D/g, "");
          var match = r.phones.find(function (p) { return typed && p.e164.replace(/\D/g, "").indexOf(typed.replace(/^8/, "7")) >= 0; });
          $("#reporter_phone").value = (match || r.phones[0]).display || (match || r.phones[0]).e164;
        }
        if (r.house_id) { $("#house_id").value = r.house_id; $("#house_address").value = r.address; loadHouse(r.house_id, r.premise_id); }
        note.hidden = !r.note;
        note.textContent = r.note ? "Заметка: " + r.note : "";
        setOrg(r.organization_id);
      } else {
        var h = item.data;
        $("#resident_id").value = "";
        $("#house_id").value = h.id;
        $("#house_address").value = h.address;
        note.hidden = true;
        loadHouse(h.id, null);
        setOrg(h.organization_id);
      }
      results.innerHTML = "";
      found = [];
      catSearch.focus();
    };
    var render = function () {
      results.innerHTML = "";
      found.forEach(function (item, i) {
        var li = el("li", i === active ? "active" : "");
        li.setAttribute("role", "option");
        li.appendChild(orgBadge(item.data.organization_id, item.data.organization));
        li.appendChild(document.createTextNode(" "));
        if (item.kind === "resident") {
          var r = item.data;
          li.appendChild(el("strong", "", r.name));
          li.appendChild(document.createTextNode(" · " + r.phones.map(function (p) { return p.display; }).join(", ")));
          li.appendChild(el("div", "meta", (r.address || "адрес не указан") + (r.premise ? ", " + r.premise : "") + (r.account ? " · ЛС " + r.account : "")));
          if (r.note) li.appendChild(el("div", "resident-note", r.note));
        } else {
          li.appendChild(el("strong", "", item.data.address));
          li.appendChild(el("span", "muted", " · дом"));
        }
        li.addEventListener("click", function () { choose(item); });
        results.appendChild(li);
      });
    };
    var search = debounce(function () {
      var q = lookupInput.value.trim();
      if (q.length < 2) { found = []; render(); return; }
      fetch(form.dataset.lookup + "?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (d) {
          if (lookupInput.value.trim() !== q) return;
          found = d.residents.map(function (r) { return { kind: "resident", data: r }; })
            .concat(d.houses.map(function (h) { return { kind: "house", data: h }; }));
          active = found.length ? 0 : -1;
          render();
          if (!found.length) results.appendChild(el("li", "muted", "Ничего не найдено"));
        }).catch(function () {});
    }, 200);
    lookupInput.addEventListener("input", search);
    lookupInput.addEventListener("keydown", function (ev) {
      if (ev.key === "ArrowDown" && found.length) { ev.preventDefault(); active = Math.min(found.length - 1, active + 1); render(); }
      else if (ev.key === "ArrowUp" && found.length) { ev.preventDefault(); active = Math.max(0, active - 1); render(); }
      else if (ev.key === "Enter") {
        ev.preventDefault();
        if (found[active]) choose(found[active]);
        else if (/\d{5,}/.test(lookupInput.value)) { $("#reporter_phone").value = lookupInput.value.trim(); catSearch.focus(); }
      }
    });
  }
})();
