// RunSurge dashboard: what every page shares. Tokens live in localStorage and go out as a Bearer
// header (no auth cookie, hence no CSRF); data is only ever inserted as text, never as HTML.
"use strict";

const RS = (() => {
  const KEYS = { access: "runsurge.access", refresh: "runsurge.refresh", email: "runsurge.email" };
  const store = window.localStorage;

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  function saveTokens(pair, email) {
    store.setItem(KEYS.access, pair.access_token);
    store.setItem(KEYS.refresh, pair.refresh_token);
    if (email) store.setItem(KEYS.email, email);
  }

  function logout() {
    Object.values(KEYS).forEach((k) => store.removeItem(k));
    window.location.assign("/ui/login");
  }

  function toLogin() {
    const next = window.location.pathname + window.location.search;
    window.location.assign("/ui/login?next=" + encodeURIComponent(next));
  }

  function expiresAt(token) {  // seconds since the epoch, from the JWT's payload
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part)).exp || 0;
    } catch (e) {
      return 0;
    }
  }

  let refreshing = null;
  async function refresh() {
    const token = store.getItem(KEYS.refresh);
    if (!token) return false;
    if (!refreshing) {
      refreshing = fetch("/api/auth/refresh", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      }).then(async (r) => {
        if (!r.ok) return false;
        saveTokens(await r.json());
        return true;
      }).catch(() => false).finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  async function accessToken() {  // a token good for at least another 30 s, or null
    const token = store.getItem(KEYS.access);
    if (token && expiresAt(token) - Date.now() / 1000 > 30) return token;
    return (await refresh()) ? store.getItem(KEYS.access) : null;
  }

  async function detailOf(resp) {
    try {
      const body = await resp.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
    } catch (e) { /* not JSON */ }
    return resp.status + " " + resp.statusText;
  }

  // fetch() with the Bearer token; a 401 refreshes once, then sends the user to the login page.
  async function api(path, options = {}) {
    for (const retry of [true, false]) {
      const token = await accessToken();
      if (!token) { toLogin(); throw new ApiError(401, "not logged in"); }
      const headers = Object.assign({}, options.headers || {}, { authorization: "Bearer " + token });
      let resp;
      try {
        resp = await fetch(path, Object.assign({}, options, { headers }));
      } catch (e) {
        throw new ApiError(0, "cannot reach the master: " + e.message);
      }
      if (resp.status === 401 && retry && (await refresh())) continue;
      if (resp.status === 401) { toLogin(); throw new ApiError(401, "your session expired"); }
      if (!resp.ok) throw new ApiError(resp.status, await detailOf(resp));
      return resp;
    }
    throw new ApiError(0, "unreachable");
  }

  async function json(path, options) { return (await api(path, options)).json(); }

  // el("td", {class: "num"}, "text", otherNode): children are nodes or text (never parsed as HTML).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function badge(state) { return el("span", { class: "badge st-" + state }, state); }

  function flash(message, kind) {
    const box = document.getElementById("flash");
    box.textContent = message;
    box.className = "flash" + (kind === "error" ? " error" : "");
    box.hidden = !message;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)) + " " + units[i];
  }

  function seconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    const m = Math.floor(s / 60);
    return m < 60 ? m + " min " + Math.round(s % 60) + " s" : Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function credits(micro) {  // integer micro-credits → "0.012345" (exact)
    const sign = micro < 0 ? "-" : "";
    const abs = Math.abs(micro);
    return sign + Math.floor(abs / 1e6) + "." + String(abs % 1e6).padStart(6, "0");
  }

  function when(iso) {  // the API speaks naive UTC
    if (!iso) return "–";
    const d = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(iso) ? iso : iso + "Z");
    return d.toLocaleString();
  }

  function short(id) { return id ? id.slice(0, 8) : "–"; }

  // A line chart as SVG: points [[x, y], ...] (x in seconds or ms, as `xText` formats it), drawn from
  // 0 to the largest y; `name` labels it for people and tests (data-chart).
  function chart(name, points, yText, xText) {
    const W = 560, H = 150, L = 64, R = 12, T = 14, B = 24;
    const NS = "http://www.w3.org/2000/svg";
    const node = (tag, attrs, text) => {
      const n = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text !== undefined) n.textContent = text;
      return n;
    };
    const root = node("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img",
      "aria-label": name, "data-chart": name, "data-points": points.length });
    root.append(node("text", { x: L, y: 10, class: "chart-title" }, name));
    if (!points.length) {
      root.append(node("text", { x: W / 2, y: H / 2, class: "chart-empty" }, "no samples yet"));
      return root;
    }
    const x0 = points[0][0], x1 = Math.max(points[points.length - 1][0], x0 + 1e-9);
    const y1 = Math.max(...points.map((p) => p[1])) || 1;
    const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const py = (y) => H - B - (y / y1) * (H - T - B);
    root.append(node("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "chart-axis" }),
      node("line", { x1: L, y1: T, x2: L, y2: H - B, class: "chart-axis" }),
      node("text", { x: L - 6, y: T + 4, class: "chart-label end" }, yText(y1)),
      node("text", { x: L - 6, y: H - B, class: "chart-label end" }, yText(0)),
      node("text", { x: L, y: H - 6, class: "chart-label" }, xText(x0)),
      node("text", { x: W - R, y: H - 6, class: "chart-label end" }, xText(x1)));
    const line = points.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ");
    root.append(node("polyline", { points: line, class: "chart-line" }));
    return root;
  }

  // Every page but the login one needs a session: show the navigation, or go log in.
  function chrome() {
    const page = document.body.dataset.page;
    if (page === "login") return true;
    if (!store.getItem(KEYS.refresh) && !store.getItem(KEYS.access)) { toLogin(); return false; }
    document.getElementById("nav").hidden = false;
    document.getElementById("who").textContent = store.getItem(KEYS.email) || "";
    const out = document.getElementById("logout");
    out.hidden = false;
    out.addEventListener("click", logout);
    const current = document.querySelector(`nav a[data-nav="${page === "job" ? "jobs" : page}"]`);
    if (current) current.classList.add("active");
    return true;
  }

  // Call fn now and every `ms` until it returns false (then stop); errors are shown, polling goes on.
  function poll(fn, ms) {
    let timer = null;
    const tick = async () => {
      let again = true;
      try {
        again = (await fn()) !== false;
      } catch (e) {
        if (e.status !== 401) flash(e.message, "error");
      }
      if (again) timer = setTimeout(tick, typeof ms === "function" ? ms() : ms);
    };
    tick();
    return () => clearTimeout(timer);
  }

  return { ApiError, api, json, accessToken, el, badge, flash, bytes, seconds, credits, when, short, chrome, poll, saveTokens,
    chart };
})();

window.RS = RS;
