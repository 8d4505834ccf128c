#!/usr/bin/env python3
"""Helpers of scripts/bench-vs-nginx.sh (bodies, upgate's config, seeding, checks, report).

    bench.py pdf SIZE OUT                       a valid PDF of exactly SIZE bytes
    bench.py config --out F --listen A --data-dir D [--extra F]
    bench.py seed --base URL --targets F --body F
    bench.py verify-s3 --endpoint URL --access-key AK --secret-key SK --prefix P --result F
    bench.py verify-dir --dir D --prefix P --result F --size N
    bench.py annotate WRK_JSON OUT --set key=value ...
    bench.py settle --pid PID                   wait until a process is idle; prints seconds
    bench.py report --results DIR --out F
"""

import argparse
import concurrent.futures
import glob
import http.client
import json
import os
import random
import re
import statistics
import sys
import time
import tomllib
import urllib.parse

# ---------------------------------------------------------------------------------------------
# Bodies


def pdf(size, seed=11):
    """A well-formed one-page PDF (catalog, page, font, content stream, xref, trailer) padded to
    exactly `size` bytes by an unreferenced stream of pseudo-random bytes without line breaks.

    upgate sniffs `%PDF-d.d` at offset 0, scans every name outside stream data for active
    content (none here: the padding is stream data, and with no line break in it no `N G obj`
    header can start inside it), and extracts the page's text with lopdf after the commit, which
    this file gives it to do like a real document."""
    head = [
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
        b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n",
        b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n",
    ]
    text = b"BT /F1 12 Tf 72 720 Td (upgate benchmark body, a quarterly report) Tj ET"
    head.append(b"4 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n" % (len(text), text))
    head.append(b"5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\nendobj\n")
    rng = random.Random(seed)

    def build(pad_len, pad):
        objs = head + [b"6 0 obj\n<< /Length %d >>\nstream\n" % pad_len + pad + b"\nendstream\nendobj\n"]
        offsets, pos = [], 0
        for i, o in enumerate(objs):
            if i > 0:
                offsets.append(pos)
            pos += len(o)
        xref = b"xref\n0 7\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
        tail = xref + b"trailer\n<< /Size 7 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % pos
        return b"".join(objs) + tail

    fixed = len(build(0, b""))
    pad_len = size - fixed
    for _ in range(4):  # the digits of /Length and startxref move with the padding
        if pad_len < 0:
            sys.exit(f"pdf: {size} bytes is too small for the PDF skeleton ({fixed})")
        n = len(build(pad_len, b"x" * pad_len))
        if n == size:
            break
        pad_len += size - n
    pad = rng.randbytes(pad_len).translate(bytes(b if b not in (10, 13) else 32 for b in range(256)))
    while b"endstream" in pad or b"endobj" in pad:
        pad = pad.replace(b"endstream", b"endstreaM").replace(b"endobj", b"endobJ")
    out = build(pad_len, pad)
    assert len(out) == size, (len(out), size)
    return out


# ---------------------------------------------------------------------------------------------
# upgate's config

LIFTED = {"rate": 0.0, "burst": 1}


def upgate_config(listen, data_dir, durable):
    """The generated config: embedded defaults but for the listener, a local-disk backend and
    SQLite under `data_dir`, one PDF bucket up to 25 MiB, every request-rate limit and the
    per-principal upload cap lifted, no quotas, warn logging. Without `durable`, neither the
    objects nor the SQLite commits are flushed to the disk before the answer (like nginx); with
    it, the defaults (both are)."""
    classes = ("mint", "s3_write", "s3_read", "download", "token_exchange")
    return {
        "server": {
            "listen": listen,
            # wrk opens every connection from 127.0.0.1.
            "max_connections_per_ip": 4096,
        },
        "admin": {"listen": ""},
        "storage": {"data_dir": data_dir, "backend": "local", "local": {"fsync": durable}},
        "metadata": {"url": "", "fsync": durable},
        "log": {"filter": "warn"},
        "quotas": {"max_bytes": 0, "max_objects": 0},
        "ratelimit": {
            "max_concurrent_uploads_per_principal": 0,
            "upload_bytes_per_sec": 0,
            **{c: {"principal": LIFTED, "ip": LIFTED, "global": LIFTED} for c in classes},
        },
        "buckets": {
            "uploads": {
                "max_object_bytes": 25 * 1024 * 1024,
                "allowed_types": ["application/pdf"],
            }
        },
    }


def merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def toml_key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string is a JSON string for what we write
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def toml_dump(d, path=()):
    out = []
    scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and not _tables(v)}
    if path and (scalars or not d):
        out.append("[" + ".".join(toml_key(p) for p in path) + "]")
    for k, v in scalars.items():
        out.append(f"{toml_key(k)} = {toml_value(v)}")
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(toml_dump(v, path + (k,)))
        elif _tables(v):
            for item in v:
                out.append("[[" + ".".join(toml_key(p) for p in path + (k,)) + "]]")
                out.extend(f"{toml_key(ik)} = {toml_value(iv)}" for ik, iv in item.items())
    return "\n".join(x for x in out if x)


def _tables(v):
    return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)


# ---------------------------------------------------------------------------------------------
# Seeding and checks


def seed(base, targets, body, ctype):
    u = urllib.parse.urlsplit(base)

    def put(target):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        c.request("PUT", target, body=body, headers={"Content-Type": ctype, "Content-Length": str(len(body))})
        r = c.getresponse()
        text = r.read()
        c.close()
        if not 200 <= r.status < 300:
            raise SystemExit(f"seed: PUT {target[:80]}... answered {r.status}: {text[:300]!r}")

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(put, targets))


def s3_client(endpoint, ak, sk):
    import boto3
    from botocore.config import Config

    kwargs = dict(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2})
    try:
        cfg = Config(request_checksum_calculation="when_required", **kwargs)
    except TypeError:
        cfg = Config(**kwargs)
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk, region_name="us-east-1", config=cfg
    )


def expected_range(result):
    """Objects a wrk row must have left behind: at least its 2xx answers (distinct keys unless
    the targets wrapped), at most those plus the requests cut in flight when wrk stopped."""
    ok = result["requests"] - result["errors"]["status"]
    return ok, ok + result["connections"]


def write_check(result_path, check):
    with open(result_path) as f:
        result = json.load(f)
    result["check"] = check
    with open(result_path, "w") as f:
        json.dump(result, f)


def judge(result, stored, extra):
    lo, hi = expected_range(result)
    if result.get("wraps"):
        lo = min(lo, result.get("targets", lo))
    ok = lo <= stored <= hi
    return {"stored": stored, "expected_min": lo, "expected_max": hi, "ok": ok, **extra}


def verify_s3(endpoint, ak, sk, prefix, result_path, size, delete):
    s3 = s3_client(endpoint, ak, sk)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="uploads", Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    extra = {}
    if keys:
        h = s3.head_object(Bucket="uploads", Key=keys[0])
        extra = {"sample_type": h["ContentType"], "sample_size": h["ContentLength"]}
        if h["ContentType"] != "application/pdf" or h["ContentLength"] != size:
            extra["mismatch"] = True
    with open(result_path) as f:
        check = judge(json.load(f), len(keys), extra)
    if extra.get("mismatch"):
        check["ok"] = False
    write_check(result_path, check)
    if delete:
        for i in range(0, len(keys), 1000):
            r = s3.delete_objects(
                Bucket="uploads", Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True}
            )
            if r.get("Errors"):
                print(f"warning: DeleteObjects errors: {r['Errors'][:3]}", file=sys.stderr)
    print(json.dumps(check))


def verify_dir(root, prefix, result_path, size):
    d = os.path.join(root, prefix)
    files = [os.path.join(p, f) for p, _, fs in os.walk(d) for f in fs]
    wrong = sum(1 for f in files if os.path.getsize(f) != size)
    with open(result_path) as f:
        check = judge(json.load(f), len(files), {"wrong_size": wrong})
    if wrong:
        check["ok"] = False
    write_check(result_path, check)
    print(json.dumps(check))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def settle(pid, idle_share=0.05, window=1.0, timeout=180.0):
    """Seconds until `pid` used under `idle_share` of one core over `window` (background work a
    row left, e.g. upgate's text extraction, must not run during the next row)."""
    hz = os.sysconf("SC_CLK_TCK")
    t0 = time.monotonic()
    prev = cpu_ticks(pid)
    while time.monotonic() - t0 < timeout:
        time.sleep(window)
        cur = cpu_ticks(pid)
        if (cur - prev) / hz < idle_share * window:
            return max(0.0, time.monotonic() - t0 - window)
        prev = cur
    return timeout


# ---------------------------------------------------------------------------------------------
# Report

ROWS = [
    ("put2m", "PUT 2 MiB x 64"),
    ("put20m", "PUT 20 MiB x 8"),
    ("put4k", "PUT 4 KiB x 32"),
    ("get2m", "GET 2 MiB x 16"),
    ("mint", "POST /v1/uploads x 16"),
]


def problems(r):
    """What makes a measurement suspect, as short phrases (empty: clean)."""
    out = []
    e = r["errors"]
    non2xx = {k: v for k, v in r.get("statuses", {}).items() if not 200 <= int(k) < 300}
    if e["status"] or non2xx:
        out.append("non-2xx " + (", ".join(f"{k}x{v}" for k, v in sorted(non2xx.items())) or str(e["status"])))
    for k in ("connect", "read", "write", "timeout"):
        if e[k]:
            out.append(f"{k} errors {e[k]}")
    if r.get("wraps"):
        out.append(f"targets reused {r['wraps']}x")
    c = r.get("check")
    if c is not None and not c["ok"]:
        out.append(f"stored {c['stored']} not in [{c['expected_min']}, {c['expected_max']}]")
    if r["requests"] == 0:
        out.append("no requests")
    return out


def rate(r):
    return r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0


def cpu_per_request(r):
    """The server's CPU milliseconds per answered request in a run (None if not recorded)."""
    if r.get("server_cpu_secs") is None or not r.get("requests"):
        return None
    return r["server_cpu_secs"] * 1000 / r["requests"]


def report(results_dir, out_path, meta_path):
    results = {}
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path) as f:
            r = json.load(f)
        results[(r["row"], r["run"], r["side"])] = r
    runs = sorted({k[1] for k in results})
    lines = []
    hdr = (f"{'workload':<24} {'run':>3} {'baseline req/s':>15} {'upgate req/s':>13} {'ratio':>7}  {'MiB/s base/upgate':>19}"
           f"  {'CPU ms/req base/upgate':>22}  notes")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    summary = []
    for row, label in ROWS:
        if not any(k[0] == row for k in results):
            continue  # not among this run's ROWS
        ratios = []
        for run in runs:
            b, u = results.get((row, run, "baseline")), results.get((row, run, "upgate"))
            if not b or not u:
                continue
            rb, ru = rate(b), rate(u)
            ratio = ru / rb if rb else 0.0
            notes = [f"baseline: {p}" for p in problems(b)] + [f"upgate: {p}" for p in problems(u)]
            if u.get("busy_after_secs", 0) >= 1:
                notes.append(f"upgate busy {u['busy_after_secs']:.0f}s after the row")
            clean = not problems(b) and not problems(u)
            if clean:
                ratios.append(ratio)
            mib = ""
            if row != "mint":
                per = b.get("body_bytes") or u.get("object_bytes", 0)
                mib = f"{rb * per / 2**20:8.1f}/{ru * per / 2**20:<8.1f}"
            cpu = ""
            cb, cu = cpu_per_request(b), cpu_per_request(u)
            if cb is not None and cu is not None:
                cpu = f"{cb:10.3f}/{cu:<10.3f}"
            lines.append(
                f"{label:<24} {run:>3} {rb:>15.1f} {ru:>13.1f} {ratio:>7.3f}  {mib:>19}  {cpu:>22}  "
                + ("; ".join(notes) if notes else "ok")
            )
            summary.append(
                {
                    "row": row,
                    "workload": label,
                    "run": run,
                    "baseline_rps": rb,
                    "upgate_rps": ru,
                    "ratio": ratio,
                    "baseline_cpu_ms_per_request": cb,
                    "upgate_cpu_ms_per_request": cu,
                    "clean": clean,
                    "notes": notes,
                    "baseline": b,
                    "upgate": u,
                }
            )
        med = statistics.median(ratios) if ratios else None
        lines.append(
            f"{label:<24} {'med':>3} {'':>15} {'':>13} {med:>7.3f}  ({len(ratios)} clean runs)"
            if med is not None
            else f"{label:<24} {'med':>3} {'':>15} {'':>13} {'-':>7}  (no clean run)"
        )
        summary.append({"row": row, "workload": label, "median_ratio": med, "clean_runs": len(ratios)})
    meta = {}
    if meta_path and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    with open(out_path, "w") as f:
        json.dump({"meta": meta, "rows": summary}, f, indent=2)
    print("\n".join(lines))
    print("baseline: nginx WebDAV PUT / static GET for the data rows, FastAPI + boto3 /upload-url "
          "(uvicorn, 2 workers) for the mint row; ratio = upgate / baseline; medians over clean runs only; "
          "CPU ms/req: the server's CPU time (user + system, its workers included) per request")


def annotate(wrk_path, out_path, sets):
    """The wrk summary with the row's facts added (row, run, side, connections...), and one
    progress line."""
    with open(wrk_path) as f:
        r = json.load(f)
    for kv in sets:
        k, _, v = kv.partition("=")
        try:
            r[k] = json.loads(v)
        except json.JSONDecodeError:
            r[k] = v
    if r.get("reuse_ok"):
        r["wraps"] = 0
    if r["row"] == "get2m" and r["requests"]:
        per = r["bytes"] / r["requests"]
        r["check"] = {"ok": per >= r["object_bytes"], "bytes_per_response": per}
    with open(out_path, "w") as f:
        json.dump(r, f)
    p = problems(r)
    print(f"  {r['row']:<7} run {r['run']} {r['side']:<8} {rate(r):10.1f} req/s  p50 {r['latency_us']['p50'] / 1000:7.1f} ms"
          f"  p99 {r['latency_us']['p99'] / 1000:7.1f} ms  " + ("; ".join(p) if p else "no errors"), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pdf")
    p.add_argument("size", type=int)
    p.add_argument("out")
    p = sub.add_parser("config")
    p.add_argument("--out", required=True)
    p.add_argument("--listen", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--extra", default="")
    p.add_argument("--durable", action="store_true")
    p = sub.add_parser("seed")
    p.add_argument("--base", required=True)
    p.add_argument("--targets", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--content-type", default="application/pdf")
    p = sub.add_parser("verify-s3")
    for a in ("--endpoint", "--access-key", "--secret-key", "--prefix", "--result"):
        p.add_argument(a, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--delete", action="store_true")
    p = sub.add_parser("verify-dir")
    for a in ("--dir", "--prefix", "--result"):
        p.add_argument(a, required=True)
    p.add_argument("--size", type=int, required=True)
    p = sub.add_parser("annotate")
    p.add_argument("wrk")
    p.add_argument("out")
    p.add_argument("--set", action="append", default=[])
    p = sub.add_parser("settle")
    p.add_argument("--pid", type=int, required=True)
    p = sub.add_parser("report")
    p.add_argument("--results", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--meta", default="")
    a = ap.parse_args()

    if a.cmd == "pdf":
        with open(a.out, "wb") as f:
            f.write(pdf(a.size))
    elif a.cmd == "config":
        cfg = upgate_config(a.listen, a.data_dir, a.durable)
        if a.extra:
            with open(a.extra, "rb") as f:
                merge(cfg, tomllib.load(f))
        text = toml_dump(cfg) + "\n"
        tomllib.loads(text)  # what we wrote must parse
        with open(a.out, "w") as f:
            f.write("# Generated by scripts/bench-vs-nginx.sh (scripts/bench/bench.py config).\n" + text)
    elif a.cmd == "seed":
        with open(a.targets) as f:
            targets = [line.strip() for line in f if line.strip()]
        with open(a.body, "rb") as f:
            body = f.read()
        seed(a.base, targets, body, a.content_type)
    elif a.cmd == "verify-s3":
        verify_s3(a.endpoint, a.access_key, a.secret_key, a.prefix, a.result, a.size, a.delete)
    elif a.cmd == "verify-dir":
        verify_dir(a.dir, a.prefix, a.result, a.size)
    elif a.cmd == "annotate":
        annotate(a.wrk, a.out, a.set)
    elif a.cmd == "settle":
        print(f"{settle(a.pid):.1f}")
    elif a.cmd == "report":
        report(a.results, a.out, a.meta)


if __name__ == "__main__":
    main()
