#!/usr/bin/env python3
"""Memory held by 1,000 concurrent uploads stalled mid-body (a by-hand check, not a timed test).

What it does:

1. Locates the binary: ``--bin PATH``, else ``target/release/upgate`` if it exists, else
   ``target/debug/upgate``; if neither exists, runs ``cargo build`` (``--release`` with
   ``--release``) first. The summary says which binary was measured.
2. Raises this process's open-file limit (the gateway inherits it) and starts
   ``upgate serve`` on a free port with a temp data dir, fixed root credentials, the body idle
   timeout raised to 120 s (the hold must not trip it), the per-address connection cap, the
   per-principal upload cap and the S3 write rate limits lifted (one key from 127.0.0.1 stands
   in for N clients), the admin listener off and ``warn`` logging (log file in a separate temp
   dir). Settings an older binary does not know are dropped with a note.
3. Waits for ``GET /healthz``, does one real upload with boto3 (warms the auth, metadata and
   storage paths so lazy one-time allocations land in the baseline), then reads the baseline RSS
   (``VmRSS`` in ``/proc/PID/status``).
4. Opens N (default 1000) TCP connections; on each sends a PUT presigned with SigV4
   (boto3 ``generate_presigned_url``, ``s3v4``, path style; ``content-type`` signed),
   ``Content-Length: 2097152`` and the first 1 MiB of a PDF-looking body, then leaves the
   connection open with the body unfinished. It waits until the kernel shows every byte sent and
   read by the gateway (``/proc/net/tcp`` send and receive queues empty), so all N uploads are
   really mid-body inside the server, and checks that none got an early response.
5. Holds for ``--hold`` seconds (default 5), reads RSS under load.
6. Closes every socket, waits for the gateway to drop the connections and abort the staged
   writes, then confirms nothing was stored: ListObjectsV2 under the test prefix is empty and
   no file was added under ``data_dir/objects`` (staging files included). Reads RSS after.

Prints baseline / under-load / after RSS, the growth in MiB and per upload in KiB. Exits 1 if
the growth exceeds ``--max-growth-mib`` (default 100), if anything was stored, or if an upload
was answered or cut before the hold ended; 2 if the gateway could not be started.

Usage (from the repository root; needs Python 3 with boto3, Linux /proc):

    python3 scripts/rss_check.py                    # release binary if built, else debug
    python3 scripts/rss_check.py --bin target/debug/upgate --n 1000 --hold 10
"""

import argparse
import concurrent.futures
import os
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCESS_KEY = "AKIDRSSCHECK00000001"
SECRET_KEY = "rss-check-secret-0123456789abcdefghijkl"
BUCKET = "uploads"
PREFIX = "rss-check/"
MIB = 1024 * 1024


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", help="upgate binary (default: target/release/upgate, else target/debug/upgate)")
    p.add_argument("--release", action="store_true", help="build with --release if no binary exists")
    p.add_argument("--n", type=int, default=1000, help="concurrent uploads (default 1000)")
    p.add_argument("--content-length", type=int, default=2 * MIB, help="declared body size (default 2 MiB)")
    p.add_argument("--send-bytes", type=int, default=1 * MIB, help="body bytes sent before holding (default 1 MiB)")
    p.add_argument("--hold", type=float, default=5.0, help="seconds to hold once all are mid-body (default 5)")
    p.add_argument("--threads", type=int, default=8, help="client threads opening connections (default 8)")
    p.add_argument("--max-growth-mib", type=float, default=100.0, help="fail above this RSS growth (default 100)")
    p.add_argument("--keep", action="store_true", help="keep the temp data dir and log")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra gateway environment, repeatable (e.g. UPGATE__SERVER__MAX_HEADER_BYTES=16384)",
    )
    return p.parse_args()


def locate_binary(args):
    if args.bin:
        path = os.path.abspath(args.bin)
        if not os.path.isfile(path):
            sys.exit(f"--bin {path}: no such file")
        return path
    for profile in ("release", "debug"):
        path = os.path.join(ROOT, "target", profile, "upgate")
        if os.path.isfile(path):
            return path
    cmd = ["cargo", "build", "--bin", "upgate"] + (["--release"] if args.release else [])
    print(f"no binary found; running {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release" if args.release else "debug", "upgate")


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < needed:
        print(f"warning: open-file limit {soft} < {needed} needed; raise the hard limit", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid):
    """VmRSS, RssAnon, VmHWM (KiB) and Threads from /proc/PID/status."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "VmHWM", "Threads"):
                fields[key] = int(value.split()[0])
    return fields


def tcp_state(port, client_ports=None):
    """Over /proc/net/tcp: (established server-side connections on `port` (only those from
    `client_ports` when given), bytes queued in their receive queues, bytes queued in the
    clients' send queues)."""
    server_conns = server_rx = client_tx = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            local_port = int(parts[1].split(":")[1], 16)
            remote_port = int(parts[2].split(":")[1], 16)
            tx, rx = (int(x, 16) for x in parts[4].split(":"))
            if parts[3] != "01":  # ESTABLISHED
                continue
            if local_port == port and (client_ports is None or remote_port in client_ports):
                server_conns += 1
                server_rx += rx
            elif remote_port == port and (client_ports is None or local_port in client_ports):
                client_tx += tx
    return server_conns, server_rx, client_tx


def object_files(data_dir):
    out = set()
    for root, _dirs, files in os.walk(os.path.join(data_dir, "objects")):
        out.update(os.path.join(root, f) for f in files)
    return out


def s3_client(endpoint):
    import boto3
    from botocore.config import Config

    kwargs = dict(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        region_name="us-east-1",
        retries={"max_attempts": 1},
    )
    try:
        config = Config(request_checksum_calculation="when_required", **kwargs)
    except TypeError:  # botocore older than 1.36
        config = Config(**kwargs)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=config,
    )


def pdf_bytes(n):
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    filler = bytes(range(256)) * (n // 256 + 1)
    return (head + filler)[:n]


# Settings this check needs; an older binary that does not know one of them (config error
# "unknown field") is restarted without it.
OPTIONAL_ENV = {
    # All N connections come from 127.0.0.1; the per-address cap (default 256) would queue them.
    "UPGATE__SERVER__MAX_CONNECTIONS_PER_IP": "4096",
    # Metrics listener off: its fixed default port may be taken.
    "UPGATE__ADMIN__LISTEN": "",
    # One key from one address stands in for N clients here: lift the per-principal upload cap
    # and the S3 write request-rate limits (rate 0 = off), or most uploads would get SlowDown.
    "UPGATE__RATELIMIT__MAX_CONCURRENT_UPLOADS_PER_PRINCIPAL": "0",
    "UPGATE__RATELIMIT__S3_WRITE__PRINCIPAL__RATE": "0.0",
    "UPGATE__RATELIMIT__S3_WRITE__IP__RATE": "0.0",
    "UPGATE__RATELIMIT__S3_WRITE__GLOBAL__RATE": "0.0",
}


def unknown_setting(env_key, log_text):
    """Whether the gateway's config error names `env_key` as unknown (field or section)."""
    section, *fields = env_key.lower().split("__")[1:]
    return f"unknown section [{section}]" in log_text or any(f"unknown field `{f}`" in log_text for f in fields)


def start_gateway(binary, data_dir, log_path, port, extra_env):
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    env.update(
        UPGATE__SERVER__LISTEN=f"127.0.0.1:{port}",
        UPGATE__SERVER__MAX_CONNECTIONS="4096",
        UPGATE__SERVER__BODY_IDLE_TIMEOUT_SECS="120",
        UPGATE__STORAGE__DATA_DIR=data_dir,
        UPGATE__LOG__FILTER="warn",
        UPGATE_ROOT_ACCESS_KEY=ACCESS_KEY,
        UPGATE_ROOT_SECRET_KEY=SECRET_KEY,
    )
    env.update(extra_env)
    optional = {k: v for k, v in OPTIONAL_ENV.items() if k not in extra_env}
    while True:
        log = open(log_path, "wb")
        proc = subprocess.Popen([binary, "serve"], env={**env, **optional}, stdout=log, stderr=subprocess.STDOUT)
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/healthz", timeout=1).read()
                return proc, log, endpoint
            except Exception:
                if proc.poll() is not None or time.time() > deadline:
                    break
                time.sleep(0.1)
        proc.kill()
        proc.wait()
        log.close()
        with open(log_path, errors="replace") as f:
            text = f.read()
        unknown = [k for k in optional if unknown_setting(k, text)]
        if not unknown:
            print("gateway did not start:\n" + text, file=sys.stderr)
            sys.exit(2)
        for k in unknown:
            print(f"note: this binary does not know {k}; starting without it", flush=True)
            del optional[k]


def open_upload(port, request_target, content_length, body_part):
    """Connects, sends a presigned PUT's head and `body_part`, returns the open socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (
        f"PUT {request_target} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Content-Type: application/pdf\r\n"
        f"Content-Length: {content_length}\r\n"
        "\r\n"
    ).encode()
    s.sendall(head)
    s.sendall(body_part)
    return s


def answered(socks):
    """Sockets the server wrote to or closed (an early response or a cut connection)."""
    poller = select.poll()  # poll, not select: fd numbers exceed FD_SETSIZE here
    for s in socks:
        poller.register(s, select.POLLIN | select.POLLERR | select.POLLHUP)
    return [fd for fd, _event in poller.poll(0)]


def mib(kib):
    return kib / 1024.0


def main():
    args = parse_args()
    binary = locate_binary(args)
    raise_fd_limit(3 * args.n + 256)
    os.environ.setdefault("AWS_CONFIG_FILE", "/dev/null")
    os.environ.setdefault("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")

    data_dir = tempfile.mkdtemp(prefix="upgate-rss-data-")
    log_dir = tempfile.mkdtemp(prefix="upgate-rss-log-")
    log_path = os.path.join(log_dir, "gateway.log")
    port = free_port()
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    proc, log, endpoint = start_gateway(binary, data_dir, log_path, port, extra_env)
    failures = []
    socks = []
    try:
        s3 = s3_client(endpoint)
        # Warm-up: one complete upload and one listing.
        s3.put_object(Bucket=BUCKET, Key="rss-check-warmup.pdf", Body=pdf_bytes(64 * 1024), ContentType="application/pdf")
        s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)
        files_before = object_files(data_dir)
        time.sleep(1.0)
        base = proc_status(proc.pid)

        targets = []
        for i in range(args.n):
            url = s3.generate_presigned_url(
                "put_object",
                Params={"Bucket": BUCKET, "Key": f"{PREFIX}obj-{i:05d}.pdf", "ContentType": "application/pdf"},
                ExpiresIn=900,
            )
            targets.append(url[len(endpoint) :])
        body_part = pdf_bytes(args.send_bytes)

        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.threads) as pool:
            futures = [pool.submit(open_upload, port, t, args.content_length, body_part) for t in targets]
            for f in futures:
                try:
                    socks.append(f.result())
                except OSError as e:
                    failures.append(f"connection failed: {e}")
        sent_secs = time.time() - t0
        if len(socks) < args.n:
            failures.append(f"only {len(socks)} of {args.n} connections opened")

        # Settle: every sent byte read by the gateway (nothing left in either queue).
        ours = {s.getsockname()[1] for s in socks}
        deadline = time.time() + 60
        while True:
            conns, rx, tx = tcp_state(port, ours)
            if (conns >= len(socks) and rx == 0 and tx == 0) or time.time() > deadline:
                break
            time.sleep(0.2)
        settle_secs = time.time() - t0
        if rx or tx:
            failures.append(f"bytes still queued after 60 s (server rx {rx}, client tx {tx})")

        time.sleep(args.hold)
        load = proc_status(proc.pid)
        conns_held, _, _ = tcp_state(port, ours)
        staged = len(object_files(data_dir) - files_before)
        if conns_held < len(socks):
            failures.append(f"only {conns_held} of {len(socks)} connections still open at the end of the hold")
        early = answered(socks)
        if early:
            first = next(s for s in socks if s.fileno() == early[0])
            try:
                reply = first.recv(200).split(b"\r\n", 1)[0].decode(errors="replace") or "connection closed"
            except OSError as e:
                reply = str(e)
            failures.append(
                f"{len(early)} uploads were answered or closed by the gateway before the hold ended "
                f"(first: {reply})"
            )

        for s in socks:
            s.close()
        socks = []
        # Wait for the gateway to drop the connections and abort the staged writes.
        deadline = time.time() + 30
        while time.time() < deadline:
            if tcp_state(port, ours)[0] == 0 and object_files(data_dir) == files_before:
                break
            time.sleep(0.25)
        time.sleep(2.0)
        after = proc_status(proc.pid)

        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("KeyCount", 0)
        leftover = sorted(object_files(data_dir) - files_before)
        if listed:
            failures.append(f"ListObjectsV2 shows {listed} objects under {PREFIX}")
        if leftover:
            failures.append(f"{len(leftover)} files left under objects/ (e.g. {leftover[0]})")

        growth = load["VmRSS"] - base["VmRSS"]
        if mib(growth) > args.max_growth_mib:
            failures.append(f"RSS growth {mib(growth):.1f} MiB exceeds {args.max_growth_mib:.0f} MiB")

        profile = os.path.basename(os.path.dirname(binary))
        print(f"binary            {binary} ({profile})")
        print(
            f"uploads           {args.n} x PUT presigned SigV4, Content-Length {args.content_length}, "
            f"{args.send_bytes} bytes sent then held"
        )
        print(
            f"mid-body          {conns_held}/{args.n} connections open, {staged} staging files; all sent bytes "
            f"read by the gateway {settle_secs:.1f} s after start (sending took {sent_secs:.1f} s); "
            f"then held {args.hold:.0f} s"
        )
        if extra_env:
            print(f"extra env         {' '.join(args.env)}")
        for label, st in (("RSS baseline   ", base), ("RSS under load ", load)):
            print(f"{label}   {mib(st['VmRSS']):8.1f} MiB  (anon {mib(st['RssAnon']):.1f}; {st['Threads']} threads)")
        print(f"growth            {mib(growth):8.1f} MiB  = {growth / args.n:.1f} KiB per upload")
        print(
            f"RSS after close   {mib(after['VmRSS']):8.1f} MiB  (anon {mib(after['RssAnon']):.1f}; "
            f"{after['Threads']} threads; peak VmHWM {mib(after['VmHWM']):.1f})"
        )
        print(f"stored            {listed} objects listed under {PREFIX}, {len(leftover)} new files under objects/")
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if args.keep:
            print(f"kept data dir {data_dir} and log {log_path}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
            shutil.rmtree(log_dir, ignore_errors=True)

    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print(f"OK: growth within {args.max_growth_mib:.0f} MiB and nothing stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
