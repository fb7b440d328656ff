// The printable invoice's "Print" button (a file of its own: the Content-Security-Policy allows no inline handler).
"use strict";
document.getElementById("invoice-print-button").addEventListener("click", function () {
  window.print();
});
