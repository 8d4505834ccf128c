"""Unmodified S3 clients against the real upgate binary: boto3, the aws CLI, rclone, s3cmd.

These are the compatibility oracle: if a stock client needs a flag to work with upgate, the
test says so explicitly.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

import boto3
import requests
import pytest
from botocore.config import Config

from conftest import ACCESS_KEY, BUCKET, SECRET_KEY


def pdf_bytes(n, seed=1):
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    body = hashlib.sha256(str(seed).encode()).digest() * (n // 32 + 1)
    return (head + body)[:n]


def s3_client(gateway, **config):
    return boto3.client(
        "s3",
        endpoint_url=gateway.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, **config),
        verify=False,
    )


def aws(gateway, *args, check=True):
    res = subprocess.run(
        ["aws", "--endpoint-url", gateway.endpoint, *args],
        env=gateway.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed: {res.stdout}\n{res.stderr}")
    return res


def http(method, url, data=None, headers=None):
    # `requests` sends exactly the headers given (urllib would add a form Content-Type, which
    # SigV2 signs).
    r = requests.request(method, url, data=data, headers=headers or {}, timeout=30)
    return r.status_code, r.content, {k.lower(): v for k, v in r.headers.items()}


def test_boto3_put_get_list_delete(gateway):
    s3 = s3_client(gateway)
    body = pdf_bytes(2 * 1024 * 1024)
    s3.put_object(Bucket=BUCKET, Key="boto/a.pdf", Body=body, ContentType="application/pdf")
    got = s3.get_object(Bucket=BUCKET, Key="boto/a.pdf")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/pdf"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="boto/")["Contents"]]
    assert keys == ["boto/a.pdf"]
    s3.delete_object(Bucket=BUCKET, Key="boto/a.pdf")
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=BUCKET, Key="boto/a.pdf")


def test_boto3_sigv2_header_auth(gateway):
    # signature_version="s3" signs every request with SigV2 (HmacV1) headers.
    s3 = s3_client(gateway, signature_version="s3")
    body = pdf_bytes(50_000, seed=5)
    s3.put_object(Bucket=BUCKET, Key="v2/h.pdf", Body=body)
    assert s3.get_object(Bucket=BUCKET, Key="v2/h.pdf")["Body"].read() == body
    assert [o["Key"] for o in s3.list_objects(Bucket=BUCKET, Prefix="v2/")["Contents"]] == ["v2/h.pdf"]
    s3.delete_object(Bucket=BUCKET, Key="v2/h.pdf")
    bad = boto3.client(
        "s3",
        endpoint_url=gateway.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key="wrong",
        region_name="us-east-1",
        config=Config(signature_version="s3", s3={"addressing_style": "path"}),
    )
    with pytest.raises(bad.exceptions.ClientError) as e:
        bad.put_object(Bucket=BUCKET, Key="v2/bad.pdf", Body=body)
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_boto3_default_checksum_trailer_upload(gateway):
    # botocore >= 1.36 sends STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32 trailer for
    # file-like bodies by default.
    s3 = s3_client(gateway)
    body = pdf_bytes(300_000, seed=2)
    with tempfile.TemporaryFile() as f:
        f.write(body)
        f.seek(0)
        s3.upload_fileobj(f, BUCKET, "boto/trailer.pdf")
    got = s3.get_object(Bucket=BUCKET, Key="boto/trailer.pdf", ChecksumMode="ENABLED")
    assert got["Body"].read() == body


def test_boto3_rejects_oversize_and_disguised(gateway):
    s3 = s3_client(gateway)
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key="boto/big.pdf", Body=pdf_bytes(21 * 1024 * 1024))
    assert e.value.response["Error"]["Code"] == "EntityTooLarge"
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key="boto/x.png", Body=pdf_bytes(1000), ContentType="image/png")
    assert e.value.response["Error"]["Code"] == "ContentTypeMismatch"
    keys = s3.list_objects_v2(Bucket=BUCKET, Prefix="boto/big").get("Contents", [])
    assert keys == []


def test_boto3_presigned_urls_sigv2_and_sigv4(gateway):
    body = pdf_bytes(10_000, seed=3)
    # Default signature for presign against a custom endpoint, and explicit s3v4.
    for version, key in [(None, "pre/default.pdf"), ("s3v4", "pre/v4.pdf"), ("s3", "pre/v2.pdf")]:
        cfg = {} if version is None else {"signature_version": version}
        s3 = s3_client(gateway, **cfg)
        put_url = s3.generate_presigned_url(
            "put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300
        )
        status, resp, _ = http("PUT", put_url, data=body)
        assert status == 200, (version, resp)
        get_url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300
        )
        status, got, headers = http("GET", get_url)
        assert status == 200 and got == body, (version, status)
        assert headers.get("x-content-type-options") == "nosniff"
        # Tampering with the URL breaks it.
        status, resp, _ = http("GET", get_url.replace(key, key + "x"))
        assert status == 403, (version, resp)


def test_aws_cli_s3api_cp_ls_presign(gateway, tmp_path):
    body = pdf_bytes(2 * 1024 * 1024, seed=4)
    src = tmp_path / "doc.pdf"
    src.write_bytes(body)
    # Plain s3api put-object declares no content type; the sniffed type is stored.
    out = aws(gateway, "s3api", "put-object", "--bucket", BUCKET, "--key", "cli/api.pdf", "--body", str(src))
    assert "ETag" in json.loads(out.stdout)
    head = json.loads(aws(gateway, "s3api", "head-object", "--bucket", BUCKET, "--key", "cli/api.pdf").stdout)
    assert head["ContentType"] == "application/pdf"
    assert head["ContentLength"] == len(body)

    aws(gateway, "s3", "cp", str(src), f"s3://{BUCKET}/cli/cp.pdf")
    dst = tmp_path / "back.pdf"
    aws(gateway, "s3", "cp", f"s3://{BUCKET}/cli/cp.pdf", str(dst))
    assert dst.read_bytes() == body

    listing = aws(gateway, "s3", "ls", f"s3://{BUCKET}/cli/").stdout
    assert "api.pdf" in listing and "cp.pdf" in listing

    url = aws(gateway, "s3", "presign", f"s3://{BUCKET}/cli/cp.pdf", "--expires-in", "300").stdout.strip()
    res = subprocess.run(["curl", "-sf", url], capture_output=True, timeout=60)
    assert res.returncode == 0 and res.stdout == body

    aws(gateway, "s3", "rm", f"s3://{BUCKET}/cli/cp.pdf")
    assert "cp.pdf" not in aws(gateway, "s3", "ls", f"s3://{BUCKET}/cli/").stdout


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed (.ci/run installs it)")
def test_rclone_copy_and_check_integrity(gateway, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.pdf").write_bytes(pdf_bytes(500_000 + i, seed=10 + i))
    env = gateway.env()
    env.update(
        RCLONE_CONFIG_UG_TYPE="s3",
        RCLONE_CONFIG_UG_PROVIDER="Other",
        RCLONE_CONFIG_UG_ACCESS_KEY_ID=ACCESS_KEY,
        RCLONE_CONFIG_UG_SECRET_ACCESS_KEY=SECRET_KEY,
        RCLONE_CONFIG_UG_ENDPOINT=gateway.endpoint,
        RCLONE_CONFIG_UG_REGION="us-east-1",
        RCLONE_CONFIG_UG_FORCE_PATH_STYLE="true",
        RCLONE_CONFIG="/dev/null",
    )

    def rclone(*args):
        res = subprocess.run(["rclone", *args], env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, f"rclone {args}: {res.stdout}\n{res.stderr}"
        return res

    rclone("copy", str(src), f"ug:{BUCKET}/rclone")
    # `check` compares hashes (MD5 where both sides have one) and sizes.
    rclone("check", str(src), f"ug:{BUCKET}/rclone")
    back = tmp_path / "back"
    rclone("copy", f"ug:{BUCKET}/rclone", str(back))
    for i in range(3):
        assert (back / f"f{i}.pdf").read_bytes() == (src / f"f{i}.pdf").read_bytes()


@pytest.mark.skipif(shutil.which("s3cmd") is None, reason="s3cmd not installed (.ci/run installs it)")
def test_s3cmd_put_get_integrity(gateway, tmp_path):
    host = gateway.endpoint.removeprefix("http://")
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        "[default]\n"
        f"access_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\n"
        f"host_base = {host}\nhost_bucket = {host}\n"
        "use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
        "check_ssl_certificate = False\n"
    )
    src = tmp_path / "s.pdf"
    body = pdf_bytes(700_000, seed=20)
    src.write_bytes(body)

    def s3cmd(*args):
        res = subprocess.run(["s3cmd", "-c", str(cfg), *args], env=gateway.env(), capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, f"s3cmd {args}: {res.stdout}\n{res.stderr}"
        assert "MD5 Sums don't match" not in res.stderr, res.stderr
        assert "MD5 signatures do not match" not in res.stderr, res.stderr
        return res

    s3cmd("put", str(src), f"s3://{BUCKET}/s3cmd/s.pdf")
    dst = tmp_path / "d.pdf"
    s3cmd("get", f"s3://{BUCKET}/s3cmd/s.pdf", str(dst))
    assert dst.read_bytes() == body
    assert "s3cmd/s.pdf" in s3cmd("ls", f"s3://{BUCKET}/s3cmd/").stdout


def test_logs_carry_no_secrets_or_keys(gateway):
    # INV-5: run after the other tests in this module have written their lines.
    log = open(gateway.log_path, encoding="utf-8", errors="replace").read()
    assert "request" in log
    for needle in [SECRET_KEY, "X-Amz-Signature", "Signature=", "boto/a.pdf", "doc.pdf", "cli/api.pdf"]:
        assert needle not in log, needle


def test_aws_cli_multipart_20_mib_round_trip_and_21_mib_refused(gateway, tmp_path):
    # `aws s3 cp` switches to multipart above 8 MiB: 20 MiB goes in 3 parts.
    body = pdf_bytes(20 * 1024 * 1024, seed=30)
    src = tmp_path / "twenty.pdf"
    src.write_bytes(body)
    aws(gateway, "s3", "cp", str(src), f"s3://{BUCKET}/mp/twenty.pdf")
    dst = tmp_path / "back.pdf"
    aws(gateway, "s3", "cp", f"s3://{BUCKET}/mp/twenty.pdf", str(dst))
    assert dst.read_bytes() == body
    head = json.loads(aws(gateway, "s3api", "head-object", "--bucket", BUCKET, "--key", "mp/twenty.pdf").stdout)
    assert head["ContentLength"] == len(body)
    assert head["ETag"].strip('"').endswith("-3")

    big = tmp_path / "big.pdf"
    big.write_bytes(pdf_bytes(21 * 1024 * 1024, seed=31))
    res = aws(gateway, "s3", "cp", str(big), f"s3://{BUCKET}/mp/big.pdf", check=False)
    assert res.returncode != 0
    assert "EntityTooLarge" in res.stderr, res.stderr
    assert "big.pdf" not in aws(gateway, "s3", "ls", f"s3://{BUCKET}/mp/").stdout
    # The CLI aborts the failed upload; nothing stays open.
    uploads = json.loads(aws(gateway, "s3api", "list-multipart-uploads", "--bucket", BUCKET).stdout or "{}")
    assert not uploads.get("Uploads"), uploads


def test_boto3_upload_file_multipart(gateway, tmp_path):
    from boto3.s3.transfer import TransferConfig

    s3 = s3_client(gateway)
    body = pdf_bytes(12 * 1024 * 1024 + 7, seed=32)
    src = tmp_path / "twelve.pdf"
    src.write_bytes(body)
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_file(str(src), BUCKET, "mp/boto.pdf", Config=cfg)
    head = s3.head_object(Bucket=BUCKET, Key="mp/boto.pdf")
    assert head["ContentLength"] == len(body)
    assert head["ETag"].strip('"').endswith("-3")
    got = s3.get_object(Bucket=BUCKET, Key="mp/boto.pdf", ChecksumMode="ENABLED")
    assert got["Body"].read() == body


def test_boto3_if_none_match_race_has_exactly_one_winner(gateway):
    # 20 writers race to create one key with `If-None-Match: *` (write-once): one succeeds,
    # every other one is told the key exists (412) or lost the race at commit (409).
    import concurrent.futures

    from botocore.exceptions import ClientError

    s3 = s3_client(gateway, retries={"max_attempts": 1}, max_pool_connections=20)
    bodies = [pdf_bytes(200_000, seed=100 + i) for i in range(20)]

    def put(i):
        try:
            s3.put_object(Bucket=BUCKET, Key="once/race.pdf", Body=bodies[i], IfNoneMatch="*")
            return "ok", i
        except ClientError as e:
            return e.response["Error"]["Code"], i

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(put, range(20)))
    winners = [i for code, i in results if code == "ok"]
    assert len(winners) == 1, results
    assert {code for code, _ in results if code != "ok"} <= {"PreconditionFailed", "ConditionalRequestConflict"}, results
    got = s3.get_object(Bucket=BUCKET, Key="once/race.pdf")["Body"].read()
    assert got == bodies[winners[0]]


def test_aws_cli_sync_keeps_user_metadata(gateway, tmp_path):
    src = tmp_path / "sync"
    src.mkdir()
    for i in range(3):
        (src / f"s{i}.pdf").write_bytes(pdf_bytes(300_000 + i, seed=200 + i))
    aws(gateway, "s3", "sync", str(src), f"s3://{BUCKET}/sync/", "--metadata", "owner=alice,dept=legal",
        "--cache-control", "max-age=60")
    s3 = s3_client(gateway)
    for i in range(3):
        head = s3.head_object(Bucket=BUCKET, Key=f"sync/s{i}.pdf")
        assert head["Metadata"] == {"owner": "alice", "dept": "legal"}, head
        assert head["CacheControl"] == "max-age=60", head


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed (.ci/run installs it)")
def test_rclone_copy_with_metadata(gateway, tmp_path):
    src = tmp_path / "meta"
    src.mkdir()
    (src / "m.pdf").write_bytes(pdf_bytes(250_000, seed=300))
    env = gateway.env()
    env.update(
        RCLONE_CONFIG_UG_TYPE="s3",
        RCLONE_CONFIG_UG_PROVIDER="Other",
        RCLONE_CONFIG_UG_ACCESS_KEY_ID=ACCESS_KEY,
        RCLONE_CONFIG_UG_SECRET_ACCESS_KEY=SECRET_KEY,
        RCLONE_CONFIG_UG_ENDPOINT=gateway.endpoint,
        RCLONE_CONFIG_UG_REGION="us-east-1",
        RCLONE_CONFIG_UG_FORCE_PATH_STYLE="true",
        RCLONE_CONFIG="/dev/null",
    )
    res = subprocess.run(
        ["rclone", "copy", "--metadata", "--metadata-set", "color=blue", str(src), f"ug:{BUCKET}/rmeta"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    head = s3_client(gateway).head_object(Bucket=BUCKET, Key="rmeta/m.pdf")
    assert head["Metadata"].get("color") == "blue", head["Metadata"]
    # rclone keeps the file's modification time as metadata too, and reads it back.
    assert "mtime" in head["Metadata"], head["Metadata"]
    res = subprocess.run(["rclone", "lsjson", "--metadata", f"ug:{BUCKET}/rmeta"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    listed = json.loads(res.stdout)
    assert listed[0]["Metadata"]["color"] == "blue", listed


def test_aws_cli_copies_s3_to_s3(gateway, tmp_path):
    """`aws s3 cp s3://… s3://…` (CopyObject, and UploadPartCopy for a multipart-sized object),
    and `aws s3 sync` between prefixes; the copies keep their bytes and metadata."""
    small = pdf_bytes(400_000, seed=400)
    big = pdf_bytes(12 * 1024 * 1024, seed=401)
    (tmp_path / "small.pdf").write_bytes(small)
    (tmp_path / "big.pdf").write_bytes(big)
    aws(gateway, "s3", "cp", str(tmp_path / "small.pdf"), f"s3://{BUCKET}/cpsrc/small.pdf", "--metadata", "case=c-7")
    aws(gateway, "s3", "cp", str(tmp_path / "big.pdf"), f"s3://{BUCKET}/cpsrc/big.pdf")
    # A multipart threshold below the object's size makes the CLI copy it in parts.
    env_cfg = tmp_path / "aws.cfg"
    env_cfg.write_text("[default]\ns3 =\n  multipart_threshold = 8MB\n  multipart_chunksize = 5MB\n")
    res = subprocess.run(
        ["aws", "--endpoint-url", gateway.endpoint, "s3", "cp", "--recursive", f"s3://{BUCKET}/cpsrc/", f"s3://{BUCKET}/cpdst/"],
        env=dict(gateway.env(), AWS_CONFIG_FILE=str(env_cfg)), capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    s3 = s3_client(gateway)
    assert s3.get_object(Bucket=BUCKET, Key="cpdst/small.pdf")["Body"].read() == small
    assert s3.get_object(Bucket=BUCKET, Key="cpdst/big.pdf")["Body"].read() == big
    assert s3.head_object(Bucket=BUCKET, Key="cpdst/small.pdf")["Metadata"] == {"case": "c-7"}
    aws(gateway, "s3", "sync", f"s3://{BUCKET}/cpdst/", f"s3://{BUCKET}/cpsync/")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="cpsync/")["Contents"])
    assert keys == ["cpsync/big.pdf", "cpsync/small.pdf"]


def test_aws_cli_makes_fills_and_removes_a_bucket(gateway, tmp_path):
    """`aws s3 mb` / `cp` / `rb` on a bucket created at run time (CreateBucket), and S3's answers
    to boto3 for the bucket operations it refuses."""
    from botocore.exceptions import ClientError

    data = pdf_bytes(300_000, seed=500)
    (tmp_path / "in.pdf").write_bytes(data)
    out = aws(gateway, "s3", "mb", "s3://cli-made-bucket").stdout
    assert "make_bucket: cli-made-bucket" in out
    assert "cli-made-bucket" in aws(gateway, "s3", "ls").stdout
    aws(gateway, "s3", "cp", str(tmp_path / "in.pdf"), "s3://cli-made-bucket/docs/in.pdf")
    aws(gateway, "s3", "cp", "s3://cli-made-bucket/docs/in.pdf", str(tmp_path / "out.pdf"))
    assert (tmp_path / "out.pdf").read_bytes() == data
    # Not empty: refused with S3's code, and kept.
    res = aws(gateway, "s3", "rb", "s3://cli-made-bucket", check=False)
    assert res.returncode != 0
    assert "BucketNotEmpty" in res.stderr, res.stderr
    s3 = s3_client(gateway)
    s3.head_bucket(Bucket="cli-made-bucket")
    # Creating it again, deleting a configured bucket, a name S3 refuses.
    for call, status, code in [
        (lambda: s3.create_bucket(Bucket="cli-made-bucket"), 409, "BucketAlreadyOwnedByYou"),
        (lambda: s3.create_bucket(Bucket=BUCKET), 409, "BucketAlreadyOwnedByYou"),
        (lambda: s3.delete_bucket(Bucket=BUCKET), 403, "AccessDenied"),
        (lambda: s3.create_bucket(Bucket="Not_A_Bucket"), 400, "InvalidBucketName"),
    ]:
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert err.value.response["Error"]["Code"] == code
    # --force empties it first; then it is gone.
    aws(gateway, "s3", "rb", "--force", "s3://cli-made-bucket")
    assert "cli-made-bucket" not in aws(gateway, "s3", "ls").stdout
    with pytest.raises(ClientError) as err:
        s3.head_bucket(Bucket="cli-made-bucket")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # The configured bucket is untouched.
    s3.head_bucket(Bucket=BUCKET)


def test_boto3_multipart_checksums_composite_and_full_object(gateway):
    """A multipart upload with CRC32 checksums: composite by default (the CRC32 of the parts'
    CRC32s, "-N"), full-object when asked; boto3 reads both back with ChecksumMode, and checks
    the full-object one against the bytes. Expected values from zlib, not from upgate."""
    import base64
    import struct
    import zlib

    s3 = s3_client(gateway)
    parts = [pdf_bytes(5 * 1024 * 1024, seed=600), b"tail of the object" * 100]
    crc = lambda b: struct.pack(">I", zlib.crc32(b))
    b64 = lambda raw: base64.b64encode(raw).decode()
    expected = {
        "COMPOSITE": b64(crc(b"".join(crc(p) for p in parts))) + "-2",
        "FULL_OBJECT": b64(crc(b"".join(parts))),
    }
    for kind, want in expected.items():
        key = f"ck/{kind.lower()}.pdf"
        extra = {} if kind == "COMPOSITE" else {"ChecksumType": kind}
        up = s3.create_multipart_upload(
            Bucket=BUCKET, Key=key, ContentType="application/pdf", ChecksumAlgorithm="CRC32", **extra
        )
        done = []
        for n, body in enumerate(parts, start=1):
            r = s3.upload_part(
                Bucket=BUCKET, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body, ChecksumAlgorithm="CRC32"
            )
            assert r["ChecksumCRC32"] == b64(crc(body))
            done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
        out = s3.complete_multipart_upload(
            Bucket=BUCKET, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": done}
        )
        assert out["ChecksumCRC32"] == want, kind
        assert out["ChecksumType"] == kind
        head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        assert head["ChecksumCRC32"] == want
        assert head["ChecksumType"] == kind
        got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        assert got["Body"].read() == b"".join(parts)
        assert got["ChecksumType"] == kind
