//! The metadata writes of an upload on SQLite: its pending record (before the first byte), then
//! its commit (after every check), for 64 uploads that arrive together, as 64 connections
//! would. Cases, each timing one round of 64 uploads:
//!
//! - `alone`: each write is its own transaction; the 64 concurrent callers queue for the one
//!   writer connection (how upgate wrote before the group commit): the baseline;
//! - `grouped`: through `metadata::batch`, as the gateway writes: the records that queue up
//!   while a transaction runs share the next one (pending inserts all or none, commits each in
//!   its own savepoint).
//!
//! Both with commits flushed to the disk (`fsync`, `synchronous=FULL`: the default) and without
//! (`nofsync`, `NORMAL`), each in a fresh database under the system temp dir. Every round
//! writes new ids and keys, and the round's rows are checked committed before timing starts.
//!
//! Run: `cargo bench --bench metadata`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use tokio::runtime::Runtime;
use upgate::metadata::batch::{Batcher, Commits, Pendings};
use upgate::metadata::sqlite::SqliteStore;
use upgate::metadata::{CommitInfo, MetadataStore, NewPending};
use upgate::metrics::Metrics;

const UPLOADS: u64 = 64;
const BUCKET: &str = "bench";

struct Db {
    _dir: tempfile::TempDir,
    store: Arc<dyn MetadataStore>,
    pendings: Batcher<NewPending>,
    commits: Batcher<(String, CommitInfo), Vec<String>>,
    next: AtomicU64,
}

async fn open(fsync: bool) -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
    let store: Arc<dyn MetadataStore> =
        Arc::new(SqliteStore::open_with(&url, fsync).await.expect("sqlite"));
    store.ensure_bucket(BUCKET, 0).await.expect("bucket");
    let metrics = Arc::new(Metrics::new());
    Db {
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

fn bench_commits(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let mut group = c.benchmark_group("sqlite_upload_writes_x64");
    group.throughput(Throughput::Elements(UPLOADS));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(4));
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
            let name = format!(
                "{}_{}",
                if grouped { "grouped" } else { "alone" },
                if fsync { "fsync" } else { "nofsync" }
            );
            group.bench_function(name, |b| b.iter(|| rt.block_on(round(&db, grouped))));
        }
    }
    group.finish();
}

criterion_group!(benches, bench_commits);
criterion_main!(benches);
