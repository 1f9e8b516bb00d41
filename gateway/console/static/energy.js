// Energy (节能管理, PRODUCT §11): kWh per meter per day as a bar chart, month totals.
(function () {
  const FGW = window.FGW || (window.FGW = {});
  FGW.views = FGW.views || {};
  const NS = "http://www.w3.org/2000/svg";

  function bars(days) {
    const width = 720, height = 200, pad = 28;
    const max = Math.max(1, ...days.map((d) => d.kwh));
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("class", "energy-chart");
    svg.setAttribute("role", "img");
    const step = (width - pad) / Math.max(1, days.length);
    days.forEach((d, i) => {
      const hgt = (height - pad) * (d.kwh / max);
      const rect = document.createElementNS(NS, "rect");
      rect.setAttribute("x", String(pad + i * step + 1));
      rect.setAttribute("y", String(height - pad - hgt));
      rect.setAttribute("width", String(Math.max(1, step - 2)));
      rect.setAttribute("height", String(hgt));
      rect.setAttribute("data-day", d.day);
      const title = document.createElementNS(NS, "title");
      title.textContent = d.day + ": " + d.kwh.toFixed(1) + " kWh";
      rect.append(title);
      svg.append(rect);
      if (i % 5 === 0) {
        const label = document.createElementNS(NS, "text");
        label.setAttribute("x", String(pad + i * step));
        label.setAttribute("y", String(height - 8));
        label.textContent = d.day.slice(8);
        svg.append(label);
      }
    });
    const top = document.createElementNS(NS, "text");
    top.setAttribute("x", "0");
    top.setAttribute("y", "12");
    top.textContent = max.toFixed(0) + " kWh";
    svg.append(top);
    return svg;
  }

  // the night baseload alarm of a meter that opted in: its limit and the last night judged
  function baseload(watch) {
    const { h, t } = FGW;
    const last = watch.last;
    let text = t("energy.baseload_none");
    if (last && last.risen === null) {
      text = t("energy.baseload_skipped", { night: last.night });
    } else if (last) {
      text = t("energy.baseload_last", { night: last.night, kw: last.night_kw.toFixed(1),
        ref: last.reference_kw.toFixed(1) });
    }
    return h("p", { class: "baseload" + (last && last.risen ? " risen" : "") },
      h("span", { text: t("energy.baseload", { ratio: watch.ratio }) + " — " }),
      h("span", { class: "last", text: text }));
  }

  FGW.views.energy = async function (view) {
    const { h, t, fill } = FGW;
    const now = new Date();
    const month = FGW.energyMonth || now.getFullYear() + "-" + String(now.getMonth() + 1).padStart(2, "0");
    const data = await FGW.api("GET", "/api/v1/energy?month=" + encodeURIComponent(month));
    const picker = h("input", { type: "month", id: "energy-month", value: month, onchange: (ev) => {
      FGW.energyMonth = ev.target.value;
      FGW.route();
    } });
    const meters = data.meters.map((m) => h("section", { class: "card energy", "data-meter": m.meter },
      h("h2", { text: m.meter }),
      h("div", { class: "figures" },
        h("span", { class: "kwh", text: t("energy.kwh", { kwh: m.kwh.toFixed(1) }) }),
        h("span", { text: t("energy.peak", { kw: m.peak_kw === null ? "-" : m.peak_kw }) }),
        h("span", { text: t("energy.night", { kw: m.night_kw === null ? "-" : m.night_kw }) }),
        m.night_rise_pct === null ? null : h("span", { class: m.night_rise_pct > 10 ? "rise" : "",
          text: t("energy.rise", { pct: m.night_rise_pct }) })),
      m.baseload_rise ? baseload(m.baseload_rise) : null,
      bars(m.days)));
    fill(view, h("h1", { text: t("energy.title") }), h("div", { class: "toolbar" }, picker),
      meters.length ? meters : h("p", { class: "muted", text: t("energy.none") }));
  };
})();
