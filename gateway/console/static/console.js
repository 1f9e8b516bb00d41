/* Facility Gateway console: a small single-page app over the HTTP API (PRODUCT §7).
 *
 * No framework and no third-party code: the box may be offline and the console must stay auditable.
 * Every text comes from the message catalogues (/i18n/{lang}.json); data is put into the page with
 * textContent only, never as HTML. Live alarms and tickets arrive over Server-Sent Events.
 */
"use strict";

(function () {
  const PRIORITY_RANK = { critical: 0, high: 1, medium: 2, low: 3 };
  const UNACKED = ["active_unack", "rtn_unack"];
  const BOARD = ["open", "assigned", "in_progress", "resolved"];
  const NEXT = {
    open: ["assigned", "in_progress", "cancelled"],
    assigned: ["in_progress", "open", "cancelled"],
    in_progress: ["resolved", "assigned", "cancelled"],
    resolved: ["closed", "in_progress"],
    closed: [],
    cancelled: [],
  };
  const RANGES = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 };

  const state = {
    lang: localStorage.getItem("fgw.lang") || "",
    messages: {},
    me: null,
    site: null,
    alarms: new Map(),
    alarmFilter: "active",
    stream: null,
    view: "",
    refreshTimer: null,
  };

  // ---------------------------------------------------------------- helpers

  function t(key, vars) {
    let text = state.messages[key];
    if (text === undefined) text = key;
    if (vars) {
      for (const [k, v] of Object.entries(vars)) text = text.split("{" + k + "}").join(String(v));
    }
    return text;
  }

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function fill(el, ...children) {
    el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  }

  function svg(tag, attrs) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    return el;
  }

  function cookie(name) {
    const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return hit ? decodeURIComponent(hit.slice(name.length + 1)) : "";
  }

  // every time a person reads is in the site's time zone, with the zone shown (UTC+8)
  function siteZone() {
    return (state.site && state.site.timezone) || undefined;
  }

  function zoneLabel() {
    try {
      const parts = new Intl.DateTimeFormat("en-GB", { timeZone: siteZone(), timeZoneName: "shortOffset" }).formatToParts(new Date());
      const name = parts.find((p) => p.type === "timeZoneName");
      return name ? name.value.replace("GMT", "UTC").replace(/^UTC$/, "UTC+0") : "";
    } catch (e) {
      return "";
    }
  }

  // 2026-12-06 12:57:41 UTC+8 in both languages: a date no reader takes for 12 June, and the
  // offset of that moment (not of today), as on the command line
  function when(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    try {
      const p = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
        timeZone: siteZone(), hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "shortOffset",
      }).formatToParts(d).map((part) => [part.type, part.value]));
      const zone = (p.timeZoneName || "").replace("GMT", "UTC").replace(/^UTC$/, "UTC+0");
      return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + ":" + p.second + " " + zone;
    } catch (e) {
      return d.toISOString();
    }
  }

  // how long: "12 min", "3 h 5 min", "2 d 3 h"
  function lasting(iso) {
    const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (s < 60) return t("time.span_s", { n: s });
    if (s < 3600) return t("time.span_m", { n: Math.floor(s / 60) });
    if (s < 86400) return t("time.span_hm", { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
    return t("time.span_dh", { d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
  }

  // a bilingual {zh, en} from the API, or an older plain text, in the reader's language
  function inLang(text) {
    if (text === null || text === undefined) return "";
    if (typeof text === "string") return text;
    return (state.lang === "en" ? text.en : text.zh) || text.zh || text.en || "";
  }

  function ago(iso) {
    if (!iso) return t("time.never");
    const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (s < 60) return t("time.seconds_ago", { n: s });
    if (s < 3600) return t("time.minutes_ago", { n: Math.round(s / 60) });
    if (s < 86400) return t("time.hours_ago", { n: Math.round(s / 3600) });
    return when(iso);
  }

  function message(alarm) {
    const text = state.lang === "en" ? alarm.message_en : alarm.message_zh;
    return text || alarm.message || alarm.id;
  }

  // a life-safety alarm under a root cause: "… — during supply loss at meter-1"
  function duringText(alarm) {
    if (!alarm.during) return "";
    const device = alarm.during.split(".")[0];
    return t(device === alarm.device ? "alarm.during_comm" : "alarm.during_supply", { device });
  }

  // a point's title in the reader's language (older servers: its name)
  function pointTitle(p) {
    return inLang(p.title) || p.point;
  }

  // a site file's "中文 / English" name or place, as {zh, en}
  function splitName(text) {
    const i = String(text || "").indexOf(" / ");
    return i < 0 ? String(text || "") : { zh: text.slice(0, i).trim(), en: text.slice(i + 3).trim() };
  }

  function fmtValue(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "boolean") return v ? t("value.true") : t("value.false");
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2);
    return String(v);
  }

  class ApiError extends Error {
    constructor(status, text) {
      super(text);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = cookie("fgw_csrf");
    const response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      const text = (data && data.error && data.error.message) || response.statusText;
      if (response.status === 401 && path !== "/api/v1/login") showLogin();
      throw new ApiError(response.status, text);
    }
    return data;
  }

  function explain(err) {
    if (err && err.status === 503) return t("error.unavailable") + " (" + err.message + ")";
    if (err && err.status === 403) return t("error.forbidden") + " (" + err.message + ")";
    return (err && err.message) || String(err);
  }

  // ---------------------------------------------------------------- language

  async function setLanguage(lang, persist = true) {
    const response = await fetch("/i18n/" + lang + ".json", { credentials: "same-origin" });
    state.messages = await response.json();
    state.lang = lang;
    if (persist) localStorage.setItem("fgw.lang", lang);
    document.documentElement.lang = lang;
    document.title = t("app.title");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
    document.getElementById("lang").textContent = t("lang.switch");
    document.getElementById("lang").title = t("lang.switch_title");
    renderUser();
  }

  // ---------------------------------------------------------------- login

  function showLogin(problem) {
    state.me = null;
    closeStream();
    document.getElementById("top").hidden = true;
    const view = document.getElementById("view");
    const name = h("input", { id: "login-name", name: "username", autocomplete: "username", required: true });
    const password = h("input", {
      id: "login-password", name: "password", type: "password", autocomplete: "current-password",
      required: true,
    });
    const error = h("p", { class: "error", id: "login-error", text: problem || "" });
    const form = h(
      "form",
      { class: "card login", id: "login-form" },
      h("h1", { text: t("app.title") }),
      h("label", { for: "login-name", text: t("login.name") }), name,
      h("label", { for: "login-password", text: t("login.password") }), password,
      error,
      h("div", { class: "toolbar" },
        h("button", { class: "primary", type: "submit", id: "login-submit", text: t("login.submit") }),
        h("button", { type: "button", class: "link", id: "login-lang", text: t("lang.switch"),
          onclick: async () => { await setLanguage(state.lang === "en" ? "zh-CN" : "en"); showLogin(); } })),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.textContent = "";
      try {
        await api("POST", "/api/v1/login", { name: name.value, password: password.value });
        await start();
      } catch (err) {
        error.textContent = err.status === 429 ? t("login.throttled") + " " + err.message
          : err.status === 401 ? t("login.wrong") : explain(err);
      }
    });
    fill(view, form);
    name.focus();
  }

  function renderUser() {
    const el = document.getElementById("user");
    if (!el) return;
    el.textContent = state.me ? state.me.name + " · " + t("role." + state.me.role) : "";
  }

  function may(role) {
    const order = ["viewer", "engineer", "admin"];
    return state.me && order.indexOf(state.me.role) >= order.indexOf(role);
  }

  // ---------------------------------------------------------------- live stream

  function openStream() {
    closeStream();
    const source = new EventSource("/api/v1/stream");
    state.stream = source;
    const live = document.getElementById("live");
    source.addEventListener("hello", () => {
      live.className = "live on";
      reloadAlarms();
    });
    source.addEventListener("alarm", (ev) => onAlarmEvent(JSON.parse(ev.data)));
    source.addEventListener("ticket", (ev) => {
      const event = JSON.parse(ev.data);
      if (event.action === "work_overran") {
        showBanner(t("ticket.work_overran", { id: event.id, title: event.ticket ? ticketTitle(event.ticket) : "" }));
      }
      if (state.view === "tickets") route();
    });
    source.addEventListener("incident", (ev) => {
      // an incident opened or moved on: the alarm cards' "what to do" lines link to its next step
      if (state.view === "alarms" || state.view === "alarm") reloadAlarms();
      if (FGW.onIncident) FGW.onIncident(JSON.parse(ev.data));
    });
    source.addEventListener("resync", () => reloadAlarms());
    source.onerror = () => {
      live.className = "live off";
    };
  }

  function closeStream() {
    if (state.stream) state.stream.close();
    state.stream = null;
  }

  function onAlarmEvent(event) {
    const alarm = event.alarm;
    if (!alarm) return;
    const isNew = event.to === "active_unack" && event.from !== "active_unack";
    if (alarm.state === "normal") state.alarms.delete(alarm.id);
    else state.alarms.set(alarm.id, alarm);
    if (isNew && alarm.priority === "critical") alertCritical(alarm);
    if (state.view === "alarms") renderAlarmList();
    if (state.view === "alarm" && currentParam() === alarm.id) route();
  }

  function alertCritical(alarm) {
    document.body.classList.remove("flash");
    void document.body.offsetWidth; // restart the animation
    document.body.classList.add("flash");
    setTimeout(() => document.body.classList.remove("flash"), 3500);
    beep();
    const banner = document.getElementById("banner");
    banner.textContent = t("alarm.new_critical", { message: message(alarm), device: [inLang(alarm.device_name), alarm.device].filter(Boolean).join(" · ") });
    banner.hidden = false;
    setTimeout(() => { banner.hidden = true; }, 15000);
  }

  function beep() {
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      const ctx = beep.ctx || (beep.ctx = new Ctx());
      for (let i = 0; i < 3; i++) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = 880;
        gain.gain.value = 0.15;
        osc.connect(gain).connect(ctx.destination);
        osc.start(ctx.currentTime + i * 0.35);
        osc.stop(ctx.currentTime + i * 0.35 + 0.2);
      }
    } catch (e) {
      /* sound is a courtesy: the flash and the banner still show */
    }
  }

  // ---------------------------------------------------------------- alarms

  async function reloadAlarms() {
    try {
      const data = await api("GET", "/api/v1/alarms?state=" + state.alarmFilter);
      state.alarms = new Map(data.alarms.map((a) => [a.id, a]));
      if (state.view === "alarms") renderAlarmList();
    } catch (err) {
      /* shown by the view on its own load */
    }
  }

  function sortedAlarms() {
    const list = [...state.alarms.values()];
    list.sort((a, b) => {
      const p = (PRIORITY_RANK[a.priority] ?? 9) - (PRIORITY_RANK[b.priority] ?? 9);
      if (p) return p;
      const u = (UNACKED.includes(a.state) ? 0 : 1) - (UNACKED.includes(b.state) ? 0 : 1);
      if (u) return u;
      return String(b.raised_at || "").localeCompare(String(a.raised_at || ""));
    });
    return list;
  }

  async function viewAlarms(view) {
    const filter = h("select", { id: "alarm-filter", onchange: async (ev) => {
      state.alarmFilter = ev.target.value;
      await reloadAlarms();
    } },
    h("option", { value: "active", text: t("alarms.filter.active") }),
    h("option", { value: "all", text: t("alarms.filter.all") }));
    filter.value = state.alarmFilter;
    fill(view, 
      h("div", { id: "incident-strip" }), // open incidents first (incidents.js)
      h("h1", { text: t("alarms.title") }),
      h("div", { class: "toolbar" }, h("label", { for: "alarm-filter", text: t("alarms.show") }), filter),
      h("div", { id: "notify-health", class: "banner", hidden: true }),
      h("div", { id: "alarm-list" }),
    );
    await reloadAlarms();
    renderAlarmList();
    if (FGW.onAlarmsPage) await FGW.onAlarmsPage();
    await showNotifyHealth();
  }

  // notifications given up or a channel failing: people must know the phones may stay silent
  async function showNotifyHealth() {
    const box = document.getElementById("notify-health");
    if (!box) return;
    try {
      const check = ((await api("GET", "/healthz")).checks || {}).notify;
      if (!check || check.status === "ok") return;
      box.textContent = t("notify.trouble", { given_up: check.given_up || 0, failing: (check.failing || []).join(", ") || "–" });
      box.hidden = false;
    } catch (e) {
      /* the health endpoint is a courtesy here: the alarms still show */
    }
  }

  function renderAlarmList() {
    const box = document.getElementById("alarm-list");
    if (!box) return;
    const alarms = sortedAlarms().filter((a) => state.alarmFilter === "all" || a.state !== "normal");
    if (!alarms.length) {
      box.replaceChildren(h("p", { class: "muted", id: "no-alarms", text: t("alarms.none") }));
      return;
    }
    box.replaceChildren(...alarms.map(alarmCard));
  }

  // "active for …" keeps counting: update the text in place (re-creating the cards would restart
  // their animations and move whatever the user is about to tap)
  function refreshSince() {
    for (const el of document.querySelectorAll("[data-alarm-id] .since")) {
      const alarm = state.alarms.get(el.closest("[data-alarm-id]").dataset.alarmId);
      if (alarm) el.textContent = sinceText(alarm);
    }
  }

  function sinceText(alarm) {
    return alarm.condition_active === false && alarm.cleared_at
      ? t("alarm.cleared_ago", { time: ago(alarm.cleared_at) })
      : t("alarm.active_for", { time: lasting(alarm.raised_at) });
  }

  function alarmCard(alarm) {
    const unack = UNACKED.includes(alarm.state);
    const actions = h("div", { class: "actions" });
    actions.append(h("a", { href: "#/alarm/" + encodeURIComponent(alarm.id), text: t("alarm.details") }));
    if (may("engineer")) {
      if (unack) {
        actions.append(h("button", { class: "primary act-ack", type: "button", text: t("alarm.ack"),
          onclick: () => ackDialog(alarm) }));
      }
      if (alarm.state === "shelved") {
        actions.append(h("button", { class: "act-unshelve", type: "button", text: t("alarm.unshelve"),
          onclick: () => act(alarm, "unshelve", {}) }));
      } else if (alarm.shelvable && alarm.state !== "normal" && alarm.state !== "out_of_service") {
        actions.append(h("button", { class: "act-shelve", type: "button", text: t("alarm.shelve"),
          onclick: () => shelveDialog(alarm) }));
      }
    }
    return h("div", {
      class: "card alarm " + alarm.priority + (unack ? " unack" : ""),
      "data-alarm-id": alarm.id, "data-priority": alarm.priority, "data-state": alarm.state,
    },
    h("div", { class: "bar " + alarm.priority }),
    h("div", { class: "head" },
      h("span", { class: "badge " + alarm.priority, text: t("priority." + alarm.priority) }), " ",
      h("span", { class: "device-name", text: inLang(alarm.device_name) || alarm.device }),
      alarm.location ? h("span", { class: "location", text: " · " + inLang(alarm.location) }) : null),
    h("div", { class: "what" },
      h("span", { class: "message", text: message(alarm) }),
      alarm.during ? h("span", { class: "during", text: " — " + duringText(alarm) }) : null),
    adviceLine(alarm),
    h("div", { class: "meta" },
      h("span", { class: "state " + alarm.state, text: t("state." + alarm.state) }), " · ",
      h("span", { class: "since", title: when(alarm.raised_at), text: sinceText(alarm) }), " · ",
      h("span", { class: "device", text: alarm.device }),
      alarm.acked_by ? " · " + t("alarm.acked_by", { user: alarm.acked_by }) : "",
      alarm.state === "shelved" && alarm.shelved_until ? " · " + t("alarm.shelved_until", { time: when(alarm.shelved_until) }) : ""),
    actions);
  }

  // one line "what to do": the open incident's next step (a link to it), else the playbook's first
  // step, else the rule's advice; the whole text stays in the tooltip when a phone cuts it short
  function adviceLine(alarm) {
    const pb = alarm.playbook;
    let body;
    if (pb && pb.incident !== null && pb.incident !== undefined) {
      const text = t("alarm.incident", { id: pb.incident }) + " " + (pb.step ? inLang(pb.step) : t("alarm.steps_done"));
      body = h("a", { class: "advice-text advice-incident", href: "#/incident/" + encodeURIComponent(pb.incident), title: text, text: text });
    } else if (pb && pb.step) {
      body = h("span", { class: "advice-text advice-playbook", "data-playbook": pb.id, title: inLang(pb.title) + ": " + inLang(pb.step), text: inLang(pb.step) });
    } else if (alarm.advice) {
      body = h("span", { class: "advice-text", title: inLang(alarm.advice), text: inLang(alarm.advice) });
    } else {
      return null;
    }
    // a tap shows the whole text on a phone (a tooltip never does); a link still just opens
    const open = (ev) => { if (ev.target.tagName !== "A") ev.currentTarget.classList.toggle("open"); };
    return h("div", { class: "advice", onclick: open }, h("span", { class: "advice-label", text: t("alarm.advice") + " " }), body);
  }

  function dialog(title, fields, submitText, onSubmit) {
    const modal = document.getElementById("modal");
    const error = h("p", { class: "error" });
    const form = h("form", { class: "card", id: "dialog" }, h("h2", { text: title }), ...fields, error,
      h("div", { class: "buttons" },
        h("button", { type: "button", id: "dialog-cancel", text: t("action.cancel"), onclick: () => { modal.hidden = true; } }),
        h("button", { type: "submit", class: "primary", id: "dialog-submit", text: submitText })));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await onSubmit();
        modal.hidden = true;
      } catch (err) {
        error.textContent = explain(err);
      }
    });
    modal.replaceChildren(form);
    modal.hidden = false;
    const first = form.querySelector("input, textarea, select");
    if (first) first.focus();
  }

  function ackDialog(alarm) {
    const comment = h("textarea", { id: "ack-comment", rows: 3, maxlength: 500 });
    dialog(t("alarm.ack_title", { message: message(alarm) }),
      [h("label", { for: "ack-comment", text: t("alarm.comment") }), comment], t("alarm.ack"),
      () => act(alarm, "ack", { comment: comment.value }, true));
  }

  function shelveDialog(alarm) {
    const minutes = h("select", { id: "shelve-minutes" },
      ...[15, 30, 60, 120, 240, 480, 1440].map((m) => h("option", { value: m, text: t("shelve.minutes", { n: m }) })));
    minutes.value = "60";
    const reason = h("input", { id: "shelve-reason", required: true, maxlength: 500 });
    dialog(t("alarm.shelve_title", { message: message(alarm) }),
      [h("label", { for: "shelve-minutes", text: t("shelve.duration") }), minutes,
        h("label", { for: "shelve-reason", text: t("shelve.reason") }), reason],
      t("alarm.shelve"),
      () => act(alarm, "shelve", { minutes: Number(minutes.value), reason: reason.value }, true));
  }

  async function act(alarm, action, body, fromDialog) {
    try {
      const updated = await api("POST", "/api/v1/alarms/" + encodeURIComponent(alarm.id) + "/" + action, body);
      if (updated.state === "normal" && state.alarmFilter !== "all") state.alarms.delete(updated.id);
      else state.alarms.set(updated.id, updated);
      if (state.view === "alarms") renderAlarmList();
      else route();
    } catch (err) {
      if (fromDialog) throw err;
      showBanner(explain(err));
    }
  }

  function showBanner(text) {
    const banner = document.getElementById("banner");
    banner.textContent = text;
    banner.hidden = false;
    setTimeout(() => { banner.hidden = true; }, 8000);
  }

  async function viewAlarm(view, id) {
    const [alarm, journal] = await Promise.all([
      api("GET", "/api/v1/alarms/" + encodeURIComponent(id)),
      api("GET", "/api/v1/alarms/" + encodeURIComponent(id) + "/journal"),
    ]);
    const rows = journal.journal.slice().reverse().map((e) => h("tr", {},
      h("td", { "data-label": t("journal.at"), text: when(e.at) }),
      h("td", { "data-label": t("journal.change"), text: t("state." + e.from_state) + " → " + t("state." + e.to_state) }),
      h("td", { "data-label": t("journal.by"), text: e.by }),
      h("td", { "data-label": t("journal.reason"), text: e.reason || "" }),
      h("td", { "data-label": t("journal.value"), text: fmtValue(e.value) }),
      h("td", { "data-label": t("journal.episode"), text: e.episode })));
    fill(view, 
      h("p", {}, h("a", { href: "#/alarms", text: "← " + t("nav.alarms") })),
      alarmCard(alarm),
      h("dl", { class: "kv card" },
        h("dt", { text: t("alarm.id") }), h("dd", { text: alarm.id }),
        h("dt", { text: t("alarm.value") }), h("dd", { text: fmtValue(alarm.value) }),
        h("dt", { text: t("alarm.episode") }), h("dd", { text: alarm.episode }),
        h("dt", { text: t("alarm.cleared") }), h("dd", { text: when(alarm.cleared_at) }),
        h("dt", { text: t("alarm.suppressed_by") }), h("dd", { text: alarm.suppressed_by || "–" }),
        h("dt", { text: t("alarm.during") }), h("dd", { text: alarm.during ? duringText(alarm) + " (" + alarm.during + ")" : "–" }),
        h("dt", { text: t("alarm.life_safety") }), h("dd", { text: alarm.life_safety ? t("value.true") : t("value.false") }),
        h("dt", { text: t("alarm.shelvable") }), h("dd", { text: alarm.shelvable ? t("value.true") : t("value.false") })),
      h("h2", { text: t("journal.title") }),
      h("table", { class: "cards", id: "journal" },
        h("thead", {}, h("tr", {}, ...["at", "change", "by", "reason", "value", "episode"].map((k) => h("th", { text: t("journal." + k) })))),
        h("tbody", {}, ...rows)),
    );
  }

  // ---------------------------------------------------------------- tickets

  async function viewTickets(view) {
    let data;
    try {
      data = await api("GET", "/api/v1/tickets");
    } catch (err) {
      fill(view, h("h1", { text: t("tickets.title") }), h("p", { class: "muted", id: "tickets-unavailable", text: explain(err) }));
      return;
    }
    // the API gives them most urgent first, then soonest due (rules.maintenance.tickets.board_order)
    const columns = BOARD.map((status) => {
      const tickets = data.tickets.filter((tk) => tk.status === status);
      return h("section", { class: "column", "data-status": status },
        h("h2", { text: t("status." + status) + " (" + tickets.length + ")" }),
        ...tickets.map(ticketCard));
    });
    const done = data.tickets.filter((tk) => !BOARD.includes(tk.status));
    fill(view, 
      h("h1", { text: t("tickets.title") }),
      h("div", { class: "toolbar" },
        may("engineer") ? h("button", { class: "primary", id: "ticket-new", type: "button", text: t("tickets.new"), onclick: newTicketDialog }) : null),
      h("div", { class: "board", id: "board" }, ...columns),
      done.length ? h("h2", { text: t("tickets.done") + " (" + done.length + ")" }) : null,
      done.length ? h("div", {}, ...done.slice(-20).map(ticketCard)) : null,
    );
  }

  function isOverdue(tk) {
    if (tk.overdue !== undefined) return Boolean(tk.overdue);
    if (!tk.due || ["resolved", "closed", "cancelled"].includes(tk.status)) return false;
    return new Date(tk.due).getTime() < Date.now();
  }

  function ticketCard(tk) {
    const overdue = isOverdue(tk);
    const next = NEXT[tk.status] || [];
    return h("div", { class: "card ticket" + (overdue ? " overdue" : ""), "data-ticket-id": tk.id, "data-urgency": tk.urgency },
      h("div", {}, h("span", { class: "ticket-no", text: "#" + tk.id + " " }), h("strong", { class: "ticket-title", text: ticketTitle(tk) })),
      h("div", { class: "ticket-where" },
        h("span", { class: "device-name", text: inLang(tk.device_name) || tk.device }),
        tk.location ? h("span", { class: "location muted", text: " · " + inLang(tk.location) }) : null),
      h("div", { class: "muted" },
        h("span", { class: "urg-" + tk.urgency, text: t("urgency." + tk.urgency) }), " · ",
        h("span", { class: "device", text: tk.device }), " · ", t("kind." + (tk.kind || "corrective"))),
      h("div", { class: "muted" }, t("ticket.assignee") + ": " + (tk.assignee || "–")),
      h("div", { class: "muted" }, t("ticket.due") + ": " + when(tk.due),
        overdue ? h("span", { class: "overdue-mark", text: " " + t("ticket.overdue") }) : null),
      tk.mute_until && (tk.out_of_service || []).length
        ? h("div", { class: "muted mute-until" }, t("ticket.mute_until") + ": " + when(tk.mute_until))
        : null,
      may("engineer") && next.length
        ? h("div", { class: "toolbar" }, h("button", { type: "button", class: "act-transition", text: t("ticket.move"), onclick: () => transitionDialog(tk) }))
        : null);
  }

  // stored in both languages since tickets have title_zh/title_en; older ones have one title
  function ticketTitle(tk) {
    return (state.lang === "en" ? tk.title_en : tk.title_zh) || tk.title;
  }

  function transitionDialog(tk) {
    const to = h("select", { id: "transition-to" }, ...(NEXT[tk.status] || []).map((s) => h("option", { value: s, text: t("status." + s) })));
    const assignee = h("input", { id: "transition-assignee", value: tk.assignee || (state.me ? state.me.name : ""), maxlength: 64 });
    const note = h("textarea", { id: "transition-note", rows: 3, maxlength: 2000 });
    dialog(t("ticket.move_title", { title: "#" + tk.id + " " + ticketTitle(tk) }),
      [h("label", { for: "transition-to", text: t("ticket.to") }), to,
        h("label", { for: "transition-assignee", text: t("ticket.assignee") }), assignee,
        h("label", { for: "transition-note", text: t("ticket.note") }), note],
      t("ticket.move"),
      async () => {
        await api("POST", "/api/v1/tickets/" + encodeURIComponent(tk.id) + "/transition",
          { to: to.value, note: note.value, assignee: assignee.value || null });
        route();
      });
  }

  async function newTicketDialog() {
    const devices = (await api("GET", "/api/v1/devices")).devices;
    const device = h("select", { id: "new-device" }, ...devices.map((d) => h("option", { value: d.id, text: d.id + " — " + d.name })));
    const title = h("input", { id: "new-title", required: true, maxlength: 200 });
    const urgency = h("select", { id: "new-urgency" }, ...["emergency", "urgent", "normal", "low"].map((u) => h("option", { value: u, text: t("urgency." + u) })));
    urgency.value = "normal";
    const note = h("textarea", { id: "new-note", rows: 3, maxlength: 2000 });
    dialog(t("tickets.new"),
      [h("label", { for: "new-device", text: t("ticket.device") }), device,
        h("label", { for: "new-title", text: t("ticket.title") }), title,
        h("label", { for: "new-urgency", text: t("ticket.urgency") }), urgency,
        h("label", { for: "new-note", text: t("ticket.note") }), note],
      t("tickets.create"),
      async () => {
        await api("POST", "/api/v1/tickets", { device: device.value, title: title.value, urgency: urgency.value, note: note.value });
        route();
      });
  }

  // ---------------------------------------------------------------- devices and assets

  async function viewDevices(view) {
    const data = await api("GET", "/api/v1/devices");
    fill(view, h("h1", { text: t("devices.title") }),
      h("div", { class: "grid", id: "devices" }, ...data.devices.map((d) => {
        const hl = d.health;
        const alarms = Object.entries(d.alarms || {}).map(([p, n]) => h("span", { class: "badge " + p, text: t("priority." + p) + " " + n }));
        return h("div", { class: "card device", "data-device-id": d.id },
          h("a", { href: "#/device/" + encodeURIComponent(d.id) },
            h("div", {}, h("span", { class: "dot " + (hl.online ? "on" : "off") }), h("strong", { text: inLang(splitName(d.name)) }), " ", h("span", { class: "muted", text: d.id })),
            h("dl", { class: "kv" },
              h("dt", { text: t("device.status") }), h("dd", { class: "online", text: hl.online ? t("device.online") : t("device.offline") }),
              h("dt", { text: t("device.last_seen") }), h("dd", { text: ago(hl.last_seen) }),
              h("dt", { text: t("device.polls") }), h("dd", { text: hl.polls ?? "–" }),
              h("dt", { text: t("device.errors") }), h("dd", { text: hl.errors ?? "–" }),
              h("dt", { text: t("device.poll_time") }), h("dd", { text: hl.last_poll_seconds == null ? "–" : (hl.last_poll_seconds * 1000).toFixed(0) + " ms" }))),
          alarms.length ? h("div", {}, ...alarms) : null);
      })));
  }

  async function viewDevice(view, id) {
    const d = await api("GET", "/api/v1/devices/" + encodeURIComponent(id));
    const rows = d.points.map((p) => h("tr", { "data-point": p.point },
      h("td", { "data-label": t("point.name") }, h("a", { href: "#/trends/" + encodeURIComponent(d.id) + "/" + encodeURIComponent(p.point), text: pointTitle(p) })),
      h("td", { "data-label": t("point.value"), class: "value q-" + (p.quality || ""), text: fmtValue(p.value) + (p.unit ? " " + p.unit : "") }),
      h("td", { "data-label": t("point.quality"), text: p.quality ? t("quality." + p.quality) : "–" }),
      h("td", { "data-label": t("point.time"), text: when(p.ts) })));
    const hl = d.health;
    // the device's chart: its first numeric point that is not a counter, over the last hour
    const numeric = d.points.filter((p) => typeof p.value === "number" && !/hours|starts|trips|cycles|energy/.test(p.point));
    const chartPoint = h("select", { id: "device-chart-point" },
      ...d.points.map((p) => h("option", { value: p.point, text: pointTitle(p) + (p.unit ? " (" + p.unit + ")" : "") })));
    if (numeric.length) chartPoint.value = numeric[0].point;
    const chart = h("div", { id: "device-chart", class: "chart-box" });
    async function drawDeviceChart() {
      const p = d.points.find((q) => q.point === chartPoint.value);
      if (!p) return;
      const end = new Date(), start = new Date(end.getTime() - 3600e3);
      try {
        const data = await api("GET", "/api/v1/points/" + encodeURIComponent(d.id) + "/" + encodeURIComponent(p.point) +
          "/history?from=" + encodeURIComponent(start.toISOString()) + "&to=" + encodeURIComponent(end.toISOString()) + "&max_points=400");
        drawChart(chart, data, start, end, pointTitle(p), p.unit, p.kind);
      } catch (err) {
        chart.replaceChildren(h("p", { class: "muted", text: explain(err) }));
      }
    }
    chartPoint.addEventListener("change", drawDeviceChart);
    fill(view, 
      h("p", {}, h("a", { href: "#/devices", text: "← " + t("nav.devices") })),
      h("h1", {}, h("span", { class: "dot " + (hl.online ? "on" : "off") }), inLang(splitName(d.name)) + " (" + d.id + ")"),
      d.asset && d.asset.location ? h("p", { class: "muted location" }, inLang(splitName(d.asset.location))) : null,
      h("dl", { class: "kv card" },
        h("dt", { text: t("device.template") }), h("dd", { text: d.template || "–" }),
        h("dt", { text: t("device.connection") }), h("dd", { text: d.connection }),
        h("dt", { text: t("device.status") }), h("dd", { text: hl.online ? t("device.online") : t("device.offline") }),
        h("dt", { text: t("device.last_seen") }), h("dd", { text: when(hl.last_seen) }),
        h("dt", { text: t("device.errors") }), h("dd", { text: hl.errors ?? "–" }),
        h("dt", { text: t("device.last_error") }), h("dd", { text: hl.last_error || "–" })),
      d.active_alarms.length ? h("h2", { text: t("alarms.title") }) : null,
      ...d.active_alarms.map(alarmCard),
      h("h2", { text: t("device.chart") }),
      h("div", { class: "toolbar" }, h("label", { for: "device-chart-point", text: t("trends.point") }), chartPoint),
      chart,
      h("h2", { text: t("device.readings") }),
      h("table", { class: "cards", id: "readings" },
        h("thead", {}, h("tr", {}, ...["name", "value", "quality", "time"].map((k) => h("th", { text: t("point." + k) })))),
        h("tbody", {}, ...rows)));
    await drawDeviceChart();
  }

  async function viewAssets(view) {
    const data = await api("GET", "/api/v1/assets");
    const keys = ["device", "name", "location", "model", "manufacturer", "installed", "warranty_until", "open_tickets"];
    const cell = (a, k) => {
      if (k === "open_tickets") return String((a.open_tickets || []).length);
      if (k === "warranty_until" && a.warranty && a.warranty.expired) return (a[k] || "") + " " + t("asset.expired");
      if ((k === "name" || k === "location") && a[k]) return inLang(splitName(a[k]));
      return a[k] || "–";
    };
    fill(view, h("h1", { text: t("assets.title") }),
      h("table", { class: "cards", id: "assets" },
        h("thead", {}, h("tr", {}, ...keys.map((k) => h("th", { text: t("asset." + k) })))),
        h("tbody", {}, ...data.assets.map((a) => h("tr", {}, ...keys.map((k) => h("td", { "data-label": t("asset." + k), text: cell(a, k) })))))));
  }

  // ---------------------------------------------------------------- trends

  async function viewTrends(view, device, point) {
    const devices = (await api("GET", "/api/v1/devices")).devices;
    const deviceSel = h("select", { id: "trend-device" }, ...devices.map((d) => h("option", { value: d.id,
      text: (d.name && d.name !== d.id ? inLang(splitName(d.name)) + " · " : "") + d.id })));
    deviceSel.value = device || (devices[0] && devices[0].id) || "";
    const pointSel = h("select", { id: "trend-point" });
    const rangeSel = h("select", { id: "trend-range" },
      ...Object.keys(RANGES).map((r) => h("option", { value: r, text: t("range." + r) })),
      h("option", { value: "custom", text: t("range.custom") }));
    rangeSel.value = "1h";
    const from = h("input", { id: "trend-from", type: "datetime-local" });
    const to = h("input", { id: "trend-to", type: "datetime-local" });
    const custom = h("div", { class: "row2", hidden: true },
      h("div", {}, h("label", { for: "trend-from", text: t("range.from") }), from),
      h("div", {}, h("label", { for: "trend-to", text: t("range.to") }), to));
    const plot = h("div", { id: "trend-plot", class: "chart-box" });
    let points = [];
    async function fillPoints() {
      const d = await api("GET", "/api/v1/devices/" + encodeURIComponent(deviceSel.value));
      points = d.points;
      pointSel.replaceChildren(...d.points.map((p) => h("option", { value: p.point, text: pointTitle(p) + (p.unit ? " (" + p.unit + ")" : "") })));
      if (point && d.points.some((p) => p.point === point)) pointSel.value = point;
      point = null;
    }
    async function draw() {
      let start, end;
      if (rangeSel.value === "custom") {
        start = from.value ? new Date(from.value) : new Date(Date.now() - 3600e3);
        end = to.value ? new Date(to.value) : new Date();
      } else {
        end = new Date();
        start = new Date(end.getTime() - RANGES[rangeSel.value] * 1000);
      }
      const qs = "?from=" + encodeURIComponent(start.toISOString()) + "&to=" + encodeURIComponent(end.toISOString()) + "&max_points=400";
      try {
        const data = await api("GET", "/api/v1/points/" + encodeURIComponent(deviceSel.value) + "/" + encodeURIComponent(pointSel.value) + "/history" + qs);
        const p = points.find((q) => q.point === pointSel.value) || { point: pointSel.value, unit: data.unit };
        drawChart(plot, data, start, end, pointTitle(p), p.unit || data.unit, p.kind);
      } catch (err) {
        plot.replaceChildren(h("p", { class: "muted", id: "trend-error", text: explain(err) }));
      }
    }
    deviceSel.addEventListener("change", async () => { await fillPoints(); await draw(); });
    pointSel.addEventListener("change", draw);
    rangeSel.addEventListener("change", () => { custom.hidden = rangeSel.value !== "custom"; draw(); });
    from.addEventListener("change", draw);
    to.addEventListener("change", draw);
    fill(view, h("h1", { text: t("trends.title") }),
      h("div", { class: "row2 card" },
        h("div", {}, h("label", { for: "trend-device", text: t("trends.device") }), deviceSel),
        h("div", {}, h("label", { for: "trend-point", text: t("trends.point") }), pointSel),
        h("div", {}, h("label", { for: "trend-range", text: t("trends.range") }), rangeSel,
          h("button", { type: "button", id: "trend-refresh", text: t("trends.refresh"), onclick: draw }))),
      custom, plot);
    await fillPoints();
    await draw();
  }

  function drawChart(box, data, start, end, title, unit, kind) {
    box.replaceChildren(window.FgwChart.draw(data, start, end, {
      width: box.clientWidth || 360, lang: state.lang, timeZone: siteZone(), zoneLabel: zoneLabel(),
      title, unit, kind, texts: { noData: t("trends.no_data"), yes: t("value.true"), no: t("value.false") },
    }));
  }

  // ---------------------------------------------------------------- routing

  function currentParam() {
    return decodeURIComponent((location.hash.split("/")[2] || ""));
  }

  async function route() {
    if (!state.me) return;
    const parts = (location.hash || "#/alarms").slice(2).split("/").map(decodeURIComponent);
    const name = parts[0] || "alarms";
    state.view = name;
    for (const a of document.querySelectorAll("#nav a")) {
      const active = a.dataset.view === name || a.dataset.view === name + "s";
      a.classList.toggle("active", active);
    }
    const view = document.getElementById("view");
    try {
      if (name === "alarm") await viewAlarm(view, parts[1]);
      else if (name === "tickets") await viewTickets(view);
      else if (name === "devices") await viewDevices(view);
      else if (name === "device") await viewDevice(view, parts[1]);
      else if (name === "assets") await viewAssets(view);
      else if (name === "trends") await viewTrends(view, parts[1], parts[2]);
      else if (FGW.views[name]) await FGW.views[name](view, parts.slice(1));
      else await viewAlarms(view);
    } catch (err) {
      if (err.status !== 401) fill(view, h("p", { class: "error", id: "view-error", text: explain(err) }));
    }
  }

  async function start() {
    state.me = await api("GET", "/api/v1/me");
    try {
      state.site = await api("GET", "/api/v1/site");
    } catch (err) {
      state.site = null;
    }
    const saved = localStorage.getItem("fgw.lang");
    if (!saved && state.site && state.site.locale && state.site.locale !== state.lang) {
      await setLanguage(state.site.locale, false);
    }
    renderUser();
    document.getElementById("top").hidden = false;
    openStream();
    await route();
    clearInterval(state.refreshTimer);
    // devices and trends change without events: refresh them now and then
    state.refreshTimer = setInterval(() => {
      if (state.view === "devices" && document.getElementById("modal").hidden) route();
      refreshSince();
    }, 10000);
  }

  async function boot() {
    await setLanguage(state.lang || "zh-CN", false);
    document.getElementById("lang").addEventListener("click", async () => {
      await setLanguage(state.lang === "en" ? "zh-CN" : "en");
      await route();
    });
    document.getElementById("logout").addEventListener("click", async () => {
      try {
        await api("POST", "/api/v1/logout");
      } finally {
        showLogin();
      }
    });
    window.addEventListener("hashchange", route);
    try {
      await start();
    } catch (err) {
      if (err.status !== 401) showLogin(explain(err));
    }
  }

  // pages in their own files (incidents.js, energy.js, handover.js) register in FGW.views
  const FGW = window.FGW || (window.FGW = {});
  FGW.views = FGW.views || {};
  Object.assign(FGW, { api, t, h, fill, may, when, explain, state, inLang, splitName, route: () => route() });

  boot();
})();
