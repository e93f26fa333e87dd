// The session report's charts (sessions/report.py inlines this into report.html, after uPlot).
// Every number comes from the JSON in #report-data; nothing is fetched.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  var WIDE = 940, TALL = 260;
  var cameraIds = Object.keys(data.cameras);

  var CLOCKS = {capture: "capture time", camera: "camera timestamps", arrival: "arrival time"};

  function colour(i) { return PALETTE[i % PALETTE.length]; }
  function short(id) { return String(id).replace(/^cameradevice_/, ""); }

  Object.keys(data.notes).forEach(function (key) {
    document.querySelectorAll('[data-note="' + key + '"]').forEach(function (el) {
      el.textContent = data.notes[key];
    });
  });

  function note(el, text) {
    var p = document.createElement("p");
    p.className = "note";
    p.textContent = text;
    el.appendChild(p);
  }

  // Vertical marks (settle point, recording window) and shaded spans (outages, gaps) drawn on the canvas.
  function marks(lines, spans) {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx, dpr = window.devicePixelRatio || 1, top = u.bbox.top, h = u.bbox.height;
          var left = u.bbox.left, right = u.bbox.left + u.bbox.width;
          ctx.save();
          (spans || []).forEach(function (s) {
            if (s.from == null) return;
            var x1 = Math.max(left, u.valToPos(s.from, "x", true));
            var x2 = Math.min(right, u.valToPos(s.to == null ? s.from : s.to, "x", true));
            ctx.fillStyle = s.color;
            ctx.fillRect(x1, top, Math.max(x2 - x1, 2 * dpr), h);
          });
          (lines || []).forEach(function (m, i) {
            if (m.x == null) return;
            var x = u.valToPos(m.x, "x", true);
            if (x < left - 1 || x > right + 1) return;
            ctx.strokeStyle = m.color;
            ctx.fillStyle = m.color;
            ctx.lineWidth = 1.5 * dpr;
            ctx.setLineDash([6 * dpr, 4 * dpr]);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + h);
            ctx.stroke();
            ctx.font = (11 * dpr) + "px sans-serif";
            ctx.fillText(m.label, x + 4 * dpr, top + (12 + 13 * i) * dpr);
          });
          ctx.restore();
        }]
      }
    };
  }

  // The x range covers the data and every mark, so the settle point shows even before the first sample.
  function xRange(extra) {
    return function (u, min, max) {
      extra.forEach(function (v) {
        if (v == null) return;
        min = min == null ? v : Math.min(min, v);
        max = max == null ? v : Math.max(max, v);
      });
      if (min === max) { min -= 0.5; max += 0.5; }
      return [min, max];
    };
  }

  function windowMarks() {
    var out = [];
    if (data.settle_point != null) out.push({x: data.settle_point, label: "settle point", color: "#d62728"});
    if (data.window[0] != null && data.window[0] !== data.settle_point)
      out.push({x: data.window[0], label: "recording start", color: "#555"});
    if (data.window[1] != null) out.push({x: data.window[1], label: "recording end", color: "#555"});
    return out;
  }

  function outageSpans() {
    return data.outages.map(function (o) { return {from: o.from, to: o.to, color: "rgba(214,39,40,0.15)"}; });
  }

  function chart(el, opts, rows) {
    opts.width = opts.width || WIDE;
    opts.height = opts.height || TALL;
    return new uPlot(opts, rows, el);
  }

  function xAxis(label) { return {label: label, labelSize: 20}; }

  // -- pan and tilt ---------------------------------------------------------------------------
  (function () {
    var el = document.getElementById("chart-pose"), p = data.pose;
    if (!p.t.length) { note(el, "No pan-tilt state was kept for this session."); return; }
    var series = [{label: "t (s)"},
      {label: "pan (°)", stroke: colour(0), width: 2, scale: "deg"},
      {label: "tilt (°)", stroke: colour(1), width: 2, scale: "deg"}];
    var rows = [p.t, p.pan, p.tilt];
    [["pan", 0], ["tilt", 1]].forEach(function (axis) {
      var target = data.targets[axis[0]];
      if (target == null) return;
      series.push({label: axis[0] + " target (°)", stroke: colour(axis[1]), dash: [4, 4], width: 1, scale: "deg",
        points: {show: false}});
      rows.push(p.t.map(function () { return target; }));
    });
    var marks_ = windowMarks();
    chart(el, {
      title: "Pan and tilt (" + (p.source === "state" ? "the pan-tilt's state samples" : "pose kept with each frame") + ")",
      scales: {x: {time: false, range: xRange(marks_.map(function (m) { return m.x; }))}},
      series: series,
      axes: [xAxis("seconds from the recording's start"), {scale: "deg", label: "degrees", labelSize: 20}],
      plugins: [marks(marks_, outageSpans())]
    }, rows);
  })();

  // -- per camera: intervals and their histogram ----------------------------------------------
  (function () {
    var box = document.getElementById("cameras");
    cameraIds.forEach(function (cam, i) {
      var c = data.cameras[cam];
      var div = document.createElement("div");
      div.className = "camera";
      div.id = "camera-" + cam;
      var h = document.createElement("h3");
      h.textContent = short(cam) + " — " + c.frame_count + " frames" + (c.stats.fps != null ? ", " + c.stats.fps + " fps" : "") +
        ", intervals by " + (CLOCKS[c.clock] || c.clock);
      div.appendChild(h);
      box.appendChild(div);
      if (c.t.length < 1) { note(div, "Fewer than two frames: no interval to show."); return; }
      var line = document.createElement("div"), hist = document.createElement("div");
      line.className = "chart interval";
      hist.className = "chart histogram";
      div.appendChild(line);
      div.appendChild(hist);
      var gaps = c.gaps.map(function (g) { return {from: g.from, to: g.to, color: "rgba(255,127,14,0.25)"}; });
      chart(line, {
        width: 600, height: 220, title: "Frame interval",
        scales: {x: {time: false}},
        series: [{label: "t (s)"}, {label: "interval (ms)", stroke: colour(i), width: 1,
          points: {show: true, size: 3, fill: colour(i)}}],
        axes: [xAxis("seconds from the recording's start"), {label: "ms", labelSize: 20}],
        plugins: [marks([], outageSpans().concat(gaps))]
      }, [c.t, c.interval_ms]);
      var hg = c.histogram;
      if (!hg.centre_ms.length) return;
      var half = (hg.width_ms || 1) / 2;
      chart(hist, {
        width: 320, height: 220, title: "Interval histogram",
        scales: {x: {time: false, range: function () { return [hg.centre_ms[0] - half, hg.centre_ms[hg.centre_ms.length - 1] + half]; }}},
        series: [{label: "ms"}, {label: "frames", stroke: colour(i), fill: colour(i) + "99",
          paths: uPlot.paths.bars({size: [0.95, 60]}), points: {show: false}}],
        axes: [xAxis("interval (ms)"), {label: "frames", labelSize: 20}],
        legend: {show: false}
      }, [hg.centre_ms, hg.count]);
    });
    if (!cameraIds.length) note(box, "No camera in this session.");
  })();

  // -- frames per second ----------------------------------------------------------------------
  (function () {
    var el = document.getElementById("chart-fps"), f = data.fps;
    if (!f.t.length || !cameraIds.length) { note(el, "No frame to count."); return; }
    var series = [{label: "second"}], rows = [f.t];
    cameraIds.forEach(function (cam, i) {
      series.push({label: short(cam), stroke: colour(i), width: 2});
      rows.push(f.cameras[cam]);
    });
    chart(el, {
      title: f.clock === "capture" ? "Frames captured in each second" : "Frames received in each second",
      scales: {
        x: {time: false, range: function () { return [0, f.t.length]; }},
        y: {range: function (u, min, max) { return [0, Math.max(1, Math.ceil(max * 1.15))]; }}
      },
      series: series,
      axes: [xAxis("seconds from the recording's start (each point: the frames of that second)"),
        {label: "frames / s", labelSize: 20}],
      plugins: [marks([], outageSpans())]
    }, rows);
  })();

  // -- range finder ---------------------------------------------------------------------------
  (function () {
    var el = document.getElementById("chart-range"), r = data.range;
    if (!r.t.length) { note(el, "No range-finder distance was kept for this session."); return; }
    var marks_ = windowMarks();
    chart(el, {
      title: "Range-finder distance (" + (r.source === "state" ? "range-finder state samples" : "distance kept with each frame") + ")",
      scales: {x: {time: false, range: xRange(marks_.map(function (m) { return m.x; }))}},
      series: [{label: "t (s)"}, {label: "distance (m)", stroke: colour(2), width: 2, spanGaps: false}],
      axes: [xAxis("seconds from the recording's start"), {label: "metres", labelSize: 20}],
      plugins: [marks(marks_, outageSpans())]
    }, [r.t, r.distance_m]);
  })();

  document.body.setAttribute("data-charts", String(document.querySelectorAll(".uplot").length));
})();
