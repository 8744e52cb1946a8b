// dockyard's web UI: hash routes over the search API and the distribution API.
// Everything the registry returns is put in the page as text (textContent, text nodes,
// attribute values), never parsed as HTML: there is no innerHTML anywhere in this file.
"use strict";

const PAGE_SIZE = 50;
const SEARCH = "/v2/_zot/ext/search";
const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");
const SORTS = { name: "ALPHABETIC_ASC", pushed: "UPDATE_TIME", size: "SIZE" };

const state = { auth: false, user: null, csrf: null, csrfHeader: "X-Dockyard-CSRF" };
let renderSeq = 0;

// -- DOM helpers: children that are strings become text nodes ---------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
}

// Marks a finished render (tests and the benchmark wait for it).
function rendered() {
  document.body.dataset.rendered = String(performance.now());
}

function humanSize(value) {
  let n = Number(value || 0);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function when(stamp) {
  if (!stamp) return "—";
  const d = new Date(stamp);
  return isNaN(d) ? String(stamp) : d.toLocaleString();
}

// A digest shown with 12 hex digits; activating it shows the full digest (and back).
function digestView(digest) {
  if (!digest) return el("span", { class: "muted" }, "—");
  const [algo, hex] = String(digest).split(":");
  const short = hex && hex.length > 12 ? algo + ":" + hex.slice(0, 12) : String(digest);
  const button = el("button", {
    type: "button", class: "link digest", title: String(digest),
    "aria-label": "digest " + digest + ", show in full", "aria-expanded": "false",
    "data-full": String(digest),
  }, short);
  button.addEventListener("click", () => {
    const full = button.getAttribute("aria-expanded") === "true";
    button.textContent = full ? short : String(digest);
    button.setAttribute("aria-expanded", full ? "false" : "true");
  });
  return button;
}

function platformText(p) {
  return [p && p.Os, p && p.Arch].filter(Boolean).join("/");
}

function repoHref(name) { return "#/repo/" + name; }
function imageHref(repo, ref) {
  return "#/image/" + repo + (String(ref).includes(":") ? "@" : ":") + ref;
}

// -- talking to the registry ------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (options.method && options.method !== "GET") {
    // Always sent on writes: a custom header also forces a CORS preflight on any
    // cross-site attempt, and with a session it must be the session's token.
    headers[state.csrfHeader] = state.csrf || "none";
  }
  const response = await fetch(path, Object.assign({}, options, {
    headers, credentials: "same-origin", cache: "no-store",
  }));
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try {
      const body = await response.json();
      if (body.errors && body.errors[0]) message = body.errors[0].message || message;
    } catch (e) { /* not JSON */ }
    throw new HttpError(response.status, message);
  }
  return response;
}

async function gql(query, variables) {
  const response = await api(SEARCH, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors && body.errors.length) throw new HttpError(404, body.errors[0].message);
  return body.data;
}

async function loadSession() {
  const response = await fetch("/ui/session", { credentials: "same-origin", cache: "no-store" });
  Object.assign(state, await response.json());
  renderAccount();
}

function renderAccount() {
  const nav = document.getElementById("account");
  if (!state.auth) { nav.replaceChildren(); return; }
  if (!state.user) {
    nav.replaceChildren(el("a", { href: "#/login", id: "login-link" }, "Log in"));
    return;
  }
  nav.replaceChildren(
    el("span", { id: "whoami" }, "Signed in as ", el("strong", {}, state.user)), " ",
    el("button", { type: "button", id: "logout", onclick: logout }, "Log out"),
  );
}

async function logout() {
  await api("/ui/session", { method: "DELETE" });
  Object.assign(state, { user: null, csrf: null });
  renderAccount();
  location.hash = "#/";
  route();
}

function failure(error) {
  if (error instanceof HttpError && (error.status === 401 || error.status === 403) && state.auth && !state.user) {
    return el("p", { class: "error", role: "alert" },
      "You need to log in to see this. ", el("a", { href: "#/login" }, "Log in"));
  }
  return el("p", { class: "error", role: "alert" }, String(error.message || error));
}

// -- pages --------------------------------------------------------------------------------

function parseQuery(text) {
  const params = new URLSearchParams(text || "");
  return {
    q: params.get("q") || "",
    sort: SORTS[params.get("sort")] ? params.get("sort") : "name",
    page: Math.max(1, parseInt(params.get("page") || "1", 10) || 1),
  };
}

function homeHash(opts) {
  const params = new URLSearchParams();
  if (opts.q) params.set("q", opts.q);
  if (opts.sort !== "name") params.set("sort", opts.sort);
  if (opts.page > 1) params.set("page", String(opts.page));
  const text = params.toString();
  return "#/" + (text ? "?" + text : "");
}

const HOME_QUERY = `query Home($q: String!, $page: PageInput) {
  GlobalSearch(query: $q, requestedPage: $page) {
    Page { TotalCount ItemCount }
    Repos { Name LastUpdated Size Platforms { Os Arch } NewestImage { Tag IsSigned } }
  }
}`;

function home(opts) {
  const input = el("input", {
    type: "search", id: "search", value: opts.q, placeholder: "Filter repositories",
    "aria-label": "Search repositories", autocomplete: "off",
  });
  const sort = el("select", { id: "sort", "aria-label": "Sort by" },
    el("option", { value: "name", selected: opts.sort === "name" }, "Name"),
    el("option", { value: "pushed", selected: opts.sort === "pushed" }, "Last push"),
    el("option", { value: "size", selected: opts.sort === "size" }, "Size"));
  const results = el("div", { id: "results" });
  show(el("h1", {}, "Repositories"),
    el("div", { class: "controls", role: "search" },
      el("label", {}, "Search", input), el("label", {}, "Sort by", sort)),
    results);
  let timer = null;
  const refresh = (page) => {
    const next = { q: input.value.trim(), sort: sort.value, page };
    history.replaceState(null, "", homeHash(next));
    loadRepos(next, results);
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => refresh(1), 120); });
  sort.addEventListener("change", () => refresh(1));
  loadRepos(opts, results);
}

async function loadRepos(opts, results) {
  const seq = ++renderSeq;
  try {
    const data = await gql(HOME_QUERY, {
      q: opts.q,
      page: { limit: PAGE_SIZE, offset: (opts.page - 1) * PAGE_SIZE, sortBy: opts.q && opts.sort === "name" ? "RELEVANCE" : SORTS[opts.sort] },
    });
    if (seq !== renderSeq) return;  // a newer keystroke already asked again
    const found = data.GlobalSearch;
    const total = found.Page.TotalCount;
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const rows = found.Repos.map((repo) => el("tr", { class: "repo-row" },
      el("td", {}, el("a", { href: repoHref(repo.Name), class: "repo-link" }, repo.Name),
        repo.NewestImage && repo.NewestImage.IsSigned ? [" ", el("span", { class: "badge" }, "signed")] : null),
      el("td", { class: "optional" }, repo.NewestImage ? repo.NewestImage.Tag : "—"),
      el("td", { class: "optional" }, (repo.Platforms || []).map(platformText).join(", ")),
      el("td", {}, when(repo.LastUpdated)),
      el("td", { class: "num" }, humanSize(repo.Size))));
    const table = el("div", { class: "table-wrap" }, el("table", { id: "repo-table" },
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, "Repository"), el("th", { scope: "col", class: "optional" }, "Newest tag"),
        el("th", { scope: "col", class: "optional" }, "Platforms"), el("th", { scope: "col" }, "Last push"),
        el("th", { scope: "col", class: "num" }, "Size"))),
      el("tbody", {}, rows)));
    const pager = el("nav", { class: "pager", "aria-label": "Pages" },
      el("a", { href: opts.page > 1 ? homeHash({ ...opts, page: opts.page - 1 }) : null, id: "prev",
        "aria-disabled": opts.page <= 1 ? "true" : null }, "‹ Previous"),
      el("span", { id: "page-info" }, `Page ${Math.min(opts.page, pages)} of ${pages} · ${total} repositories`),
      el("a", { href: opts.page < pages ? homeHash({ ...opts, page: opts.page + 1 }) : null, id: "next",
        "aria-disabled": opts.page >= pages ? "true" : null }, "Next ›"));
    results.replaceChildren(total ? table : el("p", { class: "muted", id: "empty" }, "No repositories match."), pager);
    rendered();
  } catch (error) {
    results.replaceChildren(failure(error));
    rendered();
  }
}

const REPO_QUERY = `query Repo($repo: String!) {
  ExpandedRepoInfo(repo: $repo) {
    Summary { Name Size LastUpdated Platforms { Os Arch } }
    Images { Tag Digest MediaType Size PushTimestamp IsSigned IsDeletable
             Manifests { Digest Platform { Os Arch } } }
  }
}`;

async function repoPage(name) {
  show(el("h1", {}, name), el("p", { class: "muted" }, "Loading…"));
  try {
    const info = (await gql(REPO_QUERY, { repo: name })).ExpandedRepoInfo;
    if (!info.Summary) {
      show(el("h1", {}, name), el("p", { class: "error", role: "alert" }, "No such repository."));
      rendered();
      return;
    }
    const images = info.Images || [];
    const rows = images.map((image) => el("tr", { class: "tag-row" },
      el("td", {}, el("a", { href: imageHref(name, image.Tag), class: "tag-link" }, image.Tag),
        image.IsSigned ? [" ", el("span", { class: "badge" }, "signed")] : null),
      el("td", {}, digestView(image.Digest)),
      el("td", { class: "num" }, humanSize(image.Size)),
      el("td", { class: "optional" }, (image.Manifests || []).map((m) => platformText(m.Platform)).filter(Boolean).join(", ")),
      el("td", {}, when(image.PushTimestamp)),
      el("td", {}, image.IsDeletable ? el("button", {
        type: "button", class: "danger delete-tag", "aria-label": "Delete tag " + image.Tag,
        onclick: () => deleteRef(name, image.Tag, "tag " + name + ":" + image.Tag, repoHref(name)),
      }, "Delete tag") : null)));
    show(el("h1", {}, name),
      el("p", { class: "muted" }, `${images.length} tags · ${humanSize(info.Summary.Size)} · last push ${when(info.Summary.LastUpdated)}`),
      el("div", { class: "table-wrap" }, el("table", { id: "tag-table" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Tag"), el("th", { scope: "col" }, "Digest"),
          el("th", { scope: "col", class: "num" }, "Size"), el("th", { scope: "col", class: "optional" }, "Platforms"),
          el("th", { scope: "col" }, "Last pushed"), el("th", { scope: "col" }, el("span", { class: "muted" }, "Actions")))),
        el("tbody", {}, rows))),
      el("p", {}, el("a", { href: "#/" }, "‹ All repositories")));
    rendered();
  } catch (error) {
    show(el("h1", {}, name), failure(error));
    rendered();
  }
}

const IMAGE_QUERY = `query Img($image: String!) {
  Image(image: $image) {
    RepoName Tag Digest MediaType Size PushTimestamp IsSigned IsDeletable ArtifactType
    Referrers { MediaType ArtifactType Size Digest Annotations { Key Value } }
    Manifests { Digest ConfigDigest Size ArtifactType Platform { Os Arch }
      Layers { Digest Size }
      History { Layer { Digest Size } HistoryDescription { Created CreatedBy Comment EmptyLayer } }
      Referrers { MediaType ArtifactType Size Digest Annotations { Key Value } } }
  }
}`;

function pullCommands(repo, ref, isArtifact) {
  const host = location.host;
  const plain = location.protocol === "http:";
  const name = `${host}/${repo}${String(ref).includes(":") ? "@" : ":"}${ref}`;
  const commands = [
    ["docker", `docker pull ${name}`],
    ["podman", `podman pull ${plain ? "--tls-verify=false " : ""}${name}`],
    ["skopeo", `skopeo copy ${plain ? "--src-tls-verify=false " : ""}docker://${name} oci:${repo.split("/").pop()}`],
    ["oras", `oras pull ${plain ? "--plain-http " : ""}${name}`],
  ];
  const grid = el("div", { class: "pull", id: "pull" });
  for (const [tool, command] of commands) {
    if (isArtifact && (tool === "docker" || tool === "podman")) continue;
    const code = el("code", { class: "pull-" + tool }, command);
    const copy = el("button", { type: "button", "aria-label": "Copy the " + tool + " command" }, "Copy");
    copy.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(command); copy.textContent = "Copied"; }
      catch (e) { const r = document.createRange(); r.selectNodeContents(code); getSelection().removeAllRanges(); getSelection().addRange(r); copy.textContent = "Selected: press Ctrl+C"; }
    });
    grid.append(el("span", {}, tool), code, copy);
  }
  return grid;
}

function referrerTable(repo, referrers, id) {
  if (!referrers || !referrers.length) return el("p", { class: "muted", id }, "Nothing refers to this image.");
  return el("div", { class: "table-wrap" }, el("table", { id },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Artifact type"), el("th", { scope: "col" }, "Digest"),
      el("th", { scope: "col", class: "num" }, "Size"), el("th", { scope: "col" }, "Annotations"))),
    el("tbody", {}, referrers.map((r) => el("tr", { class: "referrer-row" },
      el("td", { class: "mono artifact-type" },
        el("a", { href: imageHref(repo, r.Digest), class: "referrer-link" }, r.ArtifactType || r.MediaType || "—")),
      el("td", {}, digestView(r.Digest)),
      el("td", { class: "num" }, humanSize(r.Size)),
      el("td", {}, (r.Annotations || []).map((a) => el("div", { class: "annotation" }, el("span", { class: "muted" }, a.Key + ": "), a.Value))))))));
}

function keyValues(entries, id) {
  if (!entries.length) return el("p", { class: "muted", id }, "None.");
  return el("dl", { class: "kv", id }, entries.map(([k, v]) => [el("dt", {}, k), el("dd", { class: "mono" }, v)]));
}

async function imagePage(ref) {
  const at = ref.includes("@") ? ref.indexOf("@") : ref.lastIndexOf(":");
  const repo = ref.slice(0, at);
  const reference = ref.slice(at + 1);
  const title = el("h1", {}, el("a", { href: repoHref(repo) }, repo), ref.includes("@") ? "@" : ":", reference);
  show(title, el("p", { class: "muted" }, "Loading…"));
  try {
    const image = (await gql(IMAGE_QUERY, { image: ref })).Image;
    const manifestResponse = await api(`/v2/${repo}/manifests/${image.Digest}`, { headers: { Accept: MANIFEST_ACCEPT } });
    const manifestText = await manifestResponse.text();
    const parts = [title,
      el("dl", { class: "kv", id: "image-facts" },
        el("dt", {}, "Digest"), el("dd", {}, digestView(image.Digest)),
        el("dt", {}, "Media type"), el("dd", { class: "mono" }, image.MediaType || "—"),
        el("dt", {}, "Artifact type"), el("dd", { class: "mono" }, image.ArtifactType || "—"),
        el("dt", {}, "Size"), el("dd", {}, humanSize(image.Size)),
        el("dt", {}, "Pushed"), el("dd", {}, when(image.PushTimestamp)),
        el("dt", {}, "Signed"), el("dd", {}, image.IsSigned ? "yes" : "no")),
      el("h2", {}, "Pull"), pullCommands(repo, reference, !!image.ArtifactType && !/image\.config|container\.image/.test(image.ArtifactType)),
      el("h2", {}, "Referrers"), referrerTable(repo, image.Referrers, "referrers")];
    for (const m of image.Manifests || []) {
      parts.push(el("h2", {}, "Manifest ", digestView(m.Digest), platformText(m.Platform) ? " · " + platformText(m.Platform) : ""));
      parts.push(await configSection(repo, m));
      parts.push(el("h3", {}, "Layers"), el("div", { class: "table-wrap" }, el("table", { class: "layers" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "#"), el("th", { scope: "col" }, "Digest"), el("th", { scope: "col", class: "num" }, "Size"))),
        el("tbody", {}, (m.Layers || []).map((layer, i) => el("tr", { class: "layer-row" },
          el("td", {}, String(i + 1)), el("td", {}, digestView(layer.Digest)), el("td", { class: "num" }, humanSize(layer.Size))))))));
      parts.push(el("h3", {}, "History"), (m.History || []).length
        ? el("ol", { class: "history" }, m.History.map((h) => el("li", { class: "mono" },
          (h.HistoryDescription && h.HistoryDescription.CreatedBy) || (h.HistoryDescription && h.HistoryDescription.Comment) || "—",
          h.Layer ? el("span", { class: "muted" }, " · " + humanSize(h.Layer.Size)) : el("span", { class: "muted" }, " · empty layer"))))
        : el("p", { class: "muted" }, "No history recorded."));
      if ((image.Manifests || []).length > 1) parts.push(el("h3", {}, "Referrers of this platform"), referrerTable(repo, m.Referrers, null));
    }
    parts.push(el("h2", {}, "Manifest JSON"), el("pre", { id: "manifest-json" }, manifestText));
    if (image.IsDeletable) {
      parts.push(el("h2", {}, "Delete"), el("p", {},
        image.Tag ? el("button", { type: "button", class: "danger", id: "delete-tag",
          onclick: () => deleteRef(repo, image.Tag, "tag " + repo + ":" + image.Tag, repoHref(repo)) }, "Delete tag " + image.Tag) : null, " ",
        el("button", { type: "button", class: "danger", id: "delete-image",
          onclick: () => deleteRef(repo, image.Digest, "image " + repo + "@" + image.Digest + " and every tag on it", repoHref(repo)) }, "Delete image")));
    }
    show(...parts);
    rendered();
  } catch (error) {
    show(title, failure(error));
    rendered();
  }
}

async function configSection(repo, manifest) {
  if (!manifest.ConfigDigest) return el("p", { class: "muted" }, "No config.");
  let config;
  try {
    config = await (await api(`/v2/${repo}/blobs/${manifest.ConfigDigest}`)).json();
  } catch (error) {
    return el("p", { class: "muted" }, "Config not readable: " + error.message);
  }
  const inner = (config && config.config) || {};
  const env = (inner.Env || []).map((e) => { const i = String(e).indexOf("="); return [i < 0 ? e : e.slice(0, i), i < 0 ? "" : e.slice(i + 1)]; });
  const labels = Object.entries(inner.Labels || {});
  const list = (v) => (Array.isArray(v) ? JSON.stringify(v) : v ? String(v) : "—");
  return el("section", { class: "config" },
    el("h3", {}, "Config"),
    el("dl", { class: "kv" },
      el("dt", {}, "Config digest"), el("dd", {}, digestView(manifest.ConfigDigest)),
      el("dt", {}, "Entrypoint"), el("dd", { class: "mono entrypoint" }, list(inner.Entrypoint)),
      el("dt", {}, "Cmd"), el("dd", { class: "mono" }, list(inner.Cmd)),
      el("dt", {}, "Working dir"), el("dd", { class: "mono" }, inner.WorkingDir || "—"),
      el("dt", {}, "User"), el("dd", { class: "mono" }, inner.User || "—"),
      el("dt", {}, "Created"), el("dd", {}, when(config.created))),
    el("h3", {}, "Environment"), keyValues(env, "env"),
    el("h3", {}, "Labels"), keyValues(labels, "labels"));
}

async function deleteRef(repo, reference, what, after) {
  if (!window.confirm("Delete " + what + "? This cannot be undone.")) return;
  try {
    await api(`/v2/${repo}/manifests/${reference}`, { method: "DELETE" });
    location.hash = after;
    route();
  } catch (error) {
    document.getElementById("main").prepend(el("p", { class: "error", role: "alert", id: "delete-error" }, "Delete refused: " + error.message));
  }
}

function loginPage() {
  if (!state.auth) { show(el("p", {}, "This registry needs no login.")); rendered(); return; }
  const user = el("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const pass = el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const message = el("p", { role: "alert", class: "error", id: "login-error" });
  const form = el("form", { class: "login", id: "login-form" },
    el("label", { for: "username" }, "User name"), user,
    el("label", { for: "password" }, "Password"), pass,
    el("button", { type: "submit", class: "primary" }, "Log in"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = JSON.stringify({ username: user.value, password: pass.value });
    pass.value = "";  // the password lives only as long as this request
    const response = await fetch("/ui/session", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body });
    if (!response.ok) { message.textContent = "Wrong user name or password."; return; }
    Object.assign(state, await response.json());
    renderAccount();
    location.hash = "#/";
  });
  show(el("h1", {}, "Log in"), form);
  user.focus();
  rendered();
}

// -- routing --------------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const main = document.getElementById("main");
  if (hash.startsWith("/repo/")) repoPage(decodeURIComponent(hash.slice(6)));
  else if (hash.startsWith("/image/")) imagePage(decodeURIComponent(hash.slice(7)));
  else if (hash === "/login") loginPage();
  else home(parseQuery(hash.split("?")[1]));
  if (document.activeElement === document.body) main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
loadSession().then(route, route);
