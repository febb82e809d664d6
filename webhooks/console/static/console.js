// Leaddesk console: small progressive enhancements; every page works without this file.
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("select-all");
  var counter = document.getElementById("selected-count");
  var boxes = function () { return document.querySelectorAll("input[name=ids]"); };
  var count = function () {
    if (counter) counter.textContent = document.querySelectorAll("input[name=ids]:checked").length;
  };
  if (all) {
    all.addEventListener("change", function () {
      boxes().forEach(function (box) { box.checked = all.checked; });
      count();
    });
  }
  boxes().forEach(function (box) { box.addEventListener("change", count); });
  // A conversation opens at its newest message (and shows the reply just sent).
  var timeline = document.getElementById("timeline");
  if (timeline) timeline.scrollTop = timeline.scrollHeight;
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
});
