/* The ticket queues refresh themselves: every 30 s (the script tag's data-refresh-seconds) the page loads its
   own address again, so the queue, filters, search and sorting stay as they were. Nothing is reloaded while the
   user is busy on the page: typing or choosing in a field, with rows ticked for an action, or with text
   selected; it waits until they are done. A file of the site, never an inline script (the
   Content-Security-Policy allows only 'self'). */
(function () {
  "use strict";
  var script = document.currentScript;
  var seconds = parseInt((script && script.dataset.refreshSeconds) || "30", 10);
  if (!(seconds > 0)) { return; }
  var lastActivity = Date.now();

  function busy() {
    var active = document.activeElement;
    if (active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) && active.type !== "checkbox") {
      return true;
    }
    if (document.querySelector("#result_list input.action-select:checked, #action-toggle:checked")) {
      return true;  // rows ticked for an action: keep them
    }
    var selection = window.getSelection && window.getSelection();
    if (selection && selection.toString()) {
      return true;  // text selected (a ticket number being copied): keep it
    }
    return Date.now() - lastActivity < 5000;  // typed or chose something in the last seconds
  }

  ["keydown", "input", "change", "mousedown", "touchstart"].forEach(function (name) {
    document.addEventListener(name, function () { lastActivity = Date.now(); }, true);
  });

  function tick() {
    if (document.hidden || busy()) {
      window.setTimeout(tick, 5000);  // try again shortly
      return;
    }
    window.location.replace(window.location.href.split("#")[0]);  // a GET of the same address: filters and page kept
  }
  window.setTimeout(tick, seconds * 1000);
}());
