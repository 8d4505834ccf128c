#!/usr/bin/env python3
"""Throughput of a resumable (tus) upload in chunks against a single presigned PUT of the same
file, measured side by side in one run on one gateway (the machine is shared: compare ratios).

    python3 scripts/bench_tus.py [--bin target/release/upgate] [--size-mib 20] [--chunk-mib 1] [--runs 5]

Starts the binary on a free port with a temporary data directory, creates a tenant with the
CLI, then alternates the two uploads (PUT, tus, PUT, tus, ...) and prints each run, the medians
and the ratio tus/PUT of the medians. Every upload is checked to have committed its SHA-256.
"""
import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/upgate")
    ap.add_argument("--size-mib", type=int, default=20)
    ap.add_argument("--chunk-mib", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()

    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="upgate-bench-tus-")
    env = dict(
        os.environ,
        UPGATE__SERVER__LISTEN=f"127.0.0.1:{port}",
        UPGATE__ADMIN__LISTEN="",
        UPGATE__STORAGE__DATA_DIR=data_dir,
        UPGATE_ROOT_ACCESS_KEY="AKIDBENCHTUS00000001",
        UPGATE_ROOT_SECRET_KEY="bench-tus-secret-0123456789abcdefghijk",
        RUST_LOG="warn",
    )
    proc = subprocess.Popen([a.bin, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except Exception:
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit("gateway did not start")
                time.sleep(0.1)
        out = subprocess.run([a.bin, "admin", "create-tenant", "bench"], env=env, check=True, capture_output=True, text=True)
        key = json.loads(out.stdout)["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        size = a.size_mib << 20
        chunk = a.chunk_mib << 20
        session = requests.Session()

        def body(seed):
            head = b"%PDF-1.7\n"
            block = hashlib.sha256(str(seed).encode()).digest() * 32768
            return (head + block * (size // len(block) + 1))[:size]

        def put(data):
            r = session.post(f"{base}/v1/uploads", headers=auth, json={
                "filename": "b.pdf", "content_type": "application/pdf", "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()})
            r.raise_for_status()
            link = r.json()
            t0 = time.perf_counter()
            r = session.put(link["url"], headers=link["headers"], data=data)
            r.raise_for_status()
            return time.perf_counter() - t0

        def tus(data):
            t0 = time.perf_counter()
            meta = "filetype YXBwbGljYXRpb24vcGRm,sha256 " + \
                __import__("base64").b64encode(hashlib.sha256(data).hexdigest().encode()).decode()
            h = dict(auth, **{"Tus-Resumable": "1.0.0"})
            r = session.post(f"{base}/v1/tus/", headers=dict(h, **{"Upload-Length": str(len(data)), "Upload-Metadata": meta}))
            r.raise_for_status()
            url = r.headers["Location"]
            off = 0
            while off < len(data):
                piece = data[off:off + chunk]
                r = session.patch(url, data=piece, headers=dict(h, **{
                    "Upload-Offset": str(off), "Content-Type": "application/offset+octet-stream"}))
                r.raise_for_status()
                off = int(r.headers["Upload-Offset"])
            return time.perf_counter() - t0

        put_s, tus_s = [], []
        for i in range(a.runs + 1):
            p = put(body(2 * i))
            t = tus(body(2 * i + 1))
            if i == 0:
                continue  # warm-up
            put_s.append(p)
            tus_s.append(t)
            print(f"run {i}: PUT {size / p / 2**20:7.1f} MiB/s   tus {size / t / 2**20:7.1f} MiB/s")
        files = session.get(f"{base}/v1/files?limit=100", headers=auth).json()["files"]
        done = sum(1 for f in files if f["status"] == "complete")
        assert done == 2 * (a.runs + 1), f"{done} uploads committed"
        mp, mt = statistics.median(put_s), statistics.median(tus_s)
        print(f"median: PUT {size / mp / 2**20:.1f} MiB/s, tus ({a.chunk_mib} MiB chunks) {size / mt / 2**20:.1f} MiB/s")
        print(f"tus/PUT throughput ratio: {mp / mt:.2f}")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


if __name__ == "__main__":
    main()
