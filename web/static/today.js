/* «Отчёты → Сегодня»: the figures follow the panel's event stream. After a ticket, call, missed-call
   or incident event (several within half a second count once) the page asks the server for the
   figures, which it computes once per organization and event whoever asks (decision 0040); and once
   a minute, since deadlines pass without events. */
(function () {
  "use strict";
  var root = document.getElementById("today");
  if (!root) return;
  var EVENTS = ["ticket.created", "ticket.changed", "incident.changed", "call.answered", "call.ended",
                "missed_call.created", "missed_call.updated", "missed_call.closed", "missed_call.overdue"];

  function percent(x) { return x === null || x === undefined ? "—" : Math.round(x * 100) + " %"; }
  function apply(list) {
    list.forEach(function (o) {
      var section = root.querySelector('.today-org[data-org="' + o.organization_id + '"]');
      if (!section) return;
      Array.prototype.forEach.call(section.querySelectorAll("[data-f]"), function (el) {
        var key = el.dataset.f;
        if (key === "at") {
          el.textContent = new Date(o.at).toLocaleTimeString("ru-RU", { timeZone: el.dataset.tz });
        } else {
          el.textContent = /_share$/.test(key) ? percent(o[key]) : String(o[key]);
        }
      });
      Array.prototype.forEach.call(section.querySelectorAll("[data-bad]"), function (tile) {
        tile.classList.toggle("tile-bad", tile.dataset.bad.split(" ").some(function (k) { return o[k] > 0; }));
      });
    });
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
  }

  var timer = null, busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(root.dataset.source, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (body) { if (body) apply(body.organizations); })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; soon(); } });
  }
  function soon() { clearTimeout(timer); timer = setTimeout(refresh, 500); }

  var stream = window.OpenADS && window.OpenADS.stream ? window.OpenADS.stream(root.dataset.stream) : null;
  if (stream) EVENTS.forEach(function (name) { stream.addEventListener(name, soon); });
  setInterval(refresh, 60000);
})();
