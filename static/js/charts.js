/* Draws every chart on the page: an element with data-figure="ID" gets the plotly figure
   found in the JSON script element #ID (written by Django's json_script). No inline
   script is needed, so the page keeps its strict Content-Security-Policy. */
(function () {
  "use strict";

  function draw() {
    var nodes = document.querySelectorAll("[data-figure]");
    Array.prototype.forEach.call(nodes, function (node) {
      var source = document.getElementById(node.getAttribute("data-figure"));
      if (!source) return;
      if (typeof window.Plotly === "undefined") {
        node.querySelector(".chart-fallback").textContent =
          "Charts are unavailable: plotly.js is not installed (manage.py vendor_plotly). " +
          "The table has the same figures.";
        return;
      }
      var figure = JSON.parse(source.textContent);
      node.textContent = "";
      window.Plotly.newPlot(node, figure.data, figure.layout, {
        responsive: true,
        displaylogo: false,
        modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
