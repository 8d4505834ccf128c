#!/usr/bin/env python3
"""Cost of extracting a document's text for search, as a ratio to the upload it follows, measured
in one run on one gateway (the machine is shared: compare ratios, not absolute times).

    python3 scripts/bench_extract.py [--bin target/release/upgate] [--runs 10] [--mib 2]

Starts `upgate serve` (SQLite, local disk, debug logs of the indexer) and uploads a PDF of
`--mib` MiB whose every page has a text layer (~2,000 words a page, uncompressed) through a
minted link, `--runs` times. For each it takes the upload's wall time (mint + PUT, as the client
sees it) and the extraction time the indexer logs ("text extracted ... ms"), and prints both
medians and their ratio. Extraction runs after the PUT was answered, so it adds nothing to the
upload's latency; the ratio is what it costs the gateway's CPU in addition.
"""
import argparse
import hashlib
import json
import os
import re
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


def text_pdf(size, seed):
    """A PDF of about `size` bytes: pages of Helvetica text, one content stream each."""
    words = [hashlib.sha256(f"{seed}-{i}".encode()).hexdigest()[:7] for i in range(2000)]
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None,
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    kids = []
    while sum(len(o or "") for o in objects) < size:
        lines = [" ".join(words[j:j + 12]) for j in range(0, len(words), 12)]
        content = "BT /F1 9 Tf 36 760 Td 11 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objects)} 0 R "
                       "/Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out, len(kids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/upgate")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--mib", type=float, default=2.0)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="upgate-bench-extract-")
    port = free_port()
    env = dict(os.environ, UPGATE__SERVER__LISTEN=f"127.0.0.1:{port}", UPGATE__ADMIN__LISTEN="",
               UPGATE__STORAGE__DATA_DIR=work, RUST_LOG=os.environ.get("BENCH_LOG", "warn,upgate::upload::text_index=debug"))
    env.pop("AWS_CA_BUNDLE", None)
    lifted = "{ rate = 100000.0, burst = 100000 }"
    cfg = os.path.join(work, "upgate.toml")
    with open(cfg, "w") as f:
        f.write(f"[ratelimit.mint]\nprincipal = {lifted}\nip = {lifted}\nglobal = {lifted}\n")
    tenant = json.loads(subprocess.run([a.bin, "admin", "create-tenant", "bench", "--config", cfg], env=env,
                                       check=True, capture_output=True, text=True).stdout)
    log_path = os.path.join(work, "gateway.log")
    gw = subprocess.Popen([a.bin, "serve", "--config", cfg], env=env, stdout=open(log_path, "w"),
                          stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).read()
            break
        except Exception:
            time.sleep(0.1)
    auth = {"Authorization": f"Bearer {tenant['api_key']}"}
    uploads, extracts = [], []
    try:
        for run in range(a.runs):
            data, pages = text_pdf(int(a.mib * 1024 * 1024), run)
            started = time.perf_counter()
            link = requests.post(f"{base}/v1/uploads", headers=auth, timeout=30, json={
                "filename": f"r{run}.pdf", "content_type": "application/pdf", "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}).json()
            r = requests.put(link["url"], data=data, headers=link["headers"], timeout=60)
            uploads.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200, r.text
            deadline = time.time() + 60
            found = None
            while time.time() < deadline and found is None:
                for line in open(log_path):
                    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
                    if "text extracted" in line and link["file_id"] in line:
                        found = int(re.search(r"\bms=(\d+)", line).group(1))
                time.sleep(0.05)
            if found is None:
                raise SystemExit(f"run {run}: no extraction logged")
            extracts.append(found)
        up, ex = statistics.median(uploads), statistics.median(extracts)
        print(f"PDF {len(data) / 1048576:.2f} MiB, {pages} pages of text, {a.runs} runs, binary {a.bin}")
        print(f"upload (mint + PUT) median {up:.0f} ms; extraction median {ex:.0f} ms; "
              f"extraction / upload = {ex / up:.2f}")
    finally:
        gw.terminate()
        gw.wait(15)


if __name__ == "__main__":
    main()
