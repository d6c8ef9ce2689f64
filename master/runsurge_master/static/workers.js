// My workers: online or not (benched: why and until when), current load, tasks done. Refreshes every few seconds.
"use strict";

(() => {
  if (!RS.chrome()) return;
  const { el } = RS;
  const tbody = document.querySelector("#workers-table tbody");
  RS.poll(async () => {
    const workers = await RS.json("/api/workers");
    document.getElementById("no-workers").hidden = workers.length > 0;
    tbody.replaceChildren(...workers.map((w) => el("tr", { "data-worker": w.id },
      el("td", {}, el("code", { title: w.id }, RS.short(w.id))),
      el("td", {}, `${w.host}:${w.grpc_port}`),
      el("td", {}, RS.badge(w.online ? "online" : "offline"), w.benched ? " " : "",
        w.benched ? el("span", { class: "badge st-benched", title: w.bench_reason || "" },
                       `benched until ${RS.when(w.benched_until)}`) : "",
        w.benched ? el("div", { class: "muted bench-reason" }, w.bench_reason || "") : ""),
      el("td", {}, w.online ? `${w.running_tasks} / ${w.slots} slots` : "–"),
      el("td", {}, RS.bytes(w.memory_bytes)),
      el("td", {}, w.cpus),
      el("td", {}, w.sandbox || "–"),
      el("td", { class: "num" }, w.tasks_done),
      el("td", { class: "num" }, w.trust),
      el("td", {}, RS.when(w.last_heartbeat)))));
    return true;
  }, 3000);
})();
