// My jobs, and the submission form (upload with a progress bar: XMLHttpRequest reports upload progress).
"use strict";

(() => {
  if (!RS.chrome()) return;
  const { el } = RS;
  const form = document.getElementById("submit-form");
  const filesInput = document.getElementById("files");
  const scriptSelect = document.getElementById("script");
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");

  function mode() { return form.elements.mode.value; }

  function showMode() {
    document.querySelectorAll("[data-mode]").forEach((n) => { n.hidden = !n.dataset.mode.split(" ").includes(mode()); });
  }
  form.querySelectorAll("input[name=mode]").forEach((r) => r.addEventListener("change", showMode));
  showMode();

  filesInput.addEventListener("change", () => {
    const scripts = [...filesInput.files].map((f) => f.name).filter((n) => n.endsWith(".py"));
    scriptSelect.replaceChildren(...(scripts.length ? scripts : ["(no .py file chosen)"]).map(
      (n) => el("option", { value: scripts.length ? n : "" }, n)));
  });

  function upload(data, token) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/jobs");
      xhr.setRequestHeader("authorization", "Bearer " + token);
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", (ev) => {
        if (ev.lengthComputable) {
          progress.value = Math.round((100 * ev.loaded) / ev.total);
          status.textContent = `uploading ${RS.bytes(ev.loaded)} of ${RS.bytes(ev.total)}`;
        }
      });
      xhr.addEventListener("load", () => {
        if (xhr.status === 201) return resolve(xhr.response);
        const detail = xhr.response && xhr.response.detail;
        reject(new Error(typeof detail === "string" ? detail : `submission refused (HTTP ${xhr.status})`));
      });
      xhr.addEventListener("error", () => reject(new Error("the upload failed: network error")));
      xhr.send(data);
    });
  }

  async function formData() {  // null (after saying why) when the form is incomplete
    const data = new FormData();
    for (const f of filesInput.files) data.append("files", f, f.name);
    if (mode() === "spec") {
      const spec = document.getElementById("spec-file").files[0];
      if (!spec) { RS.flash("Choose the job spec (TOML) file.", "error"); return null; }
      data.append("spec", await spec.text());
    } else {
      data.append("mode", mode());
      if (scriptSelect.value) data.append("script", scriptSelect.value);
    }
    // Only a quorum is sent: a spec's own `redundancy = 2` is not contradicted by the default.
    if (document.getElementById("redundancy").value === "2") data.append("redundancy", "2");
    return data;
  }

  // The plan preview: what the master would run (runsurge plan), before anything is submitted.
  document.getElementById("plan-button").addEventListener("click", async () => {
    RS.flash("");
    const data = await formData();
    if (!data) return;
    data.delete("redundancy");
    const box = document.getElementById("plan-preview");
    try {
      const plan = await RS.json("/api/plan", { method: "POST", body: data });
      box.replaceChildren(
        el("h3", {}, `Plan: ${plan.tasks.length} task(s), mode ${plan.mode}`),
        el("ul", {}, ...plan.explanation.map((line) => el("li", {}, line))),
        el("table", { class: "grid" },
          el("thead", {}, el("tr", {}, ...["Task", "Kind", "Script", "Memory", "Est. time", "After"].map((h) => el("th", {}, h)))),
          el("tbody", {}, ...plan.tasks.map((t) => el("tr", { "data-task": t.name },
            el("td", {}, t.name), el("td", {}, t.kind), el("td", {}, t.script), el("td", {}, RS.bytes(t.memory_bytes)),
            el("td", {}, RS.seconds(t.estimated_s)), el("td", {}, t.depends_on.join(", ") || "–"))))));
      box.hidden = false;
    } catch (e) {
      box.hidden = true;
      RS.flash(e.message, "error");
    }
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    RS.flash("");
    const data = await formData();
    if (!data) return;
    const button = document.getElementById("submit-button");
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    try {
      const token = await RS.accessToken();  // refreshed if it would expire during the upload
      if (!token) throw new Error("your session expired: log in again");
      const job = await upload(data, token);
      progress.value = 100;
      status.textContent = "submitted";
      window.location.assign("/ui/jobs/" + job.id);
    } catch (e) {
      RS.flash(e.message, "error");
      status.textContent = "";
      progress.hidden = true;
      button.disabled = false;
    }
  });

  const tbody = document.querySelector("#jobs-table tbody");
  const PAGE = 20;
  let offset = 0;

  function duration(j) {  // the API's times are UTC without a zone suffix
    if (!j.finished_at) return j.status === "running" ? "running" : "–";
    return RS.seconds((Date.parse(j.finished_at + "Z") - Date.parse(j.created_at + "Z")) / 1000);
  }

  async function refresh() {
    // One more than a page: whether an older page exists, without a count query.
    const jobs = await RS.json(`/api/jobs?limit=${PAGE + 1}&offset=${offset}`);
    const shown = jobs.slice(0, PAGE);
    document.getElementById("no-jobs").hidden = jobs.length > 0 || offset > 0;
    tbody.replaceChildren(...shown.map((j) => el("tr", { "data-job": j.id },
      el("td", {}, el("a", { href: "/ui/jobs/" + j.id }, j.name)),
      el("td", {}, RS.badge(j.status)),
      el("td", {}, `${j.tasks_done} / ${j.tasks_total}`),
      el("td", {}, RS.when(j.created_at)),
      el("td", {}, RS.when(j.finished_at)),
      el("td", { class: "duration" }, duration(j)),
      el("td", { class: "num cost" }, RS.credits(j.cost)))));
    document.getElementById("older").hidden = jobs.length <= PAGE;
    document.getElementById("newer").hidden = offset === 0;
    document.getElementById("page-info").textContent = offset || jobs.length > PAGE
      ? `jobs ${offset + 1}–${offset + shown.length}` : "";
  }

  document.getElementById("older").addEventListener("click", () => { offset += PAGE; refresh(); });
  document.getElementById("newer").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); refresh(); });
  RS.poll(async () => { await refresh(); return true; }, () => (document.hidden ? 10000 : 3000));
})();
