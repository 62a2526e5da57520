// mmrec web page: one static page over the JSON API (/api/...), with hash-based views.
// Plain JavaScript, no build step and nothing fetched from outside the server.
"use strict";

const MODALITIES = ["frames", "audio", "speech", "text", "tags", "vtags"];
const EVENTS = [
  ["like", "Like", "Liked", "♥"],
  ["dislike", "Dislike", "Disliked", "✕"],
  ["skip", "Skip", "Skipped", "»"],
];
const PAGE = 24;
const view = document.getElementById("view");
const notice = document.getElementById("notice");
let renderSeq = 0; // a view that finishes after the user moved on must not draw
let lastUpload = null; // {name, response}: the "#/file" view after back/forward

// ---------- small helpers ----------

/** Build an element; text children become text nodes, so data is never parsed as HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "style") el.setAttribute("style", value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Item ids are relative paths: encode each segment, keep the slashes. */
const itemPath = (id) => id.split("/").map(encodeURIComponent).join("/");
const itemApi = (id, suffix = "") => `/api/items/${itemPath(id)}${suffix}`;
const itemHash = (id) => `#/item/${encodeURIComponent(id)}`;
const userApi = (user, suffix) => `/api/users/${encodeURIComponent(user)}${suffix}`;
const userHash = (user) => `#/user/${encodeURIComponent(user)}`;

function duration(seconds) {
  if (seconds === null || seconds === undefined || !(seconds > 0)) return null;
  const s = Math.round(seconds);
  const hms = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const text = hms[0] ? `${hms[0]}:${String(hms[1]).padStart(2, "0")}` : String(hms[1]);
  return `${text}:${String(hms[2]).padStart(2, "0")}`;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const label = (item) => item.title || item.path_name || item.item_id;
const fmt = (x, digits = 3) => (typeof x === "number" ? x.toFixed(digits) : "–");

function showNotice(text, kind = "error") {
  notice.textContent = text;
  notice.className = `notice ${kind}`;
  notice.hidden = !text;
  clearTimeout(showNotice.timer);
  if (text && kind !== "error") showNotice.timer = setTimeout(() => (notice.hidden = true), 4000);
}

class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.type = err.type || null;
    this.field = err.field || null;
  }
}

/** Call the JSON API; errors come back as {"error": {type, message, field}}. */
async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const key = sessionStorage.getItem("mmrec.apiKey");
  if (key && options.method && options.method !== "GET") headers["X-API-Key"] = key;
  let body = options.body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  const res = await fetch(path, { ...options, headers, body });
  const data = await res.json().catch(() => null);
  if ((res.status === 401 || res.status === 403) && !options.retried) {
    const given = window.prompt("This server needs its API key for changes:");
    if (given) {
      sessionStorage.setItem("mmrec.apiKey", given);
      return api(path, { ...options, retried: true });
    }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// Titles and kinds for lists that carry only item ids (recommendations, profile items).
const detailCache = new Map();
function itemDetail(id) {
  if (!detailCache.has(id)) {
    const p = api(itemApi(id)).catch((err) => {
      detailCache.delete(id);
      throw err;
    });
    detailCache.set(id, p);
  }
  return detailCache.get(id);
}

// ---------- pieces ----------

function thumbnail(item) {
  const glyph = { video: "▶", audio: "♪", image: "▣" }[item.kind] || "¶";
  const placeholder = () => h("span", { class: "placeholder", "aria-hidden": "true" }, glyph);
  const link = h("a", { class: `thumb thumb-${item.kind}`, href: itemHash(item.item_id), tabindex: "-1" });
  if (item.has_thumbnail === false || item.kind === "text") {
    link.append(placeholder());
  } else {
    const img = h("img", { src: itemApi(item.item_id, "/thumbnail"), alt: "", loading: "lazy" });
    img.addEventListener("error", () => img.replaceWith(placeholder()), { once: true });
    link.append(img);
  }
  return link;
}

/** Per-modality score parts: each bar is that modality's share of the positive total. */
function bars(parts, label) {
  const entries = Object.entries(parts || {})
    .filter(([, v]) => typeof v === "number" && Math.abs(v) >= 0.0005)
    .sort((a, b) => b[1] - a[1]);
  if (!entries.length) return null;
  const total = entries.reduce((sum, [, v]) => sum + Math.max(v, 0), 0) || 1;
  return h(
    "ul",
    { class: "bars", "aria-label": label },
    entries.map(([name, value]) =>
      h(
        "li",
        { class: "bar", title: `${name}: ${fmt(value)}` },
        h("span", { class: "bar-name" }, name),
        h(
          "span",
          { class: "bar-track", "aria-hidden": "true" },
          h("span", {
            class: `bar-fill m-${MODALITIES.includes(name) ? name : "other"}`,
            style: `width:${((Math.max(value, 0) / total) * 100).toFixed(1)}%`,
          }),
        ),
        h("span", { class: "bar-value" }, fmt(value, value < 0.1 && value > -0.1 ? 3 : 2)),
      ),
    ),
  );
}

function meta(item, score) {
  return h(
    "p",
    { class: "meta" },
    h("span", { class: `kind kind-${item.kind}` }, item.kind),
    duration(item.duration_s) && h("span", { class: "duration" }, duration(item.duration_s)),
    typeof score === "number" && h("span", { class: "score", title: "score" }, fmt(score)),
  );
}

function card(item, { score, contributions, extra } = {}) {
  const title = label(item);
  return h(
    "article",
    { class: "card", dataset: { itemId: item.item_id } },
    thumbnail(item),
    h(
      "div",
      { class: "card-body" },
      h("h3", { class: "title" }, h("a", { href: itemHash(item.item_id), title: item.item_id }, title)),
      meta(item, score),
      contributions && bars(contributions, `Score by modality for ${title}`),
      extra,
    ),
  );
}

function grid(cards, emptyText) {
  return cards.length ? h("div", { class: "grid" }, cards) : h("p", { class: "empty" }, emptyText);
}

/** Search hits carry no duration: fill it in from the item's details (cached) for timed media. */
function fillDuration(el, item) {
  if (item.duration_s !== undefined || !["video", "audio"].includes(item.kind)) return;
  itemDetail(item.item_id)
    .then((detail) => {
      const text = duration(detail.duration_s);
      if (text) el.querySelector(".kind").after(h("span", { class: "duration" }, text));
    })
    .catch(() => {});
}

/** The item's words that a text search matched, per field (``matched.words``), as text chips. */
function matchedWords(matched) {
  const fields = Object.entries((matched && matched.words) || {}).filter(([, words]) => words.length);
  if (!fields.length) return null;
  return h(
    "p",
    { class: "matched", title: "Words of this item that the query matched" },
    fields.map(([field, words]) =>
      h("span", { class: "matched-field" }, `${field}: `, chips(words.slice(0, 6), "chip word")),
    ),
  );
}

const hitCards = (hits) =>
  hits.map((hit) => {
    const extra = matchedWords(hit.matched);
    const el = card(hit, { score: hit.score, contributions: hit.contributions, extra });
    fillDuration(el, hit);
    return el;
  });

function chips(words, cls = "chip") {
  return h("span", { class: "chips" }, words.map((w) => h("span", { class: cls }, w)));
}

function failed(err, what) {
  return h("p", { class: "empty error" }, `${what}: ${err.message}`);
}

// ---------- views ----------

async function homeView(seq) {
  const section = h("section", { "aria-labelledby": "lib-h" }, h("h2", { id: "lib-h" }, "Library"));
  view.replaceChildren(section);
  let offset = 0;
  const more = h("button", { class: "more", type: "button" }, "More");
  const box = h("div", { class: "grid" });
  async function load() {
    more.disabled = true;
    const page = await api(`/api/items?offset=${offset}&limit=${PAGE}`);
    if (seq !== renderSeq) return;
    box.append(...page.items.map((item) => card(item)));
    offset += page.items.length;
    section.querySelector("h2").textContent = `Library · ${page.total} items`;
    more.hidden = offset >= page.total;
    more.disabled = false;
  }
  section.append(box, more);
  more.addEventListener("click", () => load().catch((e) => showNotice(e.message)));
  await load();
}

async function searchView(seq, params) {
  const q = params.get("q") || "";
  const kind = params.get("kind") || "";
  document.getElementById("q").value = q;
  document.getElementById("kind").value = kind;
  if (!q.trim()) return homeView(seq);
  view.replaceChildren(h("p", { class: "loading" }, `Searching “${q}”…`));
  const query = new URLSearchParams({ q, k: String(PAGE) });
  if (kind) query.set("kind", kind);
  const res = await api(`/api/search?${query}`);
  if (seq !== renderSeq) return;
  view.replaceChildren(
    h(
      "section",
      { "aria-labelledby": "res-h" },
      h("h2", { id: "res-h" }, `Results for “${q}”`, kind && ` · ${kind}`),
      grid(hitCards(res.results), "Nothing matched."),
    ),
  );
}

function uploadView(seq) {
  if (!lastUpload) {
    view.replaceChildren(h("p", { class: "empty" }, "Choose or drop a file to find similar items."));
    return;
  }
  view.replaceChildren(
    h(
      "section",
      { "aria-labelledby": "up-h" },
      h("h2", { id: "up-h" }, `Similar to the file “${lastUpload.name}”`),
      grid(hitCards(lastUpload.response.results), "Nothing similar found."),
    ),
  );
}

async function similarToFile(file) {
  if (!file) return;
  const seq = ++renderSeq;
  view.replaceChildren(h("p", { class: "loading" }, `Encoding “${file.name}”…`));
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const response = await api("/api/similar", { method: "POST", body: form });
    lastUpload = { name: file.name, response };
    if (location.hash !== "#/file") history.pushState(null, "", "#/file");
    if (seq === renderSeq) uploadView(seq);
  } catch (err) {
    if (seq === renderSeq) view.replaceChildren(failed(err, `Could not search with “${file.name}”`));
  }
}

function player(item) {
  const src = itemApi(item.item_id, "/media");
  const name = `${item.kind} ${label(item)}`;
  if (item.kind === "video") {
    return h("video", {
      class: "player",
      controls: true,
      preload: "metadata",
      src,
      poster: item.has_thumbnail ? itemApi(item.item_id, "/thumbnail") : null,
      "aria-label": name,
    });
  }
  if (item.kind === "audio") {
    return h(
      "div",
      { class: "player audio" },
      item.has_thumbnail && h("img", { src: itemApi(item.item_id, "/thumbnail"), alt: `Picture of ${label(item)}` }),
      h("audio", { controls: true, preload: "metadata", src, "aria-label": name }),
    );
  }
  if (item.kind === "image") return h("img", { class: "player", src, alt: label(item) });
  return null;
}

function detailRows(item) {
  const rows = [
    ["id", item.item_id],
    ["file", item.path_name],
    ["kind", item.kind],
    ["duration", duration(item.duration_s)],
    ["size", item.width && item.height ? `${item.width} × ${item.height}` : null],
    ["status", item.status],
  ];
  // visual_tags are [label, score] pairs from the frame classifier
  const visual = (item.visual_tags || []).map((t) => (Array.isArray(t) ? t[0] : t));
  return h(
    "dl",
    { class: "details" },
    rows.filter(([, v]) => v).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    item.tags && item.tags.length ? [h("dt", {}, "tags"), h("dd", {}, chips(item.tags))] : null,
    visual && visual.length ? [h("dt", {}, "visual tags"), h("dd", {}, chips(visual.slice(0, 8)))] : null,
    item.transcript ? [h("dt", {}, "transcript"), h("dd", { class: "transcript" }, item.transcript)] : null,
  );
}

function feedbackButtons(user, itemId, title, after) {
  return h(
    "div",
    { class: "feedback", role: "group", "aria-label": `Feedback on ${title}` },
    EVENTS.map(([event, text, done, glyph]) =>
      h(
        "button",
        {
          type: "button",
          class: `fb fb-${event}`,
          "aria-label": `${text} ${title}`,
          onclick: async (ev) => {
            const buttons = ev.currentTarget.parentElement.querySelectorAll("button");
            buttons.forEach((b) => (b.disabled = true));
            try {
              const res = await api("/api/events", {
                method: "POST",
                body: [{ user_id: user, item_id: itemId, event }],
              });
              if (res.errors && res.errors.length) throw new Error(res.errors[0].reason);
              showNotice(`${done} “${title}” as ${user}.`, "ok");
              await after(itemId, event);
            } catch (err) {
              showNotice(err.message);
            } finally {
              buttons.forEach((b) => (b.disabled = false));
            }
          },
        },
        h("span", { "aria-hidden": "true" }, glyph),
        ` ${text}`,
      ),
    ),
  );
}

async function itemView(seq, id) {
  view.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  const item = await api(itemApi(id));
  if (seq !== renderSeq) return;
  detailCache.set(id, Promise.resolve(item));
  const title = label(item);
  const user = localStorage.getItem("mmrec.user");
  const similarBox = h("div", {}, h("p", { class: "loading" }, "Finding similar items…"));
  view.replaceChildren(
    h(
      "article",
      { class: "item-page", "aria-labelledby": "item-h" },
      h("h2", { id: "item-h" }, title),
      h(
        "div",
        { class: "item-top" },
        h("div", { class: "media" }, player(item)),
        h(
          "div",
          { class: "about" },
          item.description && h("p", { class: "description" }, item.description),
          detailRows(item),
          item.attention && Object.keys(item.attention).length
            ? [h("h3", {}, "Attention by modality"), bars(item.attention, "Attention weight by modality")]
            : null,
          user &&
            h(
              "div",
              { class: "as-user" },
              h("p", {}, "As ", h("a", { href: userHash(user) }, user), ":"),
              feedbackButtons(user, id, title, async () => {}),
            ),
        ),
      ),
      h("section", { "aria-labelledby": "sim-h" }, h("h2", { id: "sim-h" }, "Similar items"), similarBox),
    ),
  );
  try {
    const res = await api(itemApi(id, `/similar?k=8`));
    if (seq !== renderSeq) return;
    similarBox.replaceChildren(grid(hitCards(res.results), "No similar items."));
  } catch (err) {
    similarBox.replaceChildren(failed(err, "Similar items"));
  }
}

function userForm(user) {
  const input = h("input", { id: "user-id", name: "user", value: user || "", required: true, autocomplete: "off" });
  return h(
    "form",
    {
      class: "user-form",
      onsubmit: (ev) => {
        ev.preventDefault();
        if (input.value.trim()) location.hash = userHash(input.value.trim());
      },
    },
    h("label", { for: "user-id" }, "User id"),
    input,
    h("button", { type: "submit" }, "Open"),
  );
}

function profilePanel(p) {
  const prefs = p.modality_prefs || {};
  const top = Math.max(...p.interests.map((i) => i.weight), 1e-9); // weights are not normalised
  return h(
    "section",
    { class: "profile", "aria-labelledby": "prof-h" },
    h("h2", { id: "prof-h" }, "Profile"),
    h("p", { class: "meta" }, `${p.n_events} events · ${p.seen} items seen`),
    p.description && h("p", { class: "description" }, "“", p.description, "”"),
    h("h3", {}, "Interests"),
    p.interests.length
      ? h(
          "ol",
          { class: "interests" },
          p.interests.map((i, n) =>
            h(
              "li",
              {},
              h("span", { class: "interest-no" }, `#${n + 1}`),
              h(
                "span",
                { class: "weight", title: `weight ${fmt(i.weight)}` },
                h("span", { class: "weight-fill", style: `width:${((100 * i.weight) / top).toFixed(0)}%` }),
              ),
              h("span", { class: "weight-value" }, fmt(i.weight, 2)),
              i.keywords.length ? chips(i.keywords.slice(0, 6)) : h("span", { class: "muted" }, "no keywords"),
            ),
          ),
        )
      : h("p", { class: "muted" }, "none yet"),
    Object.keys(p.keywords || {}).length
      ? [h("h3", {}, "Keywords"), chips(Object.keys(p.keywords).slice(0, 12), "chip kw")]
      : null,
    h("h3", {}, "Modality preferences"),
    bars(prefs, "Modality preferences") || h("p", { class: "muted" }, "none yet"),
    h("h3", {}, "Negatives"),
    p.negatives.length || p.disliked.length
      ? h(
          "p",
          {},
          plural(p.negatives.length, "cluster"),
          " to avoid, ",
          plural(p.disliked.length, "disliked item"),
        )
      : h("p", { class: "muted" }, "none"),
  );
}

function describeForm(user, after) {
  const text = h("textarea", { id: "describe", rows: 2, placeholder: "I love wildlife documentaries and jazz · 我喜欢野生动物" });
  return h(
    "form",
    {
      class: "describe",
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await api(userApi(user, "/description"), { method: "PUT", body: { text: text.value } });
          showNotice(`Saved ${user}'s description.`, "ok");
          await after();
        } catch (err) {
          showNotice(err.message);
        }
      },
    },
    h("label", { for: "describe" }, "Describe what you like (cold start)"),
    text,
    h("button", { type: "submit" }, "Save"),
  );
}

function reasonsList(reasons) {
  return h(
    "ul",
    { class: "reasons", "aria-label": "Why" },
    reasons.slice(0, 3).map((r) =>
      h("li", {}, h("span", { class: `reason-kind r-${r.kind}` }, r.kind), " ", r.detail),
    ),
  );
}

async function recommendationCards(user, recs, previous, refresh) {
  const items = await Promise.all(
    recs.map((r) => (r.title !== undefined && r.kind ? Promise.resolve(r) : itemDetail(r.item_id).catch(() => null))),
  );
  return recs.map((r, n) => {
    const item = { item_id: r.item_id, kind: "text", ...(items[n] || {}), ...r };
    const title = label(item);
    const el = card(item, {
      score: r.score,
      extra: [reasonsList(r.reasons || []), feedbackButtons(user, r.item_id, title, refresh)],
    });
    if (previous && !previous.has(r.item_id)) el.classList.add("new");
    return el;
  });
}

async function userView(seq, user) {
  if (user) localStorage.setItem("mmrec.user", user);
  document.getElementById("nav-user").setAttribute("href", userHash(user || ""));
  const head = h("div", { class: "user-head" }, userForm(user), user && h("h2", { class: "user-name" }, user));
  if (!user) {
    view.replaceChildren(head, h("p", { class: "empty" }, "Enter a user id to see their profile and recommendations."));
    return;
  }
  const profileBox = h("div", { class: "profile-box" });
  const recBox = h("section", { class: "recs", "aria-labelledby": "rec-h" });
  view.replaceChildren(head, h("div", { class: "user-page" }, profileBox, recBox));
  let shown = null;

  async function refresh() {
    let profile = null;
    try {
      profile = await api(userApi(user, "/profile"));
    } catch (err) {
      if (err.status !== 404) throw err;
    }
    if (seq !== renderSeq) return;
    if (!profile) {
      profileBox.replaceChildren(
        h("p", { class: "empty" }, `No profile for ${user} yet: like items, or describe what you like.`),
        describeForm(user, refresh),
      );
      recBox.replaceChildren();
      return;
    }
    profileBox.replaceChildren(profilePanel(profile), describeForm(user, refresh));
    const recs = await api(userApi(user, `/recommendations?k=12`));
    const cards = await recommendationCards(user, recs.results, shown, refresh);
    if (seq !== renderSeq) return;
    shown = new Set(recs.results.map((r) => r.item_id));
    recBox.replaceChildren(
      h("h2", { id: "rec-h" }, "Recommended for ", user),
      grid(cards, "Nothing to recommend yet."),
    );
  }
  await refresh();
}

// ---------- routing ----------

async function route() {
  const seq = ++renderSeq;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  try {
    if (parts[0] === "search") await searchView(seq, new URLSearchParams(query || ""));
    else if (parts[0] === "item" && parts[1]) await itemView(seq, decodeURIComponent(parts[1]));
    else if (parts[0] === "user") await userView(seq, parts[1] ? decodeURIComponent(parts[1]) : "");
    else if (parts[0] === "file") uploadView(seq);
    else await homeView(seq);
  } catch (err) {
    if (seq === renderSeq) view.replaceChildren(failed(err, "Could not load this view"));
  }
}

function wireSearch() {
  const form = document.getElementById("search-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = document.getElementById("q").value.trim();
    const kind = document.getElementById("kind").value;
    const params = new URLSearchParams({ q });
    if (kind) params.set("kind", kind);
    const target = `#/search?${params}`;
    if (location.hash === target) route();
    else location.hash = target;
  });
  const file = document.getElementById("file");
  file.addEventListener("change", () => {
    similarToFile(file.files[0]);
    file.value = "";
  });
  const hint = document.getElementById("drop-hint");
  let depth = 0;
  document.addEventListener("dragenter", (ev) => {
    if (!ev.dataTransfer || !ev.dataTransfer.types.includes("Files")) return;
    depth += 1;
    hint.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) hint.hidden = true;
  });
  document.addEventListener("dragover", (ev) => ev.preventDefault());
  document.addEventListener("drop", (ev) => {
    ev.preventDefault();
    depth = 0;
    hint.hidden = true;
    if (ev.dataTransfer && ev.dataTransfer.files.length) similarToFile(ev.dataTransfer.files[0]);
  });
}

async function health() {
  const el = document.getElementById("health");
  try {
    const res = await fetch("/health");
    const body = await res.json();
    if (body.error) el.textContent = `warm-up failed: ${body.error}`;
    else el.textContent = body.ready ? "server ready" : "server warming up (first queries are slower)…";
    if (!body.ready && !body.error) setTimeout(health, 2000);
  } catch {
    el.textContent = "server unreachable";
  }
}

window.addEventListener("hashchange", route);
wireSearch();
health();
const rememberedUser = localStorage.getItem("mmrec.user");
if (rememberedUser) document.getElementById("nav-user").setAttribute("href", userHash(rememberedUser));
route();
