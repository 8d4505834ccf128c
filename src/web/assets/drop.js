// The drop page: an anonymous upload link (`/drop#<token>`). The token is read from the URL
// fragment — never sent in a request line or a Referer — and sent as a bearer credential.
"use strict";

(() => {
  const { el, fmtBytes, fmtDuration, fmtDate, typeName, precheck, sha256Hex, api, announce } = upgate;
  const $ = (id) => document.getElementById(id);
  const token = decodeURIComponent(location.hash.slice(1));
  const tokenId = (/^ugt_([^_]+)_/.exec(token) || [])[1] || "";
  let policy = null;
  const items = [];

  const REASONS = {
    expired: "This upload link has expired. Ask the sender for a new one.",
    revoked: "This upload link was withdrawn by the sender.",
    exhausted: "This upload link has been used up: no more files can be sent with it.",
  };

  function problem(text) {
    $("loading").classList.add("hidden");
    $("problem").textContent = text;
    $("problem").classList.remove("hidden");
  }

  function closeIfDone(p) {
    if (p.status === "active") return false;
    $("dropzone").classList.add("hidden");
    $("unfinished").classList.add("hidden");
    if (!p.uploads.length) $("policy").classList.add("hidden");
    problem(REASONS[p.status] || "This upload link cannot be used.");
    return true;
  }

  function showPolicy(p) {
    const filesLeft = p.max_uploads - p.uploads_used;
    const bytesLeft = p.max_bytes - p.bytes_used;
    const perFile = Math.min(p.max_file_bytes || p.bucket_max_file_bytes, p.bucket_max_file_bytes);
    policy = { allowed_types: p.allowed_types, max_file_bytes: perFile, bytes_left: bytesLeft };
    $("title").textContent = p.requester ? `Send files to ${p.requester}` : "Send files";
    if (p.note) { $("note").textContent = p.note; $("note").classList.remove("hidden"); }
    $("p-types").textContent = p.allowed_types.length ? p.allowed_types.map(typeName).join(", ") : "any";
    $("p-size").textContent = `up to ${fmtBytes(perFile)}`;
    $("p-files").textContent = `${filesLeft} of ${p.max_uploads} left`;
    $("p-total").textContent = `${fmtBytes(bytesLeft)} left of ${fmtBytes(p.max_bytes)}`;
    $("p-until").textContent = fmtDate(p.expires_at);
    const accept = p.allowed_types.flatMap((t) => upgate.extensionsFor(t).map((e) => `.${e}`));
    if (accept.length) $("picker").setAttribute("accept", [...p.allowed_types, ...accept].join(","));
  }

  async function refresh() {
    const p = await api("/v1/upload-tokens/self", { token });
    showPolicy(p);
    return p;
  }

  function overall() {
    const live = items.filter((i) => !i.refused && !i.cancelled);
    if (!live.length) return;
    const total = live.reduce((a, i) => a + i.file.size, 0);
    const sent = live.reduce((a, i) => a + i.sent, 0);
    const pct = total ? Math.floor((sent / total) * 100) : 0;
    $("overall").classList.remove("hidden");
    $("overall-bar").value = pct;
    const done = live.filter((i) => i.done).length;
    $("overall-text").textContent = `${done} of ${live.length} files done · ${fmtBytes(sent)} of ${fmtBytes(total)} (${pct}%)`;
  }

  function addItem(file) {
    const item = { file, sent: 0, done: false, refused: false, cancelled: false, samples: [], lastAnnounced: -1 };
    const bar = el("progress", { max: 100, value: 0, "aria-label": `Progress of ${file.name}` });
    const status = el("div", { class: "status", role: "status" }, "Checking…");
    const detail = el("div", { class: "status muted" });
    const pause = el("button", { type: "button", class: "secondary", disabled: true }, "Pause");
    const cancel = el("button", { type: "button", class: "danger", disabled: true }, "Cancel");
    const result = el("div");
    const actions = el("div", { class: "actions" }, pause, cancel);
    const li = el("li", {},
      el("div", { class: "file-head" }, el("span", { class: "file-name" }, file.name), el("span", { class: "muted" }, fmtBytes(file.size))),
      bar, status, detail, actions, result);
    Object.assign(item, { li, bar, status, detail, pause, cancel, actions, result });
    $("files").append(li);
    $("files-title").classList.remove("hidden");
    items.push(item);
    return item;
  }

  function setStatus(item, text, kind) {
    item.status.textContent = text;
    item.status.className = `status ${kind || ""}`;
  }

  /** A file that is finished one way or another: no more buttons. */
  function settle(item, state) {
    item.li.dataset.state = state;
    item.actions.classList.add("hidden");
    if (state !== "done") {
      item.bar.classList.add("hidden");
      item.detail.textContent = "";
    }
  }

  function progress(item, sent, total) {
    item.sent = sent;
    const now = performance.now();
    item.samples.push([now, sent]);
    while (item.samples.length > 2 && now - item.samples[0][0] > 5000) item.samples.shift();
    const [t0, b0] = item.samples[0];
    const speed = now > t0 ? ((sent - b0) / (now - t0)) * 1000 : 0;
    const pct = total ? Math.floor((sent / total) * 100) : 0;
    item.bar.value = pct;
    item.bar.setAttribute("aria-valuetext", `${pct}%`);
    setStatus(item, `Uploading: ${pct}%`);
    item.detail.textContent = speed > 0
      ? `${fmtBytes(sent)} of ${fmtBytes(total)} · ${fmtBytes(speed)}/s · ${fmtDuration((total - sent) / speed)} left`
      : `${fmtBytes(sent)} of ${fmtBytes(total)}`;
    const step = Math.floor(pct / 25);
    if (step !== item.lastAnnounced) {
      item.lastAnnounced = step;
      announce(`${item.file.name}: ${pct}% sent`);
    }
    overall();
    document.dispatchEvent(new CustomEvent("upgate:progress", { detail: { name: item.file.name, sent, total } }));
  }

  function showReceipt(item, u) {
    item.result.replaceChildren(
      el("dl", { class: "policy" },
        el("dt", {}, "Stored as"), el("dd", {}, u.filename),
        el("dt", {}, "Size"), el("dd", {}, fmtBytes(u.size)),
        el("dt", {}, "SHA-256"), el("dd", { class: "hash", "data-sha256": u.sha256 }, u.sha256),
        el("dt", {}, "Received"), el("dd", {}, fmtDate(u.completed_at))),
      u.receipt ? el("details", {}, el("summary", {}, "Signed receipt"),
        el("pre", { class: "receipt" }, JSON.stringify(u.receipt, null, 2))) : null);
  }

  async function start(file) {
    const item = addItem(file);
    const check = await precheck(file, policy);
    if (check.error) {
      item.refused = true;
      item.bar.classList.add("hidden");
      setStatus(item, `Not sent: ${check.error}`, "bad");
      settle(item, "refused");
      announce(`${file.name} was not sent: ${check.error}`);
      return;
    }
    setStatus(item, "Computing the SHA-256…");
    const sha = await sha256Hex(file);
    item.sha = sha;
    const up = new TusUpload(file, {
      endpoint: "/v1/tus/",
      token,
      tokenId,
      metadata: { filename: file.name, filetype: check.type, sha256: sha },
      onProgress: (s, t) => progress(item, s, t),
      onStatus: (t) => setStatus(item, t, "warn"),
      onSuccess: async () => {
        item.done = true;
        item.sent = file.size;
        item.bar.value = 100;
        settle(item, "done");
        setStatus(item, "Sent and checked", "ok");
        item.detail.textContent = "";
        announce(`${file.name} was sent`);
        overall();
        try {
          const p = await refresh();
          const u = p.uploads.find((x) => x.sha256 === sha);
          if (u) showReceipt(item, u);
          closeIfDone(p);
        } catch (e) { /* the upload itself succeeded */ }
      },
      onError: (err) => {
        settle(item, "failed");
        const words = err.code === "EntityTooLarge" ? "The file is larger than this link allows." : err.message;
        setStatus(item, `Failed: ${words} (${err.code})`, "bad");
        announce(`${file.name} failed: ${words}`);
      },
    });
    item.upload = up;
    item.pause.disabled = item.cancel.disabled = false;
    item.pause.addEventListener("click", () => {
      if (up.paused) { item.pause.textContent = "Pause"; setStatus(item, "Resuming…"); up.resume(); }
      else { item.pause.textContent = "Resume"; up.pause(); }
    });
    item.cancel.addEventListener("click", async () => {
      item.cancelled = true;
      item.pause.disabled = item.cancel.disabled = true;
      await up.cancel();
      settle(item, "cancelled");
      setStatus(item, "Cancelled: nothing was kept.", "warn");
      overall();
    });
    up.start();
  }

  function take(files) {
    for (const f of files) start(f);
  }

  function showUnfinished() {
    const left = TusUpload.unfinished(tokenId);
    if (!left.length) return;
    const box = $("unfinished");
    box.replaceChildren(el("strong", {}, "Unfinished uploads: "),
      left.map((u) => `${u.name} (${Math.floor((u.offset / u.size) * 100)}% sent)`).join(", "),
      ". Choose the same files again to continue where they stopped.");
    box.classList.remove("hidden");
  }

  async function init() {
    if (!/^ugt_[^_]+_[^_]+$/.test(token)) return problem("This page needs the full upload link you were sent (it ends in #ugt_…).");
    let p;
    try {
      p = await refresh();
    } catch (e) {
      return problem(e.status === 401 ? "This upload link is not valid. Check that you copied all of it." : `The link could not be checked: ${e.message}`);
    }
    $("loading").classList.add("hidden");
    $("request").classList.remove("hidden");
    for (const u of p.uploads) {
      const item = addItem({ name: u.filename, size: u.size });
      item.done = true;
      item.bar.value = 100;
      settle(item, "done");
      setStatus(item, "Sent earlier", "ok");
      showReceipt(item, u);
    }
    if (closeIfDone(p)) return;
    showUnfinished();
    const zone = $("dropzone");
    $("picker").addEventListener("change", (e) => { take([...e.target.files]); e.target.value = ""; });
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); take([...e.dataTransfer.files]); });
    // Another link pasted into the address bar changes only the fragment: start over with it.
    window.addEventListener("hashchange", () => location.reload());
    window.addEventListener("offline", () => announce("The network is gone; uploads continue when it is back."));
  }

  document.addEventListener("DOMContentLoaded", init);
})();
