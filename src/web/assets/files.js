// The files page: sign in with an upgate account, then list, search, filter, sort and page
// through your files (GET /v1/files), download through short-lived links, delete, see versions
// and upload a new one, and create, list and revoke drop links. The access token lives in this
// tab's session storage and is sent as a bearer credential; there is no cookie, so another
// site cannot make this browser act for you.
"use strict";

(() => {
  const { el, fmtBytes, fmtDate, typeName, precheck, sha256Hex, api, announce } = upgate;
  const $ = (id) => document.getElementById(id);
  const KEY = "upgate.session";
  let session = JSON.parse(sessionStorage.getItem(KEY) || "null");
  let cursors = [null];
  let page = 0;
  let versionFor = null;

  function problem(text) {
    $("problem").textContent = text;
    $("problem").classList.toggle("hidden", !text);
    if (text) announce(text);
  }

  function notice(text) {
    $("notice").textContent = text;
    $("notice").classList.toggle("hidden", !text);
    if (text) announce(text);
  }

  function save(tokens) {
    session = { access: tokens.access_token, refresh: tokens.refresh_token };
    sessionStorage.setItem(KEY, JSON.stringify(session));
  }

  function signedOut() {
    session = null;
    sessionStorage.removeItem(KEY);
    $("app").classList.add("hidden");
    $("signout").classList.add("hidden");
    $("signed-in").textContent = "";
    $("signin").classList.remove("hidden");
  }

  /** A call with the access token, refreshed once when it ran out. */
  async function call(path, opts = {}) {
    if (!session) throw new upgate.ApiError(401, "Unauthorized", "Please sign in.");
    try {
      return await api(path, Object.assign({}, opts, { token: session.access }));
    } catch (e) {
      if (e.status !== 401 || !session.refresh) throw e;
      try {
        save(await api("/v1/auth/refresh", { method: "POST", body: { refresh_token: session.refresh } }));
      } catch (r) {
        signedOut();
        throw new upgate.ApiError(401, "Unauthorized", "Your session ended; please sign in again.");
      }
      return api(path, Object.assign({}, opts, { token: session.access }));
    }
  }

  function query() {
    const text = $("text").value.trim();
    if (text) {
      // A search of the files' contents: ranked, and on its own (GET /v1/files?q=).
      const p = new URLSearchParams({ limit: "20", q: text });
      if (cursors[page]) p.set("cursor", cursors[page]);
      return p;
    }
    const p = new URLSearchParams({ limit: "20", status: "complete" });
    const q = $("q").value.trim();
    if (q) p.set("filename", q);
    if ($("type").value) p.set("content_type", $("type").value);
    if ($("from").value) p.set("created_after", new Date(`${$("from").value}T00:00:00`).toISOString());
    if ($("to").value) p.set("created_before", new Date(`${$("to").value}T23:59:59.999`).toISOString());
    if (cursors[page]) p.set("cursor", cursors[page]);
    return p;
  }

  function sorted(files) {
    if ($("text").value.trim()) return files; // best match first, as ranked
    const by = $("sort").value;
    const copy = [...files];
    if (by === "old") copy.reverse();
    if (by === "name") copy.sort((a, b) => a.filename.localeCompare(b.filename));
    if (by === "size") copy.sort((a, b) => (b.size || 0) - (a.size || 0));
    return copy;
  }

  async function download(id, versionId) {
    const body = versionId ? { version_id: versionId } : {};
    const r = await call(`/v1/files/${id}/download-url`, { method: "POST", body });
    const a = el("a", { href: r.url, download: "", class: "hidden" });
    document.body.append(a);
    a.click();
    a.remove();
  }

  async function showVersions(f, row) {
    const next = row.nextElementSibling;
    if (next && next.classList.contains("versions")) { next.remove(); return; }
    const r = await call(`/v1/files/${f.file_id}/versions`);
    const list = el("ul", {}, r.versions.map((v) => el("li", {},
      `${fmtDate(v.created_at)} · ${fmtBytes(v.size)}${v.current ? " · current" : ""} `,
      el("button", { type: "button", class: "secondary", onclick: () => download(f.file_id, v.version_id).catch((e) => problem(e.message)) }, "Download"))));
    const tr = el("tr", { class: "versions" }, el("td", { colspan: 7 }, el("strong", {}, `Versions of ${f.filename}`), list));
    row.after(tr);
  }

  async function uploadVersion(f, file) {
    const check = await precheck(file, { allowed_types: [] });
    if (check.error) return problem(`${file.name}: ${check.error}`);
    if (check.type !== f.content_type) return problem(`A new version must be a ${typeName(f.content_type)} like the first.`);
    notice(`Uploading ${file.name} as a new version of ${f.filename}…`);
    const sha = await sha256Hex(file);
    const link = await call(`/v1/files/${f.file_id}/versions`, {
      method: "POST",
      body: { filename: file.name, content_type: check.type, size: file.size, sha256: sha },
    });
    const headers = Object.assign({}, link.headers);
    delete headers["Content-Length"];
    const resp = await fetch(link.url, { method: "PUT", headers, body: file, credentials: "omit" });
    if (!resp.ok) throw await upgate.readError(resp);
    notice(`${f.filename}: new version stored (SHA-256 ${sha}).`);
    await load();
  }

  // The passage a text search found, its matched words marked; text nodes only, never markup.
  function snippet(parts) {
    if (!parts || !parts.length) return "";
    return el("p", { class: "snippet muted" }, parts.map((s) => (s.match ? el("mark", {}, s.text) : s.text)));
  }

  function fileRow(f) {
    const tr = el("tr", { "data-file-id": f.file_id });
    const act = (label, fn, cls) => el("button", { type: "button", class: cls || "secondary", onclick: () => fn().catch((e) => problem(e.message)) }, label);
    tr.append(
      el("td", { "data-label": "Name" }, el("span", { class: "file-name" }, f.filename), snippet(f.snippet)),
      el("td", { "data-label": "Type" }, typeName(f.content_type)),
      el("td", { "data-label": "Size", class: "num" }, fmtBytes(f.size)),
      el("td", { "data-label": "Uploaded" }, fmtDate(f.created_at)),
      el("td", { "data-label": "Versions" }, String(f.versions)),
      el("td", { "data-label": "Kept until", class: "kept" }, f.legal_hold ? "On legal hold" : (f.expires_at ? fmtDate(f.expires_at) : "–")),
      el("td", { "data-label": "Actions" }, el("div", { class: "actions" },
        act("Download", () => download(f.file_id)),
        act("Versions", () => showVersions(f, tr)),
        act("New version", async () => { versionFor = f; $("version-picker").click(); }),
        act(f.legal_hold ? "Release hold" : "Hold", async () => {
          await call(`/v1/files/${f.file_id}`, { method: "PATCH", body: { legal_hold: !f.legal_hold } });
          notice(f.legal_hold ? `${f.filename}: legal hold released.` : `${f.filename} is on legal hold: it cannot be deleted or expire.`);
          await load();
        }),
        act("Delete", async () => {
          if (!confirm(`Delete ${f.filename}? This cannot be undone.`)) return;
          await call(`/v1/files/${f.file_id}`, { method: "DELETE" });
          notice(`${f.filename} was deleted.`);
          await load();
        }, "danger"))));
    return tr;
  }

  async function load() {
    problem("");
    const r = await call(`/v1/files?${query()}`);
    const rows = sorted(r.files).map(fileRow);
    $("rows").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7 }, "No files match."))]));
    cursors[page + 1] = r.next_cursor || null;
    $("prev").disabled = page === 0;
    $("next").disabled = !r.next_cursor;
    $("count").textContent = `Page ${page + 1} · ${r.files.length} file${r.files.length === 1 ? "" : "s"}`;
  }

  const STATUS_WORDS = { active: "Active", expired: "Expired", revoked: "Revoked", exhausted: "Used up" };

  async function loadLinks() {
    const r = await call("/v1/upload-tokens");
    const rows = r.tokens.map((t) => el("tr", { "data-token-id": t.token_id },
      el("td", { "data-label": "Created" }, fmtDate(t.created_at)),
      el("td", { "data-label": "From / note" }, t.requester, t.note ? el("div", { class: "muted" }, t.note) : null),
      el("td", { "data-label": "Used" }, `${t.uploads_used} of ${t.max_uploads} files · ${fmtBytes(t.bytes_used)}`),
      el("td", { "data-label": "Until" }, fmtDate(t.expires_at)),
      el("td", { "data-label": "Status", class: "link-status" }, STATUS_WORDS[t.status] || t.status),
      el("td", { "data-label": "Actions" }, t.status === "active"
        ? el("button", { type: "button", class: "danger", onclick: async () => {
          try {
            await call(`/v1/upload-tokens/${t.token_id}`, { method: "DELETE" });
            notice("The drop link was revoked: it no longer accepts files.");
            await loadLinks();
          } catch (e) { problem(e.message); }
        } }, "Revoke")
        : "–")));
    $("links").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6 }, "No drop links yet."))]));
  }

  async function createLink(e) {
    e.preventDefault();
    const mb = (id) => Math.round(Number($(id).value) * 1000 * 1000);
    const types = [...document.querySelectorAll("input[name=l-type]:checked")].map((c) => c.value);
    if (!types.length) return problem("Choose at least one accepted type.");
    try {
      const r = await call("/v1/upload-tokens", {
        method: "POST",
        body: {
          client_id: "drop-link",
          requester: $("l-requester").value,
          note: $("l-note").value,
          max_uploads: Number($("l-files").value),
          max_file_bytes: mb("l-size"),
          max_bytes: mb("l-total"),
          expires_in: Math.round(Number($("l-hours").value) * 3600),
          allowed_types: types,
        },
      });
      $("link-url").value = r.drop_url || r.token;
      $("link-made").classList.remove("hidden");
      announce("Drop link created");
      await loadLinks();
    } catch (err) { problem(err.message); }
  }

  async function enter() {
    $("signin").classList.add("hidden");
    $("app").classList.remove("hidden");
    $("signout").classList.remove("hidden");
    try {
      const me = await call("/v1/auth/me");
      const u = me.user || {};
      if (!$("l-requester").value) $("l-requester").value = u.name || u.email || "";
      $("signed-in").textContent = u.email || "";
      await Promise.all([load(), loadLinks()]);
    } catch (e) { problem(e.message); }
  }

  function init() {
    $("signin-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      problem("");
      try {
        const body = { email: $("email").value, password: $("password").value };
        if ($("tenant").value.trim()) body.tenant = $("tenant").value.trim();
        save(await api("/v1/auth/login", { method: "POST", body }));
        $("password").value = "";
        await enter();
      } catch (err) {
        problem(err.status === 401 ? "The e-mail or password is not right." : err.message);
      }
    });
    $("signout").addEventListener("click", async () => {
      try { await call("/v1/auth/logout", { method: "POST", body: {} }); } catch { /* signed out anyway */ }
      signedOut();
    });
    $("filters").addEventListener("submit", (e) => { e.preventDefault(); cursors = [null]; page = 0; load().catch((x) => problem(x.message)); });
    $("sort").addEventListener("change", () => load().catch((x) => problem(x.message)));
    $("prev").addEventListener("click", () => { page = Math.max(0, page - 1); load().catch((x) => problem(x.message)); });
    $("next").addEventListener("click", () => { page += 1; load().catch((x) => problem(x.message)); });
    $("version-picker").addEventListener("change", (e) => {
      const file = e.target.files[0];
      e.target.value = "";
      if (file && versionFor) uploadVersion(versionFor, file).catch((x) => problem(x.message));
    });
    $("link-form").addEventListener("submit", createLink);
    $("link-copy").addEventListener("click", async () => {
      try { await navigator.clipboard.writeText($("link-url").value); announce("Copied"); }
      catch { $("link-url").select(); }
    });
    if (session) enter(); else signedOut();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
