// One job: the task graph (layered SVG), the tasks with live status (polling the JSON API, no
// reload), logs, result downloads, the bill and the pay button.
"use strict";

(() => {
  if (!RS.chrome()) return;
  const { el } = RS;
  const jobId = document.body.dataset.jobId;
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_GRAPH = 400;  // above this many tasks the table alone is shown
  const NODE_W = 150, NODE_H = 36, GAP_X = 70, GAP_Y = 18, PAD = 16;
  const rows = new Map();   // task id → table row (updated in place)
  const nodes = new Map();  // task id → SVG group
  let lastSignature = "";
  let finished = false;
  let billTotalShown = -1;

  document.getElementById("job-id").textContent = jobId;

  // -- graph -------------------------------------------------------------------------------
  function svg(tag, attrs) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    return n;
  }

  function layers(tasks) {  // depth = longest chain of producers before the task
    const byName = new Map(tasks.map((t) => [t.name, t]));
    const depth = new Map();
    const visit = (t, seen) => {
      if (depth.has(t.name)) return depth.get(t.name);
      if (seen.has(t.name)) return 0;  // a cycle cannot be submitted; stay safe anyway
      seen.add(t.name);
      const d = Math.max(-1, ...t.depends_on.map((n) => (byName.has(n) ? visit(byName.get(n), seen) : -1))) + 1;
      depth.set(t.name, d);
      return d;
    };
    tasks.forEach((t) => visit(t, new Set()));
    const out = [];
    tasks.forEach((t) => { (out[depth.get(t.name)] = out[depth.get(t.name)] || []).push(t); });
    return out;
  }

  function drawGraph(tasks) {
    const box = document.getElementById("graph");
    if (tasks.length > MAX_GRAPH) {
      box.replaceChildren(el("p", { class: "muted" }, `${tasks.length} tasks: too many to draw; see the table.`));
      return;
    }
    const ls = layers(tasks);
    const pos = new Map();
    ls.forEach((layer, x) => layer.forEach((t, y) => pos.set(t.name, {
      x: PAD + x * (NODE_W + GAP_X), y: PAD + y * (NODE_H + GAP_Y) })));
    const width = PAD * 2 + ls.length * NODE_W + (ls.length - 1) * GAP_X;
    const height = PAD * 2 + Math.max(...ls.map((l) => l.length)) * (NODE_H + GAP_Y) - GAP_Y;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "task graph" });
    for (const t of tasks) {
      for (const dep of t.depends_on) {
        const a = pos.get(dep), b = pos.get(t.name);
        if (!a) continue;
        const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2, mx = (x1 + x2) / 2;
        root.append(svg("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
      }
    }
    for (const t of tasks) {
      const p = pos.get(t.name);
      const g = svg("g", { class: "node", "data-task": t.name, transform: `translate(${p.x},${p.y})` });
      const title = svg("title");
      g.append(title, svg("rect", { width: NODE_W, height: NODE_H }));
      const label = svg("text", { x: NODE_W / 2, y: NODE_H / 2 });
      label.textContent = t.name.length > 20 ? t.name.slice(0, 19) + "…" : t.name;
      g.append(label);
      g.addEventListener("click", () => select(t.id));
      nodes.set(t.id, g);
      root.append(g);
    }
    box.replaceChildren(root);
  }

  function select(taskId) {
    rows.forEach((r, id) => r.classList.toggle("selected", id === taskId));
    const row = rows.get(taskId);
    if (row) row.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  // -- timeline: tasks per worker over time (like Dask's task stream) -------------------------
  const ROW_H = 26, LABEL_W = 90, TL_W = 900;
  function drawTimeline(job) {
    const box = document.getElementById("timeline");
    const t0 = Date.parse(job.created_at + "Z");
    const runs = job.tasks.filter((t) => t.started_at && t.worker_id);
    if (!runs.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No task has started yet."));
      return;
    }
    const end = (t) => (t.finished_at ? Date.parse(t.finished_at + "Z") : Date.now());
    const t1 = Math.max(...runs.map(end), t0 + 1000);
    const workers = [...new Set(runs.map((t) => t.worker_id))].sort();
    const height = workers.length * ROW_H + 24;
    const x = (ms) => LABEL_W + ((ms - t0) / (t1 - t0)) * (TL_W - LABEL_W - 10);
    const root = svg("svg", { width: TL_W, height, viewBox: `0 0 ${TL_W} ${height}`, role: "img",
      "aria-label": "timeline of the job's tasks per worker" });
    workers.forEach((w, i) => {
      const label = svg("text", { x: 4, y: i * ROW_H + ROW_H / 2, class: "lane" });
      label.textContent = RS.short(w);
      root.append(label);
    });
    for (const t of runs) {
      const row = workers.indexOf(t.worker_id);
      const left = x(Date.parse(t.started_at + "Z"));
      const g = svg("g", { class: "bar st-" + t.status, "data-task": t.name });
      const title = svg("title");
      title.textContent = `${t.name}: ${t.status}, ${RS.seconds((end(t) - Date.parse(t.started_at + "Z")) / 1000)}`;
      g.append(title, svg("rect", { x: left, y: row * ROW_H + 3, height: ROW_H - 6,
        width: Math.max(2, x(end(t)) - left) }));
      root.append(g);
    }
    const axis = svg("text", { x: TL_W - 10, y: height - 6, class: "axis" });
    axis.textContent = RS.seconds((t1 - t0) / 1000) + " since submission";
    root.append(axis);
    box.replaceChildren(root);
  }

  // -- tasks -------------------------------------------------------------------------------
  // CPU and memory over the task's last run (its worker's metering samples, sent when the run ends).
  async function showUsage(task, me) {
    const box = document.getElementById("usage-chart");
    box.replaceChildren();
    let runs = [];
    try {
      runs = (await RS.json(`/api/tasks/${task.id}/usage`)).runs;
    } catch (e) {
      return;
    }
    if (me !== logFollow) return;
    const run = runs[runs.length - 1];
    const pts = run ? run.points : [];
    const secs = (s) => RS.seconds(s);
    box.replaceChildren(
      RS.chart(`CPU cores: ${task.name}`, pts.map((p) => [p.t_s, p.cpu_cores]), (y) => y.toFixed(2), secs),
      RS.chart(`memory: ${task.name}`, pts.map((p) => [p.t_s, p.rss_bytes]), RS.bytes, secs));
  }

  // A running task's log is followed live: each read asks for the bytes after the last one
  // (X-Log-Offset), which the master reads from the worker running the task, until it ends.
  let logFollow = 0;  // the follow in progress; a new showLog stops the previous one
  async function showLog(task, stream) {
    const me = ++logFollow;
    const panel = document.getElementById("log-panel");
    document.getElementById("log-title").textContent = `${task.name}: ${stream}`;
    const pre = document.getElementById("log");
    const state = document.getElementById("log-state");
    pre.textContent = "loading…";
    state.textContent = "";
    panel.hidden = false;
    select(task.id);
    document.getElementById("usage-chart").replaceChildren();
    let offset = 0, text = "";
    while (me === logFollow) {
      let running = false, got = "";
      try {
        const resp = await RS.api(`/api/tasks/${task.id}/logs?stream=${stream}&offset=${offset}`);
        got = await resp.text();
        offset = Number(resp.headers.get("x-log-offset") || offset);
        running = resp.headers.get("x-task-running") === "1";
        state.textContent = running ? "running: following its output live" : `ended (${resp.headers.get("x-task-status")})`;
      } catch (e) {
        state.textContent = e.message;
        running = e.status === 503;  // its worker is away for now: keep trying
      }
      if (me !== logFollow) return;
      if (got) {
        text += got;
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.textContent = text;
        if (atEnd) pre.scrollTop = pre.scrollHeight;  // stay at the bottom unless the reader scrolled up
        continue;
      }
      pre.textContent = text || "(empty)";
      if (!running) { showUsage(task, me); return; }  // its usage arrives with its end
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  function workerCell(t) {  // a quorum task: each replica's worker and, once decided, its verdict
    if (!t.replicas) return el("td", {}, el("code", { title: t.worker_id || "" }, RS.short(t.worker_id)));
    const runs = t.replicas.map((r) => el("div", { class: "replica", "data-verdict": r.verdict || r.status },
      el("code", { title: r.worker_id }, RS.short(r.worker_id)), " ",
      el("span", { class: "muted" }, r.verdict === "odd" ? "outvoted" : r.verdict || r.status)));
    return el("td", {}, ...runs);
  }

  function cells(t) {
    const mem = t.mem_peak_bytes === null ? "–" : `${RS.bytes(t.mem_avg_bytes)} / ${RS.bytes(t.mem_peak_bytes)}`;
    const logs = el("td", {},
      el("button", { type: "button", class: "small", "data-log": "stdout", onclick: () => showLog(t, "stdout") }, "stdout"),
      " ",
      el("button", { type: "button", class: "small", "data-log": "stderr", onclick: () => showLog(t, "stderr") }, "stderr"));
    return [
      el("td", {}, t.name),
      el("td", { class: "status" }, RS.badge(t.status),  // why it is not running yet (waiting.py)
        t.waiting ? el("div", { class: "muted small waiting" }, t.waiting) : ""),
      workerCell(t),
      el("td", { class: "num" }, t.attempts),
      el("td", {}, RS.seconds(t.wall_s)),
      el("td", {}, RS.seconds(t.cpu_s)),
      el("td", {}, mem),
      el("td", {}, RS.bytes(t.memory_bytes)),
      logs,
    ];
  }

  function renderTasks(tasks) {
    const tbody = document.querySelector("#tasks-table tbody");
    for (const t of tasks) {
      let row = rows.get(t.id);
      if (!row) {
        row = el("tr", { "data-task": t.name });
        rows.set(t.id, row);
        tbody.append(row);
      }
      const selected = row.classList.contains("selected");
      row.replaceChildren(...cells(t));
      row.className = selected ? "selected" : "";
      const node = nodes.get(t.id);
      if (node) {
        node.setAttribute("class", "node st-" + t.status);
        node.querySelector("title").textContent = `${t.name}: ${t.status}` + (t.worker_id ? ` on ${RS.short(t.worker_id)}` : "");
      }
    }
  }

  // -- results -----------------------------------------------------------------------------
  async function download(r) {
    try {
      const resp = await RS.api(`/api/jobs/${jobId}/results/${encodeURIComponent(r.task)}/${encodeURIComponent(r.name)}`);
      const url = URL.createObjectURL(await resp.blob());
      const a = el("a", { href: url, download: r.name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (e) {
      RS.flash(`download of ${r.name} failed: ${e.message}`, "error");
    }
  }

  async function renderResults() {
    const results = await RS.json(`/api/jobs/${jobId}/results`);
    document.getElementById("no-results").hidden = results.length > 0;
    document.getElementById("results").replaceChildren(...results.map((r) => el("li", { "data-result": r.name },
      el("span", { class: "name" }, r.name), el("span", { class: "muted" }, `from ${r.task} · ${RS.bytes(r.size)}`),
      el("button", { type: "button", class: "small", onclick: () => download(r) }, `Download ${r.name}`))));
  }

  // -- bill --------------------------------------------------------------------------------
  function renderBill(bill) {
    document.querySelector("#bill-table tbody").replaceChildren(...bill.lines.map((l) => el("tr", { "data-task": l.task },
      el("td", {}, l.task, l.attempt > 1 ? el("span", { class: "muted" }, ` (run ${l.attempt})`) : "",
        l.replicas.length ? el("span", { class: "muted", title: l.replicas.map((r) =>
          `${RS.short(r.worker_id)} earned ${RS.credits(r.earned)}`).join(", ") }, ` (${l.replicas.length} agreeing runs)`) : ""),
      el("td", {}, l.outcome),
      el("td", {}, RS.seconds(l.cpu_s)),
      el("td", {}, RS.seconds(l.wall_s)),
      el("td", {}, RS.bytes(l.memory_bytes)),
      el("td", {}, l.price_factor ? "×" + l.price_factor : "per run"),
      el("td", { class: "num" }, RS.credits(l.amount)),
      el("td", {}, RS.badge(l.paid ? "paid" : "due")))));
    document.getElementById("bill-total").textContent = bill.total_credits;
    document.getElementById("bill-due").textContent = bill.due_credits;
    const pay = document.getElementById("pay-button");
    pay.disabled = bill.due <= 0;
    pay.textContent = bill.due > 0 ? `Pay ${bill.due_credits} credits` : bill.lines.length ? "Paid" : "Pay";
    document.getElementById("bill-status").textContent = bill.lines.length === 0
      ? "nothing billed yet" : bill.due > 0 ? `${bill.lines.filter((l) => !l.paid).length} line(s) due` : "all paid";
    billTotalShown = bill.total;
  }

  async function refreshBill() { renderBill(await RS.json(`/api/jobs/${jobId}/bill`)); }

  document.getElementById("pay-button").addEventListener("click", async (ev) => {
    ev.target.disabled = true;
    try {
      const payment = await RS.json(`/api/jobs/${jobId}/pay`, { method: "POST" });
      renderBill(payment.bill);
      RS.flash(`Paid ${payment.amount_credits} credits.`);
    } catch (e) {
      RS.flash(e.message, "error");
      await refreshBill();
    }
  });

  // -- cancel and delete ---------------------------------------------------------------------
  document.getElementById("cancel-button").addEventListener("click", async (ev) => {
    ev.target.disabled = true;
    try {
      await RS.json(`/api/jobs/${jobId}/cancel`, { method: "POST" });
      RS.flash("Job cancelled: its running tasks are being stopped; the bill counts only what ran.");
    } catch (e) {
      RS.flash(e.message, "error");
    }
    ev.target.disabled = false;
  });

  document.getElementById("delete-button").addEventListener("click", async () => {
    if (!window.confirm("Delete this job with its results and logs? Its bill stays.")) return;
    try {
      await RS.api(`/api/jobs/${jobId}`, { method: "DELETE" });
      window.location.assign("/ui/");
    } catch (e) {
      RS.flash(e.message, "error");
    }
  });

  function renderState(job) {
    const box = document.getElementById("job-waiting");
    const waiting = job.waiting || [];
    box.querySelector("ul").replaceChildren(...waiting.map((w) => el("li", {}, w)));
    box.hidden = waiting.length === 0;
    document.getElementById("cancel-button").hidden = job.status !== "running";
    document.getElementById("delete-button").hidden = job.status === "running";
  }

  // -- the job, polled until it finishes -----------------------------------------------------
  let drawn = false;
  RS.poll(async () => {
    let job;
    try {
      job = await RS.json(`/api/jobs/${jobId}`);
    } catch (e) {
      if (e.status === 404) {
        document.getElementById("job-name").textContent = "No such job";
        document.getElementById("job-progress").textContent = "it was deleted, or it is not yours";
        document.querySelectorAll("main section.card, main .cards").forEach((n) => { n.hidden = true; });
        return false;
      }
      throw e;
    }
    document.title = `${job.name} · RunSurge`;
    document.getElementById("job-name").textContent = job.name;
    const st = document.getElementById("job-status");
    st.textContent = job.status;
    st.className = "badge st-" + job.status;
    document.getElementById("job-progress").textContent = `${job.tasks_done} of ${job.tasks_total} tasks done`;
    document.getElementById("job-times").textContent = `submitted ${RS.when(job.created_at)}` +
      (job.finished_at ? ` · finished ${RS.when(job.finished_at)}` : "");
    const err = document.getElementById("job-error");
    err.textContent = job.error || "";
    err.hidden = !job.error;
    renderState(job);
    if (!drawn) { drawGraph(job.tasks); drawn = true; }
    renderTasks(job.tasks);
    drawTimeline(job);
    const signature = job.status + ":" + job.tasks.map((t) => t.status).join(",");
    if (signature !== lastSignature) {  // something changed: the bill and results may have too
      lastSignature = signature;
      await refreshBill();
      if (job.status !== "running") await renderResults();
    }
    finished = job.status !== "running";
    if (finished && billTotalShown < 0) await refreshBill();
    return !finished;
  }, () => (rows.size > 200 ? 4000 : 1000));
})();
