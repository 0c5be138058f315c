// tocsin's web UI: reads the JSON APIs and draws each page. Hand-written, no libraries.
//
// Rules: text from the daemon (labels, annotations, comments) only ever becomes DOM text
// nodes or attribute values, never HTML; links are made only from http(s) URLs. Every
// control gets an accessible name. With tenancy, the token lives in sessionStorage and
// goes out as "Authorization: Bearer"; an admin's chosen tenant as X-Scope-OrgID.
"use strict";

const PREFIX = document.body.dataset.prefix || "";
const PAGE = document.body.dataset.page;
const REFRESH_MS = 10000;

// --- small helpers ----------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("page-error");
  if (!box) return;
  // While the sign-in form is up, the page's failed loads are its reason, not news.
  if (message && $("token-dialog")?.open) return;
  box.hidden = !message;
  box.textContent = message || "";
}

function since(iso) {
  const ms = Date.now() - Date.parse(iso);
  return humanDuration(ms) + " ago";
}

function humanDuration(ms) {
  const s = Math.max(0, Math.round(Math.abs(ms) / 1000));
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m";
  const h = Math.floor(m / 60);
  if (h < 48) return h + "h " + (m % 60) + "m";
  return Math.floor(h / 24) + "d " + (h % 24) + "h";
}

function localTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

// A value as text with http(s) URLs turned into links (never other schemes).
function linkify(text) {
  const out = [];
  const re = /https?:\/\/[^\s<>"']+/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(el("a", { href: m[0], rel: "noopener noreferrer", target: "_blank" }, m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function safeUrl(url) {
  return /^https?:\/\//i.test(url || "") ? url : null;
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// --- matchers, as Alertmanager writes them ----------------------------------------------

// Split `{a="b", c=~"d,e"}` into matcher texts: commas outside quotes separate them.
function splitMatchers(text) {
  let t = text.trim();
  if (t.startsWith("{")) t = t.slice(1);
  if (t.endsWith("}")) t = t.slice(0, -1);
  const parts = [];
  let cur = "";
  let quoted = false;
  let escaped = false;
  for (const ch of t) {
    if (escaped) { cur += ch; escaped = false; continue; }
    if (ch === "\\") { cur += ch; escaped = true; continue; }
    if (ch === '"') quoted = !quoted;
    if (ch === "," && !quoted) { if (cur.trim()) parts.push(cur.trim()); cur = ""; continue; }
    cur += ch;
  }
  if (cur.trim()) parts.push(cur.trim());
  return parts;
}

const MATCHER_RE = /^\s*([^\s=!~"]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$/s;

function parseMatcher(text) {
  const m = MATCHER_RE.exec(text);
  if (!m) throw new Error("not a matcher: " + text);
  let value = m[3];
  if (value.startsWith('"')) {
    try { value = JSON.parse(value); } catch { throw new Error("bad quoting in: " + text); }
  }
  return { name: m[1], op: m[2], value };
}

function matcherText(m) {
  return m.name + m.op + JSON.stringify(m.value);
}

function apiMatcher(m) {
  return { name: m.name, value: m.value, isRegex: m.op.includes("~"), isEqual: !m.op.startsWith("!") };
}

function fromApiMatcher(m) {
  const equal = m.isEqual !== false;
  const op = m.isRegex ? (equal ? "=~" : "!~") : (equal ? "=" : "!=");
  return { name: m.name, op, value: m.value };
}

function labelsToMatchers(labels) {
  return "{" + Object.keys(labels).sort().map((k) => k + "=" + JSON.stringify(labels[k])).join(", ") + "}";
}

// --- talking to the daemon ----------------------------------------------------------------

function authHeaders() {
  const headers = {};
  const token = sessionStorage.getItem("tocsin.token");
  if (token) headers["Authorization"] = "Bearer " + token;
  const tenant = sessionStorage.getItem("tocsin.tenant");
  if (tenant) headers["X-Scope-OrgID"] = tenant;
  return headers;
}

async function api(path, options = {}) {
  const init = { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } };
  if (options.json !== undefined) {
    init.body = JSON.stringify(options.json);
    init.headers["Content-Type"] = "application/json";
    init.method = init.method || "POST";
  }
  const resp = await fetch(PREFIX + path, init);
  if (resp.status === 401 && resp.headers.get("WWW-Authenticate")?.startsWith("Bearer")) {
    // With a token kept, the daemon's reason (an invalid token) is worth showing.
    const reason = sessionStorage.getItem("tocsin.token") ? (await resp.text()).trim() : "";
    askToken(reason);
    throw new Error("sign-in needed");
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!resp.ok) {
    const msg = data && typeof data === "object" ? data.error || data.message : data;
    throw new Error(`${resp.status}: ${msg || resp.statusText}`);
  }
  return data;
}

function askToken(reason) {
  const dialog = $("token-dialog");
  if (!dialog || dialog.open) return;
  const error = $("token-error");
  error.hidden = !reason;
  error.textContent = reason ? "The token was not accepted: " + reason + ". Try again." : "";
  showError(null);
  dialog.showModal();
  $("token-form").onsubmit = () => {
    sessionStorage.setItem("tocsin.token", $("token-input").value.trim());
    // A new token starts on its own pipeline: an admin's last tenant choice may not apply.
    sessionStorage.removeItem("tocsin.tenant");
    location.reload();
  };
}

function signOut() {
  sessionStorage.removeItem("tocsin.token");
  sessionStorage.removeItem("tocsin.tenant");
  location.reload();
}

// With a token: a Sign out button, and whose view this is. An admin (the one role that
// may list tenants) gets a switcher; its choice goes out as X-Scope-OrgID, empty for the
// global pipeline. A tenant token sees its own tenant only, named here.
function setUpTenantBar() {
  if (!sessionStorage.getItem("tocsin.token")) return;
  $("sign-out").onclick = signOut;
  api("/api/v1/identity").then((who) => {
    // Shown once the token is known good: a rejected one only brings the sign-in form back.
    $("tenant-bar").hidden = false;
    if (who.role !== "admin") {
      const label = $("tenant-who");
      label.textContent = who.tenant ? "Tenant: " + who.tenant : "Signed in as " + who.name;
      label.hidden = false;
      return;
    }
    return api("/api/v1/tenants").then((list) => {
      const select = $("tenant-select");
      select.append(el("option", { value: "" }, "Global pipeline"));
      for (const entry of list || []) {
        select.append(el("option", { value: entry.id, selected: entry.id === who.tenant }, entry.id));
      }
      select.onchange = () => {
        if (select.value) sessionStorage.setItem("tocsin.tenant", select.value);
        else sessionStorage.removeItem("tocsin.tenant");
        location.reload();
      };
      $("tenant-pick").hidden = false;
    });
  }).catch((err) => {
    // An admin's chosen tenant went away (tenancy file reloaded): back to the global view.
    if (err.message.startsWith("404") && sessionStorage.getItem("tocsin.tenant")) {
      sessionStorage.removeItem("tocsin.tenant");
      location.reload();
      return;
    }
    showError("Could not read who is signed in: " + err.message);
  });
}

// --- alerts ---------------------------------------------------------------------------------

function labelChip(name, value, onPick) {
  const text = `${name}="${value}"`;
  if (!onPick) return el("span", { class: "label-chip" }, text);
  return el("button", {
    type: "button", class: "label-chip", "aria-label": `Filter by ${text}`,
    onclick: () => onPick(text),
  }, text);
}

function alertCard(alert, shared, onPick) {
  const own = Object.keys(alert.labels).sort().filter((k) => !(k in shared));
  const state = alert.status.state;
  const name = alert.labels.alertname || alert.fingerprint;
  const annotations = Object.keys(alert.annotations || {}).sort();
  const silenceUrl = `${PREFIX}/ui/silences?filter=${encodeURIComponent(labelsToMatchers(alert.labels))}`;
  const whyUrl = `${PREFIX}/ui/why?fingerprint=${alert.fingerprint}`;
  const source = safeUrl(alert.generatorURL);
  return el("article", { class: "alert", "data-fingerprint": alert.fingerprint, "aria-label": `Alert ${name}` },
    el("div", { class: "head" },
      el("span", { class: "state " + state }, state),
      el("strong", {}, name),
      el("span", { class: "age", title: localTime(alert.startsAt) }, "started " + since(alert.startsAt)),
      alert.status.silencedBy.length ? el("span", { class: "badge" }, "silenced") : null,
      alert.status.inhibitedBy.length ? el("span", { class: "badge" }, "inhibited") : null,
      alert.muted ? el("span", { class: "badge", title: "its routes' time intervals hold it back now" }, "muted") : null,
    ),
    el("div", { class: "labels" }, own.map((k) => labelChip(k, alert.labels[k], onPick))),
    annotations.length ? el("dl", { class: "annotations" },
      annotations.map((k) => [el("dt", {}, k), el("dd", {}, linkify(alert.annotations[k]))])) : null,
    el("div", { class: "actions" },
      el("a", { class: "button small", href: silenceUrl, "aria-label": `New silence for alert ${name}` }, "Silence"),
      el("a", { class: "button small secondary", href: whyUrl, "aria-label": `Why: explain alert ${name}` }, "Why"),
      source ? el("a", { class: "button small secondary", href: source, rel: "noopener noreferrer", target: "_blank", "aria-label": `Source of alert ${name}` }, "Source") : null,
    ),
  );
}

function sharedLabels(alerts) {
  if (!alerts.length) return {};
  const shared = { ...alerts[0].labels };
  for (const a of alerts.slice(1)) {
    for (const k of Object.keys(shared)) if (a.labels[k] !== shared[k]) delete shared[k];
  }
  return shared;
}

// A group: its title, then the labels all its alerts share (the route's group labels at
// least), shown once; each alert then lists only its own labels.
function groupCard(title, groupLabels, alerts, onPick) {
  const shared = { ...(alerts.length > 1 ? sharedLabels(alerts) : {}), ...groupLabels };
  return el("section", { class: "card group", "aria-label": `Group ${title} ${labelsToMatchers(groupLabels)}` },
    el("header", {},
      el("span", { class: "receiver" }, title),
      el("span", { class: "meta" }, alerts.length === 1 ? "1 alert" : alerts.length + " alerts"),
      el("div", { class: "labels" }, Object.keys(shared).sort().map((k) => labelChip(k, shared[k], onPick))),
    ),
    alerts.map((a) => alertCard(a, shared, onPick)),
  );
}

function initAlerts() {
  const input = $("alert-filter");
  const grouping = $("alert-grouping");
  const params = new URLSearchParams(location.search);
  input.value = params.get("filter") || "";
  let knownLabels = new Map();
  let timer = null;

  function query() {
    const q = new URLSearchParams();
    for (const m of splitMatchers(input.value)) q.append("filter", m);
    q.set("silenced", $("show-silenced").checked);
    q.set("inhibited", $("show-inhibited").checked);
    return q;
  }

  function pick(matcher) {
    const parts = splitMatchers(input.value);
    if (!parts.includes(matcher)) parts.push(matcher);
    input.value = "{" + parts.join(", ") + "}";
    load();
  }

  function updateCompletions(alerts) {
    knownLabels = new Map();
    for (const a of alerts) {
      for (const [k, v] of Object.entries(a.labels)) {
        if (!knownLabels.has(k)) knownLabels.set(k, new Set());
        knownLabels.get(k).add(v);
      }
    }
    const current = grouping.value;
    for (const opt of [...grouping.options]) if (!opt.value.startsWith("@")) opt.remove();
    for (const k of [...knownLabels.keys()].sort()) {
      grouping.append(el("option", { value: k, selected: k === current }, "Label: " + k));
    }
    complete();
  }

  // Completion: label names until an operator is typed, then that label's values.
  function complete() {
    const list = $("alert-filter-completions");
    list.replaceChildren();
    const text = input.value;
    const cut = Math.max(text.lastIndexOf(","), text.lastIndexOf("{"));
    const head = text.slice(0, cut + 1);
    const word = text.slice(cut + 1).trimStart();
    const sep = head && !head.endsWith("{") ? " " : "";
    const m = /^([^\s=!~"]+)\s*(=~|!~|!=|=)/.exec(word);
    if (m && knownLabels.has(m[1])) {
      for (const v of [...knownLabels.get(m[1])].sort()) {
        list.append(el("option", { value: head + sep + m[1] + m[2] + JSON.stringify(v) }));
      }
    } else {
      for (const k of [...knownLabels.keys()].sort()) {
        if (k.startsWith(word)) list.append(el("option", { value: head + sep + k + "=" }));
      }
    }
  }

  async function load() {
    const q = query();
    const url = new URL(location.href);
    if (input.value) url.searchParams.set("filter", input.value); else url.searchParams.delete("filter");
    history.replaceState(null, "", url);
    const box = $("alert-groups");
    try {
      const [listed, grouped, mutedList] = await Promise.all([
        api("/api/v2/alerts?" + q),
        grouping.value === "@route" ? api("/api/v2/alerts/groups?" + q) : Promise.resolve(null),
        api("/api/v1/muted"),
      ]);
      showError(null);
      // Muting by time intervals is not in Alertmanager's alert status: marked here.
      const muted = new Set(mutedList.fingerprints);
      const keep = (list) => list
        .map((a) => ({ ...a, muted: muted.has(a.fingerprint) }))
        .filter((a) => $("show-muted").checked || !a.muted);
      const alerts = keep(listed);
      const groups = grouped && grouped
        .map((g) => ({ ...g, alerts: keep(g.alerts) }))
        .filter((g) => g.alerts.length);
      updateCompletions(alerts);
      const cards = [];
      if (groups) {
        for (const g of groups) {
          cards.push(groupCard(g.receiver.name, g.labels, g.alerts, pick));
        }
      } else if (grouping.value === "@none") {
        if (alerts.length) cards.push(groupCard("All alerts", {}, alerts, pick));
      } else {
        const by = new Map();
        for (const a of alerts) {
          const key = a.labels[grouping.value] ?? "";
          if (!by.has(key)) by.set(key, []);
          by.get(key).push(a);
        }
        for (const key of [...by.keys()].sort()) {
          cards.push(groupCard(grouping.value, { [grouping.value]: key }, by.get(key), pick));
        }
      }
      box.replaceChildren(...(cards.length ? cards : [el("p", { class: "empty" }, "No alerts match.")]));
      $("alerts-summary").textContent =
        `${alerts.length} alert${alerts.length === 1 ? "" : "s"}, ${cards.length} group${cards.length === 1 ? "" : "s"} · updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      showError("Could not load alerts: " + err.message);
    }
  }

  function schedule() {
    clearInterval(timer);
    if ($("live-refresh").checked) {
      timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
    }
  }

  $("alert-filter-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  input.addEventListener("input", complete);
  grouping.addEventListener("change", load);
  $("show-silenced").addEventListener("change", load);
  $("show-inhibited").addEventListener("change", load);
  $("show-muted").addEventListener("change", load);
  $("live-refresh").addEventListener("change", schedule);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) load(); });
  load();
  schedule();
}

// --- silences -------------------------------------------------------------------------------

function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function initSilences() {
  const params = new URLSearchParams(location.search);
  let state = params.get("state") || "active";
  let silences = [];
  const form = $("silence-form");
  const matchersInput = $("silence-matchers");
  $("silence-creator").value = localStorage.getItem("tocsin.creator") || "";

  function openEditor(title, silence, matchers) {
    $("silence-editor").hidden = false;
    $("editor-title").textContent = title;
    $("silence-id").value = silence && title === "Edit silence" ? silence.id : "";
    const start = new Date();
    let end = new Date(start.getTime() + 2 * 3600 * 1000);
    if (silence && title === "Edit silence") {
      start.setTime(Date.parse(silence.startsAt));
      end = new Date(silence.endsAt);
    }
    $("silence-start").value = toLocalInput(start);
    $("silence-end").value = toLocalInput(end);
    // The inputs hold whole minutes; an edit that leaves a time alone must send it back
    // unchanged, or Alertmanager's rules turn the update into a new silence.
    form.dataset.originalStart = silence && title === "Edit silence" ? silence.startsAt : "";
    form.dataset.originalEnd = silence && title === "Edit silence" ? silence.endsAt : "";
    matchersInput.value = matchers || (silence ? "{" + silence.matchers.map((m) => matcherText(fromApiMatcher(m))).join(", ") + "}" : "");
    $("silence-comment").value = silence ? silence.comment : "";
    if (silence && title === "Edit silence") $("silence-creator").value = silence.createdBy;
    preview();
    matchersInput.focus();
  }

  const preview = debounce(async () => {
    const list = $("silence-preview");
    const summary = $("silence-preview-summary");
    let parts;
    try {
      parts = splitMatchers(matchersInput.value).map(parseMatcher);
    } catch (err) {
      summary.textContent = err.message;
      list.replaceChildren();
      return;
    }
    if (!parts.length) {
      summary.textContent = "Enter matchers to see which alerts they catch.";
      list.replaceChildren();
      return;
    }
    const q = new URLSearchParams();
    for (const m of parts) q.append("filter", matcherText(m));
    try {
      const alerts = await api("/api/v2/alerts?" + q);
      summary.textContent = alerts.length === 1 ? "1 alert matches now." : `${alerts.length} alerts match now.`;
      list.replaceChildren(...alerts.slice(0, 100).map((a) =>
        el("li", { class: "labels" }, Object.keys(a.labels).sort().map((k) => labelChip(k, a.labels[k])))));
    } catch (err) {
      summary.textContent = "Preview failed: " + err.message;
      list.replaceChildren();
    }
  }, 250);

  function keptOrNew(inputValue, original) {
    if (original && toLocalInput(new Date(original)) === inputValue) return original;
    return new Date(inputValue).toISOString();
  }

  async function save(ev) {
    ev.preventDefault();
    let matchers;
    try {
      matchers = splitMatchers(matchersInput.value).map(parseMatcher).map(apiMatcher);
    } catch (err) {
      showError(err.message);
      return;
    }
    const body = {
      matchers,
      startsAt: keptOrNew($("silence-start").value, form.dataset.originalStart),
      endsAt: keptOrNew($("silence-end").value, form.dataset.originalEnd),
      createdBy: $("silence-creator").value,
      comment: $("silence-comment").value,
    };
    if ($("silence-id").value) body.id = $("silence-id").value;
    localStorage.setItem("tocsin.creator", body.createdBy);
    try {
      await api("/api/v2/silences", { json: body });
      showError(null);
      $("silence-editor").hidden = true;
      history.replaceState(null, "", location.pathname);
      await load();
    } catch (err) {
      showError("Could not save the silence: " + err.message);
    }
  }

  async function expire(silence) {
    try {
      await api("/api/v2/silence/" + encodeURIComponent(silence.id), { method: "DELETE" });
      showError(null);
      await load();
    } catch (err) {
      showError("Could not expire the silence: " + err.message);
    }
  }

  function silenceCard(s) {
    const st = s.status.state;
    const text = "{" + s.matchers.map((m) => matcherText(fromApiMatcher(m))).join(", ") + "}";
    return el("article", { class: "card silence", "data-id": s.id, "aria-label": `Silence ${text}` },
      el("div", { class: "head" },
        el("span", { class: "state " + st }, st), " ",
        el("span", { class: "labels" }, s.matchers.map((m) => el("span", { class: "label-chip" }, matcherText(fromApiMatcher(m))))),
      ),
      el("div", {}, s.comment),
      el("div", { class: "who" },
        `by ${s.createdBy} · ${st === "expired" ? "ended" : st === "pending" ? "starts" : "ends"} `,
        el("time", { datetime: st === "pending" ? s.startsAt : s.endsAt, title: localTime(st === "pending" ? s.startsAt : s.endsAt) },
          st === "expired" ? since(s.endsAt) : localTime(st === "pending" ? s.startsAt : s.endsAt)),
        ` · id ${s.id}`),
      el("div", { class: "actions" },
        st !== "expired" ? el("button", { type: "button", class: "small secondary", "aria-label": "Edit", onclick: () => openEditor("Edit silence", s) }, "Edit") : null,
        st !== "expired" ? el("button", { type: "button", class: "small danger", "aria-label": "Expire", onclick: () => expire(s) }, "Expire") : null,
        st === "expired" ? el("button", { type: "button", class: "small secondary", "aria-label": "Recreate", onclick: () => openEditor("Recreate silence", s) }, "Recreate") : null,
        el("a", { href: `${PREFIX}/?filter=${encodeURIComponent(text)}`, "aria-label": "Show matching alerts" }, "Alerts"),
      ),
    );
  }

  function render() {
    for (const tab of document.querySelectorAll("[role=tab]")) {
      const n = silences.filter((s) => s.status.state === tab.dataset.state).length;
      tab.textContent = `${tab.dataset.state[0].toUpperCase()}${tab.dataset.state.slice(1)} (${n})`;
      tab.setAttribute("aria-selected", String(tab.dataset.state === state));
    }
    $("silence-list").setAttribute("aria-labelledby", "tab-" + state);
    const shown = silences.filter((s) => s.status.state === state);
    $("silence-list").replaceChildren(...(shown.length ? shown.map(silenceCard) : [el("p", { class: "empty" }, `No ${state} silences.`)]));
  }

  async function load() {
    try {
      silences = await api("/api/v2/silences");
      silences.sort((a, b) => Date.parse(b.updatedAt) - Date.parse(a.updatedAt));
      showError(null);
      render();
    } catch (err) {
      showError("Could not load silences: " + err.message);
    }
  }

  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => { state = tab.dataset.state; render(); });
    tab.addEventListener("keydown", (ev) => {
      const tabs = [...document.querySelectorAll("[role=tab]")];
      const i = tabs.indexOf(tab);
      const next = ev.key === "ArrowRight" ? tabs[(i + 1) % tabs.length] : ev.key === "ArrowLeft" ? tabs[(i + tabs.length - 1) % tabs.length] : null;
      if (next) { next.focus(); next.click(); }
    });
  }
  for (const chip of document.querySelectorAll("[data-duration]")) {
    chip.addEventListener("click", () => {
      const start = new Date($("silence-start").value || Date.now());
      $("silence-end").value = toLocalInput(new Date(start.getTime() + Number(chip.dataset.duration) * 1000));
    });
  }
  $("new-silence").addEventListener("click", () => openEditor("New silence", null, ""));
  $("cancel-silence").addEventListener("click", () => { $("silence-editor").hidden = true; });
  matchersInput.addEventListener("input", preview);
  form.addEventListener("submit", save);
  load().then(() => {
    if (params.get("filter")) openEditor("New silence", null, params.get("filter"));
    const edit = silences.find((s) => s.id === params.get("edit"));
    if (edit) openEditor("Edit silence", edit);
  });
  setInterval(() => { if (!document.hidden && $("silence-editor").hidden) load(); }, REFRESH_MS);
}

// --- why --------------------------------------------------------------------------------------

function routeNodeBox(node, extra) {
  const matchers = node.matchers.length ? node.matchers.join(", ") : "default route";
  return el("div", { class: "node " + (extra || ""), "data-route": node.id },
    el("span", {}, el("code", {}, matchers), node.continue ? el("span", { class: "badge" }, "continue") : null),
    el("span", {}, "receiver: ", el("span", { class: "receiver" }, node.receiver)),
    el("span", { class: "timers" },
      `group_by: [${node.groupBy.join(", ")}] · wait ${node.groupWait} · interval ${node.groupInterval} · repeat ${node.repeatInterval}`,
      node.muteTimeIntervals.length ? ` · muted during ${node.muteTimeIntervals.join(", ")}` : "",
      node.activeTimeIntervals.length ? ` · active during ${node.activeTimeIntervals.join(", ")}` : ""),
  );
}

// NOTIFY_REASON_FIRST_NOTIFICATION -> "first notification"
function reasonText(reason) {
  return reason ? reason.replace(/^NOTIFY_REASON_/, "").replaceAll("_", " ").toLowerCase() : "—";
}

function historyRows(items) {
  return items.map((r) => el("tr", {},
    el("td", {}, el("time", { datetime: r.time, title: r.time }, localTime(r.time))),
    el("td", {}, r.receiver),
    el("td", {}, `${r.integration.name}[${r.integration.index}]`),
    el("td", {}, el("code", {}, labelsToMatchers(r.groupLabels))),
    el("td", {}, el("span", { class: "state " + r.status }, r.status)),
    el("td", {}, reasonText(r.reason)),
    el("td", {}, el("span", { class: "state " + r.outcome }, r.outcome),
      r.error ? el("span", { class: "error-text" }, r.error) : null,
      r.attempts > 1 ? el("span", { class: "meta" }, ` ${r.attempts} attempts`) : null),
    el("td", {}, String(r.alerts.length)),
  ));
}

function historyTable(items) {
  return el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {}, ["Time", "Receiver", "Integration", "Group", "Status", "Reason", "Outcome", "Alerts"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, historyRows(items))));
}

function initWhy() {
  const input = $("why-query");
  const params = new URLSearchParams(location.search);
  input.value = params.get("fingerprint") || params.get("filter") || "";

  async function load() {
    const value = input.value.trim();
    if (!value) return;
    const q = new URLSearchParams();
    if (/^[0-9a-fA-F]{1,16}$/.test(value)) q.set("fingerprint", value);
    else for (const m of splitMatchers(value)) q.append("filter", m);
    history.replaceState(null, "", "?" + (q.has("fingerprint") ? q : new URLSearchParams({ filter: value })));
    const box = $("why-result");
    try {
      const why = await api("/api/v1/why?" + q);
      showError(null);
      box.replaceChildren(...renderWhy(why));
    } catch (err) {
      box.replaceChildren();
      showError("Could not explain: " + err.message);
    }
  }

  function renderWhy(why) {
    const a = why.alert;
    const name = a.labels.alertname || a.fingerprint;
    const verdict = [];
    if (a.status.silencedBy.length) verdict.push("silenced");
    if (a.status.inhibitedBy.length) verdict.push("inhibited");
    const out = [];
    out.push(el("section", { class: "card", "aria-labelledby": "why-alert" },
      el("h2", { id: "why-alert" }, `Alert ${name} `, el("span", { class: "state " + a.status.state }, a.status.state)),
      el("p", {}, verdict.length
        ? `It is ${verdict.join(" and ")}: its notifications are held back.`
        : `No silence or inhibition holds it back: it goes to ${why.routes.length} route${why.routes.length === 1 ? "" : "s"}.`),
      el("div", { class: "labels" }, Object.keys(a.labels).sort().map((k) => labelChip(k, a.labels[k]))),
      el("p", { class: "meta" }, `fingerprint ${a.fingerprint} · started ${since(a.startsAt)}`),
    ));
    const routes = el("section", { class: "card", "aria-labelledby": "why-routes" }, el("h2", { id: "why-routes" }, "Routes it matched"));
    for (const r of why.routes) {
      const path = el("div", { class: "path", "aria-label": `Route path to ${r.receiver}` });
      r.path.forEach((node, i) => {
        if (i) path.append(el("span", { class: "sep", "aria-hidden": "true" }, "→"));
        path.append(routeNodeBox(node, i === r.path.length - 1 ? "matched final" : "matched"));
      });
      routes.append(el("h3", {}, "Receiver " + r.receiver), path);
      if (r.group) {
        const next = r.group.nextFlush ? new Date(r.group.nextFlush) : null;
        routes.append(el("p", {},
          `In group ${labelsToMatchers(r.group.labels)} with ${r.group.alerts} alert${r.group.alerts === 1 ? "" : "s"}. `,
          next ? (next > Date.now() ? `Next flush in ${humanDuration(next - Date.now())} (${next.toLocaleTimeString()}).` : "Flushing now.") : ""));
      } else {
        routes.append(el("p", { class: "meta" }, "Not grouped yet (the dispatcher has not taken it in)."));
      }
      if (r.mutedByTimeIntervals.length) {
        routes.append(el("p", {}, `Muted now by time interval ${r.mutedByTimeIntervals.join(", ")}: this route sends nothing until it ends.`));
      }
      if (r.outsideActiveTimeIntervals.length) {
        routes.append(el("p", {}, `Outside its active time intervals (${r.outsideActiveTimeIntervals.join(", ")}): this route sends nothing until one begins.`));
      }
    }
    out.push(routes);
    const mutes = el("section", { class: "card", "aria-labelledby": "why-mutes" }, el("h2", { id: "why-mutes" }, "Silences and inhibitions"));
    if (!why.silences.length && !why.inhibitions.length) mutes.append(el("p", {}, "No silence or inhibition mutes it."));
    for (const s of why.silences) {
      mutes.append(el("p", {}, "Silenced by ",
        el("a", { href: `${PREFIX}/ui/silences?edit=${s.id}` }, s.matchers.map((m) => matcherText(fromApiMatcher(m))).join(", ")),
        ` (${s.comment}, by ${s.createdBy}, until ${localTime(s.endsAt)})`));
    }
    for (const inh of why.inhibitions) {
      mutes.append(el("p", {}, "Inhibited by alert ",
        el("a", { href: `${PREFIX}/ui/why?fingerprint=${inh.fingerprint}` }, inh.labels ? labelsToMatchers(inh.labels) : inh.fingerprint),
        inh.rules.length ? ` through rule source ${inh.rules[0].sourceMatchers.join(", ")} → target ${inh.rules[0].targetMatchers.join(", ")}${inh.rules[0].equal.length ? " equal [" + inh.rules[0].equal.join(", ") + "]" : ""}` : ""));
    }
    out.push(mutes);
    const hist = el("section", { class: "card", "aria-labelledby": "why-history" }, el("h2", { id: "why-history" }, "Notifications of its group"));
    if (!why.historyAvailable) hist.append(el("p", { class: "meta" }, "The notification history is off or not available."));
    else if (!why.history.length) hist.append(el("p", {}, "No notification was attempted for its group yet."));
    else hist.append(historyTable(why.history));
    out.push(hist);
    return out;
  }

  $("why-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  load();
}

// --- routing tree -------------------------------------------------------------------------------

function initRoutes() {
  const input = $("route-labels");
  input.value = new URLSearchParams(location.search).get("labels") || "";

  function drawTree(node, testing) {
    const cls = testing ? (node.matched ? "matched" + (node.final ? " final" : "") : "dimmed") : "";
    return el("li", {}, routeNodeBox(node, cls),
      node.routes.length ? el("ul", {}, node.routes.map((c) => drawTree(c, testing))) : null);
  }

  async function load() {
    const labels = input.value.trim();
    const q = labels ? "?" + new URLSearchParams({ labels }) : "";
    try {
      const data = await api("/api/v1/routes" + q);
      showError(null);
      $("route-tree").replaceChildren(el("ul", { "aria-label": "Routing tree" }, drawTree(data.tree, Boolean(labels))));
      $("route-result").textContent = labels ? `These labels notify: ${data.receivers.join(", ")}` : "";
      history.replaceState(null, "", labels ? q : location.pathname);
    } catch (err) {
      showError("Could not draw the tree: " + err.message);
    }
  }
  $("route-test-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  $("route-clear").addEventListener("click", () => { input.value = ""; load(); });
  load();
}

// --- status -----------------------------------------------------------------------------------------

function facts(pairs) {
  return pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]);
}

function initStatus() {
  async function load() {
    try {
      const st = await api("/api/v2/status");
      showError(null);
      const v = st.versionInfo;
      const built = [v.buildDate, v.buildUser && "by " + v.buildUser].filter(Boolean).join(" ");
      $("status-version").replaceChildren(...facts([["Version", v.version], ["Revision", v.revision || "—"], ["Branch", v.branch || "—"], ["Built", built || "—"], ["Runtime", v.goVersion]]).flat());
      const runtime = [["Up since", localTime(st.uptime)], ["Uptime", humanDuration(Date.now() - Date.parse(st.uptime))]];
      try {
        const metrics = await (await fetch(PREFIX + "/metrics", { headers: authHeaders() })).text();
        const value = (name) => {
          const m = new RegExp("^" + name + "(?:\\{[^}]*\\})? (\\S+)$", "m").exec(metrics);
          return m ? Number(m[1]) : null;
        };
        const ok = value("alertmanager_config_last_reload_successful");
        const at = value("alertmanager_config_last_reload_success_timestamp_seconds");
        if (ok !== null) runtime.push(["Last reload", ok === 1 ? "succeeded" : "FAILED (the previous config is still in use)"]);
        if (at) runtime.push(["Last good load", new Date(at * 1000).toLocaleString()]);
      } catch { /* metrics are optional here */ }
      $("status-runtime").replaceChildren(...facts(runtime).flat());
      const c = st.cluster;
      const peers = c.peers || [];
      const parts = [el("dl", {}, facts([["Status", c.status], ["Name", c.name || "—"], ["Peers", String(peers.length)]]).flat())];
      if (peers.length) {
        parts.push(el("div", { class: "table-wrap" }, el("table", {},
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Peer"), el("th", { scope: "col" }, "Address"))),
          el("tbody", {}, peers.map((p) => el("tr", {}, el("td", {}, p.name), el("td", {}, p.address)))))));
      }
      $("status-cluster").replaceChildren(...parts);
      $("status-config").textContent = st.config.original;
    } catch (err) {
      showError("Could not load the status: " + err.message);
    }
  }
  load();
}

// --- history -------------------------------------------------------------------------------------------

const OUTCOME_ORDER = ["sent", "failed", "suppressed"];
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];

// Stacked bars of attempts per time bucket, one colour per receiver and outcome.
function historyChart(items) {
  if (!items.length) return el("p", { class: "empty" }, "No notifications in this range.");
  const times = items.map((r) => Date.parse(r.time));
  const lo = Math.min(...times);
  const hi = Math.max(...times);
  const buckets = 24;
  const span = Math.max(hi - lo, 60000);
  const width = span / buckets;
  const seriesKeys = [...new Set(items.map((r) => `${r.receiver} · ${r.outcome}`))].sort((a, b) => {
    const [ra, oa] = a.split(" · ");
    const [rb, ob] = b.split(" · ");
    return ra === rb ? OUTCOME_ORDER.indexOf(oa) - OUTCOME_ORDER.indexOf(ob) : ra < rb ? -1 : 1;
  });
  const counts = Array.from({ length: buckets }, () => new Map());
  for (const r of items) {
    const i = Math.min(buckets - 1, Math.floor((Date.parse(r.time) - lo) / width));
    const key = `${r.receiver} · ${r.outcome}`;
    counts[i].set(key, (counts[i].get(key) || 0) + 1);
  }
  const max = Math.max(1, ...counts.map((m) => [...m.values()].reduce((a, b) => a + b, 0)));
  const W = 960, H = 180, left = 36, bottom = 22, top = 8;
  const plotH = H - bottom - top;
  const barW = (W - left - 8) / buckets;
  const parts = [
    svg("line", { class: "axis", x1: left, y1: H - bottom, x2: W - 4, y2: H - bottom }),
    svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: H - bottom }),
    svg("text", { x: left - 6, y: top + 10, "text-anchor": "end" }, String(max)),
    svg("text", { x: left - 6, y: H - bottom, "text-anchor": "end" }, "0"),
    svg("text", { x: left, y: H - 6 }, new Date(lo).toLocaleString()),
    svg("text", { x: W - 4, y: H - 6, "text-anchor": "end" }, new Date(lo + span).toLocaleString()),
  ];
  counts.forEach((m, i) => {
    let y = H - bottom;
    for (const key of seriesKeys) {
      const n = m.get(key) || 0;
      if (!n) continue;
      const h = (n / max) * plotH;
      y -= h;
      const color = PALETTE[seriesKeys.indexOf(key) % PALETTE.length];
      parts.push(svg("rect", { x: left + i * barW + 1, y, width: Math.max(1, barW - 2), height: h, fill: color },
        svg("title", {}, `${key}: ${n} between ${new Date(lo + i * width).toLocaleTimeString()} and ${new Date(lo + (i + 1) * width).toLocaleTimeString()}`)));
    }
  });
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Notifications over time: ${items.length} attempts in ${seriesKeys.length} series` }, parts);
  const legend = el("div", { class: "legend" }, seriesKeys.map((key, i) =>
    el("span", {}, swatch(PALETTE[i % PALETTE.length]), key)));
  return el("div", {}, chart, legend);
}

// Colours go through the CSSOM: the page's CSP forbids style attributes.
function swatch(color) {
  const node = el("span", { class: "swatch", "aria-hidden": "true" });
  node.style.background = color;
  return node;
}

function initHistory() {
  let cursor = null;
  let items = [];
  const params = new URLSearchParams(location.search);
  for (const name of ["receiver", "outcome", "status", "filter"]) {
    if (params.get(name)) $("history-" + name).value = params.get(name);
  }
  api("/api/v2/receivers").then((list) => {
    $("history-receivers").replaceChildren(...list.map((r) => el("option", { value: r.name })));
  }).catch(() => {});

  function query(limit) {
    const q = new URLSearchParams();
    for (const name of ["receiver", "outcome", "status"]) {
      const v = $("history-" + name).value.trim();
      if (v) q.set(name, v);
    }
    for (const m of splitMatchers($("history-filter").value)) q.append("filter", m);
    for (const [name, id] of [["from", "history-from"], ["to", "history-to"]]) {
      const v = $(id).value;
      if (v) q.set(name, new Date(v).toISOString());
    }
    q.set("limit", String(limit));
    return q;
  }

  // Answers can come back out of order (the page's first, unfiltered search may answer
  // after the user's own): only the latest search's answer is shown.
  let latest = 0;
  async function search(more) {
    const seq = ++latest;
    const q = query(more ? 200 : 1000);
    if (more && cursor) q.set("cursor", cursor);
    try {
      const page = await api("/api/v1/history?" + q);
      if (seq !== latest) return;
      showError(null);
      items = more ? items.concat(page.items) : page.items;
      cursor = page.next_cursor;
      const body = document.querySelector("#history-table tbody");
      body.replaceChildren(...historyRows(items));
      $("history-more").hidden = !cursor;
      $("history-summary").textContent = `${items.length} attempt${items.length === 1 ? "" : "s"}${cursor ? " (more available)" : ""}.`;
      $("history-chart").replaceChildren(historyChart(items));
      const url = new URL(location.href);
      for (const name of ["receiver", "outcome", "status", "filter"]) {
        const v = $("history-" + name).value.trim();
        if (v) url.searchParams.set(name, v); else url.searchParams.delete(name);
      }
      history.replaceState(null, "", url);
    } catch (err) {
      if (seq === latest) showError("Could not search the history: " + err.message);
    }
  }
  $("history-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(false); });
  $("history-more").addEventListener("click", () => search(true));
  search(false);
}

// --- start ------------------------------------------------------------------------------------------

setUpTenantBar();
api("/api/v2/status").then((st) => {
  $("footer-version").textContent = `tocsin ${st.versionInfo.version} · cluster ${st.cluster.status}`;
}).catch(() => {});
({ alerts: initAlerts, silences: initSilences, why: initWhy, routes: initRoutes, status: initStatus, history: initHistory })[PAGE]?.();
