/* «Карта» (decision 0044): open tickets as markers coloured by urgency, executors on duty with
   their last-seen time; a click shows the ticket's or the executor's card beside the map. Tiles
   only from the organization's tile server (data-tiles); without one a plain grid is drawn on a
   canvas and no other host is asked. The data is fetched again on ticket and duty events of the
   panel's event stream (a burst: one request) and once a minute (positions send no event). */
(function () {
  "use strict";
  var box = document.getElementById("dispatch-map");
  if (!box) return;
  var card = document.getElementById("map-card-body");
  var hint = document.getElementById("map-hint");
  var summary = document.getElementById("map-summary");
  var data = null;
  var first = true;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function row(dl, term, value) {
    if (value === null || value === undefined || value === "") return;
    dl.appendChild(el("dt", null, term));
    dl.appendChild(el("dd", null, String(value)));
  }

  function showTicket(t) {
    card.textContent = "";
    hint.hidden = true;
    var h = el("h2", null, "Заявка № " + t.number);
    card.appendChild(h);
    var badge = el("span", "badge urg-badge-" + t.urgency, t.urgency_title);
    card.appendChild(badge);
    var dl = el("dl", "map-card-fields");
    row(dl, "Категория", t.category);
    row(dl, "Адрес", t.address);
    row(dl, "Статус", t.status_title);
    row(dl, "Исполнитель", t.executor_name || (t.executor_id ? "назначен" : "не назначен"));
    row(dl, "Срок", t.next_due_local);
    card.appendChild(dl);
    var a = el("a", "btn btn-primary", "Открыть карточку заявки");
    a.href = t.url;
    a.id = "map-open-ticket";
    card.appendChild(a);
  }

  function showExecutor(x) {
    card.textContent = "";
    hint.hidden = true;
    card.appendChild(el("h2", null, x.full_name));
    card.appendChild(el("span", "badge state-" + x.state, x.state_title));
    var dl = el("dl", "map-card-fields");
    row(dl, "На связи", x.last_seen_local || "нет данных");
    row(dl, "Открытых заявок", x.open_tickets);
    card.appendChild(dl);
    var mine = (data.tickets.concat(data.unplaced)).filter(function (t) { return t.executor_id === x.user_id; });
    if (mine.length) {
      var ul = el("ul", "map-card-list");
      mine.forEach(function (t) {
        var li = el("li");
        var a = el("a", null, "№ " + t.number + " — " + t.category);
        a.href = t.url;
        li.appendChild(a);
        ul.appendChild(li);
      });
      card.appendChild(ul);
    }
    var b = el("a", "btn", "Доска диспетчера");
    b.href = box.dataset.board;
    card.appendChild(b);
  }

  function initials(name) {
    return name.split(/\s+/).filter(Boolean).slice(0, 2).map(function (w) { return w.charAt(0); }).join("");
  }

  if (!window.L) {  /* the vendor files were not installed (make vendor): say so, keep the page */
    box.appendChild(el("p", "map-missing", "Библиотека карты не установлена (make vendor)."));
    return;
  }
  var L = window.L;
  var map = L.map(box, { attributionControl: false, zoomControl: false, fadeAnimation: false });
  L.control.zoom({ zoomInTitle: "Приблизить", zoomOutTitle: "Отдалить" }).addTo(map);
  if (box.dataset.tiles) {
    L.tileLayer(box.dataset.tiles, { maxZoom: 19 }).addTo(map);
  } else {
    /* The offline fallback: a grid of lines drawn locally, one canvas per tile, no request. */
    var Grid = L.GridLayer.extend({
      createTile: function (coords) {
        var tile = document.createElement("canvas");
        var size = this.getTileSize();
        tile.width = size.x;
        tile.height = size.y;
        var ctx = tile.getContext("2d");
        var dark = document.documentElement.dataset.theme !== "light";
        ctx.fillStyle = dark ? "#1d2430" : "#f3f5f8";
        ctx.fillRect(0, 0, size.x, size.y);
        ctx.strokeStyle = dark ? "#3a4556" : "#c9d1dc";
        ctx.lineWidth = 1;
        ctx.strokeRect(0.5, 0.5, size.x, size.y);
        ctx.strokeStyle = dark ? "#2a3342" : "#e1e6ed";
        ctx.beginPath();
        ctx.moveTo(size.x / 2, 0); ctx.lineTo(size.x / 2, size.y);
        ctx.moveTo(0, size.y / 2); ctx.lineTo(size.x, size.y / 2);
        ctx.stroke();
        return tile;
      }
    });
    new Grid({ maxZoom: 19 }).addTo(map);
  }
  map.setView([55.751, 37.618], 11);
  var layer = L.layerGroup().addTo(map);

  function draw() {
    layer.clearLayers();
    var points = [];
    data.tickets.forEach(function (t) {
      var m = L.circleMarker([t.lat, t.lon], {
        radius: t.urgency === "emergency" ? 10 : 8, weight: 2, fillOpacity: 0.85,
        className: "mk mk-" + t.urgency
      });
      m.bindTooltip("№ " + t.number + " · " + t.urgency_title);
      m.on("click", function () { showTicket(t); });
      m.addTo(layer);
      points.push([t.lat, t.lon]);
    });
    data.executors.forEach(function (x) {
      if (x.lat === null || x.lon === null) return;
      var icon = L.divIcon({ className: "mk-exec mk-exec-" + x.state, html: "", iconSize: [28, 28] });
      var m = L.marker([x.lat, x.lon], { icon: icon, keyboard: true, title: x.full_name });
      m.on("add", function () {
        var node = m.getElement();
        if (node) { node.textContent = initials(x.full_name); node.setAttribute("aria-label", x.full_name); }
      });
      m.bindTooltip(x.full_name + (x.last_seen_local ? " · на связи " + x.last_seen_local : ""));
      m.on("click", function () { showExecutor(x); });
      m.addTo(layer);
      points.push([x.lat, x.lon]);
    });
    if (first && points.length) {
      map.fitBounds(points, { padding: [30, 30], maxZoom: 16, animate: false });
      first = false;
    }
    var parts = ["Заявок на карте: " + data.tickets.length];
    if (data.unplaced.length) parts.push("без координат дома: " + data.unplaced.length);
    if (data.positions_shown) parts.push("исполнителей на смене: " + data.executors.length);
    summary.textContent = parts.join(" · ");
    var box2 = document.getElementById("map-unplaced");
    var list = document.getElementById("map-unplaced-list");
    list.textContent = "";
    data.unplaced.slice(0, 100).forEach(function (t) {
      var li = el("li");
      var a = el("a", null, "№ " + t.number + " — " + t.category + (t.address ? ", " + t.address : ""));
      a.href = t.url;
      li.appendChild(a);
      li.appendChild(el("span", "badge urg-badge-" + t.urgency, t.urgency_title));
      list.appendChild(li);
    });
    box2.hidden = data.unplaced.length === 0;
    box.dataset.loaded = String(data.tickets.length);
  }

  function load() {
    fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (d) { data = d; draw(); })
      .catch(function () { summary.textContent = "Не удалось загрузить данные карты — повтор через минуту."; });
  }
  var pending = null;
  function soon() {
    clearTimeout(pending);
    pending = setTimeout(load, 500);
  }
  load();
  setInterval(load, 60000);
  var es = window.OpenADS && window.OpenADS.stream ? window.OpenADS.stream(box.dataset.stream) : null;
  if (es) ["ticket.created", "ticket.changed", "ticket.accepted", "executor.duty"].forEach(function (name) {
    es.addEventListener(name, soon);
  });
})();
