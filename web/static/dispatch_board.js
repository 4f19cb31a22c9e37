/* «Доска диспетчера» (decision 0044): drag a ticket's card onto another executor's column to
   reassign it (POST /board/assign, the same route as each card's select and «Передать» button,
   the keyboard way, which works without this script too). The columns are fetched again on ticket
   and duty events of the panel's event stream (a burst: one request). */
(function () {
  "use strict";
  var board = document.getElementById("dispatch-board");
  if (!board) return;
  var status = document.getElementById("board-status");
  var canAssign = board.dataset.canAssign === "1";
  var csrf = document.querySelector('meta[name="csrf-token"]');

  function refresh() {
    fetch(board.dataset.refresh, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        if (board.querySelector(".dragging")) return;  /* not under the dispatcher's hand */
        board.innerHTML = html;
        board.dataset.version = String((parseInt(board.dataset.version || "0", 10) || 0) + 1);
      })
      .catch(function () { status.textContent = "Не удалось обновить доску — обновите страницу."; });
  }
  var pending = null;
  function soon() { clearTimeout(pending); pending = setTimeout(refresh, 400); }

  function assign(ticketId, executorId) {
    var body = new FormData();
    body.append("csrf_token", csrf ? csrf.content : "");
    body.append("ticket_id", ticketId);
    body.append("executor_id", executorId);
    status.textContent = "Передаю заявку…";
    fetch(board.dataset.assign, {
      method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" }
    }).then(function (r) {
      return r.json().then(function (d) { return { ok: r.ok, d: d }; });
    }).then(function (res) {
      status.textContent = res.d.message || (res.ok ? "Готово" : "Не удалось передать заявку");
      refresh();
    }).catch(function () { status.textContent = "Не удалось передать заявку: нет связи с сервером."; });
  }

  if (canAssign) {
    board.addEventListener("dragstart", function (ev) {
      var cardEl = ev.target.closest && ev.target.closest(".board-card");
      if (!cardEl) return;
      cardEl.classList.add("dragging");
      ev.dataTransfer.setData("text/plain", cardEl.dataset.ticket);
      ev.dataTransfer.effectAllowed = "move";
    });
    board.addEventListener("dragend", function (ev) {
      var cardEl = ev.target.closest && ev.target.closest(".board-card");
      if (cardEl) cardEl.classList.remove("dragging");
      board.querySelectorAll(".drop-target").forEach(function (c) { c.classList.remove("drop-target"); });
    });
    board.addEventListener("dragover", function (ev) {
      var col = ev.target.closest && ev.target.closest(".board-col[data-executor]");
      if (!col) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = "move";
      col.classList.add("drop-target");
    });
    board.addEventListener("dragleave", function (ev) {
      var col = ev.target.closest && ev.target.closest(".board-col[data-executor]");
      if (col && !col.contains(ev.relatedTarget)) col.classList.remove("drop-target");
    });
    board.addEventListener("drop", function (ev) {
      var col = ev.target.closest && ev.target.closest(".board-col[data-executor]");
      if (!col) return;
      ev.preventDefault();
      col.classList.remove("drop-target");
      var ticketId = ev.dataTransfer.getData("text/plain");
      var from = board.querySelector('.board-card[data-ticket="' + ticketId + '"]');
      if (from) from.classList.remove("dragging");
      if (!ticketId || (from && from.closest(".board-col") === col)) return;
      assign(ticketId, col.dataset.executor);
    });
  }

  var es = window.OpenADS && window.OpenADS.stream ? window.OpenADS.stream(board.dataset.stream) : null;
  if (es) ["ticket.created", "ticket.changed", "ticket.accepted", "executor.duty"].forEach(function (name) {
    es.addEventListener(name, soon);
  });
})();
