// The cascade configuration form's what-if panel: as the admin edits the routing and band
// values, ask the server what they would do to recent traffic, before anything is saved.
(function () {
  "use strict";
  const panel = document.getElementById("whatif");
  const form = panel && panel.closest("form");
  if (!form) return;
  const status = panel.querySelector(".whatif-status");
  const table = panel.querySelector(".whatif-table");
  const FIELDS = ["policy", "baseline_version", "entropy_threshold", "mllm_budget", "allow_below", "action_above",
                  "audit_rate", "stage2_decides"];
  let timer = null;
  let latest = 0;

  function value(name) {
    const input = form.elements[name];
    if (input && input.type === "checkbox") return input.checked ? "true" : "false";
    return input ? input.value : "";
  }

  function format(projection, key, style) {
    if (!projection) return "—";
    if (key === "basis") return projection.videos + " recent videos, " + projection.labeled + " labeled";
    if (key === "quality.f1") return projection.quality ? projection.quality.f1.toFixed(3) : "too few labels";
    if (key === "quality.errors") {
      if (!projection.quality) return "too few labels";
      return projection.quality.wrongly_allowed + " / " + projection.quality.wrongly_actioned + " of " +
        projection.quality.n;
    }
    if (key === "quality.rap") {
      if (!projection.quality) return "too few labels";
      return ["R@P60", "R@P70", "R@P80", "R@P90"].map(function (k) {
        const v = projection.quality[k];
        return v === null || v === undefined ? "—" : v.toFixed(2);
      }).join(" / ");
    }
    const v = projection[key];
    if (v === null || v === undefined) return key === "threshold" ? "∞ (route nothing)" : "— (see the note)";
    if (style === "pct") return (100 * v).toFixed(1) + " %";
    return Number.isInteger(v) ? String(v) : v.toFixed(3);
  }

  function show(data) {
    table.querySelectorAll("tbody tr").forEach(function (row) {
      const cells = row.querySelectorAll("td");
      cells[0].textContent = format(data.active, cells[0].dataset.k, cells[0].dataset.f);
      cells[1].textContent = format(data.candidate, cells[1].dataset.k, cells[1].dataset.f);
    });
    table.hidden = false;
    const note = data.candidate && data.candidate.note;
    status.textContent = "Projected from stored predictions; nothing has been saved." + (note ? " " + note : "");
  }

  function refresh() {
    const params = new URLSearchParams();
    FIELDS.forEach(function (name) { params.set(name, value(name)); });
    const ticket = ++latest;
    status.textContent = "Computing…";
    fetch(panel.dataset.url + "?" + params.toString(), {credentials: "same-origin"})
      .then(function (response) { return response.json().then(function (body) { return [response.ok, body]; }); })
      .then(function (result) {
        if (ticket !== latest) return;  // a newer edit is on its way
        if (result[0]) { show(result[1]); } else { table.hidden = true; status.textContent = result[1].detail; }
      })
      .catch(function () { if (ticket === latest) status.textContent = "Could not reach the server."; });
  }

  FIELDS.forEach(function (name) {
    const input = form.elements[name];
    if (!input) return;
    input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 300); });
    input.addEventListener("change", refresh);
  });
  refresh();
})();
