/* Facility Gateway console: the trend chart (an SVG drawn at the size it is shown).
 *
 * Drawn at the container's real pixel width, so 12 px labels stay 12 px on a phone (a fixed
 * viewBox scaled down to 390 px made them 5 px). Value ticks are 1-2-5 steps; time ticks are
 * whole minutes/hours in the site's time zone. Booleans and text states are step charts with
 * their own labels, never a line through -0.08 and 1.08.
 */
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
    21600, 43200, 86400, 172800].map((s) => s * 1000);

  function el(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** Ticks at 1, 2 or 5 × 10^n covering [lo, hi], about `count` of them. */
  function niceTicks(lo, hi, count) {
    const raw = (hi - lo) / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
    // from the step at or below `lo` to the step at or above `hi`: every value inside the axis
    const first = Math.floor(lo / step + 1e-9) * step;
    const last = Math.ceil(hi / step - 1e-9) * step;
    const ticks = [];
    for (let v = first; v <= last + step * 1e-9; v += step) ticks.push(Number(v.toFixed(12)));
    return { ticks, step };
  }

  function decimals(step) {
    return step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
  }

  function timeTicks(t0, t1, count, offsetMs) {
    const raw = (t1 - t0) / Math.max(1, count);
    const step = TIME_STEPS.find((s) => s >= raw) || TIME_STEPS[TIME_STEPS.length - 1];
    // whole steps in the site's wall time: shift by the zone's offset, round, shift back
    const first = Math.ceil((t0 + offsetMs) / step) * step - offsetMs;
    const ticks = [];
    for (let tm = first; tm <= t1; tm += step) ticks.push(tm);
    return { ticks, step };
  }

  /** The zone's offset from UTC at `tm`, in ms (e.g. +8 h for Asia/Shanghai). */
  function zoneOffset(tm, timeZone) {
    try {
      const parts = new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", year: "numeric",
        month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" })
        .formatToParts(new Date(tm));
      const get = (type) => Number(parts.find((p) => p.type === type).value);
      const wall = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
      return wall - Math.floor(tm / 1000) * 1000;
    } catch (e) {
      return 0;
    }
  }

  /**
   * Draw `data` (`{points: [{t, v}], unit}`) from `start` to `end` (Dates) into an <svg>.
   * opts: width (px), lang, timeZone, zoneLabel, title, unit, kind (bool | text | number, from the
   * device; guessed from the values when absent), texts: {noData, yes, no}.
   */
  function draw(data, start, end, opts) {
    const phone = opts.width < 560;
    const W = Math.max(280, Math.round(opts.width)), H = phone ? 240 : 320;
    const font = phone ? 12 : 13;
    const samples = (data.points || [])
      .map((p) => ({ t: new Date(p.t).getTime(), raw: p.v }))
      .filter((p) => Number.isFinite(p.t) && p.raw !== null && p.raw !== undefined);
    // the point's kind from the device (history may store a bool as 0/1), else from the values
    const kind = opts.kind === "bool" ? "bool" : opts.kind === "text" ? "state"
      : opts.kind === "number" ? "number"
      : samples.length && samples.every((s) => typeof s.raw === "boolean") ? "bool"
      : samples.length && samples.every((s) => typeof s.raw === "string") ? "state" : "number";
    let states = [];
    if (kind === "state") states = [...new Set(samples.map((s) => s.raw))].sort();
    for (const s of samples) {
      s.v = kind === "bool" ? (s.raw && s.raw !== "false" ? 1 : 0) : kind === "state" ? states.indexOf(s.raw) : Number(s.raw);
    }
    const points = samples.filter((s) => Number.isFinite(s.v));
    const label = (v) => (kind === "bool" ? (v ? opts.texts.yes : opts.texts.no) : kind === "state" ? states[v] : v);
    const longest = kind === "number" ? 6 : Math.max(2, ...[...states, opts.texts.yes, opts.texts.no].map((s) => String(s).length));
    const L = Math.min(phone ? 110 : 160, 14 + longest * font * 0.62), R = 12, T = font * 2 + 8, B = font * 2 + 10;
    const root = el("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, class: "plot " + kind,
      role: "img", "aria-label": (opts.title || data.point || "") + (opts.unit ? " (" + opts.unit + ")" : "") });
    root.style.fontSize = font + "px";
    root.append(el("text", { x: 8, y: font + 4, class: "title" }, (opts.title || "") + (opts.unit ? " (" + opts.unit + ")" : "")));
    root.dataset.points = String(points.length);
    root.dataset.kind = kind;
    root.dataset.fontSize = String(font);
    if (!points.length) {
      root.append(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, opts.texts.noData));
      return root;
    }
    const t0 = Math.max(start.getTime(), points[0].t - 1000), t1 = end.getTime();
    let lo, hi, yTicks, digits = 0;
    if (kind === "number") {
      lo = Math.min(...points.map((s) => s.v));
      hi = Math.max(...points.map((s) => s.v));
      if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
      const nice = niceTicks(lo, hi, phone ? 4 : 5);
      yTicks = nice.ticks;
      lo = yTicks[0];
      hi = yTicks[yTicks.length - 1];
      digits = decimals(nice.step);
    } else {
      const top = kind === "bool" ? 1 : Math.max(1, states.length - 1);
      yTicks = Array.from({ length: top + 1 }, (_, i) => i);
      lo = -0.25;
      hi = top + 0.25;
    }
    const x = (tm) => L + ((tm - t0) / Math.max(1, t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
    root.dataset.top = String(T);
    root.dataset.bottom = String(H - B);
    for (const v of yTicks) {
      root.append(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
      root.append(el("text", { x: L - 6, y: y(v) + font * 0.35, "text-anchor": "end", class: "ytick" },
        kind === "number" ? v.toFixed(digits) : String(label(v))));
    }
    const offset = zoneOffset(t1, opts.timeZone);
    const { ticks, step } = timeTicks(t0, t1, phone ? 3 : 6, offset);
    const fmt = new Intl.DateTimeFormat(opts.lang === "en" ? "en-GB" : "zh-CN", { timeZone: opts.timeZone,
      hour12: false, hour: "2-digit", minute: "2-digit", second: step < 60000 ? "2-digit" : undefined,
      month: step >= 86400000 ? "2-digit" : undefined, day: step >= 86400000 ? "2-digit" : undefined });
    for (const tm of ticks) {
      root.append(el("line", { x1: x(tm), x2: x(tm), y1: T, y2: H - B, class: "grid" }));
      root.append(el("text", { x: x(tm), y: H - B + font + 4, "text-anchor": "middle", class: "xtick" }, fmt.format(new Date(tm))));
    }
    root.append(el("text", { x: W - R, y: H - 4, "text-anchor": "end", class: "zone" }, opts.zoneLabel || ""));
    root.append(el("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }));
    root.append(el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
    let path;
    if (kind === "number") {
      path = points.map((s) => x(s.t).toFixed(1) + "," + y(s.v).toFixed(1));
    } else {  // a step chart: a state holds until the next one, and the last one until now
      path = [];
      points.forEach((s, i) => {
        if (i) path.push(x(s.t).toFixed(1) + "," + y(points[i - 1].v).toFixed(1));
        path.push(x(s.t).toFixed(1) + "," + y(s.v).toFixed(1));
      });
      path.push(x(Math.min(t1, Date.now())).toFixed(1) + "," + y(points[points.length - 1].v).toFixed(1));
    }
    root.append(el("polyline", { class: "line", points: path.join(" ") }));
    if (kind === "number" && points.length <= 150) {
      for (const s of points) root.append(el("circle", { class: "pt", cx: x(s.t).toFixed(1), cy: y(s.v).toFixed(1), r: 2.5 }));
    }
    return root;
  }

  window.FgwChart = { draw, niceTicks };
})();
