/* «Отчёты → Аналитика»: the tables' numbers as charts (Chart.js from web/static/vendor/, decision 0040).
   Without JavaScript, or without the library, the page shows the tables alone. */
(function () {
  "use strict";
  var holder = document.getElementById("analytics-charts");
  if (!holder || !window.Chart) return;
  var data = JSON.parse(holder.dataset.charts);
  var css = null;
  function token(name) { return css.getPropertyValue(name).trim(); }
  var Chart = window.Chart;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.plugins.legend.position = "bottom";
  var charts = [];

  function short(label) { label = String(label); return label.length > 38 ? label.slice(0, 37) + "…" : label; }
  function draw(name, height, config) {
    var box = document.querySelector('.chart-box[data-chart="' + name + '"]');
    if (!box) return;
    box.hidden = false;
    if (height) box.style.height = height + "px";
    charts.push(new Chart(box.querySelector("canvas"), config));
  }

  /* Drawn in the theme's colours, and again when the user switches the theme. */
  function drawAll() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    css = getComputedStyle(document.documentElement);
    Chart.defaults.color = token("--muted");
    Chart.defaults.borderColor = token("--line");

    ["executor", "category", "house"].forEach(function (by) {
      var d = data[by];
      if (!d || !d.labels.length) return;
      draw(by, 90 + 30 * d.labels.length, {
        type: "bar",
        data: {
          labels: d.labels.map(short),
          datasets: [
            { label: "Выполнено в срок", data: d.on_time, backgroundColor: token("--green") },
            { label: "Выполнено с опозданием", data: d.late_done, backgroundColor: token("--amber") },
            { label: "Не выполнено, срок прошёл", data: d.overdue_open, backgroundColor: token("--red") },
            { label: "Остальные (в работе до срока, отменены)", data: d.other, backgroundColor: token("--bg3") }
          ]
        },
        options: { indexAxis: "y", scales: { x: { stacked: true, ticks: { precision: 0 } }, y: { stacked: true } } }
      });
    });

    var a = data.answers;
    if (a) {
      draw("answers", 280, {
        type: "bar",
        data: {
          labels: a.labels,
          datasets: [{
            label: "Звонков", data: a.calls,
            backgroundColor: a.labels.map(function (_, i) {
              return i < 4 ? token("--green") : i === 4 ? token("--amber") : token("--red");
            })
          }]
        },
        options: { plugins: { legend: { display: false } }, scales: { y: { ticks: { precision: 0 } } } }
      });
    }

    var w = data.weeks;
    if (w && w.labels.length) {
      var colours = [token("--red"), token("--amber"), token("--muted"), token("--accent"), token("--green")];
      var sets = [1, 2, 3, 4, 5].map(function (v) {
        return {
          type: "bar", label: "Оценка " + v, stack: "n", yAxisID: "y", backgroundColor: colours[v - 1],
          data: w.counts.map(function (c) { return c[v - 1]; })
        };
      });
      sets.push({ type: "line", label: "Средняя", data: w.mean, yAxisID: "mean", borderColor: token("--fg"),
                  backgroundColor: token("--fg"), spanGaps: true });
      draw("weeks", 300, {
        data: { labels: w.labels, datasets: sets },
        options: {
          scales: {
            x: { stacked: true },
            y: { stacked: true, position: "left", ticks: { precision: 0 }, title: { display: true, text: "Оценок" } },
            mean: { position: "right", min: 1, max: 5, grid: { drawOnChartArea: false },
                    title: { display: true, text: "Средняя" } }
          }
        }
      });
    }
  }

  drawAll();
  new MutationObserver(drawAll).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
})();
