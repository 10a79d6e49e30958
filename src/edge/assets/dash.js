// The dashboard's script (compiled into warren-edge): live charts on the
// traffic page and a confirmation before deletes. No framework; every
// number drawn comes from /dashboard/stats.json, read as JSON (never as HTML).
"use strict";
(function () {
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    if (f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) ev.preventDefault();
  });

  var box = document.getElementById("charts");
  if (!box) return;
  var tunnel = box.dataset.tunnel;
  var series = { rps: [], errors: [], bytes: [], latency: [] };
  var last = null;
  var keep = 60;

  function draw(name) {
    var c = document.getElementById("chart-" + name);
    if (!c) return;
    var w = (c.width = c.clientWidth || 300), h = (c.height = c.clientHeight || 120);
    var g = c.getContext("2d"), d = series[name];
    g.clearRect(0, 0, w, h);
    var max = 0;
    d.forEach(function (v) { if (v > max) max = v; });
    if (max === 0) max = 1;
    g.strokeStyle = "#2b3a55";
    g.lineWidth = 2;
    g.beginPath();
    d.forEach(function (v, i) {
      var x = (i / (keep - 1)) * w, y = h - 4 - (v / max) * (h - 8);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
    var now = document.getElementById("now-" + name);
    if (now) now.textContent = d.length ? String(Math.round(d[d.length - 1] * 100) / 100) : "-";
  }

  function push(name, v) {
    series[name].push(v);
    if (series[name].length > keep) series[name].shift();
    draw(name);
  }

  function poll() {
    fetch("/dashboard/stats.json?tunnel=" + encodeURIComponent(tunnel), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (j) {
        var t = (j.tunnels || [])[0] || { requests: 0, errors: 0, bytes_in: 0, bytes_out: 0, latency_ms_sum: 0 };
        var cur = { at: j.now_ms, requests: t.requests, errors: t.errors, bytes: t.bytes_in + t.bytes_out, lat: t.latency_ms_sum };
        if (last) {
          var dt = Math.max((cur.at - last.at) / 1000, 0.001), dn = cur.requests - last.requests;
          push("rps", dn / dt);
          push("errors", (cur.errors - last.errors) / dt);
          push("bytes", (cur.bytes - last.bytes) / dt);
          push("latency", dn > 0 ? (cur.lat - last.lat) / dn : 0);
        }
        last = cur;
        var total = document.getElementById("total-requests");
        if (total) total.textContent = String(cur.requests);
      })
      .catch(function () {});
  }
  poll();
  setInterval(poll, 1000);
})();
