// result-relay dashboard: the one script, loaded from the service (the CSP allows no inline
// script). An element with data-poll="<url>" has its content replaced by that URL's HTML
// fragment (rendered and escaped by the server) every few seconds, while the page is visible.
"use strict";
(function () {
  var INTERVAL_MS = 3000;

  function poll(element) {
    var url = element.getAttribute("data-poll");
    var timer = null;
    function tick() {
      if (document.hidden) { return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.redirected || !response.ok) { throw new Error("stopped"); }
          return response.text();
        })
        .then(function (html) {
          element.innerHTML = html;
          // A settled run needs no more polling.
          if (!element.querySelector(".badge.running, .badge.handed_off")) {
            clearInterval(timer);
          }
        })
        .catch(function () { clearInterval(timer); });
    }
    timer = setInterval(tick, INTERVAL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
  });
})();
