/* Optional conveniences on tables; without JavaScript the same filters work through the
   server (the forms submit GET parameters).
   - A filter form with data-table-filter="TABLE_ID" submits itself when a select changes.
   - Its [data-table-search] input hides non-matching rows of that table as you type
     (rows carry their searchable text in data-search); Enter still asks the server. */
(function () {
  "use strict";

  function enhance(form) {
    var table = document.getElementById(form.getAttribute("data-table-filter"));
    if (!table) return;
    var rows = table.tBodies[0] ? table.tBodies[0].rows : [];
    var counter = document.querySelector("[data-table-count]");
    var original = counter ? counter.textContent : "";

    Array.prototype.forEach.call(form.querySelectorAll("select"), function (select) {
      select.addEventListener("change", function () { form.submit(); });
    });

    var search = form.querySelector("[data-table-search]");
    if (!search) return;
    search.addEventListener("input", function () {
      var needle = search.value.trim().toLowerCase();
      var shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var text = row.getAttribute("data-search");
        if (text === null) return;
        var match = !needle || text.indexOf(needle) !== -1;
        row.classList.toggle("is-hidden", !match);
        if (match) shown += 1;
      });
      if (counter) {
        counter.textContent = needle ? shown + " shown (of this list)" : original;
      }
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-table-filter]"), enhance);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
