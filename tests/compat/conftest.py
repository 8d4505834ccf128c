"""Starts the real upgate binary on a free port with a temp data dir for the client tests."""
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ACCESS_KEY = "AKIDCOMPATTEST000001"
SECRET_KEY = "compat-test-secret-0123456789abcdefghij"
BUCKET = "uploads"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary():
    path = os.environ.get("UPGATE_BIN", os.path.join(ROOT, "target", "debug", "upgate"))
    if not os.path.exists(path):
        pytest.fail(f"upgate binary not found at {path}: run `cargo build` or the README test command")
    return path


class Gateway:
    def __init__(self, endpoint, data_dir, log_path):
        self.endpoint = endpoint
        self.data_dir = data_dir
        self.log_path = log_path

    def env(self):
        """Environment for CLI clients pointed at this gateway (no real AWS config)."""
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        )
        env.pop("AWS_CA_BUNDLE", None)
        return env

    def object_files(self):
        out = []
        for root, _dirs, files in os.walk(os.path.join(self.data_dir, "objects")):
            out.extend(os.path.join(root, f) for f in files)
        return out


@pytest.fixture(scope="module")
def gateway():
    port = _free_port()
    admin_port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="upgate-compat-")
    log_path = os.path.join(data_dir, "gateway.log")
    env = dict(os.environ)
    env.update(
        UPGATE__SERVER__LISTEN=f"127.0.0.1:{port}",
        UPGATE__ADMIN__LISTEN=f"127.0.0.1:{admin_port}",
        UPGATE__STORAGE__DATA_DIR=data_dir,
        UPGATE_ROOT_ACCESS_KEY=ACCESS_KEY,
        UPGATE_ROOT_SECRET_KEY=SECRET_KEY,
        # Browser tests post cross-origin from a page served on another local port.
        UPGATE__BUCKETS__UPLOADS__CORS='[{allowed_origins = ["http://127.0.0.1:*"], allowed_methods = ["POST", "PUT", "GET"], allowed_headers = ["*"]}]',
        RUST_LOG="info",
    )
    log = open(log_path, "wb")
    proc = subprocess.Popen([_binary(), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
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
    gw = Gateway(endpoint, data_dir, log_path)
    gw.admin = f"http://127.0.0.1:{admin_port}"
    yield gw
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
