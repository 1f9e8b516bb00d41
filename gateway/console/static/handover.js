// Shift handover (交接班, PRODUCT §11): what the next shift must know, on one printable screen.
(function () {
  const FGW = window.FGW || (window.FGW = {});
  FGW.views = FGW.views || {};

  function section(key, items, line) {
    const { h, t } = FGW;
    return h("section", { class: "card handover-part", "data-part": key },
      h("h2", { text: t("handover." + key) + " (" + items.length + ")" }),
      items.length ? h("ul", {}, items.map((i) => h("li", { text: line(i) })))
        : h("p", { class: "muted", text: "-" }));
  }

  FGW.views.handover = async function (view) {
    const { h, t, fill, when } = FGW;
    const since = FGW.handoverSince || "12h";
    const r = await FGW.api("GET", "/api/v1/handover?since=" + encodeURIComponent(since));
    const zh = FGW.state.lang !== "en";
    const alarm = (a) => t("priority." + a.priority) + " · " + a.id + " · " + (a.message || "");
    const choose = h("select", { id: "handover-since", onchange: (ev) => {
      FGW.handoverSince = ev.target.value;
      FGW.route();
    } }, ["8h", "12h", "24h"].map((v) => h("option", { value: v, text: v })));
    choose.value = since;
    fill(view,
      h("h1", { text: t("handover.title") }),
      h("div", { class: "toolbar" }, choose,
        h("button", { type: "button", id: "print", text: t("handover.print"), onclick: () => window.print() })),
      h("p", { class: "meta", text: when(r.since) + " → " + when(r.until) }),
      section("incidents", r.incidents, (i) => (i.drill ? "[" + t("incident.drill") + "] " : "") +
        "#" + i.id + " " + (zh ? i.title.zh : i.title.en) +
        (i.overdue_steps.length ? " — " + t("incident.overdue") + ": " + i.overdue_steps.join(", ") : "")),
      section("raised", r.raised, (a) => when(a.at) + " · " + a.id + " · " + (a.message || "")),
      section("unacknowledged", r.unacknowledged, alarm),
      section("shelved", r.shelved, (a) => a.id + " · " + t("handover.shelved_by", { user: a.by || "", until: when(a.until) }) + " · " + (a.reason || "")),
      section("out_of_service", r.out_of_service, alarm),
      section("comm_lost", r.comm_lost, (d) => d),
      section("open", r.open, alarm),
      section("tickets", r.tickets, (tk) => "#" + tk.id + " " + tk.device + " · " + tk.title + (tk.overdue ? " · " + t("incident.overdue") : "")));
  };
})();
