"""The minting baseline of scripts/bench-vs-nginx.sh: the seed design's `POST /upload-url`
(FastAPI + boto3, /work/shared/seeds "S3 Presigned URL Workflow"), no more and no less.

Per request, as that design does: check the caller's bearer key (the design leaves
authentication to a gateway in front; a constant-time compare stands in for it so both sides
get the same request), validate the file type (extension against content type, from
ALLOWED_FILE_TYPES) and the declared size, generate a unique key `uploads/{uuid}-{filename}`,
and presign a PUT for it with boto3 (no network call). The design records no row, so neither
does this. Answer: {presigned_url, file_key, expires_in}.

Run by the script as `uvicorn mint_baseline:app --workers 2` with BASELINE_ENDPOINT,
BASELINE_API_KEY, BASELINE_ACCESS_KEY and BASELINE_SECRET_KEY in the environment.
"""

import hmac
import os
import uuid

import boto3
from botocore.config import Config
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

ALLOWED_FILE_TYPES = {".pdf": "application/pdf"}
MAX_BYTES = 25 * 1024 * 1024
EXPIRES_IN = 600
BUCKET = os.environ.get("BASELINE_BUCKET", "uploads")
EXPECTED_AUTH = ("Bearer " + os.environ["BASELINE_API_KEY"]).encode()

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["BASELINE_ENDPOINT"],
    aws_access_key_id=os.environ["BASELINE_ACCESS_KEY"],
    aws_secret_access_key=os.environ["BASELINE_SECRET_KEY"],
    region_name="us-east-1",
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
)

app = FastAPI()


class UploadUrlRequest(BaseModel):
    filename: str
    content_type: str
    size: int | None = None


@app.post("/upload-url")
async def upload_url(req: UploadUrlRequest, authorization: str = Header(default="")):
    if not hmac.compare_digest(authorization.encode(), EXPECTED_AUTH):
        raise HTTPException(status_code=401, detail="Unauthorized")
    name = os.path.basename(req.filename)
    ext = os.path.splitext(name)[1].lower()
    if ALLOWED_FILE_TYPES.get(ext) != req.content_type:
        raise HTTPException(
            status_code=400,
            detail=f"File type {ext} not allowed. Allowed types: {list(ALLOWED_FILE_TYPES)}",
        )
    if req.size is not None and not 0 < req.size <= MAX_BYTES:
        raise HTTPException(status_code=400, detail="File too large")
    key = f"uploads/{uuid.uuid4()}-{name}"
    url = s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": BUCKET, "Key": key, "ContentType": req.content_type},
        ExpiresIn=EXPIRES_IN,
    )
    return {"presigned_url": url, "file_key": key, "expires_in": EXPIRES_IN}
