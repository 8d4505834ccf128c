//! Throughput of the ingest pipe: byte limit + SHA-256 (+ MD5 when asked) + magic-byte sniff +
//! staging write, from `Storage::begin` through `run_pipe` to `Staging::commit`.
//!
//! Bodies of 2 MiB and 20 MiB (PDF-looking: `%PDF-1.7` magic, then pseudo-random filler) arrive
//! as a stream of 64 KiB `Bytes` frames, as hyper hands them over. Cases per size:
//!
//! - `pipe_memory` / `pipe_memory_md5`: into `object_store`'s in-memory store (the pipe's own
//!   cost plus one copy when the store concatenates the parts at commit);
//! - `pipe_local` / `pipe_local_md5`: into the local filesystem store in a temp dir without
//!   fsync (page cache: the figure is CPU + syscalls, not disk bandwidth), frames gathered into
//!   64 KiB writes;
//! - `pipe_local_per_frame`: the same with one file write per frame (how upgate wrote before
//!   writes were gathered), the baseline of the gathering;
//! - `pipe_local_fsync`: gathered, with the object and its directory entry flushed to the disk
//!   before the commit (the default, `storage.local.fsync = true`): the price of durability;
//! - baselines over the same bytes, same framing: `baseline_sha256`, `baseline_md5` and
//!   `baseline_sha256+md5`, so the pipe figures can be read as ratios on this machine.
//!
//! The `_md5` cases set `want_md5` (bucket `etag = "md5"`), so the MD5 cost shows. A last group
//! repeats the 20 MiB memory and local cases with 16 KiB frames (the frame size follows hyper's
//! read buffer cap, which also bounds memory per open upload), and the local case once more with
//! each frame ready only after the reader yields, as a socket delivers them: gathered by copy,
//! with gathering off (`gather_bytes = 0`), a write per frame, and gathered with each write on
//! the blocking pool (`direct_writes = false`; by default writes are made from the upload's task).
//! Every iteration writes the same storage path, so memory and disk use stay bounded.
//!
//! A last group, `pdf_scan_2MiB`, times the PDF active-content scanner alone against SHA-256
//! over the same bytes.
//!
//! Run: `cargo bench --bench ingest` (`-- pdf_scan` for that group alone).

use std::hint::black_box;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;
use upgate::config::StorageConfig;
use upgate::error::Error;
use upgate::ingest::{Expectations, Pipe, run_pipe};
use upgate::storage::Storage;

const MIB: usize = 1024 * 1024;
const FRAME: usize = 64 * 1024;
const SMALL_FRAME: usize = 16 * 1024;
const MAX_BYTES: u64 = 20 * MIB as u64;
const PDF: &str = "application/pdf";

/// `len` bytes: PDF magic, then xorshift filler (incompressible, not all zeros).
fn pdf_body(len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len + 8);
    v.extend_from_slice(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// The body as `frame`-byte frames sharing one buffer (cloning the list is cheap).
fn frames(body: &Bytes, frame: usize) -> Vec<Bytes> {
    (0..body.len())
        .step_by(frame)
        .map(|i| body.slice(i..(i + frame).min(body.len())))
        .collect()
}

/// The SHA-256 of `frames`, fed one frame at a time (the baseline the pipe figures are read
/// against).
fn sha256(frames: &[Bytes]) -> sha2::digest::Output<Sha256> {
    let mut h = Sha256::new();
    for f in frames {
        h.update(black_box(f));
    }
    h.finalize()
}

fn expectations(len: usize, want_md5: bool) -> Expectations {
    Expectations {
        max_bytes: MAX_BYTES,
        length: Some(len as u64),
        allowed_types: vec![PDF.to_owned()],
        declared_type: Some(PDF.to_owned()),
        // As PutObject: the sniffed type must be allowed and match the declared one.
        enforce_type: true,
        want_md5,
        ..Expectations::default()
    }
}

/// One upload: begin → run_pipe → commit. Returns the ingest result for checking.
async fn ingest(storage: &Storage, frames: &[Bytes], want_md5: bool) -> upgate::ingest::Ingested {
    let body = futures_util::stream::iter(frames.iter().cloned().map(Ok::<Bytes, Error>));
    ingest_from(storage, frames, body, want_md5).await
}

/// The same, with each frame ready only after the reader has yielded once, as a connection
/// delivers them: its task reads the next frame from the socket after the upload's step.
async fn ingest_one_ahead(storage: &Storage, frames: &[Bytes]) -> upgate::ingest::Ingested {
    let mut next = frames.iter().cloned();
    let mut ready = false;
    let body = futures_util::stream::poll_fn(move |cx| {
        if !ready {
            ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready = false;
        Poll::Ready(next.next().map(Ok::<Bytes, Error>))
    });
    ingest_from(storage, frames, body, false).await
}

async fn ingest_from(
    storage: &Storage,
    frames: &[Bytes],
    body: impl futures_util::Stream<Item = Result<Bytes, Error>> + Unpin,
    want_md5: bool,
) -> upgate::ingest::Ingested {
    let len = frames.iter().map(Bytes::len).sum();
    let path = Storage::path_for("uploads", "bench0000000000000000000000000000");
    let mut staging = storage.begin(&path).await.expect("begin staging");
    let pipe = Pipe::new(expectations(len, want_md5)).expect("pipe");
    let ingested = run_pipe(body, None, pipe, &mut staging, Duration::from_secs(30))
        .await
        .expect("run_pipe");
    staging.commit().await.expect("commit");
    ingested
}

fn bench_ingest(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut no_fsync = StorageConfig::local(dir.path().join("page-cache"));
    no_fsync.local.fsync = false;
    let local = Storage::open(&no_fsync).expect("local storage");
    let per_frame = Storage::open(&no_fsync)
        .expect("local storage")
        .with_write_coalesce(0);
    let mut no_gather_cfg = no_fsync.clone();
    no_gather_cfg.gather_bytes = 0;
    let no_gather = Storage::open(&no_gather_cfg).expect("local storage");
    let mut pool_cfg = no_fsync.clone();
    pool_cfg.local.direct_writes = false;
    let pool = Storage::open(&pool_cfg).expect("local storage");
    let durable = Storage::open(&StorageConfig::local(dir.path().join("durable"))).expect("local");
    let memory = Storage::from_store(Arc::new(object_store::memory::InMemory::new()), 0);

    for size in [2 * MIB, 20 * MIB] {
        let body = pdf_body(size);
        let frames = frames(&body, FRAME);
        let expected_sha: [u8; 32] = Sha256::digest(&body).into();
        let expected_md5: [u8; 16] = Md5::digest(&body).into();

        // The pipe must accept the body and agree with the plain hashes before we time it.
        for (storage, want_md5) in [(&memory, false), (&local, true)] {
            let got = rt.block_on(ingest(storage, &frames, want_md5));
            assert_eq!(got.size, size as u64, "size");
            assert_eq!(got.content_type, Some(PDF), "sniffed type");
            assert_eq!(got.sha256, expected_sha, "sha256");
            assert_eq!(got.md5, want_md5.then_some(expected_md5), "md5");
        }

        let mut group = c.benchmark_group(format!("ingest_{}MiB", size / MIB));
        group.throughput(Throughput::Bytes(size as u64));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(if size > 4 * MIB { 3 } else { 2 }));

        group.bench_function("baseline_sha256", |b| b.iter(|| sha256(&frames)));
        group.bench_function("baseline_md5", |b| {
            b.iter(|| {
                let mut h = Md5::new();
                for f in &frames {
                    h.update(black_box(f));
                }
                h.finalize()
            })
        });
        group.bench_function("baseline_sha256+md5", |b| {
            b.iter(|| {
                let mut s = Sha256::new();
                let mut m = Md5::new();
                for f in &frames {
                    s.update(black_box(f));
                    m.update(black_box(f));
                }
                (s.finalize(), m.finalize())
            })
        });
        for (name, storage, want_md5) in [
            ("pipe_memory", &memory, false),
            ("pipe_memory_md5", &memory, true),
            ("pipe_local", &local, false),
            ("pipe_local_per_frame", &per_frame, false),
            ("pipe_local_fsync", &durable, false),
            ("pipe_local_md5", &local, true),
        ] {
            group.bench_function(name, |b| {
                b.iter(|| rt.block_on(ingest(storage, black_box(&frames), want_md5)))
            });
        }
        group.finish();
    }

    // Frame size is set by hyper's read buffer (`http1().max_buf_size`, which upgate ties to
    // `max_header_bytes`); smaller frames mean less memory per open upload but one backend write
    // per frame. Same 20 MiB body in 16 KiB frames, to price that trade-off.
    let body = pdf_body(20 * MIB);
    let small = frames(&body, SMALL_FRAME);
    let mut group = c.benchmark_group("ingest_20MiB_16KiB_frames");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for (name, storage) in [
        ("pipe_memory", &memory),
        ("pipe_local", &local),
        ("pipe_local_per_frame", &per_frame),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(ingest(storage, black_box(&small), false)))
        });
    }
    // Frames a reader gets one at a time, as from a socket: gathered by copy under the budget
    // (waiting a moment for each next frame), or, with `gather_bytes = 0`, written whenever no
    // next frame is ready, which is a write per frame; and gathered, with every write sent to
    // the blocking pool (`direct_writes = false`, how upgate wrote before direct writes).
    let got = rt.block_on(ingest_one_ahead(&local, &small));
    assert_eq!(
        got.sha256,
        <[u8; 32]>::from(Sha256::digest(&body)),
        "sha256"
    );
    for (name, storage) in [
        ("pipe_local_one_ahead", &local),
        ("pipe_local_one_ahead_no_gather", &no_gather),
        ("pipe_local_one_ahead_pool", &pool),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(ingest_one_ahead(storage, black_box(&small))))
        });
    }
    group.finish();
}

/// A PDF shaped like the benchmark script's bodies: a catalog, a page tree and one stream of
/// `filler` bytes, then `endstream`, the cross-reference table and the trailer.
fn pdf_document(filler: &[u8]) -> Bytes {
    let mut v =
        b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
                  2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
            .to_vec();
    v.extend_from_slice(format!("3 0 obj\n<< /Length {} >>\nstream\n", filler.len()).as_bytes());
    v.extend_from_slice(filler);
    v.extend_from_slice(
        b"\nendstream\nendobj\nxref\n0 4\ntrailer\n<< /Size 4 /Root 1 0 R >>\n%%EOF\n",
    );
    Bytes::from(v)
}

/// The PDF active-content check alone (`scan::pdf::PdfScanner`, which the pipe feeds every byte
/// of a PDF upload in a bucket that scans), over a 2 MiB document in 64 KiB pieces: stream data
/// of random bytes (compressed images and fonts look like this) and of text (an uncompressed
/// content stream: more `e`s, line breaks and digits). `baseline_sha256` hashes the same bytes.
fn bench_pdf_scan(c: &mut Criterion) {
    let random = pdf_body(2 * MIB);
    let line: &[u8] =
        b"BT /F1 12 Tf 72 720 Td (The quarterly report: revenue, expenses and the outlook) Tj ET\n";
    let text = line.repeat(2 * MIB / line.len());
    let mut group = c.benchmark_group("pdf_scan_2MiB");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for (name, filler) in [("random_stream", &random[..]), ("text_stream", &text[..])] {
        let doc = pdf_document(filler);
        let pieces = frames(&doc, FRAME);
        group.throughput(Throughput::Bytes(doc.len() as u64));
        group.bench_function(format!("{name}/scanner"), |b| {
            b.iter(|| {
                let mut s = upgate::scan::pdf::PdfScanner::new();
                for p in &pieces {
                    s.push(black_box(p));
                }
                let findings = s.finish();
                assert!(findings.is_empty(), "{findings:?}");
            })
        });
        group.bench_function(format!("{name}/baseline_sha256"), |b| {
            b.iter(|| sha256(&pieces))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_ingest, bench_pdf_scan);
criterion_main!(benches);
