#!/usr/bin/env python3
"""Soak: mixed traffic against one gateway for a while, printing its resources at intervals (a
by-hand check, not a timed test). Leaks show as a column that keeps growing.

    python3 scripts/soak.py [--bin target/release/upgate] [--minutes 10] [--interval 30]
                            [--workers 8]

Starts `upgate serve` on a free port with a temp data dir (SQLite, local disk), rate limits
lifted, the sweeper every 10 s, tus uploads expiring after 60 s and a webhook endpoint served by this
script. Then `--workers`
threads loop over a mix of what clients do: S3 PUT (2 MiB PDF) and GET, ListObjectsV2,
DeleteObject, S3 multipart (5 MiB + 1 MiB), a single-use link minted on `/v1/uploads` and
used, a tus upload (creation and one PATCH), and an abandoned tus upload. Every `--interval`
seconds it prints: operations done and failed, the gateway's RSS (MiB), threads, open files,
and webhook events still in the outbox; at the end the first and last rows side by side.
Needs Python 3 with boto3 and requests (tests/compat/requirements.txt), Linux /proc.
"""
import argparse
import base64
import http.server
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import boto3
import requests
from botocore.config import Config

AK, SK = "AKIDSOAKTEST00000001", "soak-secret-0123456789abcdefghijklmnopq"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pdf(size):
    head = b"%PDF-1.7\n1 0 obj << /Length 0 >>\nstream\n"
    return head + os.urandom(size - len(head))


class Hook(http.server.BaseHTTPRequestHandler):
    received = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        Hook.received += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def proc_stats(pid):
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads, len(os.listdir(f"/proc/{pid}/fd"))


def outbox(db):
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return c.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]
    except sqlite3.Error:
        return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/upgate")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--interval", type=float, default=30)
    ap.add_argument("--workers", type=int, default=8)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="upgate-soak-")
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    port = free_port()
    cfg = os.path.join(work, "upgate.toml")
    with open(cfg, "w") as f:
        f.write(
            "[metadata]\nsweep_interval_secs = 10\n"
            # Abandoned tus uploads expire within the run (the sweeper removes them).
            "[api]\nresumable_expiry_secs = 60\nmax_unfinished_resumable = 1000000\n"
            "[ratelimit]\nmax_concurrent_uploads_per_principal = 0\n"
            "[ratelimit.s3_write]\nprincipal = { rate = 100000.0, burst = 100000 }\n"
            "ip = { rate = 100000.0, burst = 100000 }\nglobal = { rate = 100000.0, burst = 100000 }\n"
            "[ratelimit.s3_read]\nprincipal = { rate = 100000.0, burst = 100000 }\n"
            "ip = { rate = 100000.0, burst = 100000 }\nglobal = { rate = 100000.0, burst = 100000 }\n"
            "[ratelimit.mint]\nprincipal = { rate = 100000.0, burst = 100000 }\n"
            "ip = { rate = 100000.0, burst = 100000 }\nglobal = { rate = 100000.0, burst = 100000 }\n"
            "[webhooks]\npoll_interval_ms = 200\n[[webhooks.endpoints]]\n"
            f'url = "http://127.0.0.1:{hook.server_address[1]}/hook"\n'
            'secret = "soak-webhook-secret-0123456789abcdefghijkl"\n'
        )
    data = os.path.join(work, "data")
    env = dict(os.environ, UPGATE__SERVER__LISTEN=f"127.0.0.1:{port}", UPGATE__ADMIN__LISTEN="",
               UPGATE__STORAGE__DATA_DIR=data, UPGATE_ROOT_ACCESS_KEY=AK,
               UPGATE_ROOT_SECRET_KEY=SK, RUST_LOG="warn")
    env.pop("AWS_CA_BUNDLE", None)
    tenant = json.loads(subprocess.run([a.bin, "admin", "create-tenant", "soak", "--config", cfg],
                                       env=env, check=True, capture_output=True, text=True).stdout)
    log = open(os.path.join(work, "gateway.log"), "w")
    gw = subprocess.Popen([a.bin, "serve", "--config", cfg], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).read()
            break
        except Exception:
            if gw.poll() is not None or time.time() > deadline:
                sys.exit("gateway did not start")
            time.sleep(0.1)

    s3 = boto3.client("s3", endpoint_url=base, aws_access_key_id=AK, aws_secret_access_key=SK,
                      region_name="us-east-1", config=Config(signature_version="s3v4",
                                                             s3={"addressing_style": "path"},
                                                             max_pool_connections=a.workers * 2))
    auth = {"authorization": f"Bearer {tenant['api_key']}"}
    body2 = pdf(2 << 20)
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    stop = time.time() + a.minutes * 60

    def tus(session, data, finish=True):
        meta = "filename " + base64.b64encode(b"soak.pdf").decode()
        r = session.post(f"{base}/v1/tus/", headers={**auth, "tus-resumable": "1.0.0",
                                                     "upload-length": str(len(data)),
                                                     "upload-metadata": meta})
        r.raise_for_status()
        if finish:
            r = session.patch(r.headers["location"], data=data,
                              headers={**auth, "tus-resumable": "1.0.0", "upload-offset": "0",
                                       "content-type": "application/offset+octet-stream"})
            r.raise_for_status()

    def worker(n):
        session = requests.Session()
        i = 0
        while time.time() < stop:
            i += 1
            key = f"soak/{n}/{i % 50}.pdf"
            op = random.choice(["put", "put", "get", "list", "delete", "multipart", "link", "tus",
                                "tus-abandoned"])
            try:
                if op == "put":
                    s3.put_object(Bucket="uploads", Key=key, Body=body2, ContentType="application/pdf")
                elif op == "get":
                    try:
                        s3.get_object(Bucket="uploads", Key=key)["Body"].read()
                    except s3.exceptions.NoSuchKey:
                        pass
                elif op == "list":
                    s3.list_objects_v2(Bucket="uploads", Prefix=f"soak/{n}/", MaxKeys=100)
                elif op == "delete":
                    s3.delete_object(Bucket="uploads", Key=key)
                elif op == "multipart":
                    up = s3.create_multipart_upload(Bucket="uploads", Key=key, ContentType="application/pdf")
                    big = pdf(5 << 20)
                    p1 = s3.upload_part(Bucket="uploads", Key=key, UploadId=up["UploadId"], PartNumber=1, Body=big)
                    p2 = s3.upload_part(Bucket="uploads", Key=key, UploadId=up["UploadId"], PartNumber=2, Body=os.urandom(1 << 20))
                    s3.complete_multipart_upload(Bucket="uploads", Key=key, UploadId=up["UploadId"],
                                                 MultipartUpload={"Parts": [
                                                     {"PartNumber": 1, "ETag": p1["ETag"]},
                                                     {"PartNumber": 2, "ETag": p2["ETag"]}]})
                elif op == "link":
                    small = pdf(200_000)
                    r = session.post(f"{base}/v1/uploads", headers=auth, json={
                        "filename": "soak.pdf", "content_type": "application/pdf", "size": len(small)})
                    r.raise_for_status()
                    link = r.json()
                    session.put(link["url"], data=small, headers=link["headers"]).raise_for_status()
                elif op == "tus":
                    tus(session, pdf(300_000))
                else:
                    tus(session, pdf(300_000), finish=False)
                with lock:
                    counts["ok"] += 1
            except Exception as e:  # counted, shown once
                with lock:
                    counts["failed"] += 1
                    if counts["failed"] <= 3:
                        print(f"  {op} failed: {e}", flush=True)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(a.workers)]
    started = time.time()
    for t in threads:
        t.start()
    rows = []
    print(f"{'min':>6} {'ok':>8} {'failed':>6} {'rss MiB':>8} {'threads':>7} {'fds':>5} {'outbox':>6} {'hooks':>6}", flush=True)
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(min(a.interval, max(0.1, stop - time.time() + 0.5)))
            rss, nthreads, fds = proc_stats(gw.pid)
            row = ((time.time() - started) / 60, counts["ok"], counts["failed"], rss, nthreads, fds,
                   outbox(os.path.join(data, "upgate.db")), Hook.received)
            rows.append(row)
            print(f"{row[0]:6.1f} {row[1]:8d} {row[2]:6d} {row[3]:8.1f} {row[4]:7d} {row[5]:5d} {row[6]:6d} {row[7]:6d}", flush=True)
        if len(rows) >= 2:
            first, last = rows[0], rows[-1]
            print(f"first → last: rss {first[3]:.1f} → {last[3]:.1f} MiB, threads {first[4]} → {last[4]}, "
                  f"fds {first[5]} → {last[5]}, outbox {first[6]} → {last[6]}")
    finally:
        gw.terminate()
        gw.wait(timeout=30)
        hook.shutdown()


if __name__ == "__main__":
    main()
