// Incidents (PRODUCT §11): open incidents first on the alarm page, incident list and page.
// Steps are ticked with one tap (engineer); a step past its due time shows red.
(function () {
  const FGW = window.FGW || (window.FGW = {});
  FGW.views = FGW.views || {};

  function lang() {
    return FGW.state.lang === "en" ? "en" : "zh";
  }

  function overdue(step) {
    if (step.done_at) return step.overdue;
    return step.overdue || (step.due && Date.parse(step.due) < Date.now());
  }

  function stepRow(incident, step, compact) {
    const { h, t, may, when } = FGW;
    const late = overdue(step);
    const row = h("li", {
      class: "step" + (step.done_at ? " done" : "") + (late ? " overdue" : ""),
      "data-step": step.id,
    });
    if (!step.done_at && incident.state === "open" && may("engineer")) {
      row.append(h("button", {
        class: "tick", type: "button", "aria-label": t("incident.tick"), text: "✓",
        onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await FGW.api("POST", "/api/v1/incidents/" + incident.id + "/steps/" + encodeURIComponent(step.id),
              { done: true, note: "" });
          } catch (err) {
            alert(FGW.explain(err));
          }
          await refresh();
        },
      }));
    } else {
      row.append(h("span", { class: "tick-mark", text: step.done_at ? "✓" : "·" }));
    }
    const detail = step.done_at
      ? t("incident.done_by", { user: step.done_by || "", time: when(step.done_at) })
      : step.due ? t("incident.due", { time: when(step.due) }) : "";
    row.append(h("span", { class: "text", text: step.text[lang()] }),
      h("span", { class: "when", text: (late ? t("incident.overdue") + " · " : "") + detail }));
    if (!compact && step.note) row.append(h("span", { class: "note", text: step.note }));
    return row;
  }

  function contextLines(incident) {
    const { h, t } = FGW;
    const c = incident.context || {};
    const out = [];
    if (c.lifts && c.lifts.length) {
      out.push(h("div", { class: "ctx" }, t("incident.ctx.lifts") + ": ",
        c.lifts.map((l) => FGW.inLang(FGW.splitName(l.name)) + " (" + [
          l.moving ? t("incident.ctx.moving") : null,
          l.occupied ? t("incident.ctx.occupied") : null,
          l.floor !== null && l.floor !== undefined ? t("incident.ctx.floor", { floor: l.floor }) : null,
        ].filter(Boolean).join(", ") + ")").join("; ")));
    }
    if (c.zones) out.push(h("div", { class: "ctx", text: t("incident.ctx.zones") + ": " + (c.zones.join(", ") || "-") }));
    if (c.fire_pump_ready !== undefined && c.fire_pump_ready !== null) {
      out.push(h("div", { class: "ctx", text: t(c.fire_pump_ready ? "incident.ctx.pump_ready" : "incident.ctx.pump_not_ready") }));
    }
    if (c.lift && c.floor !== undefined) {
      out.push(h("div", { class: "ctx", text: FGW.inLang(FGW.splitName(c.lift_name || c.lift)) + " · " + t("incident.ctx.floor", { floor: c.floor }) +
        (c.occupied ? " · " + t("incident.ctx.occupied") : "") }));
    }
    return out;
  }

  function card(incident, compact) {
    const { h, t, when } = FGW;
    const late = incident.steps.filter((s) => !s.done_at && overdue(s)).length;
    return h("section", {
      class: "card incident " + incident.priority + (incident.drill ? " drill" : "") + (late ? " late" : ""),
      "data-incident-id": String(incident.id),
    },
    h("div", { class: "head" },
      incident.drill ? h("span", { class: "badge drill", text: t("incident.drill") }) : null,
      h("a", { class: "title", href: "#/incident/" + incident.id, text: incident.title[lang()] + " #" + incident.id })),
    h("div", { class: "meta", text: t("incident.opened", { time: when(incident.opened_at) }) +
      (incident.state === "closed" ? " · " + t("incident.closed", { time: when(incident.closed_at), cause: incident.cause }) : "") }),
    contextLines(incident),
    h("ol", { class: "steps" }, shownSteps(incident, compact).map((s) => stepRow(incident, s, compact))),
    compact ? moreSteps(incident) : null);
  }

  // on the alarm page (compact) an incident shows only what to do now: its next step and any step
  // overdue, so the alarm cards stay within reach on a phone; the incident's page shows them all
  function shownSteps(incident, compact) {
    if (!compact) return incident.steps;
    const open = incident.steps.filter((s) => !s.done_at);
    return open.filter((s, i) => i === 0 || overdue(s));
  }

  function moreSteps(incident) {
    const { h, t } = FGW;
    const hidden = incident.steps.length - shownSteps(incident, true).length;
    if (!hidden) return null;
    return h("a", { class: "more-steps muted", href: "#/incident/" + incident.id, text: t("incident.more_steps", { n: hidden }) });
  }

  async function renderStrip() {
    const box = document.getElementById("incident-strip");
    if (!box) return;
    try {
      const data = await FGW.api("GET", "/api/v1/incidents?state=open");
      box.replaceChildren(...data.incidents.map((i) => card(i, true)));
    } catch (err) {
      box.replaceChildren();
    }
  }

  async function refresh() {
    if (FGW.state.view === "alarms") await renderStrip();
    else if (FGW.state.view === "incidents" || FGW.state.view === "incident") await FGW.route();
  }

  FGW.onAlarmsPage = renderStrip;
  FGW.onIncident = () => refresh();

  FGW.views.incidents = async function (view) {
    const { h, t, fill } = FGW;
    const which = FGW.incidentFilter || "open";
    const data = await FGW.api("GET", "/api/v1/incidents?state=" + which);
    const filter = h("select", { id: "incident-filter", onchange: (ev) => {
      FGW.incidentFilter = ev.target.value;
      FGW.route();
    } },
    h("option", { value: "open", text: t("incidents.filter.open") }),
    h("option", { value: "all", text: t("incidents.filter.all") }));
    filter.value = which;
    const toolbar = h("div", { class: "toolbar" }, filter);
    if (FGW.may("engineer")) toolbar.append(h("button", { type: "button", id: "new-drill", text: t("incidents.drill"), onclick: drillDialog }));
    fill(view, h("h1", { text: t("incidents.title") }), toolbar,
      data.incidents.length ? data.incidents.map((i) => card(i, false))
        : h("p", { class: "muted", id: "no-incidents", text: t("incidents.none") }));
  };

  FGW.views.incident = async function (view, parts) {
    const { h, t, fill, when } = FGW;
    const incident = await FGW.api("GET", "/api/v1/incidents/" + encodeURIComponent(parts[0]));
    const parts_ = [h("p", {}, h("a", { href: "#/incidents", text: "← " + t("incidents.title") })), card(incident, false)];
    if (incident.state === "open" && FGW.may("engineer")) {
      const cause = h("input", { id: "close-cause", type: "text", placeholder: t("incident.cause") });
      parts_.push(h("div", { class: "toolbar close-incident" }, cause,
        h("button", { type: "button", id: "close-incident", text: t("incident.close"), onclick: async () => {
          try {
            await FGW.api("POST", "/api/v1/incidents/" + incident.id + "/close", { cause: cause.value });
            await FGW.route();
          } catch (err) {
            const box = document.getElementById("close-error");
            if (box) box.textContent = FGW.explain(err);
          }
        } }), h("span", { class: "error", id: "close-error" })));
    }
    parts_.push(h("h2", { text: t("incident.journal") }), h("table", { class: "journal" },
      incident.journal.map((r) => h("tr", {}, h("td", { text: when(r.at) }), h("td", { text: r.action }),
        h("td", { text: r.step || "" }), h("td", { text: r.by }), h("td", { text: r.note })))));
    fill(view, ...parts_);
  };

  async function drillDialog() {
    const { t } = FGW;
    const playbook = prompt(t("incidents.drill_prompt"), "fire");
    if (!playbook) return;
    try {
      const incident = await FGW.api("POST", "/api/v1/drills", { playbook });
      location.hash = "#/incident/" + incident.id;
    } catch (err) {
      alert(FGW.explain(err));
    }
  }
})();
