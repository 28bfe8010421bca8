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
    return true;
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

  schedule();
})();
