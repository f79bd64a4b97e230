// Refreshes the alert inbox in place every 15 s. Without JavaScript the page works the
// same; it is only not refreshed until reloaded.
(function () {
  var box = document.getElementById("inbox-table");
  if (!box || !window.fetch) return;
  var url = box.getAttribute("data-refresh");
  setInterval(function () {
    if (document.hidden) return;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) box.innerHTML = html; })
      .catch(function () {});
  }, 15000);
})();
