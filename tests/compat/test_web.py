"""upgate's own pages and Uppy, driven in Debian's Chromium by Playwright (no browser download:
`executable_path` is the system browser). Screenshots of every page at desktop and phone
widths go to target/screenshots/."""
import hashlib
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
import zlib

import pytest
import requests

from conftest import ROOT, _binary, _free_port

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = os.path.join(ROOT, "target", "screenshots")
MASTER = "mk1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
PASSWORD = "a long and careful passphrase"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
JS = os.path.join(ROOT, "tests", "compat", "js", "node_modules")


def pdf_bytes(n, seed=1):
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    # Hex text: random binary outside a stream could spell a name like /JS by chance, which the
    # active-content check rightly refuses.
    body = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest().encode() for i in range(n // 64 + 1))
    return (head + body)[:n]


def png_bytes(w=48, h=32, seed=0):
    rows = b"".join(b"\x00" + bytes(((x * 5 + y * 3 + seed) % 256) for x in range(w * 3)) for y in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Web:
    def __init__(self, endpoint, config, data_dir):
        self.endpoint = endpoint
        self.config = config
        self.data_dir = data_dir

    def call(self, method, path, bearer=None, body=None):
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        r = requests.request(method, self.endpoint + path, headers=headers, json=body, timeout=30)
        return r.status_code, (r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None)

    def token(self, **policy):
        policy.setdefault("client_id", "drop-link")
        s, body = self.call("POST", "/v1/upload-tokens", self.api_key, policy)
        assert s == 201, body
        self.secrets.append(body["token"].split("_")[2])
        return body

    def files(self, bearer):
        s, body = self.call("GET", "/v1/files?status=complete", bearer)
        assert s == 200, body
        return body["files"]


def admin(config, *args, stdin=None):
    out = subprocess.run([_binary(), "admin", *args, "--config", config], input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def web():
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="upgate-web-")
    config = os.path.join(data_dir, "upgate.toml")
    with open(config, "w") as f:
        f.write(f"""
[server]
listen = "127.0.0.1:{port}"
[admin]
listen = ""
[storage]
data_dir = "{data_dir}"
[storage.encryption]
keys = "{MASTER}"
[accounts]
enabled = true
tenant = "acme"
[ratelimit.token_exchange]
principal = {{ rate = 0.0, burst = 1 }}
ip = {{ rate = 0.0, burst = 1 }}
global = {{ rate = 0.0, burst = 1 }}
[ratelimit.mint]
ip = {{ rate = 0.0, burst = 1 }}
[buckets.uploads]
cors = [{{allowed_origins = ["http://127.0.0.1:*"], allowed_methods = ["GET", "POST", "PUT", "PATCH", "HEAD", "DELETE"], allowed_headers = ["*"]}}]
""")
    tenant = admin(config, "create-tenant", "acme")
    admin(config, "create-user", tenant["tenant_id"], "alice@example.com", "--name", "Alice Example", stdin=PASSWORD + "\n")
    log_path = os.path.join(data_dir, "gateway.log")
    log = open(log_path, "wb")
    env = dict(os.environ, RUST_LOG="info")
    proc = subprocess.Popen([_binary(), "serve", "--config", config], env=env, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/healthz", timeout=1).read()
            break
        except Exception:
            if proc.poll() is not None or time.time() > deadline:
                log.close()
                pytest.fail("gateway did not start:\n" + open(log_path).read())
            time.sleep(0.1)
    w = Web(endpoint, config, data_dir)
    w.api_key = tenant["api_key"]
    w.log_path = log_path
    w.secrets = []
    w.uppy_parts = False
    s, tokens = w.call("POST", "/v1/auth/login", body={"email": "alice@example.com", "password": PASSWORD})
    assert s == 200, tokens
    w.alice = tokens["access_token"]
    yield w
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    # Neither the token secrets (the Uppy routes carry them in the path) nor the passwords
    # reach the log.
    text = open(log_path).read()
    assert PASSWORD not in text
    assert not [x for x in w.secrets if x in text]
    if w.uppy_parts:
        assert "uppy.UploadPart" in text  # the Uppy routes were logged, by operation


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def shoot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(100)
        page.screenshot(path=os.path.join(SHOTS, f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def wait_js(page, expr, timeout=30_000):
    """Polls `expr` in the page until it is truthy (the pages' CSP forbids the string eval that
    Playwright's wait_for_function uses, and the tests keep the CSP on)."""
    deadline = time.time() + timeout / 1000
    while True:
        if page.evaluate(f"() => Boolean({expr})"):
            return
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {expr}")
        time.sleep(0.1)


def write(tmp, name, data):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def new_page(browser):
    ctx = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None)
    return ctx, page, errors


def test_drop_page_refuses_in_the_browser_and_uploads_the_rest_with_receipts(web, browser, tmp_path):
    made = web.token(max_uploads=2, max_file_bytes=3_000_000, max_bytes=6_000_000,
                     allowed_types=["application/pdf", "image/png"], requester="Acme Legal",
                     note="Please send the signed contract and a photo of your ID.")
    assert made["drop_url"].endswith("/drop#" + made["token"])
    contract = pdf_bytes(1_800_000, seed=7)
    photo = png_bytes(seed=3)
    disguised = png_bytes(seed=9)  # a PNG named .pdf: refused before any byte is sent
    files = [write(tmp_path, "contract.pdf", contract), write(tmp_path, "photo.png", photo),
             write(tmp_path, "scan.pdf", disguised)]
    ctx, page, errors = new_page(browser)
    requests_seen = []
    page.on("request", lambda r: requests_seen.append((r.method, r.url, r.headers.get("upload-metadata", ""))))
    page.goto(made["drop_url"])
    page.wait_for_selector("#request:not(.hidden)")
    assert page.inner_text("#title") == "Send files to Acme Legal"
    assert "signed contract" in page.inner_text("#note")
    assert "PDF, PNG image" in page.inner_text("#p-types")
    assert "2 of 2 left" in page.inner_text("#p-files")
    shoot(page, "drop-empty")
    # Keyboard: the first Tab stop is the file picker, which is labelled.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "picker"
    assert page.evaluate("document.querySelector('label[for=picker]').textContent") == "Choose files to send"
    assert page.get_attribute("#announce", "aria-live") == "polite"
    page.evaluate("window.__progress = []; document.addEventListener('upgate:progress', e => window.__progress.push(e.detail))")
    page.set_input_files("#picker", files)
    page.wait_for_selector("li[data-state=refused]")
    wait_js(page, "document.querySelectorAll('li[data-state=done]').length === 2", 60_000)
    wait_js(page, "document.querySelectorAll('dd.hash').length === 2", 20_000)
    refused = page.inner_text("li[data-state=refused]")
    assert "scan.pdf" in refused and "content is a PNG image" in refused, refused
    shown = {e.get_attribute("data-sha256") for e in page.query_selector_all("dd.hash")}
    assert shown == {sha(contract), sha(photo)}
    # The stored objects are those bytes (the issuer's files), and nothing of the refused file
    # was sent: two creations, none naming scan.pdf.
    stored = {f["filename"]: f["sha256"] for f in web.files(web.api_key)}
    assert stored.get("contract.pdf") == sha(contract) and stored.get("photo.png") == sha(photo), stored
    creations = [r for r in requests_seen if r[0] == "POST" and "/v1/tus/" in r[1]]
    assert len(creations) == 2
    import base64
    assert not any(base64.b64encode(b"scan.pdf").decode() in r[2] for r in creations)
    # Progress events were observed for both uploads, ending at their sizes.
    progress = page.evaluate("window.__progress")
    for name, data in (("contract.pdf", contract), ("photo.png", photo)):
        mine = [p for p in progress if p["name"] == name]
        assert mine and mine[-1]["sent"] == len(data), (name, mine[-3:])
    # The token is used up: the page says so.
    page.wait_for_selector("#problem:not(.hidden)")
    assert "used up" in page.inner_text("#problem")
    assert page.query_selector("details .receipt") is not None
    # The token never appears in a request line or a Referer.
    secret = made["token"].split("_")[2]
    assert not any(secret in url for _, url, _ in requests_seen)
    shoot(page, "drop-done")
    assert not errors, errors
    ctx.close()


def test_drop_page_resumes_after_the_network_drops_and_the_page_reloads(web, browser, tmp_path):
    made = web.token(max_uploads=1, max_file_bytes=20_000_000, allowed_types=["application/pdf"])
    data = pdf_bytes(12_000_000, seed=11)
    path = write(tmp_path, "big-scan.pdf", data)
    ctx, page, errors = new_page(browser)
    seen = []
    page.on("request", lambda r: seen.append((r.method, r.url)))
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    # 0.5 MB/s up: the 4 MiB chunks take about 8 s each, so the network goes while the second is
    # on the way even on a busy machine (at 1 MB/s a late switch once let the last chunk through,
    # and the reloaded page rightly had nothing left to send).
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": 50_000_000, "uploadThroughput": 500_000})
    page.goto(made["drop_url"])
    page.wait_for_selector("#request:not(.hidden)")
    page.evaluate("window.__progress = []; document.addEventListener('upgate:progress', e => window.__progress.push(e.detail.sent))")
    started = time.time()
    page.set_input_files("#picker", [path])
    # Into the second chunk (the first is stored), then the network goes.
    wait_js(page, "window.__progress.some(s => s > 4.5 * 1024 * 1024)", 60_000)
    cdp.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    wait_js(page, "document.querySelector('li .status').textContent.match(/retrying|Waiting for the network/)", 30_000)
    shoot(page, "drop-offline")
    kept = page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('upgate.tus:'))")
    assert len(kept) == 1
    # The page is left while offline (its retries die with it), the network comes back and the
    # page is opened again: the upload resumes from the stored URL.
    page.goto("about:blank")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    seen.clear()
    page.goto(made["drop_url"])
    page.wait_for_selector("#unfinished:not(.hidden)")
    assert "big-scan.pdf" in page.inner_text("#unfinished")
    page.set_input_files("#picker", [path])
    page.wait_for_selector("li[data-state=done]", timeout=60_000)
    assert not [u for m, u in seen if m == "POST" and "/v1/tus/" in u], "resumed, not created again"
    heads = [u for m, u in seen if m == "HEAD"]
    assert heads, seen
    patches = [u for m, u in seen if m == "PATCH"]
    assert 1 <= len(patches) <= 2, patches  # only what was missing
    page.wait_for_selector("dd.hash")
    assert page.get_attribute("dd.hash", "data-sha256") == sha(data)
    stored = {f["filename"]: f["sha256"] for f in web.files(web.api_key)}
    assert stored.get("big-scan.pdf") == sha(data)
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('upgate.tus:')).length") == 0
    print(f"resume test: {time.time() - started:.1f} s")
    assert not [e for e in errors if "ERR_INTERNET_DISCONNECTED" not in e], errors
    ctx.close()


def test_drop_page_pauses_resumes_and_cancels(web, browser, tmp_path):
    made = web.token(max_uploads=2, allowed_types=["application/pdf"])
    keep = pdf_bytes(9_000_000, seed=51)
    drop = pdf_bytes(9_000_000, seed=52)
    ctx, page, errors = new_page(browser)
    seen = []
    page.on("request", lambda r: seen.append((r.method, r.url)))
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": 50_000_000, "uploadThroughput": 2_000_000})
    page.goto(made["drop_url"])
    page.wait_for_selector("#request:not(.hidden)")
    page.set_input_files("#picker", [write(tmp_path, "keep.pdf", keep), write(tmp_path, "drop.pdf", drop)])
    first, second = page.locator("#files li").nth(0), page.locator("#files li").nth(1)
    wait_js(page, "document.querySelector('#files li progress').value >= 10", 60_000)
    first.get_by_role("button", name="Pause").click()
    assert "Paused" in first.locator(".status").first.inner_text()
    held = first.locator("progress").get_attribute("value")
    page.wait_for_timeout(1500)
    assert first.locator("progress").get_attribute("value") == held, "no bytes while paused"
    second.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("li[data-state=cancelled]")
    assert "nothing was kept" in second.inner_text()
    first.get_by_role("button", name="Resume").click()
    page.wait_for_selector("li[data-state=done]", timeout=60_000)
    deletes = [u for m, u in seen if m == "DELETE" and "/v1/tus/" in u]
    assert len(deletes) == 1
    # The cancelled upload is gone on the server; the paused one completed with its bytes.
    r = requests.head(deletes[0], headers={"Authorization": f"Bearer {made['token']}", "Tus-Resumable": "1.0.0"}, timeout=10)
    assert r.status_code in (404, 410)
    stored = {f["filename"]: f["sha256"] for f in web.files(web.api_key)}
    assert stored["keep.pdf"] == sha(keep) and "drop.pdf" not in stored
    shoot(page, "drop-paused-cancelled")
    assert not errors, errors
    ctx.close()


def test_a_20_mb_upload_from_the_drop_page_against_curl_with_a_presigned_put(web, browser, tmp_path):
    """Times one 20 MB upload from the drop page (SHA-256 in the browser, tus in 4 MiB PATCHes)
    and the same bytes as one presigned PUT with curl, in the same run; prints both."""
    data = pdf_bytes(20_000_000, seed=41)
    path = write(tmp_path, "twenty.pdf", data)
    made = web.token(max_uploads=1, allowed_types=["application/pdf"])
    ctx, page, errors = new_page(browser)
    page.goto(made["drop_url"])
    page.wait_for_selector("#request:not(.hidden)")
    t0 = time.time()
    page.set_input_files("#picker", [path])
    page.wait_for_selector("li[data-state=done], li[data-state=failed]", timeout=120_000)
    assert page.get_attribute("li", "data-state") == "done", page.inner_text("li")
    page_secs = time.time() - t0
    s, link = web.call("POST", "/v1/uploads", web.api_key, {"filename": "twenty-curl.pdf", "content_type": "application/pdf", "size": len(data), "sha256": sha(data)})
    assert s == 201, link
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", path, link["url"]]
    for k, v in link["headers"].items():
        cmd += ["-H", f"{k}: {v}"]
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    curl_secs = time.time() - t0
    assert out.stdout == "200", out.stdout + out.stderr
    stored = {f["filename"]: f["sha256"] for f in web.files(web.api_key)}
    assert stored["twenty.pdf"] == sha(data) == stored["twenty-curl.pdf"]
    print(f"20 MB: drop page {page_secs:.2f} s, curl presigned PUT {curl_secs:.2f} s, ratio {page_secs / curl_secs:.1f}")
    assert not errors, errors
    ctx.close()


def test_drop_page_says_when_a_link_is_used_up_expired_or_revoked(web, browser):
    used = web.token(max_uploads=1)
    body = pdf_bytes(5000, seed=2)
    r = requests.post(web.endpoint + "/v1/tus/", headers={
        "Authorization": f"Bearer {used['token']}", "Tus-Resumable": "1.0.0", "Upload-Length": str(len(body)),
        "Content-Type": "application/offset+octet-stream"}, data=body, timeout=30)
    assert r.status_code == 201, r.text
    expired = web.token(expires_in=1)
    revoked = web.token()
    s, _ = web.call("DELETE", f"/v1/upload-tokens/{revoked['token_id']}", web.api_key)
    assert s == 204
    time.sleep(1.5)
    ctx, page, errors = new_page(browser)
    for made, words, shot in ((used, "used up", "drop-exhausted"), (expired, "expired", "drop-expired"), (revoked, "withdrawn", "drop-revoked")):
        page.goto("about:blank")
        page.goto(made["drop_url"])
        page.wait_for_selector("#problem:not(.hidden)")
        assert words in page.inner_text("#problem")
        assert not page.is_visible("#picker")
        shoot(page, shot)
    page.goto("about:blank")
    page.goto(web.endpoint + "/drop#ugt_nope_" + "0" * 64)
    page.wait_for_selector("#problem:not(.hidden)")
    assert "not valid" in page.inner_text("#problem")
    shoot(page, "drop-invalid")
    ctx.close()


def pdf_with_text(words):
    """A one-page PDF whose text layer says `words` (Helvetica, uncompressed)."""
    content = f"BT /F1 12 Tf 72 712 Td ({words}) Tj ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def put_file(web, bearer, name, data, ctype):
    s, link = web.call("POST", "/v1/uploads", bearer, {"filename": name, "content_type": ctype, "size": len(data), "sha256": sha(data)})
    assert s == 201, link
    r = requests.put(link["url"], data=data, headers=link["headers"], timeout=30)
    assert r.status_code == 200, r.text
    return link["file_id"]


def test_files_page_signs_in_searches_downloads_versions_deletes_and_manages_drop_links(web, browser, tmp_path):
    invoice = pdf_bytes(40_000, seed=21)
    put_file(web, web.alice, "invoice-2026-11.pdf", invoice, "application/pdf")
    put_file(web, web.alice, "holiday.png", png_bytes(seed=5), "image/png")
    put_file(web, web.alice, "receipt-taxi.pdf", pdf_bytes(30_000, seed=22), "application/pdf")
    ctx, page, errors = new_page(browser)
    page.on("dialog", lambda d: d.accept())
    page.goto(web.endpoint + "/files")
    page.wait_for_selector("#signin:not(.hidden)")
    shoot(page, "files-signin")
    page.fill("#email", "alice@example.com")
    page.fill("#password", "wrong password here")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#problem:not(.hidden)")
    assert "not right" in page.inner_text("#problem")
    page.fill("#password", PASSWORD)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#app:not(.hidden)")
    wait_js(page, "document.querySelectorAll('#rows tr[data-file-id]').length === 3")
    # No cookie: the session is the tab's bearer token.
    assert ctx.cookies() == []
    shoot(page, "files-list")
    names = lambda: [e.inner_text() for e in page.query_selector_all("#rows .file-name")]

    def search(expect, q="", ctype="", since="", order="new"):
        page.fill("#q", q)
        page.select_option("#type", ctype)
        page.fill("#from", since)
        page.select_option("#sort", order)
        page.click("#filters button[type=submit]")
        deadline = time.time() + 15
        while sorted(names()) != sorted(expect):
            assert time.time() < deadline, (names(), expect)
            time.sleep(0.1)

    search(["invoice-2026-11.pdf"], q="invoice")
    search(["holiday.png"], ctype="image/png")
    search([], since="2999-01-01")
    assert "No files match" in page.inner_text("#rows")
    everything = ["invoice-2026-11.pdf", "holiday.png", "receipt-taxi.pdf"]
    search(everything, order="name")
    assert names() == sorted(everything)
    # A search of the files' contents: the lease's text layer holds the word, nothing else does.
    put_file(web, web.alice, "lease.pdf", pdf_with_text("Lease of the Quillwort Road flat"), "application/pdf")
    deadline = time.time() + 15
    while True:
        page.fill("#text", "quillwort")
        page.click("#filters button[type=submit]")
        time.sleep(0.3)
        if names() == ["lease.pdf"] or time.time() > deadline:
            break
    assert names() == ["lease.pdf"]
    marks = [m.inner_text() for m in page.query_selector_all("#rows .snippet mark")]
    assert marks and all(m.lower() == "quillwort" for m in marks), marks
    assert "Road flat" in page.inner_text("#rows .snippet")
    shoot(page, "files-text-search")
    page.fill("#text", "")
    search(everything + ["lease.pdf"], order="name")
    everything = everything + ["lease.pdf"]
    # Download: the bytes are the invoice's.
    row = page.locator("#rows tr", has_text="invoice-2026-11.pdf")
    with page.expect_download() as dl:
        row.get_by_role("button", name="Download").click()
    got = open(dl.value.path(), "rb").read()
    assert got == invoice
    assert dl.value.suggested_filename == "invoice-2026-11.pdf"
    # A new version, then its versions listed.
    v2 = pdf_bytes(45_000, seed=23)
    new = write(tmp_path, "invoice-2026-11-corrected.pdf", v2)
    with page.expect_file_chooser() as fc:
        row.get_by_role("button", name="New version").click()
    fc.value.set_files(new)
    page.wait_for_selector("#notice:has-text('new version stored')", timeout=30_000)
    row = page.locator("#rows tr", has_text="invoice-2026-11.pdf")
    assert row.locator("td[data-label=Versions]").inner_text() == "2"
    row.get_by_role("button", name="Versions").click()
    page.wait_for_selector("tr.versions li >> nth=1")
    assert page.locator("tr.versions li").count() == 2
    shoot(page, "files-versions")
    current = [f for f in web.files(web.alice) if f["filename"] == "invoice-2026-11.pdf"][0]
    assert current["sha256"] == sha(v2) and current["versions"] == 2
    # A legal hold: the page says so, and delete is refused until it is released.
    taxi = page.locator("#rows tr", has_text="receipt-taxi.pdf")
    taxi.get_by_role("button", name="Hold").click()
    page.wait_for_selector("#notice:has-text('on legal hold')")
    taxi = page.locator("#rows tr", has_text="receipt-taxi.pdf")
    assert taxi.locator("td.kept").inner_text() == "On legal hold"
    taxi.get_by_role("button", name="Delete").click()
    page.wait_for_selector("#problem:has-text('legal hold')")
    taxi.get_by_role("button", name="Release hold").click()
    page.wait_for_selector("#notice:has-text('hold released')")
    # Delete.
    page.locator("#rows tr", has_text="receipt-taxi.pdf").get_by_role("button", name="Delete").click()
    page.wait_for_selector("#notice:has-text('was deleted')")
    wait_js(page, "![...document.querySelectorAll('#rows .file-name')].some(e => e.textContent === 'receipt-taxi.pdf')")
    assert "receipt-taxi.pdf" not in [f["filename"] for f in web.files(web.alice)]
    # A drop link: created (its URL shown once), listed, revoked.
    page.fill("#l-note", "Your tax papers, please.")
    page.fill("#l-files", "2")
    page.click("#link-form button[type=submit]")
    page.wait_for_selector("#link-made:not(.hidden)")
    url = page.input_value("#link-url")
    assert "/drop#ugt_" in url
    token = url.split("#", 1)[1]
    s, me = web.call("GET", "/v1/upload-tokens/self", token)
    assert s == 200 and me["requester"] == "Alice Example" and me["note"] == "Your tax papers, please."
    assert me["max_uploads"] == 2 and me["allowed_types"] == ["application/pdf", "image/jpeg", "image/png"]
    page.wait_for_selector("#links tr[data-token-id] .link-status:has-text('Active')")
    shoot(page, "files-links")
    page.locator("#links tr", has_text="Your tax papers").get_by_role("button", name="Revoke").click()
    page.wait_for_selector("#links tr[data-token-id] .link-status:has-text('Revoked')")
    s, me = web.call("GET", "/v1/upload-tokens/self", token)
    assert me["status"] == "revoked"
    # Sign out ends the session: the old access token no longer works.
    old = page.evaluate("JSON.parse(sessionStorage.getItem('upgate.session')).access")
    page.click("#signout")
    page.wait_for_selector("#signin:not(.hidden)")
    s, _ = web.call("GET", "/v1/auth/me", old)
    assert s == 401
    assert not errors, errors
    ctx.close()


UPPY_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="uppy.min.css"><script src="uppy.min.js"></script></head>
<body><input type="file" id="f" multiple>
<script>
const { Uppy, Tus, AwsS3 } = globalThis.Uppy;
window.results = [];
function run(mode, gateway, token, files) {
  const uppy = new Uppy({ autoProceed: false });
  if (mode === "tus") {
    uppy.use(Tus, { endpoint: gateway + "/v1/tus/", headers: { Authorization: "Bearer " + token }, chunkSize: 4 * 1024 * 1024 });
  } else {
    uppy.use(AwsS3, { companionEndpoint: gateway + "/uppy/" + token, shouldUseMultipart: (f) => f.size > 6 * 1024 * 1024 });
  }
  for (const f of files) uppy.addFile({ name: f.name, type: f.type, data: f });
  return uppy.upload().then((r) => ({
    ok: r.successful.map((f) => f.name),
    failed: r.failed.map((f) => [f.name, String(f.error)]),
  }));
}
document.getElementById("f").addEventListener("change", (e) => {
  const files = [...e.target.files];
  window.pending = run(window.mode, window.gateway, window.token, files).then((r) => { window.results.push(r); return r; });
});
</script></body></html>"""


@pytest.fixture(scope="module")
def uppy_site():
    bundle = os.path.join(JS, "uppy", "dist")
    if not os.path.exists(os.path.join(bundle, "uppy.min.js")):
        pytest.fail("the uppy bundle is missing: npm ci --prefix tests/compat/js")
    site = tempfile.mkdtemp(prefix="upgate-uppy-")
    for name in ("uppy.min.js", "uppy.min.css"):
        shutil.copy(os.path.join(bundle, name), site)
    with open(os.path.join(site, "index.html"), "w") as f:
        f.write(UPPY_PAGE)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=site, **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("mode", ["tus", "aws-s3"])
def test_uppy_uploads_through_upgate_with_tus_and_the_companion_routes(web, browser, uppy_site, mode, tmp_path):
    made = web.token(max_uploads=3, max_file_bytes=20_000_000, allowed_types=["application/pdf", "image/png"], client_id=f"uppy-{mode}")
    small = pdf_bytes(700_000, seed=31)
    big = pdf_bytes(13_000_000, seed=32)  # multipart with the companion routes (3 parts)
    paths = [write(tmp_path, f"{mode}-small.pdf", small), write(tmp_path, f"{mode}-big.pdf", big)]
    ctx, page, errors = new_page(browser)
    seen = []
    page.on("request", lambda r: seen.append((r.method, r.url)))
    page.goto(uppy_site + "/index.html")
    page.evaluate("([m, g, t]) => { window.mode = m; window.gateway = g; window.token = t; }", [mode, web.endpoint, made["token"]])
    page.set_input_files("#f", paths)
    wait_js(page, "window.results.length === 1", 90_000)
    result = page.evaluate("window.results[0]")
    assert sorted(result["ok"]) == sorted(os.path.basename(p) for p in paths), result
    stored = {f["filename"]: f for f in web.files(web.api_key)}
    assert stored[f"{mode}-small.pdf"]["sha256"] == sha(small)
    assert stored[f"{mode}-big.pdf"]["sha256"] == sha(big)
    assert stored[f"{mode}-big.pdf"]["metadata"]["client_id"] == f"uppy-{mode}"
    if mode == "aws-s3":
        parts = [u for m, u in seen if m == "PUT" and "/s3/multipart/" in u]
        forms = [u for m, u in seen if m == "POST" and u.endswith("/s3/form")]
        assert len(parts) == 3 and len(forms) == 1, seen
        web.uppy_parts = True
    else:
        assert [u for m, u in seen if m == "PATCH" and "/v1/tus/" in u]
    s, me = web.call("GET", "/v1/upload-tokens/self", made["token"])
    assert me["uploads_used"] == 2 and me["bytes_used"] == len(small) + len(big)
    assert not errors, errors
    ctx.close()
