//! The metadata writes of an upload on SQLite: its pending record (before the first byte), then
//! its commit (after every check), for 64 uploads that arrive together, as 64 connections
//! would. Cases, each timing one round of 64 uploads:
//!
//! - `alone`: each write is its own transaction; the 64 concurrent callers queue for the one
//!   writer connection (how upgate wrote before the group commit): the baseline;
//! - `grouped`: through `metadata::batch`, as the gateway writes: the records that queue up
//!   while a transaction runs share the next one (pending inserts all or none, in multi-row
//!   `INSERT`s; commits one after the other, these without quota or condition, so without
//!   savepoints).
//!
//! Both with commits flushed to the disk (`fsync`, `synchronous=FULL`: the default) and without
//! (`nofsync`, `NORMAL`), each in a fresh database under the system temp dir. Every round
//! writes new ids and keys, and the round's rows are checked committed before timing starts.
//!
//! `sqlite_mints_x64` times the same for 64 links minted at once (`POST /v1/uploads`: a file
//! row and its link row each), alone or grouped.
//!
//! Run: `cargo bench --bench metadata`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use tokio::runtime::Runtime;
use upgate::metadata::batch::{Batcher, Commits, Mints, Pendings};
use upgate::metadata::control::{
    ControlStore, FileRecord, FileStatus, LinkStatus, Minted, UploadLink,
};
use upgate::metadata::sqlite::SqliteStore;
use upgate::metadata::{CommitInfo, MetadataStore, NewPending};
use upgate::metrics::Metrics;

const UPLOADS: u64 = 64;
const BUCKET: &str = "bench";

struct Db {
    _dir: tempfile::TempDir,
    store: Arc<dyn MetadataStore>,
    control: Arc<dyn ControlStore>,
    pendings: Batcher<NewPending>,
    mints: Batcher<Minted>,
    commits: Batcher<(String, CommitInfo), Vec<String>>,
    next: AtomicU64,
}

async fn open(fsync: bool) -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
    let sqlite = Arc::new(SqliteStore::open_with(&url, fsync).await.expect("sqlite"));
    let store: Arc<dyn MetadataStore> = sqlite.clone();
    let control: Arc<dyn ControlStore> = sqlite;
    store.ensure_bucket(BUCKET, 0).await.expect("bucket");
    let metrics = Arc::new(Metrics::new());
    Db {
        mints: Batcher::start(Mints {
            store: Arc::clone(&control),
            metrics: Arc::clone(&metrics),
        }),
        control,
        pendings: Batcher::start(Pendings {
            store: Arc::clone(&store),
            metrics: Arc::clone(&metrics),
        }),
        commits: Batcher::start(Commits {
            store: Arc::clone(&store),
            metrics,
        }),
        store,
        _dir: dir,
        next: AtomicU64::new(0),
    }
}

fn pending(n: u64) -> NewPending {
    NewPending {
        id: format!("{n:032x}"),
        bucket: BUCKET.to_string(),
        key: format!("uploads/{n}.pdf"),
        owner: "AKIDBENCH".to_string(),
        created_at_ms: 1,
        lease_until_ms: i64::MAX,
        tenant_id: None,
    }
}

fn info(n: u64) -> CommitInfo {
    CommitInfo {
        size: 2 * 1024 * 1024 + n,
        sha256: format!("{n:064x}"),
        etag: format!("{n:032x}-1"),
        content_type: "application/pdf".to_string(),
        committed_at_ms: 2,
        storage_class: "STANDARD".to_string(),
        ..Default::default()
    }
}

/// A minted link and its new file, as `POST /v1/uploads` writes them.
fn minted(n: u64) -> Minted {
    let file_id = format!("f{n:031x}");
    Minted {
        file: Some(FileRecord {
            id: file_id.clone(),
            tenant_id: "bench".to_string(),
            owner: "app".to_string(),
            bucket: BUCKET.to_string(),
            filename: "scan.pdf".to_string(),
            metadata: "{}".to_string(),
            status: FileStatus::Pending,
            current_key: None,
            content_type: None,
            size: None,
            sha256: None,
            versions: 0,
            created_at_ms: 1,
            updated_at_ms: 1,
            scan: None,
            expires_at_ms: None,
            legal_hold: false,
        }),
        link: UploadLink {
            id: format!("{n:032x}"),
            tenant_id: "bench".to_string(),
            owner: "app".to_string(),
            file_id: file_id.clone(),
            bucket: BUCKET.to_string(),
            key: format!("bench/{file_id}/{n:032x}"),
            size: 2 * 1024 * 1024,
            content_type: "application/pdf".to_string(),
            sha256: None,
            token_id: None,
            status: LinkStatus::Pending,
            expires_at_ms: i64::MAX,
            claimed_until_ms: None,
            created_at_ms: 1,
            completed_at_ms: None,
        },
    }
}

/// One mint's write; `grouped` through the batcher.
async fn mint(db: &Db, n: u64, grouped: bool) {
    let m = minted(n);
    if grouped {
        db.mints.write(m).await.expect("mint");
    } else {
        db.control
            .insert_minted(std::slice::from_ref(&m))
            .await
            .expect("mint");
    }
}

/// 64 mints at once; returns the first number of the round.
async fn mint_round(db: &Db, grouped: bool) -> u64 {
    let first = db.next.fetch_add(UPLOADS, Ordering::Relaxed);
    join_all((first..first + UPLOADS).map(|n| mint(db, n, grouped))).await;
    first
}

/// One upload's two writes; `grouped` through the batchers.
async fn upload(db: &Db, n: u64, grouped: bool) {
    let p = pending(n);
    let id = p.id.clone();
    if grouped {
        db.pendings.write(p).await.expect("pending");
        let retired = db.commits.write((id, info(n))).await.expect("commit");
        assert!(retired.is_empty());
    } else {
        db.store.insert_pending(&p).await.expect("pending");
        let retired = db.store.commit(&id, &info(n)).await.expect("commit");
        assert!(retired.is_empty());
    }
}

/// 64 uploads at once; returns the first number of the round.
async fn round(db: &Db, grouped: bool) -> u64 {
    let first = db.next.fetch_add(UPLOADS, Ordering::Relaxed);
    join_all((first..first + UPLOADS).map(|n| upload(db, n, grouped))).await;
    first
}

/// A group of rounds of 64: few samples, each a whole round.
fn rounds<'c>(
    c: &'c mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(UPLOADS));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(4));
    group
}

/// The case's name: `alone|grouped` and `fsync|nofsync`.
fn case(grouped: bool, fsync: bool) -> String {
    format!(
        "{}_{}",
        if grouped { "grouped" } else { "alone" },
        if fsync { "fsync" } else { "nofsync" }
    )
}

fn bench_commits(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let mut group = rounds(c, "sqlite_upload_writes_x64");
    for fsync in [true, false] {
        for grouped in [false, true] {
            let db = rt.block_on(open(fsync));
            // The round must commit every upload before it is timed.
            let first = rt.block_on(round(&db, grouped));
            for n in first..first + UPLOADS {
                let rec = rt
                    .block_on(db.store.current(BUCKET, &format!("uploads/{n}.pdf")))
                    .expect("current")
                    .expect("committed");
                assert_eq!(rec.sha256, info(n).sha256);
            }
            group.bench_function(case(grouped, fsync), |b| {
                b.iter(|| rt.block_on(round(&db, grouped)))
            });
        }
    }
    group.finish();
}

fn bench_mints(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let mut group = rounds(c, "sqlite_mints_x64");
    for fsync in [true, false] {
        for grouped in [false, true] {
            let db = rt.block_on(open(fsync));
            // The round must insert every link and its file before it is timed.
            let first = rt.block_on(mint_round(&db, grouped));
            for n in first..first + UPLOADS {
                let link = rt
                    .block_on(db.control.link(&format!("{n:032x}")))
                    .expect("link")
                    .expect("inserted");
                assert_eq!(link, minted(n).link);
            }
            group.bench_function(case(grouped, fsync), |b| {
                b.iter(|| rt.block_on(mint_round(&db, grouped)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_commits, bench_mints);
criterion_main!(benches);
