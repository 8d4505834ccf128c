#!/usr/bin/env python3
"""SigV4 presigned URLs in bulk for the wrk runs of scripts/bench-vs-nginx.sh.

botocore's generate_presigned_url costs ~0.4 ms per URL on the 2-core box, too slow for the
hundreds of thousands of distinct keys a 4 KiB PUT row needs. This module signs the same way
(query auth, UNSIGNED-PAYLOAD, path style) with the signing key derived once, and refuses to
run unless its first URL is byte-for-byte the one botocore produces for the same key and
signing time, so every URL wrk sends is one botocore would have produced.

    presign.py urls --endpoint URL --access-key AK --secret-key SK --method PUT \
        --bucket uploads --prefix bench/r1/put2m/ --count N --out FILE [--content-type T] [--plain]

writes N request targets (path + query), one a line, for keys PREFIX + k0000000.pdf ...;
with --plain, only the paths (the nginx side: same keys, no auth). --keys FILE signs the
keys listed in FILE instead (one a line).
"""

import argparse
import hashlib
import hmac
import sys
import urllib.parse

REGION = "us-east-1"
SERVICE = "s3"


def botocore_url(endpoint, access_key, secret_key, method, bucket, key, content_type, expires):
    """The URL botocore itself presigns (the reference the fast path must reproduce)."""
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    params = {"Bucket": bucket, "Key": key}
    if content_type and method == "PUT":
        params["ContentType"] = content_type
    op = "put_object" if method == "PUT" else "get_object"
    return s3.generate_presigned_url(op, Params=params, ExpiresIn=expires)


class Signer:
    """SigV4 query signing for one endpoint, credential and signing time."""

    def __init__(self, endpoint, access_key, secret_key, amz_date, expires):
        u = urllib.parse.urlsplit(endpoint)
        self.endpoint = endpoint.rstrip("/")
        self.host = u.netloc
        self.amz_date = amz_date
        day = amz_date[:8]
        self.scope = f"{day}/{REGION}/{SERVICE}/aws4_request"
        k = hmac.new(("AWS4" + secret_key).encode(), day.encode(), hashlib.sha256).digest()
        for part in (REGION, SERVICE, "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        self.key = k
        self.credential = urllib.parse.quote(f"{access_key}/{self.scope}", safe="")
        self.expires = expires

    def target(self, method, bucket, key, content_type=None):
        """Path and query of a presigned request for `key` (its characters need no escaping
        beyond what quote() does; the bench keys are [a-z0-9/._-])."""
        path = "/" + urllib.parse.quote(f"{bucket}/{key}", safe="/~")
        if content_type and method == "PUT":
            signed = "content-type;host"
            headers = f"content-type:{content_type}\nhost:{self.host}\n"
        else:
            signed = "host"
            headers = f"host:{self.host}\n"
        query = (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={self.credential}"
            f"&X-Amz-Date={self.amz_date}"
            f"&X-Amz-Expires={self.expires}"
            f"&X-Amz-SignedHeaders={urllib.parse.quote(signed, safe='')}"
        )
        canonical = f"{method}\n{path}\n{query}\n{headers}\n{signed}\nUNSIGNED-PAYLOAD"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{self.amz_date}\n{self.scope}\n"
            + hashlib.sha256(canonical.encode()).hexdigest()
        )
        sig = hmac.new(self.key, to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{path}?{query}&X-Amz-Signature={sig}"


def checked_signer(endpoint, access_key, secret_key, method, bucket, probe_key, content_type, expires):
    """A Signer at botocore's signing time, after checking it reproduces botocore's URL."""
    ref = botocore_url(endpoint, access_key, secret_key, method, bucket, probe_key, content_type, expires)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(ref).query)
    signer = Signer(endpoint, access_key, secret_key, q["X-Amz-Date"][0], expires)
    mine = signer.endpoint + signer.target(method, bucket, probe_key, content_type)
    if mine != ref:
        sys.exit(f"presign.py: fast signer disagrees with botocore\n  botocore: {ref}\n  fast:     {mine}")
    return signer


def bench_key(prefix, i):
    return f"{prefix}k{i:07d}.pdf"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("urls")
    u.add_argument("--endpoint", required=True)
    u.add_argument("--access-key", default="")
    u.add_argument("--secret-key", default="")
    u.add_argument("--method", choices=["PUT", "GET"], default="PUT")
    u.add_argument("--bucket", default="uploads")
    u.add_argument("--prefix", default="")
    u.add_argument("--count", type=int, default=0)
    u.add_argument("--keys", help="file of keys to sign instead of PREFIX + k{i}.pdf")
    u.add_argument("--content-type", default="application/pdf")
    u.add_argument("--expires", type=int, default=3600)
    u.add_argument("--plain", action="store_true", help="paths only, unsigned (nginx)")
    u.add_argument("--out", required=True)
    a = ap.parse_args()

    if a.keys:
        with open(a.keys) as f:
            keys = [line.strip() for line in f if line.strip()]
    else:
        keys = [bench_key(a.prefix, i) for i in range(a.count)]
    with open(a.out, "w") as out:
        if a.plain:
            for k in keys:
                out.write(f"/{a.bucket}/{k}\n")
            return
        signer = checked_signer(
            a.endpoint, a.access_key, a.secret_key, a.method, a.bucket, keys[0], a.content_type, a.expires
        )
        for k in keys:
            out.write(signer.target(a.method, a.bucket, k, a.content_type) + "\n")


if __name__ == "__main__":
    main()
