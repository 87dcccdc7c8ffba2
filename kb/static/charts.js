// Charts over time, drawn with the vendored uPlot (kb/static/vendor/uplot-*): an evaluation set's scores over its
// runs, the operations page's figures. An element [data-chart-source] names the <script type="application/json">
// (Django's json_script) holding {"x": [Unix seconds], "series": {"Recall@5": [...], ...}} (null: no value then).
// Its optional data-chart-range="0,1" fixes the y axis, data-chart-points marks each value, data-chart-unit labels
// the y axis. Drawn on load and whenever htmx replaces the part of the page holding it.
(() => {
  const COLOURS = ["#457b9d", "#e76f51", "#2a9d8f", "#8a5a00"];

  const draw = (root) => {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart-source]").forEach((element) => {
      const source = document.getElementById(element.dataset.chartSource);
      if (!source || element.dataset.drawn) return;
      const chart = JSON.parse(source.textContent);
      const names = Object.keys(chart.series);
      const range = element.dataset.chartRange ? element.dataset.chartRange.split(",").map(Number) : null;
      const options = {
        width: Math.max(element.clientWidth, 320),
        height: 220,
        scales: range ? { y: { range } } : {},
        series: [{}, ...names.map((name, index) => ({
          label: name,
          stroke: COLOURS[index % COLOURS.length],
          width: 2,
          points: { show: "chartPoints" in element.dataset, size: 6 },
        }))],
        axes: [{}, {
          label: element.dataset.chartUnit || "",
          values: (_, ticks) => ticks.map((tick) => (Math.abs(tick) < 10 ? tick.toFixed(2) : tick.toFixed(0))),
        }],
      };
      new uPlot(options, [chart.x, ...names.map((name) => chart.series[name])], element);
      element.dataset.drawn = "yes";
    });
  };

  document.addEventListener("DOMContentLoaded", () => draw(document));
  document.addEventListener("htmx:afterSettle", () => draw(document));
})();
