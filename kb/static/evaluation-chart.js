// An evaluation set's scores over its runs, drawn with the vendored uPlot (kb/static/vendor/uplot-*). The element
// [data-chart-source] names the <script type="application/json"> (Django's json_script) holding
// {"x": [Unix seconds], "series": {"Recall@5": [...], "MRR@10": [...]}}. Redrawn when htmx replaces the runs table.
(() => {
  const COLOURS = ["#457b9d", "#e76f51", "#2a9d8f", "#8a5a00"];

  const draw = (root) => {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart-source]").forEach((element) => {
      const source = document.getElementById(element.dataset.chartSource);
      if (!source || element.dataset.drawn) return;
      const chart = JSON.parse(source.textContent);
      const names = Object.keys(chart.series);
      const options = {
        width: Math.max(element.clientWidth, 320),
        height: 220,
        scales: { y: { range: [0, 1] } },
        series: [{}, ...names.map((name, index) => ({
          label: name,
          stroke: COLOURS[index % COLOURS.length],
          width: 2,
          points: { show: true, size: 6 },
        }))],
        axes: [{}, { values: (_, ticks) => ticks.map((tick) => tick.toFixed(1)) }],
      };
      new uPlot(options, [chart.x, ...names.map((name) => chart.series[name])], element);
      element.dataset.drawn = "yes";
    });
  };

  document.addEventListener("DOMContentLoaded", () => draw(document));
  document.addEventListener("htmx:afterSettle", () => draw(document));
})();
