#!/usr/bin/env python3
"""Cost of the content checks before commit, as ratios to an upload with them off, measured side
by side in one run on one gateway (the machine is shared: compare ratios, not absolute times).

    python3 scripts/bench_scan.py [--bin target/release/upgate] [--runs 10] [--clamd]

Three buckets on one gateway: `off` (PDF active-content check off, image metadata kept, no
malware scan), `checks` (the PDF check on, image metadata removed: the JPEG carries EXIF with a
GPS block, so every upload is rewritten) and, with --clamd, `clamd` (those and a ClamAV scan;
clamd is started here with a one-signature database). A 2 MiB PDF and a 2 MiB JPEG are PUT
through presigned URLs into each bucket in turn; the script prints the median time per bucket
and the ratios to `off`. The image header check always runs (it reads the first bytes only).
"""
import argparse
import hashlib
import os
import shutil
import socket
import statistics
import struct
import subprocess
import tempfile
import time
import urllib.request

import boto3
import requests
from botocore.config import Config

AK, SK = "AKIDBENCHSCAN0000001", "bench-scan-secret-0123456789abcdefghij"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pdf(size, seed):
    head = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n3 0 obj << /Length 0 >>\nstream\n"
    block = hashlib.sha256(str(seed).encode()).digest() * 2048
    return (head + block * (size // len(block) + 1))[:size]


def exif_app1():
    """An APP1 EXIF segment (little-endian TIFF) with a camera make and a GPS block."""
    make = b"BenchCam\0"
    ifd0 = struct.pack("<H", 2)
    ifd0 += struct.pack("<HHII", 0x010F, 2, len(make), 38)  # Make, ASCII, at offset 38
    ifd0 += struct.pack("<HHII", 0x8825, 4, 1, 38 + len(make))  # GPS IFD pointer
    ifd0 += struct.pack("<I", 0)
    gps = struct.pack("<H", 1) + struct.pack("<HHII", 0x0001, 2, 2, ord("N")) + struct.pack("<I", 0)
    tiff = b"II*\0" + struct.pack("<I", 8) + ifd0 + make + gps
    body = b"Exif\0\0" + tiff
    return b"\xFF\xE1" + struct.pack(">H", len(body) + 2) + body


def jpeg(size, seed):
    """A 2 MiB JPEG container: JFIF, EXIF with GPS, frame, one scan of entropy-coded-looking bytes
    (no markers inside), end marker. The metadata check and removal edit containers only."""
    head = bytes([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    head += exif_app1()
    head += bytes([0xFF, 0xC0, 0x00, 0x11, 0x08, 0x0B, 0xB8, 0x0F, 0xA0, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1])
    head += bytes([0xFF, 0xDA, 0x00, 0x0C, 0x03, 1, 0x00, 2, 0x11, 3, 0x11, 0x00, 0x3F, 0x00])
    block = hashlib.sha256(str(seed).encode()).digest().replace(b"\xFF", b"\xFE") * 2048
    return (head + block * (size // len(block) + 1))[:size - 2] + b"\xFF\xD9"


def start_clamd(work):
    db = os.path.join(work, "db")
    os.makedirs(db)
    with open(os.path.join(db, "bench.hdb"), "w") as f:
        f.write("00000000000000000000000000000000:1:Bench-Nothing\n")
    port = free_port()
    conf = os.path.join(work, "clamd.conf")
    with open(conf, "w") as f:
        f.write(f"DatabaseDirectory {db}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nForeground yes\n"
                f"StreamMaxLength 25M\nMaxThreads 4\nLogFile {work}/clamd.log\n")
    proc = subprocess.Popen(["/usr/sbin/clamd", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"zPING\0")
                if s.recv(8).startswith(b"PONG"):
                    return proc, port
        except OSError:
            time.sleep(0.2)
    raise SystemExit("clamd did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/upgate")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--clamd", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="upgate-bench-scan-")
    clamd = None
    buckets = {"off": 'pdf_active_content = "allow"\nstrip_image_metadata = false',
               "checks": 'pdf_active_content = "reject"'}
    cfg = '[api]\nbucket = "off"\n'
    if a.clamd:
        clamd, cport = start_clamd(work)
        buckets["clamd"] = 'pdf_active_content = "reject"\nscan = "required"'
        cfg += f'[scan]\nclamd = "tcp://127.0.0.1:{cport}"\n'
    for name, extra in buckets.items():
        cfg += (f'[buckets.{name}]\nmax_object_bytes = 20971520\n'
                f'allowed_types = ["application/pdf", "image/jpeg"]\netag = "auto"\n{extra}\n')
    with open(os.path.join(work, "upgate.toml"), "w") as f:
        f.write(cfg)
    port = free_port()
    env = dict(os.environ, UPGATE__SERVER__LISTEN=f"127.0.0.1:{port}", UPGATE__ADMIN__LISTEN="",
               UPGATE__STORAGE__DATA_DIR=os.path.join(work, "data"), UPGATE_ROOT_ACCESS_KEY=AK,
               UPGATE_ROOT_SECRET_KEY=SK, RUST_LOG="warn")
    env.pop("AWS_CA_BUNDLE", None)
    gw = subprocess.Popen([a.bin, "serve", "--config", os.path.join(work, "upgate.toml")], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except Exception:
                if gw.poll() is not None or time.time() > deadline:
                    raise SystemExit("gateway did not start")
                time.sleep(0.1)
        s3 = boto3.client("s3", endpoint_url=base, aws_access_key_id=AK, aws_secret_access_key=SK,
                          region_name="us-east-1", config=Config(signature_version="s3v4"))
        session = requests.Session()
        size = 2 << 20
        times = {(k, b): [] for k in ("pdf", "jpeg") for b in buckets}
        for i in range(a.runs + 1):
            for kind, make, ct in (("pdf", pdf, "application/pdf"), ("jpeg", jpeg, "image/jpeg")):
                for b in buckets:
                    body = make(size, (i, kind, b))
                    key = f"{kind}/{i}"
                    url = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": key, "ContentType": ct}, ExpiresIn=300)
                    t0 = time.perf_counter()
                    r = session.put(url, data=body, headers={"Content-Type": ct})
                    dt = time.perf_counter() - t0
                    if r.status_code != 200:
                        raise SystemExit(f"{b} {kind}: {r.status_code} {r.text[:200]}")
                    if i == 0 and kind == "jpeg":
                        stored = s3.get_object(Bucket=b, Key=key)["Body"].read()
                        stripped = b"Exif" not in stored[:4096]
                        if stripped != (b != "off"):
                            raise SystemExit(f"{b}: metadata {'removed' if stripped else 'kept'}")
                    if i > 0:
                        times[(kind, b)].append(dt)
        for kind in ("pdf", "jpeg"):
            off = statistics.median(times[(kind, "off")])
            line = [f"{kind} 2 MiB: off {off * 1000:.1f} ms"]
            for b in buckets:
                if b != "off":
                    m = statistics.median(times[(kind, b)])
                    line.append(f"{b} {m * 1000:.1f} ms ({m / off:.2f}x)")
            print(", ".join(line))
    finally:
        gw.terminate()
        gw.wait(timeout=15)
        if clamd:
            clamd.terminate()
            clamd.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
