// Drives tus-js-client (Node) against upgate for the compatibility tests.
//
//   node tus_upload.mjs '{"endpoint": "...", "token": "...", "file": "...", ...}'
//
// Options: chunkSize, parallelUploads, uploadDataDuringCreation, deferred (upload from a
// stream with uploadLengthDeferred), abortAfter (abort once this many bytes were sent),
// uploadUrl (resume an existing upload), terminate (terminate uploadUrl), metadata.
// Prints one JSON line: {ok, url, error, status, progress: [bytes…]}.
import fs from "node:fs";
import { Readable } from "node:stream";
import * as tus from "tus-js-client";

const o = JSON.parse(process.argv[2]);
const headers = { Authorization: `Bearer ${o.token}` };
const out = { ok: false, url: null, error: null, status: null, progress: [] };

function finish(code) {
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(code);
}

if (o.terminate) {
  tus.Upload.terminate(o.uploadUrl, { headers, retryDelays: [] })
    .then(() => {
      out.ok = true;
      out.url = o.uploadUrl;
      finish(0);
    })
    .catch((e) => {
      out.error = String(e);
      out.status = e.originalResponse ? e.originalResponse.getStatus() : null;
      finish(0);
    });
} else {
  const data = fs.readFileSync(o.file);
  let source = data;
  const options = {
    endpoint: o.endpoint,
    headers,
    chunkSize: o.chunkSize ?? Infinity,
    retryDelays: o.retryDelays ?? [0, 200, 500],
    metadata: o.metadata ?? { filename: "file.pdf", filetype: "application/pdf" },
    parallelUploads: o.parallelUploads ?? 1,
    uploadDataDuringCreation: o.uploadDataDuringCreation ?? false,
  };
  if (o.uploadUrl) options.uploadUrl = o.uploadUrl;
  if (o.deferred) {
    // A stream of unknown length: the length comes with the last PATCH.
    source = Readable.from([data.subarray(0, data.length >> 1), data.subarray(data.length >> 1)]);
    options.uploadLengthDeferred = true;
  }
  let upload;
  options.onProgress = (sent) => {
    out.progress.push(sent);
    if (o.abortAfter && sent >= o.abortAfter && !out.aborted) {
      out.aborted = true;
      out.url = upload.url;
      upload.abort().then(() => finish(0));
    }
  };
  options.onError = (e) => {
    out.error = String(e);
    out.status = e.originalResponse ? e.originalResponse.getStatus() : null;
    out.url = upload.url;
    finish(0);
  };
  options.onSuccess = () => {
    out.ok = true;
    out.url = upload.url;
    finish(0);
  };
  upload = new tus.Upload(source, options);
  upload.start();
}
