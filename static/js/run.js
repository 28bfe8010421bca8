// Live progress of a run: polls the page's progress fragment and swaps it in place.
// Loaded as a static file (the CSP allows no inline script); without JavaScript the page
// refreshes itself through a <noscript> meta refresh instead.
(function () {
  "use strict";

  var POLL_MS = 1000;
  // After a failed poll (server restarting, network blip) wait longer, up to 30 s.
  var MAX_BACKOFF_MS = 30000;

  var box = document.querySelector("[data-progress-url]");
  if (!box || !window.fetch || !document.createElement("template").content) {
    return;
  }
  var url = box.getAttribute("data-progress-url");
  var delay = POLL_MS;
  var timer = null;
  var inflight = false;

  function schedule() {
    if (timer !== null) {
      window.clearTimeout(timer);
    }
    timer = window.setTimeout(poll, delay);
  }

  function swap(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    var next = template.content.querySelector("[data-progress-url]");
    // No fragment means the session expired and we got the sign-in page: a reload shows it.
    if (!next || next.getAttribute("data-finished") === "true") {
      window.location.reload();
      return false;
    }
    box.replaceWith(next);
    box = next;
    syncBadge();
    tick();
    return true;
  }

  // The header's badge shows the same state as the progress box it sits above.
  function syncBadge() {
    var badge = document.querySelector("[data-run-badge]");
    var status = box.getAttribute("data-status");
    var label = box.getAttribute("data-status-label");
    if (!badge || !status || !label) {
      return;
    }
    badge.className = "badge " + status;
    badge.textContent = label;
  }

  // The elapsed time moves every second between polls (and while a poll is slow).
  function format(seconds) {
    if (seconds < 10) {
      return seconds.toFixed(1) + " s";
    }
    var whole = Math.round(seconds);
    if (whole < 60) {
      return whole + " s";
    }
    var minutes = Math.floor(whole / 60);
    var secs = whole % 60;
    if (minutes < 60) {
      return minutes + " min " + (secs < 10 ? "0" : "") + secs + " s";
    }
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return hours + " h " + (minutes < 10 ? "0" : "") + minutes + " min";
  }

  function tick() {
    var spans = document.querySelectorAll("[data-elapsed-since]");
    for (var i = 0; i < spans.length; i++) {
      var since = Date.parse(spans[i].getAttribute("data-elapsed-since"));
      if (!isNaN(since)) {
        spans[i].textContent = format(Math.max(0, (Date.now() - since) / 1000));
      }
    }
  }

  function poll() {
    timer = null;
    // A hidden tab polls nothing; it catches up when shown again.
    if (document.hidden) {
      return;
    }
    inflight = true;
    window
      .fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("progress: HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        inflight = false;
        delay = POLL_MS;
        if (swap(html)) {
          schedule();
        }
      })
      .catch(function () {
        inflight = false;
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
        schedule();
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && timer === null && !inflight) {
      delay = POLL_MS;
      poll();
    }
  });

  syncBadge();
  window.setInterval(tick, 1000);
  schedule();
})();
