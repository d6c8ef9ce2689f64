// Earnings: totals, per worker and per task; "paid" once the job's owner paid the charge.
"use strict";

(() => {
  if (!RS.chrome()) return;
  const { el } = RS;
  RS.poll(async () => {
    const e = await RS.json("/api/earnings");
    document.getElementById("earn-total").textContent = e.total_credits;
    document.getElementById("earn-paid").textContent = e.paid_credits;
    document.getElementById("earn-pending").textContent = e.pending_credits;
    document.querySelector("#earn-workers tbody").replaceChildren(...e.workers.map((w) => el("tr", { "data-worker": w.worker_id },
      el("td", {}, el("code", { title: w.worker_id }, RS.short(w.worker_id))),
      el("td", {}, w.host),
      el("td", { class: "num" }, w.tasks),
      el("td", { class: "num" }, RS.credits(w.paid)),
      el("td", { class: "num" }, RS.credits(w.pending)))));
    document.getElementById("no-earnings").hidden = e.tasks.length > 0;
    // Credits earned so far, at each task's earning: the listed (latest) earnings, ending at the total.
    const byTime = [...e.tasks].sort((a, b) => Date.parse(a.at + "Z") - Date.parse(b.at + "Z"));
    let sum = e.total - byTime.reduce((n, t) => n + t.amount, 0);
    const pts = byTime.map((t) => { sum += t.amount; return [Date.parse(t.at + "Z"), sum / 1e6]; });
    document.getElementById("earn-chart").replaceChildren(RS.chart("credits earned", pts, (y) => y.toFixed(6),
      (ms) => new Date(ms).toLocaleString()));
    document.querySelector("#earn-tasks tbody").replaceChildren(...e.tasks.map((t) => el("tr", { "data-task": t.task_id },
      el("td", {}, RS.when(t.at)),
      el("td", {}, el("code", { title: t.task_id }, RS.short(t.task_id)), t.kind === "recompute" ? " (re-run)" : ""),
      el("td", {}, el("code", { title: t.worker_id }, RS.short(t.worker_id))),
      el("td", {}, t.outcome),
      el("td", {}, RS.seconds(t.cpu_s)),
      el("td", {}, RS.seconds(t.wall_s)),
      el("td", { class: "num" }, RS.credits(t.amount)),
      el("td", {}, RS.badge(t.paid ? "paid" : "pending")))));
    return true;
  }, 5000);
})();
