"""Browser uploads: boto3's presigned POST forms, and a real Chromium submitting an HTML form
and a cross-origin fetch() to the gateway (CORS)."""
import base64
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.parse

import boto3
import pytest
import requests
from botocore.config import Config

from conftest import ACCESS_KEY, BUCKET, SECRET_KEY


def pdf_bytes(n, seed=1):
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    body = hashlib.sha256(str(seed).encode()).digest() * (n // 32 + 1)
    return (head + body)[:n]


def client(gateway, **config):
    return boto3.client(
        "s3",
        endpoint_url=gateway.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, **config),
    )


@pytest.mark.parametrize("version", [None, "s3v4"])
def test_boto3_presigned_post(gateway, version):
    s3 = client(gateway, **({"signature_version": version} if version else {}))
    body = pdf_bytes(40_000, seed=40)
    post = s3.generate_presigned_post(
        BUCKET,
        "post/${filename}",
        Fields={"Content-Type": "application/pdf"},
        Conditions=[{"Content-Type": "application/pdf"}, ["content-length-range", 1, 100_000]],
        ExpiresIn=300,
    )
    name = f"{version or 'default'}.pdf"
    r = requests.post(post["url"], data=post["fields"], files={"file": (name, body)}, timeout=30)
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=BUCKET, Key=f"post/{name}")["Body"].read() == body
    # The policy's size range is enforced on the bytes sent.
    r = requests.post(post["url"], data=post["fields"], files={"file": ("big.pdf", pdf_bytes(100_001))}, timeout=30)
    assert r.status_code == 400 and "EntityTooLarge" in r.text, r.text
    # Tampering with the policy breaks the signature.
    fields = dict(post["fields"])
    fields["policy"] = base64.b64encode(b'{"expiration":"2099-01-01T00:00:00Z","conditions":[{"bucket":"uploads"}]}').decode()
    r = requests.post(post["url"], data=fields, files={"file": ("x.pdf", body)}, timeout=30)
    assert r.status_code == 403, r.text


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Pages(http.server.BaseHTTPRequestHandler):
    pages = {}
    seen = []

    def do_GET(self):  # noqa: N802 (http.server API)
        path = urllib.parse.urlparse(self.path)
        if path.path == "/done":
            _Pages.seen.append(urllib.parse.parse_qs(path.query))
            html = f"<html><body><pre id='out'>DONE {path.query}</pre></body></html>"
        else:
            html = _Pages.pages.get(path.path, "not found")
        data = html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _dump_dom(url):
    profile = tempfile.mkdtemp(prefix="upgate-chromium-")
    res = subprocess.run(
        [
            _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
            "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=120,
    )
    shutil.rmtree(profile, ignore_errors=True)
    return res.stdout


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (.ci/run installs it)")
def test_real_browser_form_and_cross_origin_fetch(gateway):
    s3 = client(gateway, signature_version="s3v4")
    port = _free_port()
    page_origin = f"http://127.0.0.1:{port}"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # 1. A real HTML form: hidden policy fields, a file input, submit, 303 back to our page.
        post = s3.generate_presigned_post(
            BUCKET, "browser/${filename}",
            Fields={"success_action_redirect": f"{page_origin}/done"},
            Conditions=[{"success_action_redirect": f"{page_origin}/done"}, ["content-length-range", 1, 1_000_000]],
            ExpiresIn=300,
        )
        inputs = "".join(
            f'<input type="hidden" name="{k}" value="{v}">' for k, v in post["fields"].items()
        )
        pdf_js = json.dumps(list(pdf_bytes(5000, seed=50)))
        _Pages.pages["/form.html"] = f"""<html><body>
<form id="f" method="post" enctype="multipart/form-data" action="{post['url']}">{inputs}
<input type="file" name="file" id="file"></form>
<script>
const dt = new DataTransfer();
dt.items.add(new File([new Uint8Array({pdf_js})], "form.pdf", {{type: "application/pdf"}}));
document.getElementById("file").files = dt.files;
document.getElementById("f").submit();
</script></body></html>"""
        dom = _dump_dom(f"{page_origin}/form.html")
        assert "DONE" in dom, dom[:2000]
        assert _Pages.seen and _Pages.seen[-1]["key"] == ["browser/form.pdf"], _Pages.seen
        assert s3.get_object(Bucket=BUCKET, Key="browser/form.pdf")["Body"].read() == pdf_bytes(5000, seed=50)

        # 2. fetch() from another origin: needs CORS, and reads the exposed ETag.
        post = s3.generate_presigned_post(
            BUCKET, "browser/fetch.pdf", Conditions=[["content-length-range", 1, 1_000_000]], ExpiresIn=300,
        )
        _Pages.pages["/fetch.html"] = f"""<html><body><pre id="out">pending</pre><script>
const fd = new FormData();
const fields = {json.dumps(post['fields'])};
for (const k in fields) fd.append(k, fields[k]);
fd.append("file", new Blob([new Uint8Array({pdf_js})], {{type: "application/pdf"}}), "x.pdf");
fetch({json.dumps(post['url'])}, {{method: "POST", body: fd}})
  .then(r => {{ document.getElementById("out").textContent = "status=" + r.status + " etag=" + r.headers.get("ETag"); }})
  .catch(e => {{ document.getElementById("out").textContent = "error " + e; }});
</script></body></html>"""
        dom = _dump_dom(f"{page_origin}/fetch.html")
        assert "status=204" in dom, dom[:2000]
        assert "etag=&quot;" in dom or 'etag="' in dom, dom[:2000]
        assert s3.head_object(Bucket=BUCKET, Key="browser/fetch.pdf")["ContentLength"] == 5000
    finally:
        server.shutdown()
