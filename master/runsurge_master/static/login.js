// Log in / register: on success the tokens go to localStorage and the user to where they were going.
"use strict";

(() => {
  const params = new URLSearchParams(window.location.search);
  const next = (params.get("next") || "").startsWith("/ui/") ? params.get("next") : "/ui/";

  async function post(path, body) {
    const resp = await fetch(path, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    if (!resp.ok) {
      let detail = resp.status + " " + resp.statusText;
      try {
        const j = await resp.json();
        detail = typeof j.detail === "string" ? j.detail : (j.detail || []).map((d) => d.msg).join("; ");
      } catch (e) { /* not JSON */ }
      throw new Error(detail);
    }
    return resp.json();
  }

  async function logIn(email, password) {
    const pair = await post("/api/auth/login", { email, password });
    RS.saveTokens(pair, email.toLowerCase());
    window.location.assign(next);
  }

  function wire(id, handler) {
    const form = document.getElementById(id);
    if (!form) return;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      RS.flash("");
      try {
        await handler(form.elements.email.value.trim(), form.elements.password.value);
      } catch (e) {
        RS.flash(e.message, "error");
        button.disabled = false;
      }
    });
  }

  wire("login-form", logIn);
  wire("register-form", async (email, password) => {
    await post("/api/auth/register", { email, password });
    await logIn(email, password);
  });
  RS.chrome();
})();
