"""Real tus clients against the real binary: tus-js-client (Node) and tuspy (Python).

Each upload's stored object is read back through a download link and its SHA-256 compared
with the file's; nothing is visible before the last byte.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest
import requests

from conftest import ROOT, _binary, _free_port

JS = os.path.join(ROOT, "tests", "compat", "js")
DRIVER = os.path.join(JS, "tus_upload.mjs")


def pdf(size, seed=0):
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    body = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    return (head + body)[:size]


def node_ready():
    return shutil.which("node") and os.path.isdir(os.path.join(JS, "node_modules", "tus-js-client"))


needs_node = pytest.mark.skipif(
    not node_ready(), reason="node or tests/compat/js/node_modules missing (npm install --prefix tests/compat/js)"
)


def tenant(data_dir, name):
    env = dict(os.environ, UPGATE__STORAGE__DATA_DIR=data_dir)
    out = subprocess.run(
        [_binary(), "admin", "create-tenant", name], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def files(endpoint, key):
    r = requests.get(f"{endpoint}/v1/files", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    r.raise_for_status()
    return r.json()["files"]


def stored(endpoint, key, file_id):
    auth = {"Authorization": f"Bearer {key}"}
    r = requests.post(f"{endpoint}/v1/files/{file_id}/download-url", headers=auth, json={}, timeout=10)
    r.raise_for_status()
    return requests.get(r.json()["url"], timeout=30).content


def js(**opts):
    out = subprocess.run(
        ["node", DRIVER, json.dumps(opts)], capture_output=True, text=True, timeout=120, cwd=JS
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


class Server:
    """A gateway of our own, so that a test may restart it on the same port and data."""

    def __init__(self):
        self.port = _free_port()
        self.data_dir = tempfile.mkdtemp(prefix="upgate-tus-")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        env = dict(
            os.environ,
            UPGATE__SERVER__LISTEN=f"127.0.0.1:{self.port}",
            UPGATE__ADMIN__LISTEN="",
            UPGATE__STORAGE__DATA_DIR=self.data_dir,
            UPGATE_ROOT_ACCESS_KEY="AKIDTUSTEST000000001",
            UPGATE_ROOT_SECRET_KEY="tus-test-secret-0123456789abcdefghijkl",
        )
        log = open(os.path.join(self.data_dir, "gateway.log"), "ab")
        self.proc = subprocess.Popen([_binary(), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/healthz", timeout=1).read()
                return
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    pytest.fail("gateway did not start")
                time.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server():
    s = Server()
    s.start()
    yield s
    s.stop()


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def check_one_new_file(server, key, before, data, name=None):
    now = files(server.endpoint, key)
    new = [f for f in now if f["file_id"] not in {b["file_id"] for b in before}]
    assert len(new) == 1, now
    assert new[0]["sha256"] == hashlib.sha256(data).hexdigest()
    if name:
        assert new[0]["filename"] == name
    assert stored(server.endpoint, key, new[0]["file_id"]) == data
    return new[0]


@needs_node
def test_tus_js_client_chunked_upload(server, tmp_path):
    t = tenant(server.data_dir, "js-chunked")
    data = pdf(3 * 1024 * 1024 + 77, seed=1)
    r = js(
        endpoint=f"{server.endpoint}/v1/tus/",
        token=t["api_key"],
        file=write(tmp_path, "a.pdf", data),
        chunkSize=1024 * 1024,
        metadata={"filename": "chunked.pdf", "filetype": "application/pdf"},
    )
    assert r["ok"], r
    assert r["progress"][-1] == len(data)
    check_one_new_file(server, t["api_key"], [], data, "chunked.pdf")


@needs_node
def test_tus_js_client_aborts_mid_patch_and_resumes_from_head(server, tmp_path):
    t = tenant(server.data_dir, "js-resume")
    data = pdf(4 * 1024 * 1024, seed=2)
    path = write(tmp_path, "b.pdf", data)
    first = js(
        endpoint=f"{server.endpoint}/v1/tus/",
        token=t["api_key"],
        file=path,
        chunkSize=1024 * 1024,
        abortAfter=1536 * 1024,
    )
    assert first["url"] and not first["ok"], first
    assert files(server.endpoint, t["api_key"]) == []
    head = requests.head(
        first["url"], headers={"Authorization": f"Bearer {t['api_key']}", "Tus-Resumable": "1.0.0"}, timeout=10
    )
    offset = int(head.headers["Upload-Offset"])
    assert 0 < offset < len(data) and offset % (1024 * 1024) == 0, offset
    second = js(endpoint=f"{server.endpoint}/v1/tus/", token=t["api_key"], file=path, chunkSize=1024 * 1024, uploadUrl=first["url"])
    assert second["ok"], second
    assert second["url"] == first["url"]
    # The resumed client sent only what was missing.
    assert min(second["progress"]) > 0
    check_one_new_file(server, t["api_key"], [], data)


@needs_node
def test_tus_js_client_resumes_after_a_gateway_restart(tmp_path):
    s = Server()
    s.start()
    try:
        t = tenant(s.data_dir, "js-restart")
        data = pdf(3 * 1024 * 1024, seed=3)
        path = write(tmp_path, "c.pdf", data)
        first = js(endpoint=f"{s.endpoint}/v1/tus/", token=t["api_key"], file=path, chunkSize=1024 * 1024, abortAfter=1024 * 1024)
        assert first["url"], first
        s.stop()
        s.start()
        second = js(endpoint=f"{s.endpoint}/v1/tus/", token=t["api_key"], file=path, chunkSize=1024 * 1024, uploadUrl=first["url"])
        assert second["ok"], second
        check_one_new_file(s, t["api_key"], [], data)
    finally:
        s.stop()


@needs_node
def test_tus_js_client_deferred_length_parallel_and_data_during_creation(server, tmp_path):
    t = tenant(server.data_dir, "js-modes")
    key = t["api_key"]
    data = pdf(2 * 1024 * 1024 + 5, seed=4)
    path = write(tmp_path, "d.pdf", data)
    before = files(server.endpoint, key)
    r = js(endpoint=f"{server.endpoint}/v1/tus/", token=key, file=path, chunkSize=512 * 1024, deferred=True)
    assert r["ok"], r
    before = [check_one_new_file(server, key, before, data)] + before

    r = js(endpoint=f"{server.endpoint}/v1/tus/", token=key, file=path, parallelUploads=3)
    assert r["ok"], r
    before = [check_one_new_file(server, key, before, data)] + before

    r = js(endpoint=f"{server.endpoint}/v1/tus/", token=key, file=path, chunkSize=1024 * 1024, uploadDataDuringCreation=True)
    assert r["ok"], r
    check_one_new_file(server, key, before, data)


@needs_node
def test_tus_js_client_terminates_an_upload(server, tmp_path):
    t = tenant(server.data_dir, "js-term")
    key = t["api_key"]
    data = pdf(2 * 1024 * 1024, seed=5)
    first = js(endpoint=f"{server.endpoint}/v1/tus/", token=key, file=write(tmp_path, "e.pdf", data), chunkSize=1024 * 1024, abortAfter=1024 * 1024)
    assert first["url"], first
    r = js(token=key, uploadUrl=first["url"], terminate=True)
    assert r["ok"], r
    head = requests.head(first["url"], headers={"Authorization": f"Bearer {key}", "Tus-Resumable": "1.0.0"}, timeout=10)
    assert head.status_code == 410
    assert "Upload-Offset" not in head.headers
    assert files(server.endpoint, key) == []


@needs_node
def test_tus_js_client_refuses_a_disguised_file_at_the_first_bytes(server, tmp_path):
    t = tenant(server.data_dir, "js-type")
    html = b"<html><body><script>alert(1)</script></body></html>" * 2000
    r = js(
        endpoint=f"{server.endpoint}/v1/tus/",
        token=t["api_key"],
        file=write(tmp_path, "f.pdf", html),
        chunkSize=64 * 1024,
        retryDelays=[],
    )
    assert not r["ok"]
    assert r["status"] == 415, r
    assert files(server.endpoint, t["api_key"]) == []


def test_tuspy_uploads_with_checksums(server, tmp_path):
    from tusclient import client

    t = tenant(server.data_dir, "py-tus")
    key = t["api_key"]
    data = pdf(2 * 1024 * 1024 + 999, seed=6)
    path = write(tmp_path, "g.pdf", data)
    c = client.TusClient(f"{server.endpoint}/v1/tus/", headers={"Authorization": f"Bearer {key}"})
    uploader = c.uploader(
        path,
        chunk_size=512 * 1024,
        metadata={"filename": "py.pdf", "filetype": "application/pdf"},
        upload_checksum=True,
    )
    uploader.upload()
    check_one_new_file(server, key, [], data, "py.pdf")
