// A small tus 1.0 client for the drop page: create (with the SHA-256 pinned in the metadata),
// PATCH in chunks with progress, pause/resume, cancel (DELETE), automatic retry with backoff,
// waiting for the network to come back, and resumption after a page reload from the upload
// URL kept in localStorage (keyed by the file's name, size, date and the link).
"use strict";

class TusUpload {
  /**
   * @param {File} file
   * @param {object} o endpoint, token, tokenId, metadata {name: value}, chunkSize,
   *   onProgress(sent, total), onStatus(text), onSuccess(url), onError(err)
   */
  constructor(file, o) {
    this.file = file;
    this.o = Object.assign({ chunkSize: 4 * 1024 * 1024, retryDelays: [1000, 2000, 4000, 8000, 15000, 30000] }, o);
    this.url = null;
    this.offset = 0;
    this.xhr = null;
    this.paused = false;
    this.cancelled = false;
    this.attempt = 0;
    this.running = false;
  }

  get storageKey() {
    const f = this.file;
    return `upgate.tus:${this.o.tokenId}:${f.name}:${f.size}:${f.lastModified}`;
  }

  /** Unfinished uploads of this link kept from an earlier visit: [{name, size, offset}]. */
  static unfinished(tokenId) {
    const out = [];
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (!k || !k.startsWith(`upgate.tus:${tokenId}:`)) continue;
      try { out.push(JSON.parse(localStorage.getItem(k))); } catch { /* ignore */ }
    }
    return out;
  }

  remember() {
    localStorage.setItem(this.storageKey, JSON.stringify({
      url: this.url, name: this.file.name, size: this.file.size, offset: this.offset, at: Date.now(),
    }));
  }

  forget() { localStorage.removeItem(this.storageKey); }

  headers(extra) {
    return Object.assign({ "Tus-Resumable": "1.0.0", Authorization: `Bearer ${this.o.token}` }, extra || {});
  }

  static b64(s) {
    return btoa(String.fromCharCode(...new TextEncoder().encode(s)));
  }

  async start() {
    if (this.running) return;
    this.running = true;
    this.paused = false;
    try {
      await this.loop();
    } finally {
      this.running = false;
    }
  }

  pause() {
    this.paused = true;
    if (this.xhr) this.xhr.abort();
    this.o.onStatus && this.o.onStatus("Paused");
  }

  resume() {
    if (!this.running && !this.cancelled) this.start();
  }

  async cancel() {
    this.cancelled = true;
    this.paused = true;
    if (this.xhr) this.xhr.abort();
    if (this.url) {
      await fetch(this.url, { method: "DELETE", headers: this.headers(), credentials: "omit" }).catch(() => {});
    }
    this.forget();
  }

  sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

  waitOnline() {
    if (navigator.onLine) return Promise.resolve();
    this.o.onStatus && this.o.onStatus("Waiting for the network…");
    return new Promise((r) => window.addEventListener("online", () => r(), { once: true }));
  }

  /** Whether an error is worth another try (network, timeouts, overload, a lock held). */
  static retryable(err) {
    return err.status === 0 || err.status === 408 || err.status === 409 || err.status === 423 ||
      err.status === 429 || err.status >= 500;
  }

  async loop() {
    while (!this.paused) {
      try {
        await this.waitOnline();
        if (!this.url) await this.locate();
        if (this.offset >= this.file.size) break;
        await this.patch();
        this.attempt = 0;
        if (this.offset >= this.file.size) break;
      } catch (err) {
        if (this.paused) return;
        if (err.status === 404 || err.status === 410) {
          // The kept upload is gone (expired or finished elsewhere): start over.
          this.forget();
          this.url = null;
          this.offset = 0;
          if (this.attempt++ < 1) continue;
        }
        if (!TusUpload.retryable(err) || this.attempt >= this.o.retryDelays.length) {
          this.o.onError && this.o.onError(err);
          return;
        }
        const delay = this.o.retryDelays[this.attempt++];
        this.o.onStatus && this.o.onStatus(`Connection problem; retrying in ${Math.round(delay / 1000)} s`);
        await this.sleep(delay);
        // After a failure the server's offset is the truth.
        if (this.url) await this.head().catch(() => {});
      }
    }
    if (!this.paused && this.offset >= this.file.size) {
      this.forget();
      this.o.onSuccess && this.o.onSuccess(this.url);
    }
  }

  /** Finds the upload kept from an earlier visit, or creates one. */
  async locate() {
    const kept = localStorage.getItem(this.storageKey);
    if (kept) {
      try {
        this.url = JSON.parse(kept).url;
        await this.head();
        this.o.onStatus && this.o.onStatus(`Resuming at ${upgate.fmtBytes(this.offset)}`);
        return;
      } catch (err) {
        if (err.status !== 404 && err.status !== 410 && err.status !== 403) throw err;
        this.forget();
        this.url = null;
        this.offset = 0;
      }
    }
    const meta = Object.entries(this.o.metadata || {})
      .map(([k, v]) => `${k} ${TusUpload.b64(String(v))}`)
      .join(",");
    const resp = await this.request("POST", this.o.endpoint, this.headers({
      "Upload-Length": String(this.file.size),
      "Upload-Metadata": meta,
    }));
    const loc = resp.getResponseHeader("Location");
    if (!loc) throw Object.assign(new Error("The server gave no upload URL."), { status: 500 });
    this.url = new URL(loc, location.href).href;
    this.offset = 0;
    this.remember();
  }

  async head() {
    const resp = await this.request("HEAD", this.url, this.headers());
    this.offset = Number(resp.getResponseHeader("Upload-Offset") || 0);
    this.o.onProgress && this.o.onProgress(this.offset, this.file.size);
  }

  async patch() {
    const end = Math.min(this.offset + this.o.chunkSize, this.file.size);
    const chunk = this.file.slice(this.offset, end);
    const base = this.offset;
    const resp = await this.request("PATCH", this.url, this.headers({
      "Upload-Offset": String(this.offset),
      "Content-Type": "application/offset+octet-stream",
    }), chunk, (loaded) => this.o.onProgress && this.o.onProgress(base + loaded, this.file.size));
    this.offset = Number(resp.getResponseHeader("Upload-Offset") || end);
    this.remember();
    this.o.onProgress && this.o.onProgress(this.offset, this.file.size);
  }

  /** One request; rejects with {status, code, message} (status 0: the network failed). */
  request(method, url, headers, body, onUpload) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open(method, url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      if (onUpload) xhr.upload.onprogress = (e) => onUpload(e.loaded);
      xhr.onload = () => {
        this.xhr = null;
        if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr);
        const text = xhr.responseText || "";
        const t = upgate.tusError(text);
        const err = new Error(t ? t.message : `HTTP ${xhr.status}`);
        err.status = xhr.status;
        err.code = t ? t.code : `HTTP ${xhr.status}`;
        reject(err);
      };
      xhr.onerror = xhr.ontimeout = xhr.onabort = () => {
        this.xhr = null;
        const err = new Error("The connection failed.");
        err.status = 0;
        err.code = "NetworkError";
        reject(err);
      };
      xhr.send(body || null);
    });
  }
}
