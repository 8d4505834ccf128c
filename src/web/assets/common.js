// upgate pages: helpers shared by the drop page and the files page. No framework, no
// innerHTML with data: every element is built with textContent, so no file name or note can
// become markup.
"use strict";

const upgate = (() => {
  /** Builds an element: el("a", {href: u, class: "x"}, "text", child, ...). */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let i = 0;
    let v = Number(n);
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    return i === 0 ? `${v} ${v === 1 ? "byte" : "bytes"}` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }

  function fmtDuration(secs) {
    if (!isFinite(secs) || secs < 0) return "–";
    secs = Math.round(secs);
    if (secs < 60) return `${secs} s`;
    const m = Math.floor(secs / 60);
    if (m < 60) return `${m} min ${secs % 60} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function fmtDate(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  const TYPE_NAMES = {
    "application/pdf": "PDF",
    "image/jpeg": "JPEG image",
    "image/png": "PNG image",
    "image/gif": "GIF image",
    "image/webp": "WebP image",
    "image/heic": "HEIC image",
    "image/avif": "AVIF image",
    "image/tiff": "TIFF image",
    "text/plain": "text",
    "text/csv": "CSV",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "Excel workbook",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PowerPoint deck",
  };
  const EXTENSIONS = {
    pdf: "application/pdf", jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png",
    gif: "image/gif", webp: "image/webp", heic: "image/heic", heif: "image/heic",
    avif: "image/avif", tif: "image/tiff", tiff: "image/tiff", txt: "text/plain", csv: "text/csv",
    docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    pptx: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  };
  const typeName = (t) => TYPE_NAMES[t] || t;
  const extensionsFor = (t) => Object.keys(EXTENSIONS).filter((e) => EXTENSIONS[e] === t);

  /** The type a file's first bytes say, or null when they say nothing we know. */
  async function sniff(file) {
    const b = new Uint8Array(await file.slice(0, 32).arrayBuffer());
    const at = (off, ...bytes) => bytes.every((x, i) => b[off + i] === x);
    const ascii = (off, s) => [...s].every((c, i) => b[off + i] === c.charCodeAt(0));
    if (ascii(0, "%PDF-")) return "application/pdf";
    if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return "image/png";
    if (at(0, 0xff, 0xd8, 0xff)) return "image/jpeg";
    if (ascii(0, "GIF87a") || ascii(0, "GIF89a")) return "image/gif";
    if (ascii(0, "RIFF") && ascii(8, "WEBP")) return "image/webp";
    if (ascii(4, "ftyp")) {
      const brand = String.fromCharCode(...b.slice(8, 12));
      if (["avif", "avis"].includes(brand)) return "image/avif";
      if (["heic", "heix", "mif1", "msf1", "heim", "heis"].includes(brand)) return "image/heic";
    }
    if (at(0, 0x49, 0x49, 0x2a, 0x00) || at(0, 0x4d, 0x4d, 0x00, 0x2a)) return "image/tiff";
    if (at(0, 0x50, 0x4b, 0x03, 0x04)) return "application/zip";
    return null;
  }

  /** Checks a file before any byte is sent; returns {type} or {error: "plain words"}. */
  async function precheck(file, policy) {
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    const byName = file.name.includes(".") ? EXTENSIONS[ext] : undefined;
    const allowed = policy.allowed_types || [];
    const names = allowed.map(typeName).join(", ");
    if (file.size === 0) return { error: "The file is empty." };
    if (policy.max_file_bytes && file.size > policy.max_file_bytes) {
      return { error: `The file is ${fmtBytes(file.size)}; at most ${fmtBytes(policy.max_file_bytes)} per file is allowed.` };
    }
    if (policy.bytes_left !== undefined && file.size > policy.bytes_left) {
      return { error: `Only ${fmtBytes(policy.bytes_left)} may still be sent with this link.` };
    }
    let sniffed = await sniff(file);
    if (sniffed === "application/zip" && byName && byName.startsWith("application/vnd.openxmlformats")) sniffed = byName;
    const textual = !sniffed && byName && byName.startsWith("text/");
    const type = sniffed || (textual ? byName : null);
    if (!type) {
      return { error: `This file's content is not one of the accepted types (${names}).` };
    }
    if (allowed.length && !allowed.includes(type)) {
      return { error: `${typeName(type)} files are not accepted here; accepted: ${names}.` };
    }
    if (byName && byName !== type) {
      return { error: `The name ends in .${ext} but the content is a ${typeName(type)}: rename it or choose the right file.` };
    }
    if (!byName) {
      return { error: `The name has no extension; a ${typeName(type)} should end in .${extensionsFor(type)[0]}.` };
    }
    return { type };
  }

  /** Hex SHA-256 of a file (Web Crypto; the page must be a secure context). */
  async function sha256Hex(file) {
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return [...new Uint8Array(digest)].map((x) => x.toString(16).padStart(2, "0")).join("");
  }

  /** An error from the gateway, with its code, in plain words. */
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const FRIENDLY = {
    Unauthorized: "The link or sign-in is not valid (any more).",
    EntityTooLarge: "The file is larger than allowed.",
    ContentTypeNotAllowed: "This type of file is not accepted.",
    ContentTypeMismatch: "The file's content does not match its type.",
    MalwareDetected: "The file was refused: it contains malware.",
    ActiveContent: "The file was refused: it contains active content (scripts).",
    SlowDown: "The service is busy; trying again shortly.",
  };

  /** The code and message of tus's one-line error text (`Code: message (request …)`), or null. */
  function tusError(text) {
    const m = /^([A-Za-z]+): (.*?)( \(request [^)]*\))?$/m.exec(text.trim());
    return m ? { code: m[1], message: m[2] } : null;
  }

  /** Reads an error answer (JSON `{error: {code, message}}`, or tus's `Code: message` text). */
  async function readError(resp) {
    const text = await resp.text().catch(() => "");
    let code = `HTTP ${resp.status}`;
    let message = text.trim() || resp.statusText;
    try {
      const j = JSON.parse(text);
      if (j && j.error) { code = j.error.code; message = j.error.message; }
    } catch {
      const t = tusError(text);
      if (t) { code = t.code; message = t.message; }
    }
    return new ApiError(resp.status, code, FRIENDLY[code] ? `${FRIENDLY[code]} (${message})` : message);
  }

  /** A JSON call to the control API with a bearer credential. */
  async function api(path, { method = "GET", token, body } = {}) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    if (!resp.ok) throw await readError(resp);
    if (resp.status === 204) return null;
    return resp.json();
  }

  /** Announces a message to screen readers (one polite live region per page). */
  function announce(text) {
    const region = document.getElementById("announce");
    if (!region) return;
    region.textContent = "";
    setTimeout(() => { region.textContent = text; }, 50);
  }

  return { el, fmtBytes, fmtDuration, fmtDate, typeName, extensionsFor, sniff, precheck, sha256Hex, api, readError, tusError, ApiError, announce };
})();
