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

  // One pair of charts per worker (its load is summed over the tasks it ran at once).
  const usageBox = document.getElementById("worker-usage");
  const time = (ms) => new Date(ms).toLocaleTimeString();
  RS.poll(async () => {
    const workers = await RS.json("/api/workers");
    const blocks = await Promise.all(workers.map(async (w) => {
      const pts = (await RS.json(`/api/workers/${w.id}/usage`)).points.map((p) => [Date.parse(p.at + "Z"), p]);
      return RS.el("div", { class: "chart", "data-worker-usage": w.id },
        RS.chart(`CPU cores: ${RS.short(w.id)}`, pts.map(([t, p]) => [t, p.cpu_cores]), (y) => y.toFixed(2), time),
        RS.chart(`memory: ${RS.short(w.id)}`, pts.map(([t, p]) => [t, p.rss_bytes]), RS.bytes, time));
    }));
    usageBox.replaceChildren(...blocks);
    return true;
  }, 15000);
})();
