// lancer view: sorting and filtering the attempts table, keyboard steps, live reload.
"use strict";
(function () {
  const table = document.getElementById("attempts");
  if (table) {
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const controls = Array.from(document.querySelectorAll("[data-filter]"));
    const saved = JSON.parse(sessionStorage.getItem("lancer-view-filters") || "{}");
    function applyFilters() {
      const wanted = {};
      for (const c of controls) { wanted[c.dataset.filter] = c.value.trim().toLowerCase(); }
      sessionStorage.setItem("lancer-view-filters", JSON.stringify(wanted));
      let shown = 0;
      for (const row of rows) {
        const ok = (!wanted.variant || row.dataset.variant === wanted.variant)
          && (!wanted.verdict || row.dataset.verdicts.split(" ").includes(wanted.verdict))
          && (!wanted.error || row.dataset.errors.split("|").includes(wanted.error))
          && (!wanted.text || row.dataset.text.includes(wanted.text));
        row.hidden = !ok;
        if (ok) shown++;
      }
      document.getElementById("shown").textContent = shown + " of " + rows.length + " tasks";
    }
    for (const c of controls) {
      if (saved[c.dataset.filter] !== undefined) c.value = saved[c.dataset.filter];
      c.addEventListener("input", applyFilters);
    }
    applyFilters();
    const headers = Array.from(table.tHead.rows[0].cells);
    headers.forEach((th, index) => {
      if (!th.classList.contains("sortable")) return;
      th.addEventListener("click", () => {
        const descending = th.classList.contains("asc");
        headers.forEach(h => h.classList.remove("asc", "desc"));
        th.classList.add(descending ? "desc" : "asc");
        const numeric = th.classList.contains("num") || th.dataset.numeric === "1";
        const key = r => r.cells[index].dataset.sort ?? r.cells[index].textContent;
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          const order = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : String(x).localeCompare(String(y));
          return descending ? -order : order;
        });
        for (const r of rows) body.appendChild(r);
      });
    });
  }
  // j / k: next / previous step on a run page.
  const steps = Array.from(document.querySelectorAll("article.step"));
  if (steps.length) {
    document.addEventListener("keydown", (e) => {
      if (e.target instanceof HTMLInputElement || (e.key !== "j" && e.key !== "k")) return;
      const current = Number((location.hash.match(/^#step-(\d+)$/) || [0, 0])[1]);
      const next = Math.min(Math.max(current + (e.key === "j" ? 1 : -1), 1), steps.length);
      location.hash = "#step-" + next;
    });
  }
  // Served by `lancer view --serve`: reload when the files being watched have changed.
  const stamp = document.documentElement.dataset.stamp;
  if (stamp && location.protocol.startsWith("http")) {
    setInterval(() => {
      fetch("/__stamp?" + encodeURIComponent(location.pathname.slice(1)), { cache: "no-store" }).then(r => r.text()).then(now => {
        if (now.trim() && now.trim() !== stamp) location.reload();
      }).catch(() => {});
    }, 2000);
  }
})();
