//! One conformance suite for the metadata seam: every behaviour of [`MetadataStore`] is written
//! once, against `Arc<dyn MetadataStore>`, and run against every backend (`sqlite::<name>` on a
//! temp-file database, `postgres::<name>` in a fresh schema of the database at
//! `UPGATE_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`, and
//! `mysql::<name>` in a fresh database on the MySQL / MariaDB server of
//! `UPGATE_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`).
//!
//! PostgreSQL and MariaDB are required: when one is unreachable its tests fail, they do not
//! skip.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};
use upgate::metadata::accounts::{AccountStore, RefreshRecord, Role, SessionRecord, UserRecord};
use upgate::metadata::control::ControlStore;
use upgate::metadata::mysql::MySqlStore;
use upgate::metadata::postgres::PgStore;
use upgate::metadata::sqlite::SqliteStore;
use upgate::metadata::{
    BucketCreation, BucketRemoval, CommitInfo, MetaError, MetadataStore, MultipartUpload,
    NewPending, ObjectHeaders, ObjectRecord, ObjectTags, PartRecord, RuntimeBucket, WriteCondition,
};

/// Both seams a store implements (metadata and control records share one database).
trait Both: MetadataStore + ControlStore + AccountStore {}
impl<T: MetadataStore + ControlStore + AccountStore> Both for T {}

type Store = Arc<dyn Both>;

fn as_control(s: &Store) -> &dyn ControlStore {
    s.as_ref()
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// An arbitrary instant (ms) the fixtures are built around.
const T0: i64 = 1_700_000_000_000;
/// Pending rows made by [`pending`] hold their lease until then.
const LEASE_UNTIL: i64 = T0 + 60_000;
/// A time after every lease: all pending rows are expired.
const LATER: i64 = T0 + 3_600_000;
const BUCKET: &str = "uploads";
const OWNER: &str = "AKIDUPGATETEST000001";

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

fn postgres_url() -> String {
    std::env::var("UPGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A schema name no other test (or earlier run) uses: plain lower-case identifier, <= 63 bytes.
fn fresh_schema(name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut schema = format!(
        "ut_{}_{:x}_{}_{name}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    schema.truncate(63);
    schema
}

/// Best effort: a leftover schema only costs disk space in a test database.
async fn drop_schema(url: &str, schema: &str) {
    if let Ok(mut conn) = PgConnection::connect(url).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

async fn open_postgres(url: &str, schema: &str) -> PgStore {
    PgStore::open_with_schema(url, schema)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {url} (override with UPGATE_TEST_POSTGRES_URL): {e}")
        })
}

fn mysql_url() -> String {
    std::env::var("UPGATE_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_owned())
}

/// The URL of database `name` on the server of `url`.
fn mysql_database_url(url: &str, name: &str) -> String {
    let server = url.rsplit_once('/').map_or(url, |(server, _)| server);
    format!("{server}/{name}")
}

/// A fresh database `name` (a plain identifier from [`fresh_schema`]) on the server of `url`.
async fn create_mysql_database(url: &str, name: &str) -> String {
    let mut conn = MySqlConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("MySQL at {url} (override with UPGATE_TEST_MYSQL_URL): {e}"));
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create test database");
    let _ = conn.close().await;
    mysql_database_url(url, name)
}

/// Best effort, like [`drop_schema`].
async fn drop_mysql_database(url: &str, name: &str) {
    if let Ok(mut conn) = MySqlConnection::connect(url).await {
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
            .await;
        let _ = conn.close().await;
    }
}

async fn on_mysql<F, Fut>(name: &str, behaviour: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = mysql_url();
    let database = fresh_schema(name);
    let store = MySqlStore::open(&create_mysql_database(&url, &database).await)
        .await
        .unwrap_or_else(|e| panic!("open MySQL database {database}: {e}"));
    with_cleanup(behaviour(Arc::new(store.clone())), async {
        store.close().await;
        drop_mysql_database(&url, &database).await;
    })
    .await;
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display())
}

async fn on_sqlite<F, Fut>(behaviour: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&sqlite_url(&dir))
        .await
        .expect("open SQLite");
    behaviour(Arc::new(store)).await;
}

async fn on_postgres<F, Fut>(name: &str, behaviour: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = postgres_url();
    let schema = fresh_schema(name);
    let store = open_postgres(&url, &schema).await;
    with_cleanup(behaviour(Arc::new(store.clone())), async {
        store.close().await;
        drop_schema(&url, &schema).await;
    })
    .await;
}

/// Runs `test` in a task, so that a failing assertion still reaches `cleanup`, then passes the
/// failure on.
async fn with_cleanup(
    test: impl Future<Output = ()> + Send + 'static,
    cleanup: impl Future<Output = ()>,
) {
    let outcome = tokio::spawn(test).await;
    cleanup.await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Generates `sqlite::<behaviour>`, `postgres::<behaviour>` and `mysql::<behaviour>` tests for
/// each behaviour.
macro_rules! conformance {
    ($($behaviour:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::on_sqlite(super::$behaviour).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::on_postgres(stringify!($behaviour), super::$behaviour).await;
                }
            )+
        }

        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::on_mysql(stringify!($behaviour), super::$behaviour).await;
                }
            )+
        }
    };
}

conformance!(
    ensure_bucket_is_idempotent_and_lists_in_byte_order,
    pending_row_is_invisible,
    pending_rows_insert_together_or_not_at_all,
    grouped_commits_run_in_order_and_fail_alone,
    a_group_of_many_keys_commits_as_one_by_one,
    commit_round_trips_every_field,
    commit_rejects_size_beyond_i64,
    overwrite_retires_previous_version_and_latest_commit_wins,
    discard_pending_removes_only_pending_rows,
    delete_current_returns_id_and_hides_key,
    purge_never_removes_committed_row,
    list_orders_keys_by_utf8_bytes,
    list_honours_prefix_bounds,
    list_start_is_exclusive_or_inclusive,
    list_limit_pages_through_every_key,
    lookups_with_nul_find_nothing,
    keys_are_scoped_to_their_bucket,
    sweepable_returns_expired_pending_and_garbage_only,
    commit_after_purge_or_second_commit_is_pending_gone,
    concurrent_commits_to_one_key_leave_exactly_one_committed,
    concurrent_commits_to_several_keys_keep_one_per_key,
    conditional_commits_judge_the_version_they_replace,
    concurrent_commits_if_absent_leave_exactly_one_winner,
    tags_are_replaced_on_the_current_version_only,
    ping_succeeds,
    multipart_parts_are_admitted_within_the_budget_only,
    multipart_removal_makes_every_part_blob_loose,
    multipart_completion_frees_parts_and_is_remembered,
    multipart_listing_is_scoped_to_owner_and_ordered,
    concurrent_parts_cannot_exceed_the_budget_together,
    concurrent_commits_cannot_exceed_a_tenant_quota,
    accounts_emails_are_unique_per_tenant_and_tokens_spend_once,
    accounts_failures_count_within_a_window,
    link_commits_charge_tokens_and_report_the_one_that_uses_it_up,
    minted_links_commit_together_or_not_at_all,
    outbox_events_enqueued_once_stay_once,
    drop_links_round_trip_and_list_by_issuer_and_token,
    files_are_listed_by_the_tags_of_their_current_version,
    files_expire_in_order_and_a_hold_stops_deletion,
    old_versions_are_found_by_count_and_age,
    reconciler_sees_every_reference_and_one_claim_per_interval,
    transitions_find_old_objects_by_class_and_record_only_committed_ones,
    runtime_buckets_are_created_once_and_kept_apart_from_configured_ones,
    runtime_buckets_are_deleted_only_when_empty,
    concurrent_bucket_creations_cannot_exceed_a_tenant_bucket_quota,
);

// ---------------------------------------------------------------------------------------------
// Drop links (upload tokens and the links minted through them)
// ---------------------------------------------------------------------------------------------

fn drop_token(id: &str, owner: &str, created: i64) -> upgate::metadata::control::UploadToken {
    upgate::metadata::control::UploadToken {
        id: id.to_owned(),
        tenant_id: "td".to_owned(),
        client_id: "drop-link".to_owned(),
        owner: owner.to_owned(),
        secret_hash: "00".repeat(32),
        expires_at_ms: T0 + 3_600_000,
        max_uploads: 3,
        uploads_used: 0,
        max_bytes: 60_000_000,
        bytes_used: 0,
        allowed_types: vec!["application/pdf".to_owned()],
        revoked: false,
        created_at_ms: created,
        max_file_bytes: Some(20_000_000),
        note: "Line one\nline two — ünïcode".to_owned(),
        requester: "Acme Legal".to_owned(),
        notify_email: Some("legal@acme.example".to_owned()),
        file_ttl_secs: None,
    }
}

async fn drop_links_round_trip_and_list_by_issuer_and_token(s: Store) {
    use upgate::metadata::control::{LinkStatus, Tenant, UploadLink};
    let c = as_control(&s);
    c.create_tenant(&Tenant {
        id: "td".to_owned(),
        name: "td".to_owned(),
        created_at_ms: T0,
        max_bytes: None,
        max_objects: None,
    })
    .await
    .expect("tenant");
    let first = drop_token("tk1", "app", T0);
    c.insert_token(&first).await.expect("insert");
    let mut plain = drop_token("tk2", "app", T0 + 10);
    plain.max_file_bytes = None;
    plain.note = String::new();
    plain.notify_email = None;
    c.insert_token(&plain).await.expect("insert");
    c.insert_token(&drop_token("tk3", "user:u1", T0 + 20))
        .await
        .expect("insert");
    let back = c.token("tk1").await.expect("read").expect("some");
    assert_eq!(back.max_file_bytes, Some(20_000_000));
    assert_eq!(back.note, first.note);
    assert_eq!(back.requester, "Acme Legal");
    assert_eq!(back.notify_email.as_deref(), Some("legal@acme.example"));
    let back = c.token("tk2").await.expect("read").expect("some");
    assert_eq!((back.max_file_bytes, back.notify_email), (None, None));
    // The issuer's links, newest first, limited; another issuer's are not among them.
    let ids = |v: Vec<upgate::metadata::control::UploadToken>| -> Vec<String> {
        v.into_iter().map(|t| t.id).collect()
    };
    assert_eq!(
        ids(c.tokens_of_owner("td", "app", 10).await.expect("list")),
        ["tk2", "tk1"]
    );
    assert_eq!(
        ids(c.tokens_of_owner("td", "app", 1).await.expect("list")),
        ["tk2"]
    );
    assert_eq!(
        ids(c.tokens_of_owner("td", "user:u1", 10).await.expect("list")),
        ["tk3"]
    );
    assert!(
        c.tokens_of_owner("other", "app", 10)
            .await
            .expect("list")
            .is_empty()
    );
    // Links minted through a token are found by it.
    c.insert_file(&pending_file("fd1", "td", "app", "a.pdf"))
        .await
        .expect("file");
    for (id, token, at) in [
        ("l1", Some("tk1"), T0),
        ("l2", Some("tk1"), T0 + 5),
        ("l3", None, T0 + 9),
    ] {
        c.insert_link(&UploadLink {
            id: id.to_owned(),
            tenant_id: "td".to_owned(),
            owner: "app".to_owned(),
            file_id: "fd1".to_owned(),
            bucket: BUCKET.to_owned(),
            key: format!("td/fd1/{id}"),
            size: 10,
            content_type: "application/pdf".to_owned(),
            sha256: None,
            token_id: token.map(str::to_owned),
            status: LinkStatus::Pending,
            expires_at_ms: T0 + 60_000,
            claimed_until_ms: None,
            created_at_ms: at,
            completed_at_ms: None,
        })
        .await
        .expect("link");
    }
    let links: Vec<String> = c
        .links_of_token("tk1", 10)
        .await
        .expect("links")
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(links, ["l2", "l1"]);
    assert!(c.links_of_token("tk2", 10).await.expect("links").is_empty());
}

async fn files_are_listed_by_the_tags_of_their_current_version(s: Store) {
    use upgate::metadata::control::{FileQuery, FileRecord, FileStatus, Tenant};
    let c = as_control(&s);
    c.create_tenant(&Tenant {
        id: "tt".to_owned(),
        name: "tt".to_owned(),
        created_at_ms: T0,
        max_bytes: None,
        max_objects: None,
    })
    .await
    .expect("tenant");
    for (i, (id, tags)) in [
        ("fa", vec![("team", "legal"), ("year", "2026")]),
        ("fb", vec![("team", "finance"), ("year", "2026")]),
        ("fc", vec![("team", "100%_sure")]),
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("tt/{id}/v1");
        put(&s, &format!("o-{id}"), BUCKET, &key).await;
        let tags = ObjectTags(
            tags.into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        );
        assert!(s.set_tags(BUCKET, &key, &tags).await.expect("tags"));
        c.insert_file(&FileRecord {
            id: id.to_owned(),
            tenant_id: "tt".to_owned(),
            owner: "app".to_owned(),
            bucket: BUCKET.to_owned(),
            filename: format!("{id}.pdf"),
            metadata: "{}".to_owned(),
            status: FileStatus::Complete,
            current_key: Some(key),
            content_type: Some("application/pdf".to_owned()),
            size: Some(1007),
            sha256: None,
            versions: 1,
            created_at_ms: T0 + i as i64,
            updated_at_ms: T0,
            scan: None,
            expires_at_ms: None,
            legal_hold: false,
        })
        .await
        .expect("file");
    }
    let by = |k: &str, v: &str| FileQuery {
        tenant_id: "tt".to_owned(),
        owner: "app".to_owned(),
        content_type: None,
        status: None,
        created_from_ms: None,
        created_to_ms: None,
        filename_contains: None,
        metadata: None,
        tag: Some((k.to_owned(), v.to_owned())),
        before: None,
        limit: 10,
    };
    let ids = |v: Vec<FileRecord>| -> Vec<String> { v.into_iter().map(|f| f.id).collect() };
    assert_eq!(
        ids(c.list_files(&by("team", "legal")).await.expect("list")),
        ["fa"]
    );
    assert_eq!(
        ids(c.list_files(&by("year", "2026")).await.expect("list")),
        ["fb", "fa"]
    );
    assert_eq!(
        ids(c.list_files(&by("team", "100%_sure")).await.expect("list")),
        ["fc"]
    );
    assert!(
        c.list_files(&by("team", "100%"))
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        c.list_files(&by("team", "lega"))
            .await
            .expect("list")
            .is_empty()
    );
}

async fn files_expire_in_order_and_a_hold_stops_deletion(s: Store) {
    use upgate::metadata::control::{FileRecord, FileStatus, OutboxEvent, Tenant};
    let c = as_control(&s);
    c.create_tenant(&Tenant {
        id: "tr".to_owned(),
        name: "tr".to_owned(),
        created_at_ms: T0,
        max_bytes: None,
        max_objects: None,
    })
    .await
    .expect("tenant");
    for (id, expires) in [("e1", Some(T0 + 10)), ("e2", Some(T0 + 20)), ("e3", None)] {
        c.insert_file(&FileRecord {
            id: id.to_owned(),
            tenant_id: "tr".to_owned(),
            owner: "app".to_owned(),
            bucket: BUCKET.to_owned(),
            filename: format!("{id}.pdf"),
            metadata: "{}".to_owned(),
            status: FileStatus::Complete,
            current_key: None,
            content_type: None,
            size: None,
            sha256: None,
            versions: 1,
            created_at_ms: T0,
            updated_at_ms: T0,
            scan: None,
            expires_at_ms: expires,
            legal_hold: false,
        })
        .await
        .expect("file");
    }
    let due = |now: i64| async move {
        c.due_expired_files(now, 10)
            .await
            .expect("due")
            .into_iter()
            .map(|f| f.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(due(T0 + 15).await, ["e1"]);
    assert_eq!(due(T0 + 30).await, ["e1", "e2"]);
    assert!(c.set_legal_hold("e1", true, T0).await.expect("hold"));
    assert!(c.file("e1").await.expect("read").expect("some").legal_hold);
    assert_eq!(due(T0 + 30).await, ["e2"], "a held file is not due");
    let event = |id: &str| OutboxEvent {
        id: format!("ev-{id}"),
        tenant_id: "tr".to_owned(),
        event: "file.deleted".to_owned(),
        payload: "{}".to_owned(),
        created_at_ms: T0,
        attempts: 0,
    };
    assert!(
        !c.delete_file("e1", T0, &event("e1")).await.expect("delete"),
        "held"
    );
    assert!(c.set_legal_hold("e1", false, T0).await.expect("release"));
    assert!(c.delete_file("e1", T0, &event("e1")).await.expect("delete"));
    assert!(
        !c.set_legal_hold("e1", true, T0).await.expect("hold"),
        "deleted files take no hold"
    );
    assert_eq!(due(T0 + 30).await, ["e2"]);
}

async fn old_versions_are_found_by_count_and_age(s: Store) {
    use upgate::metadata::control::{FileRecord, FileStatus, LinkStatus, Tenant, UploadLink};
    let c = as_control(&s);
    c.create_tenant(&Tenant {
        id: "tv".to_owned(),
        name: "tv".to_owned(),
        created_at_ms: T0,
        max_bytes: None,
        max_objects: None,
    })
    .await
    .expect("tenant");
    c.insert_file(&FileRecord {
        id: "fv".to_owned(),
        tenant_id: "tv".to_owned(),
        owner: "app".to_owned(),
        bucket: BUCKET.to_owned(),
        filename: "v.pdf".to_owned(),
        metadata: "{}".to_owned(),
        status: FileStatus::Complete,
        current_key: Some("tv/fv/v4".to_owned()),
        content_type: None,
        size: None,
        sha256: None,
        versions: 4,
        created_at_ms: T0,
        updated_at_ms: T0,
        scan: None,
        expires_at_ms: None,
        legal_hold: false,
    })
    .await
    .expect("file");
    for i in 1..=4 {
        c.insert_link(&UploadLink {
            id: format!("lv{i}"),
            tenant_id: "tv".to_owned(),
            owner: "app".to_owned(),
            file_id: "fv".to_owned(),
            bucket: BUCKET.to_owned(),
            key: format!("tv/fv/v{i}"),
            size: 10,
            content_type: "application/pdf".to_owned(),
            sha256: None,
            token_id: None,
            status: LinkStatus::Complete,
            expires_at_ms: T0 + 60_000,
            claimed_until_ms: None,
            created_at_ms: T0 + i,
            completed_at_ms: Some(T0 + 100 * i),
        })
        .await
        .expect("link");
    }
    let ids = |v: Vec<UploadLink>| -> Vec<String> { v.into_iter().map(|l| l.id).collect() };
    // Keep two: the two oldest go; keep four: none.
    assert_eq!(
        ids(c.retired_versions(BUCKET, 2, None, 10).await.expect("q")),
        ["lv1", "lv2"]
    );
    assert!(
        c.retired_versions(BUCKET, 4, None, 10)
            .await
            .expect("q")
            .is_empty()
    );
    // By age: completed before T0 + 250 (v1, v2); the current one never.
    assert_eq!(
        ids(c
            .retired_versions(BUCKET, 0, Some(T0 + 250), 10)
            .await
            .expect("q")),
        ["lv1", "lv2"]
    );
    assert_eq!(
        ids(c
            .retired_versions(BUCKET, 0, Some(T0 + 10_000), 10)
            .await
            .expect("q")),
        ["lv1", "lv2", "lv3"]
    );
    assert!(
        c.retired_versions("other", 1, None, 10)
            .await
            .expect("q")
            .is_empty()
    );
    // Retired once; then not found again, and the count moves on.
    assert!(c.retire_version("lv1").await.expect("retire"));
    assert!(!c.retire_version("lv1").await.expect("retire"));
    assert_eq!(
        ids(c.retired_versions(BUCKET, 2, None, 10).await.expect("q")),
        ["lv2"]
    );
    // A hold keeps every version.
    assert!(c.set_legal_hold("fv", true, T0).await.expect("hold"));
    assert!(
        c.retired_versions(BUCKET, 1, Some(T0 + 10_000), 10)
            .await
            .expect("q")
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Control records: link commits, tokens, the outbox
// ---------------------------------------------------------------------------------------------

/// `info(n)` (1007 bytes for n = 1) committed through link `link` of a file.
async fn commit_through_link(s: &Store, link: &str, token: &str) {
    use upgate::metadata::control::{LinkCommit, LinkStatus, OutboxEvent, UploadLink};
    let c = as_control(s);
    c.insert_link(&UploadLink {
        id: link.to_owned(),
        tenant_id: "t1".to_owned(),
        owner: OWNER.to_owned(),
        file_id: "f1".to_owned(),
        bucket: BUCKET.to_owned(),
        key: format!("files/{link}"),
        size: 1007,
        content_type: "image/png".to_owned(),
        sha256: None,
        token_id: Some(token.to_owned()),
        status: LinkStatus::Pending,
        expires_at_ms: LATER,
        claimed_until_ms: None,
        created_at_ms: T0,
        completed_at_ms: None,
    })
    .await
    .unwrap();
    let claim = c.claim_link(link, T0, T0 + 1_000).await.unwrap();
    assert!(
        matches!(claim, upgate::metadata::control::Claim::Claimed(_)),
        "{claim:?}"
    );
    let object = format!("o-{link}");
    s.insert_pending(&pending(&object, BUCKET, &format!("files/{link}")))
        .await
        .unwrap();
    c.commit_link(&LinkCommit {
        object_id: object,
        object: info(1),
        link_id: link.to_owned(),
        event: OutboxEvent {
            id: format!("ev-{link}"),
            tenant_id: "t1".to_owned(),
            event: "upload.completed".to_owned(),
            payload: "{}".to_owned(),
            created_at_ms: T0 + 1,
            attempts: 0,
        },
    })
    .await
    .unwrap();
}

/// Every event due by [`LATER`], as (event, payload), sorted.
async fn due_events(c: &dyn ControlStore) -> Vec<(String, String)> {
    let mut events: Vec<(String, String)> = c
        .due_events(LATER, LATER + 60_000, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event, e.payload))
        .collect();
    events.sort();
    events
}

async fn link_commits_charge_tokens_and_report_the_one_that_uses_it_up(s: Store) {
    use upgate::metadata::control::UploadToken;
    let c = as_control(&s);
    c.create_tenant(&upgate::metadata::control::Tenant {
        id: "t1".to_owned(),
        name: "t1".to_owned(),
        created_at_ms: T0,
        max_bytes: None,
        max_objects: None,
    })
    .await
    .unwrap();
    c.insert_token(&UploadToken {
        id: "tok1".to_owned(),
        tenant_id: "t1".to_owned(),
        client_id: "kiosk".to_owned(),
        owner: OWNER.to_owned(),
        secret_hash: "h".to_owned(),
        expires_at_ms: LATER,
        max_uploads: 2,
        uploads_used: 0,
        max_bytes: 10_000,
        bytes_used: 0,
        allowed_types: vec!["image/png".to_owned()],
        revoked: false,
        created_at_ms: T0,
        max_file_bytes: None,
        note: String::new(),
        requester: String::new(),
        notify_email: None,
        file_ttl_secs: None,
    })
    .await
    .unwrap();
    c.insert_file(&pending_file("f1", "t1", OWNER, "a.png"))
        .await
        .unwrap();
    commit_through_link(&s, "l1", "tok1").await;
    let first = due_events(c).await;
    assert_eq!(
        first.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["upload.completed"],
        "one of two uploads left"
    );
    commit_through_link(&s, "l2", "tok1").await;
    let second = due_events(c).await;
    assert_eq!(
        second.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["token.exhausted", "upload.completed"],
        "the second upload used the token up"
    );
    let report: serde_json::Value = serde_json::from_str(&second[0].1).unwrap();
    assert_eq!(report["token_id"], "tok1");
    assert_eq!(report["client_id"], "kiosk");
    assert_eq!(report["uploads_used"], 2);
    assert_eq!(report["bytes_used"], 2014);
    assert!(report.get("secret_hash").is_none());
    let token = c.token("tok1").await.unwrap().expect("token");
    assert_eq!((token.uploads_used, token.bytes_used), (2, 2014));
}

/// A new file record, before its first upload.
fn pending_file(
    id: &str,
    tenant: &str,
    owner: &str,
    filename: &str,
) -> upgate::metadata::control::FileRecord {
    upgate::metadata::control::FileRecord {
        id: id.to_owned(),
        tenant_id: tenant.to_owned(),
        owner: owner.to_owned(),
        bucket: BUCKET.to_owned(),
        filename: filename.to_owned(),
        metadata: "{}".to_owned(),
        status: upgate::metadata::control::FileStatus::Pending,
        current_key: None,
        content_type: None,
        size: None,
        sha256: None,
        versions: 0,
        created_at_ms: T0,
        updated_at_ms: T0,
        scan: None,
        expires_at_ms: None,
        legal_hold: false,
    }
}

async fn minted_links_commit_together_or_not_at_all(s: Store) {
    use upgate::metadata::control::{LinkStatus, Minted, UploadLink};
    let c = as_control(&s);
    let file = |id: &str| pending_file(id, "t1", OWNER, &format!("{id}.pdf"));
    let link = |id: &str, file_id: &str| UploadLink {
        id: id.to_owned(),
        tenant_id: "t1".to_owned(),
        owner: OWNER.to_owned(),
        file_id: file_id.to_owned(),
        bucket: BUCKET.to_owned(),
        key: format!("t1/{file_id}/{id}"),
        size: 10,
        content_type: "application/pdf".to_owned(),
        sha256: None,
        token_id: None,
        status: LinkStatus::Pending,
        expires_at_ms: LATER,
        claimed_until_ms: None,
        created_at_ms: T0,
        completed_at_ms: None,
    };
    // Two new files with their links, and a new version (a link only) of the first.
    let batch = [
        Minted {
            file: Some(file("mf1")),
            link: link("ml1", "mf1"),
        },
        Minted {
            file: Some(file("mf2")),
            link: link("ml2", "mf2"),
        },
        Minted {
            file: None,
            link: link("ml3", "mf1"),
        },
    ];
    c.insert_minted(&batch).await.unwrap();
    for (l, f) in [("ml1", "mf1"), ("ml2", "mf2"), ("ml3", "mf1")] {
        assert_eq!(c.link(l).await.unwrap().expect("link").file_id, f);
    }
    assert_eq!(
        c.file("mf2").await.unwrap().expect("file").filename,
        "mf2.pdf"
    );
    // A batch with one bad mint (a link id already used) commits none of its mints.
    let bad = [
        Minted {
            file: Some(file("mf4")),
            link: link("ml4", "mf4"),
        },
        Minted {
            file: None,
            link: link("ml1", "mf1"),
        },
    ];
    assert!(c.insert_minted(&bad).await.is_err());
    assert!(c.link("ml4").await.unwrap().is_none());
    assert!(c.file("mf4").await.unwrap().is_none());
    c.insert_minted(&[]).await.unwrap();
}

async fn outbox_events_enqueued_once_stay_once(s: Store) {
    use upgate::metadata::control::OutboxEvent;
    let c = as_control(&s);
    let e = OutboxEvent {
        id: "ev-1.mail.ab".to_owned(),
        tenant_id: "t1".to_owned(),
        event: "mail".to_owned(),
        payload: r#"{"to":"a@example.com"}"#.to_owned(),
        created_at_ms: T0,
        attempts: 0,
    };
    assert!(c.enqueue_once(&e, T0).await.unwrap());
    assert!(!c.enqueue_once(&e, T0).await.unwrap(), "already there");
    let due = c.due_events(T0, T0 + 60_000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].payload, e.payload);
    c.event_delivered(&e.id, T0 + 1).await.unwrap();
    assert!(
        !c.enqueue_once(&e, T0 + 2).await.unwrap(),
        "a delivered event is not queued again"
    );
    assert!(
        c.due_events(LATER, LATER + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Accounts
// ---------------------------------------------------------------------------------------------

fn user(id: &str, tenant: &str, email: &str) -> UserRecord {
    UserRecord {
        id: id.to_owned(),
        tenant_id: tenant.to_owned(),
        email: email.to_owned(),
        name: String::new(),
        role: Role::Member,
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_owned(),
        created_at_ms: T0,
        updated_at_ms: T0,
        disabled: false,
    }
}

async fn accounts_emails_are_unique_per_tenant_and_tokens_spend_once(s: Store) {
    for t in ["ta", "tb"] {
        as_control(&s)
            .create_tenant(&upgate::metadata::control::Tenant {
                id: t.to_owned(),
                name: t.to_owned(),
                created_at_ms: T0,
                max_bytes: None,
                max_objects: None,
            })
            .await
            .unwrap();
    }
    assert!(s.insert_user(&user("u1", "ta", "a@x")).await.unwrap());
    assert!(
        !s.insert_user(&user("u2", "ta", "a@x")).await.unwrap(),
        "same tenant, same e-mail"
    );
    assert!(
        s.insert_user(&user("u3", "tb", "a@x")).await.unwrap(),
        "another tenant"
    );
    let got = s.user_by_email("ta", "a@x").await.unwrap().expect("user");
    assert_eq!(got, user("u1", "ta", "a@x"));
    assert!(
        s.user_by_email("ta", "A@x").await.unwrap().is_none(),
        "stored normalised, compared exactly"
    );
    let session = SessionRecord {
        id: "s1".to_owned(),
        user_id: "u1".to_owned(),
        tenant_id: "ta".to_owned(),
        created_at_ms: T0,
        expires_at_ms: LATER,
        revoked: false,
    };
    s.insert_session(&session).await.unwrap();
    s.insert_refresh(&RefreshRecord {
        id: "r1".to_owned(),
        session_id: "s1".to_owned(),
        secret_hash: "h".to_owned(),
        created_at_ms: T0,
        expires_at_ms: LATER,
        used: false,
    })
    .await
    .unwrap();
    // 16 concurrent rotations of one refresh token: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.spend_refresh("r1", T0 + 1).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    assert!(s.refresh_token("r1").await.unwrap().expect("token").used);
    assert!(s.revoke_session("s1", T0 + 2).await.unwrap());
    assert!(
        !s.revoke_session("s1", T0 + 3).await.unwrap(),
        "revoked once"
    );
    assert!(s.session("s1").await.unwrap().expect("session").revoked);
}

async fn accounts_failures_count_within_a_window(s: Store) {
    assert_eq!(
        s.add_failure("account:t:a", T0, T0 - 1000).await.unwrap(),
        1
    );
    assert_eq!(
        s.add_failure("account:t:a", T0 + 10, T0 - 990)
            .await
            .unwrap(),
        2
    );
    // The window (started at T0) has passed: counting starts over.
    assert_eq!(
        s.add_failure("account:t:a", T0 + 5000, T0 + 1)
            .await
            .unwrap(),
        1
    );
    s.lock("account:t:a", T0 + 9000).await.unwrap();
    let f = s.failures("account:t:a").await.unwrap().expect("row");
    assert_eq!(
        (f.failures, f.first_at_ms, f.locked_until_ms),
        (1, T0 + 5000, T0 + 9000)
    );
    s.clear_failures("account:t:a").await.unwrap();
    assert!(s.failures("account:t:a").await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn pending(id: &str, bucket: &str, key: &str) -> NewPending {
    NewPending {
        id: id.to_owned(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        owner: OWNER.to_owned(),
        created_at_ms: T0,
        lease_until_ms: LEASE_UNTIL,
        tenant_id: None,
    }
}

/// Distinct, recognisable commit data for version `n`.
fn info(n: u64) -> CommitInfo {
    CommitInfo {
        size: n * 1_000 + 7,
        sha256: format!("{n:064x}"),
        etag: format!("{n:032x}"),
        content_type: "image/png".to_owned(),
        checksum: Some(("CRC32".to_owned(), format!("crc{n}=="))),
        committed_at_ms: T0 + n as i64,
        quota: None,
        scan: Some(format!(r#"{{"result":"clean","n":{n}}}"#)),
        headers: headers(n),
        tags: ObjectTags(vec![("version".to_owned(), format!("{n}"))]),
        condition: None,
        part_sizes: Vec::new(),
        storage_class: if n.is_multiple_of(2) {
            "STANDARD"
        } else {
            "STANDARD_IA"
        }
        .to_owned(),
    }
}

/// Stored headers for version `n`: user metadata (with a non-ASCII value) and a standard one.
fn headers(n: u64) -> ObjectHeaders {
    ObjectHeaders(vec![
        ("x-amz-meta-version".to_owned(), format!("v{n} – été")),
        ("cache-control".to_owned(), format!("max-age={n}")),
    ])
}

fn expected(p: &NewPending, i: &CommitInfo) -> ObjectRecord {
    ObjectRecord {
        id: p.id.clone(),
        bucket: p.bucket.clone(),
        key: p.key.clone(),
        owner: p.owner.clone(),
        size: i.size,
        sha256: i.sha256.clone(),
        etag: i.etag.clone(),
        content_type: i.content_type.clone(),
        checksum: i.checksum.clone(),
        committed_at_ms: i.committed_at_ms,
        scan: i.scan.clone(),
        headers: i.headers.clone(),
        tags: i.tags.clone(),
        part_sizes: i.part_sizes.clone(),
        storage_class: i.storage_class.clone(),
    }
}

/// Inserts and commits a version of `bucket/key`; returns the retired ids.
async fn put(s: &Store, id: &str, bucket: &str, key: &str) -> Vec<String> {
    s.insert_pending(&pending(id, bucket, key))
        .await
        .expect("insert_pending");
    s.commit(id, &info(1)).await.expect("commit")
}

async fn sweep_ids(s: &Store, now_ms: i64) -> BTreeSet<String> {
    s.sweepable(now_ms, 10_000)
        .await
        .expect("sweepable")
        .into_iter()
        .map(|w| w.id)
        .collect()
}

async fn listed_keys(
    s: &Store,
    prefix: &str,
    start: &str,
    inclusive: bool,
    limit: u32,
) -> Vec<String> {
    s.list(BUCKET, prefix, start, inclusive, limit)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.key)
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Keys whose byte order differs from most linguistic collations, and from UTF-16 order
/// (`\u{FFFD}` sorts before `\u{10FFFF}` in bytes but after it in UTF-16 code units), plus
/// SQL `LIKE` metacharacters.
const TRICKY_KEYS: &[&str] = &[
    "a",
    "a/",
    "a/b",
    "a0",
    "a-b",
    "a.b",
    "a b",
    // Distinct from "a" (MySQL's default collations pad with spaces) and from "a  ".
    "a ",
    "a  ",
    "ab",
    "a%",
    "a%b",
    "a_",
    "A",
    "B",
    "b",
    "é",
    "éa",
    "e\u{301}",
    "\u{D7FF}",
    "\u{E000}",
    "\u{FFFD}",
    "\u{10000}",
    "\u{10FFFF}",
    "\u{10FFFF}x",
];

async fn put_tricky_keys(s: &Store) -> Vec<String> {
    for (i, key) in TRICKY_KEYS.iter().enumerate() {
        put(s, &format!("id-{i}"), BUCKET, key).await;
    }
    let mut keys = strings(TRICKY_KEYS);
    keys.sort(); // `str` order is UTF-8 byte order.
    keys
}

// ---------------------------------------------------------------------------------------------
// Behaviours
// ---------------------------------------------------------------------------------------------

async fn ensure_bucket_is_idempotent_and_lists_in_byte_order(s: Store) {
    assert_eq!(s.ensure_bucket("photos", 1_000).await.unwrap(), 1_000);
    assert_eq!(
        s.ensure_bucket("photos", 2_000).await.unwrap(),
        1_000,
        "a second call keeps the first creation time"
    );
    for (name, at) in [("a0", 5), ("a.b", 4), ("a-b", 3)] {
        assert_eq!(s.ensure_bucket(name, at).await.unwrap(), at);
    }
    assert_eq!(
        s.buckets().await.unwrap(),
        vec![
            ("a-b".to_owned(), 3),
            ("a.b".to_owned(), 4),
            ("a0".to_owned(), 5),
            ("photos".to_owned(), 1_000),
        ]
    );
}

async fn pending_row_is_invisible(s: Store) {
    s.insert_pending(&pending("p1", BUCKET, "k")).await.unwrap();
    assert_eq!(s.current(BUCKET, "k").await.unwrap(), None);
    assert!(s.list(BUCKET, "", "", false, 100).await.unwrap().is_empty());
    assert!(
        sweep_ids(&s, T0).await.is_empty(),
        "a live lease is not swept"
    );
}

async fn pending_rows_insert_together_or_not_at_all(s: Store) {
    let batch: Vec<NewPending> = (0..5)
        .map(|n| pending(&format!("b{n}"), BUCKET, &format!("batch/{n}")))
        .collect();
    s.insert_pendings(&batch).await.expect("a batch inserts");
    for p in &batch {
        assert_eq!(
            s.object_status(&p.id).await.unwrap().as_deref(),
            Some("pending"),
            "{} is recorded pending",
            p.id
        );
    }
    // Each row of the batch commits on its own afterwards.
    s.commit("b3", &info(3)).await.expect("commit b3");
    assert_eq!(
        s.current(BUCKET, "batch/3").await.unwrap().map(|r| r.size),
        Some(info(3).size)
    );
    assert_eq!(s.current(BUCKET, "batch/2").await.unwrap(), None);

    // A batch holding an id that exists inserts nothing, not even its good rows.
    let bad = vec![
        pending("c0", BUCKET, "batch/c0"),
        pending("b1", BUCKET, "batch/again"),
        pending("c2", BUCKET, "batch/c2"),
    ];
    assert!(s.insert_pendings(&bad).await.is_err());
    assert_eq!(s.object_status("c0").await.unwrap(), None);
    assert_eq!(s.object_status("c2").await.unwrap(), None);
    s.insert_pendings(&[])
        .await
        .expect("an empty batch is nothing");
    // The batch went whole and changed nothing; its good rows insert alone.
    s.insert_pendings(&bad[..1]).await.expect("c0 alone");
    assert_eq!(
        s.object_status("c0").await.unwrap().as_deref(),
        Some("pending")
    );
}

/// A group's outcomes, with the errors as their messages (comparable).
fn summarized(outcomes: Vec<Result<Vec<String>, MetaError>>) -> Vec<Result<Vec<String>, String>> {
    outcomes
        .into_iter()
        .map(|o| o.map_err(|e| e.to_string()))
        .collect()
}

async fn grouped_commits_run_in_order_and_fail_alone(s: Store) {
    use upgate::metadata::Quota;
    let quota = Quota {
        tenant_id: "g-tenant".into(),
        max_bytes: 10_000,
        max_objects: 1_000,
    };
    let mut rows = vec![
        pending("g1", BUCKET, "g/a"),
        pending("g2", BUCKET, "g/a"),
        pending("g3", BUCKET, "g/a"),
        pending("g4", BUCKET, "g/q"),
        pending("g5", BUCKET, "g/r"),
    ];
    for p in &mut rows[3..] {
        p.tenant_id = Some("g-tenant".into());
    }
    s.insert_pendings(&rows).await.expect("pending");
    let charged = |n| CommitInfo {
        quota: Some(quota.clone()),
        ..info(n)
    };
    let batch = vec![
        ("g1".to_string(), info(1)),
        // Sees g1 committed before it, as if it ran after it: retires it.
        ("g2".to_string(), info(2)),
        ("g3".to_string(), conditional(3, WriteCondition::Absent)),
        ("g4".to_string(), charged(7)),
        // 2 x 7,007 bytes do not fit in 10,000: only the first of the group is charged.
        ("g5".to_string(), charged(7)),
        ("never-pending".to_string(), info(4)),
    ];
    let outcomes = s
        .commit_many(&batch)
        .await
        .expect("the transaction commits");
    let summary = summarized(outcomes);
    assert_eq!(
        summary,
        vec![
            Ok(vec![]),
            Ok(vec!["g1".to_string()]),
            Err(MetaError::ConditionFailed.to_string()),
            Ok(vec![]),
            Err(MetaError::QuotaExceeded.to_string()),
            Err(MetaError::PendingGone.to_string()),
        ]
    );
    assert_eq!(
        s.current(BUCKET, "g/a").await.unwrap().map(|r| r.id),
        Some("g2".to_string())
    );
    assert_eq!(
        s.object_status("g1").await.unwrap().as_deref(),
        Some("garbage")
    );
    // The refused ones changed nothing: still pending, nothing charged for them.
    assert_eq!(
        s.object_status("g3").await.unwrap().as_deref(),
        Some("pending")
    );
    assert_eq!(
        s.object_status("g5").await.unwrap().as_deref(),
        Some("pending")
    );
    assert_eq!(s.current(BUCKET, "g/r").await.unwrap(), None);
    let control = as_control(&s);
    assert_eq!(
        control.usage("g-tenant").await.expect("usage"),
        (info(7).size as i64, 1)
    );
    // A refused one commits later on its own terms.
    let later = s.commit_many(&batch[2..3]).await.expect("transaction");
    assert!(matches!(later[..], [Err(MetaError::ConditionFailed)]));
    s.commit("g3", &info(3)).await.expect("unconditional");
    assert_eq!(
        s.current(BUCKET, "g/a").await.unwrap().map(|r| r.id),
        Some("g3".to_string())
    );
}

/// A large group, as many uploads finishing together give one: most commits are of keys
/// nobody else in the group commits (a single writer runs those as a few statements for all of
/// them), mixed with those that must run one by one. Every outcome, row and usage figure is what
/// the same commits one after the other give.
async fn a_group_of_many_keys_commits_as_one_by_one(s: Store) {
    use upgate::metadata::Quota;
    let unlimited = Quota {
        tenant_id: "m-tenant".into(),
        max_bytes: i64::MAX,
        max_objects: i64::MAX,
    };
    // Keys m/0..m/4 have a committed version already.
    for i in 0..5u64 {
        let old = pending(&format!("old-{i}"), BUCKET, &format!("m/{i}"));
        s.insert_pending(&old).await.unwrap();
        s.commit(&old.id, &info(100 + i)).await.unwrap();
    }
    let mut rows: Vec<NewPending> = (0..70u64)
        .map(|i| pending(&format!("m-{i}"), BUCKET, &format!("m/{i}")))
        .collect();
    for (i, p) in rows.iter_mut().enumerate() {
        if i % 2 == 0 {
            p.tenant_id = Some("m-tenant".into());
        }
    }
    rows.push(NewPending {
        lease_until_ms: T0,
        ..pending("m-expired", BUCKET, "m/expired")
    });
    rows.push(pending("m-dup-a", BUCKET, "m/dup"));
    rows.push(pending("m-dup-b", BUCKET, "m/dup"));
    rows.push(pending("m-twice", BUCKET, "m/twice"));
    s.insert_pendings(&rows).await.expect("pending");
    let mut batch: Vec<(String, CommitInfo)> = Vec::new();
    let mut expect: Vec<Result<Vec<String>, String>> = Vec::new();
    let gone = || Err(MetaError::PendingGone.to_string());
    for i in 0..70u64 {
        let quota = (i % 2 == 0).then(|| unlimited.clone());
        batch.push((format!("m-{i}"), CommitInfo { quota, ..info(i) }));
        expect.push(Ok(if i < 5 {
            vec![format!("old-{i}")]
        } else {
            vec![]
        }));
        if i == 30 {
            batch.push(("m-expired".into(), info(200)));
            expect.push(gone());
            batch.push(("m-dup-a".into(), info(201)));
            expect.push(Ok(vec![]));
            batch.push(("m-twice".into(), info(202)));
            expect.push(Ok(vec![]));
            batch.push(("never-pending".into(), info(203)));
            expect.push(gone());
        }
        if i == 50 {
            batch.push(("m-dup-b".into(), info(204)));
            expect.push(Ok(vec!["m-dup-a".to_string()]));
            batch.push(("m-twice".into(), info(205)));
            expect.push(gone());
        }
    }
    let outcomes = s
        .commit_many(&batch)
        .await
        .expect("the transaction commits");
    let summary = summarized(outcomes);
    assert_eq!(summary, expect);
    for (i, p) in rows.iter().take(70).enumerate() {
        let (_, i_info) = &batch.iter().find(|(id, _)| *id == p.id).unwrap();
        assert_eq!(
            s.current(BUCKET, &p.key).await.unwrap(),
            Some(expected(p, i_info)),
            "m/{i}"
        );
    }
    for i in 0..5 {
        assert_eq!(
            s.object_status(&format!("old-{i}"))
                .await
                .unwrap()
                .as_deref(),
            Some("garbage")
        );
    }
    assert_eq!(
        s.current(BUCKET, "m/dup").await.unwrap(),
        Some(expected(&rows[72], &info(204)))
    );
    assert_eq!(
        s.current(BUCKET, "m/twice").await.unwrap(),
        Some(expected(&rows[73], &info(202)))
    );
    assert_eq!(
        s.object_status("m-expired").await.unwrap().as_deref(),
        Some("pending")
    );
    // Usage as each commit charges it: its size, less what it retired.
    let (mut bytes, mut objects) = (0i64, 0i64);
    for i in (0..70u64).step_by(2) {
        bytes += info(i).size as i64;
        objects += 1;
        if i < 5 {
            bytes -= info(100 + i).size as i64;
            objects -= 1;
        }
    }
    let control = as_control(&s);
    assert_eq!(
        control.usage("m-tenant").await.expect("usage"),
        (bytes, objects)
    );
}

async fn commit_round_trips_every_field(s: Store) {
    let with = pending("with-checksum", BUCKET, "dir/with");
    let with_info = CommitInfo {
        size: 5 * (1 << 40),
        sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_owned(),
        etag: "d41d8cd98f00b204e9800998ecf8427e".to_owned(),
        content_type: "application/pdf".to_owned(),
        checksum: Some(("CRC64NVME".to_owned(), "AAAAAAAAAAA=".to_owned())),
        committed_at_ms: T0 + 42,
        quota: None,
        scan: Some(r#"{"result":"disarmed","changes":["disarmed JavaScript"]}"#.to_owned()),
        headers: ObjectHeaders(vec![(
            "content-disposition".to_owned(),
            "attachment; filename=\"ü.pdf\"".to_owned(),
        )]),
        tags: ObjectTags::default(),
        condition: None,
        storage_class: "GLACIER_IR".to_owned(),
        // A multipart object: its part sizes (5 TiB in 10,000 parts).
        part_sizes: {
            let mut sizes = vec![512 << 20; 9_999];
            sizes.push(5 * (1 << 40) - 9_999 * (512 << 20));
            sizes
        },
    };
    let without = NewPending {
        owner: "AKIDOTHEROWNER000002".to_owned(),
        ..pending("without-checksum", BUCKET, "dir/without")
    };
    let without_info = CommitInfo {
        size: i64::MAX as u64,
        checksum: None,
        content_type: "application/octet-stream".to_owned(),
        scan: None,
        headers: ObjectHeaders::default(),
        ..info(9)
    };
    let empty = pending("empty", BUCKET, "dir/empty");
    let empty_info = CommitInfo { size: 0, ..info(3) };

    for (p, i) in [
        (&with, &with_info),
        (&without, &without_info),
        (&empty, &empty_info),
    ] {
        s.insert_pending(p).await.unwrap();
        assert!(
            s.commit(&p.id, i).await.unwrap().is_empty(),
            "nothing to retire on a first commit"
        );
        assert_eq!(
            s.current(&p.bucket, &p.key).await.unwrap(),
            Some(expected(p, i))
        );
    }
    assert_eq!(
        s.list(BUCKET, "dir/", "", false, 10).await.unwrap(),
        vec![
            expected(&empty, &empty_info),
            expected(&with, &with_info),
            expected(&without, &without_info),
        ]
    );
    assert!(
        sweep_ids(&s, LATER).await.is_empty(),
        "committed rows are never sweepable"
    );
}

async fn commit_rejects_size_beyond_i64(s: Store) {
    s.insert_pending(&pending("huge", BUCKET, "k"))
        .await
        .unwrap();
    let huge = CommitInfo {
        size: u64::MAX,
        ..info(1)
    };
    assert!(matches!(
        s.commit("huge", &huge).await,
        Err(MetaError::Corrupt(_))
    ));
    assert_eq!(s.current(BUCKET, "k").await.unwrap(), None);
    // The row is still pending: a valid commit goes through.
    assert!(s.commit("huge", &info(1)).await.unwrap().is_empty());
}

async fn overwrite_retires_previous_version_and_latest_commit_wins(s: Store) {
    assert!(put(&s, "v1", BUCKET, "k").await.is_empty());
    // Both uploads start before either commits; commit order, not start order, decides.
    s.insert_pending(&pending("v2", BUCKET, "k")).await.unwrap();
    s.insert_pending(&pending("v3", BUCKET, "k")).await.unwrap();
    assert_eq!(
        s.current(BUCKET, "k").await.unwrap().map(|r| r.id),
        Some("v1".to_owned()),
        "pending versions do not replace the committed one"
    );

    assert_eq!(
        s.commit("v3", &info(3)).await.unwrap(),
        vec!["v1".to_owned()]
    );
    assert_eq!(
        s.commit("v2", &info(2)).await.unwrap(),
        vec!["v3".to_owned()]
    );
    let current = s
        .current(BUCKET, "k")
        .await
        .unwrap()
        .expect("a current version");
    assert_eq!(current, expected(&pending("v2", BUCKET, "k"), &info(2)));
    assert_eq!(
        s.list(BUCKET, "", "", false, 10).await.unwrap(),
        vec![current],
        "one listing entry per key"
    );

    assert_eq!(
        sweep_ids(&s, T0).await,
        BTreeSet::from(["v1".to_owned(), "v3".to_owned()])
    );
    s.purge("v1").await.unwrap();
    assert_eq!(sweep_ids(&s, T0).await, BTreeSet::from(["v3".to_owned()]));
}

/// What the reconciler asks: which listed blob ids some record refers to (object versions in
/// any state, parts, loose blobs), the committed ids of one fan, a row's status, and a claim
/// that one caller per interval wins.
async fn transitions_find_old_objects_by_class_and_record_only_committed_ones(s: Store) {
    // (id, key, class, committed at): two old STANDARD ones, one old already moved, one young,
    // one old in another bucket, one old that is then replaced (garbage).
    let rows = [
        ("t1", "a", "STANDARD", T0 + 10),
        ("t2", "b", "STANDARD", T0 + 5),
        ("t3", "c", "GLACIER_IR", T0 + 1),
        ("t4", "d", "STANDARD", T0 + 1_000),
        ("t6", "f", "STANDARD_IA", T0 + 7),
    ];
    for (id, key, class, at) in rows {
        s.insert_pending(&pending(id, BUCKET, key)).await.unwrap();
        let i = CommitInfo {
            committed_at_ms: at,
            storage_class: class.to_owned(),
            ..info(2)
        };
        s.commit(id, &i).await.unwrap();
    }
    s.insert_pending(&pending("t5", "other", "a"))
        .await
        .unwrap();
    s.commit(
        "t5",
        &CommitInfo {
            committed_at_ms: T0,
            ..info(2)
        },
    )
    .await
    .unwrap();
    s.insert_pending(&pending("t7", BUCKET, "f")).await.unwrap();
    s.commit(
        "t7",
        &CommitInfo {
            committed_at_ms: T0 + 2_000,
            ..info(2)
        },
    )
    .await
    .unwrap();
    let from = ["STANDARD", "STANDARD_IA"];
    // Oldest first, only the bucket's committed versions in a class of `from`, before the age.
    assert_eq!(
        s.transition_due(BUCKET, &from, T0 + 100, 10).await.unwrap(),
        ["t2", "t1"]
    );
    assert_eq!(
        s.transition_due(BUCKET, &from, T0 + 100, 1).await.unwrap(),
        ["t2"]
    );
    assert_eq!(
        s.transition_due(BUCKET, &["STANDARD_IA"], T0 + 100, 10)
            .await
            .unwrap(),
        Vec::<String>::new(),
        "t6 was replaced: a garbage version never moves"
    );
    assert!(
        s.transition_due(BUCKET, &[], T0 + 100, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.set_storage_class("t2", "GLACIER_IR").await.unwrap());
    assert!(
        s.set_storage_class("t2", "GLACIER_IR").await.unwrap(),
        "idempotent"
    );
    assert_eq!(
        s.transition_due(BUCKET, &from, T0 + 100, 10).await.unwrap(),
        ["t1"]
    );
    assert_eq!(
        s.current(BUCKET, "b").await.unwrap().unwrap().storage_class,
        "GLACIER_IR"
    );
    // A version retired or gone is not recorded.
    assert!(!s.set_storage_class("t6", "GLACIER_IR").await.unwrap());
    assert!(!s.set_storage_class("nope", "GLACIER_IR").await.unwrap());
}

async fn reconciler_sees_every_reference_and_one_claim_per_interval(s: Store) {
    put(&s, "ab01", BUCKET, "k1").await;
    put(&s, "ab03", BUCKET, "k1").await; // ab01 is now garbage
    put(&s, "ac01", BUCKET, "k2").await; // another fan
    put(&s, "ab05", "other", "k1").await; // another bucket
    s.insert_pending(&pending("ab02", BUCKET, "k3"))
        .await
        .unwrap();
    s.register_loose_blob("ab04", BUCKET, LATER).await.unwrap();
    s.create_multipart(&upload("u9", "k4", OWNER))
        .await
        .unwrap();
    s.register_loose_blob("ab06", BUCKET, LATER).await.unwrap();
    assert!(
        s.put_part("u9", &part_record(1, "ab06", 10), 100, T0)
            .await
            .unwrap()
    );
    let asked: Vec<String> = ["ab01", "ab02", "ab03", "ab04", "ab06", "ab07", "ab08"]
        .map(String::from)
        .to_vec();
    let found: BTreeSet<String> = s
        .referenced_blobs(&asked)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let want: BTreeSet<String> = ["ab01", "ab02", "ab03", "ab04", "ab06"]
        .map(String::from)
        .into();
    assert_eq!(
        found, want,
        "every kind of reference counts; unknown ids do not"
    );
    assert!(s.referenced_blobs(&[]).await.unwrap().is_empty());

    let committed = s.committed_ids(BUCKET, "ab", T0 + 1_000).await.unwrap();
    assert_eq!(committed, vec![("ab03".to_owned(), "k1".to_owned())]);
    assert!(
        s.committed_ids(BUCKET, "ab", T0).await.unwrap().is_empty(),
        "only versions committed before the listing"
    );
    assert_eq!(
        s.object_status("ab01").await.unwrap().as_deref(),
        Some("garbage")
    );
    assert_eq!(
        s.object_status("ab02").await.unwrap().as_deref(),
        Some("pending")
    );
    assert_eq!(
        s.object_status("ab03").await.unwrap().as_deref(),
        Some("committed")
    );
    assert_eq!(s.object_status("zz").await.unwrap(), None);

    let hour = 3_600_000;
    assert!(
        s.claim_maintenance("reconcile", "a", T0, T0 - hour)
            .await
            .unwrap()
    );
    assert!(
        !s.claim_maintenance("reconcile", "b", T0 + 10, T0 + 10 - hour)
            .await
            .unwrap(),
        "claimed within the interval"
    );
    assert!(
        s.claim_maintenance("reconcile", "b", T0 + hour + 1, T0 + 1)
            .await
            .unwrap()
    );
    assert!(
        !s.claim_maintenance("no-such-job", "a", T0, T0)
            .await
            .unwrap()
    );
}

async fn discard_pending_removes_only_pending_rows(s: Store) {
    s.insert_pending(&pending("p", BUCKET, "k")).await.unwrap();
    s.discard_pending("p").await.unwrap();
    assert!(sweep_ids(&s, LATER).await.is_empty(), "the row is gone");
    assert!(matches!(
        s.commit("p", &info(1)).await,
        Err(MetaError::PendingGone)
    ));

    put(&s, "c", BUCKET, "k").await;
    s.discard_pending("c").await.unwrap();
    assert_eq!(
        s.current(BUCKET, "k").await.unwrap().map(|r| r.id),
        Some("c".to_owned()),
        "discard_pending leaves a committed row alone"
    );
    s.discard_pending("never-existed").await.unwrap();
}

async fn delete_current_returns_id_and_hides_key(s: Store) {
    put(&s, "v1", BUCKET, "k").await;
    put(&s, "other", BUCKET, "k2").await;
    assert_eq!(
        s.delete_current(BUCKET, "k").await.unwrap(),
        Some("v1".to_owned())
    );
    assert_eq!(s.current(BUCKET, "k").await.unwrap(), None);
    assert_eq!(listed_keys(&s, "", "", false, 10).await, strings(&["k2"]));
    assert_eq!(s.delete_current(BUCKET, "k").await.unwrap(), None);
    assert_eq!(s.delete_current(BUCKET, "missing").await.unwrap(), None);
    assert_eq!(sweep_ids(&s, T0).await, BTreeSet::from(["v1".to_owned()]));

    // A pending upload is not "current" and survives the delete.
    s.insert_pending(&pending("p", BUCKET, "k3")).await.unwrap();
    assert_eq!(s.delete_current(BUCKET, "k3").await.unwrap(), None);
    assert!(s.commit("p", &info(1)).await.unwrap().is_empty());
    assert!(s.current(BUCKET, "k3").await.unwrap().is_some());
}

async fn purge_never_removes_committed_row(s: Store) {
    put(&s, "c", BUCKET, "k").await;
    s.purge("c").await.unwrap();
    assert_eq!(
        s.current(BUCKET, "k").await.unwrap().map(|r| r.id),
        Some("c".to_owned())
    );

    s.insert_pending(&pending("p", BUCKET, "k2")).await.unwrap();
    s.purge("p").await.unwrap();
    assert!(sweep_ids(&s, LATER).await.is_empty(), "pending row purged");

    s.delete_current(BUCKET, "k").await.unwrap();
    assert_eq!(sweep_ids(&s, T0).await, BTreeSet::from(["c".to_owned()]));
    s.purge("c").await.unwrap();
    assert!(sweep_ids(&s, LATER).await.is_empty(), "garbage row purged");
    s.purge("never-existed").await.unwrap();
}

async fn list_orders_keys_by_utf8_bytes(s: Store) {
    let keys = put_tricky_keys(&s).await;
    assert_eq!(listed_keys(&s, "", "", false, 1_000).await, keys);
    // Spot checks, so a wrong expectation cannot hide behind `sort`.
    let pos = |k: &str| keys.iter().position(|x| x == k).unwrap();
    assert!(
        pos("A") < pos("B") && pos("B") < pos("a"),
        "upper case first"
    );
    assert!(pos("a") < pos("a b") && pos("a b") < pos("a%"));
    assert!(pos("a-b") < pos("a.b") && pos("a.b") < pos("a/") && pos("a/") < pos("a0"));
    assert!(pos("b") < pos("e\u{301}") && pos("e\u{301}") < pos("é"));
    assert!(pos("\u{FFFD}") < pos("\u{10000}") && pos("\u{10000}") < pos("\u{10FFFF}"));
}

async fn list_honours_prefix_bounds(s: Store) {
    let keys = put_tricky_keys(&s).await;
    let with_prefix =
        |p: &str| -> Vec<String> { keys.iter().filter(|k| k.starts_with(p)).cloned().collect() };
    for prefix in [
        "a",
        "a/",
        "a%",
        "a_",
        "A",
        "é",
        "e",
        "\u{D7FF}",
        "\u{10FFFF}",
        "zzz",
    ] {
        assert_eq!(
            listed_keys(&s, prefix, "", false, 1_000).await,
            with_prefix(prefix),
            "prefix {prefix:?}"
        );
    }
    assert_eq!(
        listed_keys(&s, "a/", "", false, 1_000).await,
        strings(&["a/", "a/b"])
    );
    assert_eq!(
        listed_keys(&s, "a%", "", false, 1_000).await,
        strings(&["a%", "a%b"])
    );
    assert_eq!(
        listed_keys(&s, "a_", "", false, 1_000).await,
        strings(&["a_"])
    );
    assert_eq!(
        listed_keys(&s, "\u{10FFFF}", "", false, 1_000).await,
        strings(&["\u{10FFFF}", "\u{10FFFF}x"])
    );
}

async fn list_start_is_exclusive_or_inclusive(s: Store) {
    for (i, key) in ["a", "a/", "a/b", "a0", "b"].iter().enumerate() {
        put(&s, &format!("id-{i}"), BUCKET, key).await;
    }
    assert_eq!(
        listed_keys(&s, "", "a/", false, 10).await,
        strings(&["a/b", "a0", "b"])
    );
    assert_eq!(
        listed_keys(&s, "", "a/", true, 10).await,
        strings(&["a/", "a/b", "a0", "b"])
    );
    // A start that is not a key.
    assert_eq!(
        listed_keys(&s, "", "a/a", false, 10).await,
        strings(&["a/b", "a0", "b"])
    );
    assert_eq!(
        listed_keys(&s, "", "a/a", true, 10).await,
        strings(&["a/b", "a0", "b"])
    );
    // Start before the prefix: the prefix decides, and its first key is included.
    assert_eq!(
        listed_keys(&s, "a/", "a", false, 10).await,
        strings(&["a/", "a/b"])
    );
    assert_eq!(
        listed_keys(&s, "a/", "", false, 10).await,
        strings(&["a/", "a/b"])
    );
    // Start inside the prefix range.
    assert_eq!(
        listed_keys(&s, "a/", "a/", false, 10).await,
        strings(&["a/b"])
    );
    assert_eq!(
        listed_keys(&s, "a/", "a/", true, 10).await,
        strings(&["a/", "a/b"])
    );
    // Start past the prefix range.
    assert!(listed_keys(&s, "a/", "a0", true, 10).await.is_empty());
    // Start past every key.
    assert!(listed_keys(&s, "", "b", false, 10).await.is_empty());
    assert_eq!(listed_keys(&s, "", "b", true, 10).await, strings(&["b"]));
    assert!(listed_keys(&s, "", "\u{10FFFF}", true, 10).await.is_empty());
}

async fn list_limit_pages_through_every_key(s: Store) {
    let keys = put_tricky_keys(&s).await;
    assert!(listed_keys(&s, "", "", false, 0).await.is_empty());
    assert_eq!(listed_keys(&s, "", "", false, 3).await, keys[..3].to_vec());
    assert_eq!(
        listed_keys(&s, "a", "", false, 2).await,
        strings(&["a", "a "])
    );

    // Resuming after the last key of each page visits every key exactly once.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = listed_keys(&s, "", &after, false, 4).await;
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        after = last.clone();
        seen.extend(page);
    }
    assert_eq!(seen, keys);
}

/// The router refuses control characters in keys, but `prefix`, `start-after` and `marker`
/// reach `list` as the client sent them; PostgreSQL cannot store NUL at all.
async fn lookups_with_nul_find_nothing(s: Store) {
    for (i, key) in ["a", "a/", "a0", "b"].iter().enumerate() {
        put(&s, &format!("id-{i}"), BUCKET, key).await;
    }
    assert!(listed_keys(&s, "a\0", "", false, 10).await.is_empty());
    assert!(listed_keys(&s, "\0", "", true, 10).await.is_empty());
    for inclusive in [false, true] {
        assert_eq!(
            listed_keys(&s, "", "a\0", inclusive, 10).await,
            strings(&["a/", "a0", "b"])
        );
        assert_eq!(
            listed_keys(&s, "", "a\0zz", inclusive, 10).await,
            strings(&["a/", "a0", "b"])
        );
        assert_eq!(
            listed_keys(&s, "a", "\0", inclusive, 10).await,
            strings(&["a", "a/", "a0"])
        );
        assert_eq!(
            listed_keys(&s, "", "\0", inclusive, 10).await,
            strings(&["a", "a/", "a0", "b"])
        );
    }
    assert_eq!(s.current(BUCKET, "a\0").await.unwrap(), None);
    assert_eq!(s.delete_current(BUCKET, "a\0").await.unwrap(), None);
    assert!(s.current(BUCKET, "a").await.unwrap().is_some());
}

async fn keys_are_scoped_to_their_bucket(s: Store) {
    put(&s, "a1", "alpha", "k").await;
    put(&s, "b1", "beta", "k").await;
    assert!(
        put(&s, "a2", "alpha", "k").await == vec!["a1".to_owned()],
        "an overwrite retires only its own bucket's version"
    );
    assert_eq!(
        s.current("beta", "k").await.unwrap().map(|r| r.id),
        Some("b1".to_owned())
    );
    let ids: Vec<String> = s
        .list("alpha", "", "", false, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, strings(&["a2"]));
    assert_eq!(s.current("gamma", "k").await.unwrap(), None);
    assert_eq!(
        s.delete_current("beta", "k").await.unwrap(),
        Some("b1".to_owned())
    );
    assert!(s.current("alpha", "k").await.unwrap().is_some());
    let swept = s.sweepable(T0, 10).await.unwrap();
    let mut swept: Vec<(String, String)> = swept.into_iter().map(|w| (w.bucket, w.id)).collect();
    swept.sort();
    assert_eq!(
        swept,
        vec![
            ("alpha".to_owned(), "a1".to_owned()),
            ("beta".to_owned(), "b1".to_owned())
        ],
        "sweepable names each row's bucket"
    );
}

async fn sweepable_returns_expired_pending_and_garbage_only(s: Store) {
    let lease = |id: &str, key: &str, until: i64| NewPending {
        lease_until_ms: until,
        tenant_id: None,
        ..pending(id, BUCKET, key)
    };
    s.insert_pending(&lease("expired", "k1", T0 + 10))
        .await
        .unwrap();
    s.insert_pending(&lease("at-deadline", "k2", T0 + 20))
        .await
        .unwrap();
    s.insert_pending(&lease("live", "k3", T0 + 30))
        .await
        .unwrap();
    put(&s, "old", BUCKET, "k4").await;
    put(&s, "new", BUCKET, "k4").await;

    assert_eq!(
        sweep_ids(&s, T0 + 20).await,
        BTreeSet::from(["expired".to_owned(), "old".to_owned()]),
        "a lease ending exactly now is still live; committed rows never appear"
    );
    assert_eq!(
        sweep_ids(&s, T0 + 31).await,
        BTreeSet::from([
            "at-deadline".to_owned(),
            "expired".to_owned(),
            "live".to_owned(),
            "old".to_owned()
        ])
    );
    assert_eq!(s.sweepable(T0 + 31, 2).await.unwrap().len(), 2, "limit");
    assert!(s.sweepable(T0 + 31, 0).await.unwrap().is_empty());
}

async fn commit_after_purge_or_second_commit_is_pending_gone(s: Store) {
    s.insert_pending(&pending("swept", BUCKET, "k"))
        .await
        .unwrap();
    s.purge("swept").await.unwrap();
    assert!(matches!(
        s.commit("swept", &info(1)).await,
        Err(MetaError::PendingGone)
    ));
    assert_eq!(s.current(BUCKET, "k").await.unwrap(), None);

    assert!(matches!(
        s.commit("never-existed", &info(1)).await,
        Err(MetaError::PendingGone)
    ));

    put(&s, "once", BUCKET, "k").await;
    assert!(
        matches!(
            s.commit("once", &info(2)).await,
            Err(MetaError::PendingGone)
        ),
        "a committed row cannot be committed again"
    );
    assert_eq!(
        s.current(BUCKET, "k").await.unwrap(),
        Some(expected(&pending("once", BUCKET, "k"), &info(1))),
        "and keeps its data"
    );
}

async fn concurrent_commits_to_one_key_leave_exactly_one_committed(s: Store) {
    const N: usize = 20;
    let ids: Vec<String> = (0..N).map(|i| format!("race-{i:02}")).collect();
    for id in &ids {
        s.insert_pending(&pending(id, BUCKET, "contended"))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let (s, id) = (s.clone(), id.clone());
            tokio::spawn(async move { s.commit(&id, &info(n as u64)).await })
        })
        .collect();
    let mut retired = Vec::new();
    for task in tasks {
        retired.extend(task.await.unwrap().expect("no commit fails"));
    }

    let winner = s
        .current(BUCKET, "contended")
        .await
        .unwrap()
        .expect("one version is current");
    let mut losers: Vec<String> = ids.iter().filter(|id| **id != winner.id).cloned().collect();
    retired.sort();
    losers.sort();
    assert_eq!(
        retired, losers,
        "every other version is retired exactly once, by some commit"
    );
    let n: u64 = winner.id["race-".len()..].parse().unwrap();
    assert_eq!(
        winner,
        expected(&pending(&winner.id, BUCKET, "contended"), &info(n))
    );
    assert_eq!(
        s.list(BUCKET, "", "", false, 100).await.unwrap(),
        vec![winner]
    );
    assert_eq!(
        sweep_ids(&s, T0).await,
        losers.into_iter().collect::<BTreeSet<_>>(),
        "the {} others are garbage",
        N - 1
    );
}

async fn tags_are_replaced_on_the_current_version_only(s: Store) {
    let tags = ObjectTags(vec![("a".to_owned(), "ü 1".to_owned())]);
    assert!(
        !s.set_tags(BUCKET, "tagged", &tags).await.unwrap(),
        "no object yet"
    );
    put(&s, "t1", BUCKET, "tagged").await;
    assert!(s.set_tags(BUCKET, "tagged", &tags).await.unwrap());
    assert_eq!(
        s.current(BUCKET, "tagged").await.unwrap().unwrap().tags,
        tags
    );
    assert!(
        s.set_tags(BUCKET, "tagged", &ObjectTags::default())
            .await
            .unwrap()
    );
    assert!(
        s.current(BUCKET, "tagged")
            .await
            .unwrap()
            .unwrap()
            .tags
            .0
            .is_empty()
    );
    // A new version has the tags it was committed with.
    assert!(s.set_tags(BUCKET, "tagged", &tags).await.unwrap());
    put(&s, "t2", BUCKET, "tagged").await;
    assert_eq!(
        s.current(BUCKET, "tagged").await.unwrap().unwrap().tags,
        info(1).tags
    );
    assert!(!s.set_tags(BUCKET, "tagged\0", &tags).await.unwrap());
}

fn conditional(n: u64, condition: WriteCondition) -> CommitInfo {
    CommitInfo {
        condition: Some(condition),
        ..info(n)
    }
}

async fn conditional_commits_judge_the_version_they_replace(s: Store) {
    let absent = WriteCondition::Absent;
    s.insert_pending(&pending("c1", BUCKET, "cond"))
        .await
        .unwrap();
    s.commit("c1", &conditional(1, absent.clone()))
        .await
        .expect("an absent key takes an if-absent write");
    // Refused conditions change nothing: the pending row stays pending, the current stays.
    s.insert_pending(&pending("c2", BUCKET, "cond"))
        .await
        .unwrap();
    assert!(matches!(
        s.commit("c2", &conditional(2, absent)).await,
        Err(MetaError::ConditionFailed)
    ));
    assert!(matches!(
        s.commit(
            "c2",
            &conditional(2, WriteCondition::EtagIs("other".into()))
        )
        .await,
        Err(MetaError::ConditionFailed)
    ));
    assert_eq!(s.current(BUCKET, "cond").await.unwrap().unwrap().id, "c1");
    let etag = info(1).etag;
    assert_eq!(
        s.commit("c2", &conditional(2, WriteCondition::EtagIs(etag.clone())))
            .await
            .expect("the matching ETag"),
        vec!["c1".to_owned()]
    );
    // Deleted meanwhile: a conflict, not a failed condition.
    s.delete_current(BUCKET, "cond").await.unwrap();
    s.insert_pending(&pending("c3", BUCKET, "cond"))
        .await
        .unwrap();
    assert!(matches!(
        s.commit("c3", &conditional(3, WriteCondition::EtagIs(info(2).etag)))
            .await,
        Err(MetaError::ConditionConflict)
    ));
    assert!(s.current(BUCKET, "cond").await.unwrap().is_none());
}

async fn concurrent_commits_if_absent_leave_exactly_one_winner(s: Store) {
    const N: usize = 20;
    let ids: Vec<String> = (0..N).map(|n| format!("once-{n}")).collect();
    for id in &ids {
        s.insert_pending(&pending(id, BUCKET, "once"))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let (s, id) = (s.clone(), id.clone());
            tokio::spawn(async move {
                s.commit(&id, &conditional(n as u64, WriteCondition::Absent))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(retired) => {
                assert!(retired.is_empty());
                won += 1;
            }
            Err(MetaError::ConditionFailed) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        s.list(BUCKET, "once", "", false, 100).await.unwrap().len(),
        1
    );
}

async fn concurrent_commits_to_several_keys_keep_one_per_key(s: Store) {
    const KEYS: usize = 4;
    const PER_KEY: usize = 5;
    let mut ids = Vec::new();
    for k in 0..KEYS {
        for v in 0..PER_KEY {
            let id = format!("k{k}-v{v}");
            s.insert_pending(&pending(&id, BUCKET, &format!("key-{k}")))
                .await
                .unwrap();
            ids.push(id);
        }
    }
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (s, id) = (s.clone(), id.clone());
            tokio::spawn(async move { s.commit(&id, &info(1)).await })
        })
        .collect();
    let mut retired = BTreeSet::new();
    for task in tasks {
        for id in task.await.unwrap().expect("no commit fails") {
            assert!(retired.insert(id), "retired twice");
        }
    }
    let current = s.list(BUCKET, "", "", false, 100).await.unwrap();
    assert_eq!(
        current.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        (0..KEYS).map(|k| format!("key-{k}")).collect::<Vec<_>>()
    );
    for r in &current {
        assert!(r.id.starts_with(&format!("k{}-", &r.key["key-".len()..])));
        assert!(!retired.contains(&r.id));
    }
    assert_eq!(retired.len(), KEYS * (PER_KEY - 1));
    assert_eq!(sweep_ids(&s, T0).await, retired);
}

async fn ping_succeeds(s: Store) {
    s.ping().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Backend-specific: migrations and schema
// ---------------------------------------------------------------------------------------------

// ---- quotas -------------------------------------------------------------------------------

async fn concurrent_commits_cannot_exceed_a_tenant_quota(s: Store) {
    use upgate::metadata::Quota;
    let quota = Quota {
        tenant_id: "t1".into(),
        max_bytes: 50_000,
        max_objects: 1_000,
    };
    // 20 objects of 7,007 bytes race for 50,000 bytes: exactly 7 fit.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = Arc::clone(&s);
        let quota = quota.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("q{i}");
            let mut p = pending(&id, BUCKET, &format!("t1/k{i}"));
            p.tenant_id = Some("t1".into());
            s.insert_pending(&p).await.expect("pending");
            let mut c = info(7);
            c.quota = Some(quota);
            match s.commit(&id, &c).await {
                Ok(_) => true,
                Err(MetaError::QuotaExceeded) => false,
                Err(e) => panic!("{e}"),
            }
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("join") {
            ok += 1;
        }
    }
    assert_eq!(ok, 7);
    let control = as_control(&s);
    assert_eq!(control.usage("t1").await.expect("usage"), (7 * 7_007, 7));
    // Deleting releases; overwriting with a smaller object shrinks usage even when full.
    let committed = s.list(BUCKET, "t1/", "", false, 100).await.expect("list");
    assert_eq!(committed.len(), 7);
    s.delete_current(BUCKET, &committed[0].key)
        .await
        .expect("delete");
    assert_eq!(control.usage("t1").await.expect("usage"), (6 * 7_007, 6));
    let mut p = pending("q-small", BUCKET, &committed[1].key);
    p.tenant_id = Some("t1".into());
    s.insert_pending(&p).await.expect("pending");
    let mut c = info(0);
    c.quota = Some(Quota {
        max_bytes: 1,
        ..quota.clone()
    });
    s.commit("q-small", &c)
        .await
        .expect("a shrinking overwrite always fits");
    assert_eq!(
        control.usage("t1").await.expect("usage"),
        (5 * 7_007 + 7, 6)
    );
}

// ---- multipart ------------------------------------------------------------------------------

fn upload(id: &str, key: &str, owner: &str) -> MultipartUpload {
    MultipartUpload {
        upload_id: id.into(),
        bucket: BUCKET.into(),
        key: key.into(),
        owner: owner.into(),
        content_type: Some("application/pdf".into()),
        checksum_algorithm: Some("CRC32".into()),
        checksum_type: Some("FULL_OBJECT".into()),
        created_at_ms: T0,
        last_activity_ms: T0,
        headers: headers(9),
        completed_etag: None,
        tags: ObjectTags(vec![("from".to_owned(), "upload".to_owned())]),
    }
}

fn part_record(n: u32, blob: &str, size: u64) -> PartRecord {
    PartRecord {
        part_number: n,
        blob_id: blob.into(),
        size,
        etag: format!("etag-{blob}"),
        sha256: "ab".repeat(32),
        checksum: Some(("CRC32".into(), "AAAAAA==".into())),
        detected_type: (n == 1).then(|| "application/pdf".to_string()),
        created_at_ms: T0,
    }
}

async fn loose_ids(s: &Store, now_ms: i64) -> BTreeSet<String> {
    s.due_loose_blobs(now_ms, 1000)
        .await
        .expect("due")
        .into_iter()
        .map(|b| b.id)
        .collect()
}

async fn multipart_parts_are_admitted_within_the_budget_only(s: Store) {
    s.create_multipart(&upload("u1", "k", OWNER))
        .await
        .expect("create");
    assert_eq!(
        s.multipart("u1").await.expect("get"),
        Some(upload("u1", "k", OWNER))
    );
    for (blob, n, size) in [("b1", 1, 60), ("b2", 2, 40)] {
        s.register_loose_blob(blob, BUCKET, LATER)
            .await
            .expect("loose");
        assert!(
            s.put_part("u1", &part_record(n, blob, size), 100, T0 + 1)
                .await
                .expect("put")
        );
    }
    // Adopted blobs are no longer loose.
    assert!(loose_ids(&s, i64::MAX).await.is_empty());
    // One byte over the budget: refused, nothing changes.
    s.register_loose_blob("b3", BUCKET, LATER)
        .await
        .expect("loose");
    assert!(
        !s.put_part("u1", &part_record(3, "b3", 1), 100, T0 + 2)
            .await
            .expect("put")
    );
    // Replacing part 2 with a smaller one fits; the replaced blob is loose and due now.
    assert!(
        s.put_part("u1", &part_record(2, "b3", 30), 100, T0 + 3)
            .await
            .expect("replace")
    );
    assert_eq!(
        loose_ids(&s, T0 + 3).await,
        BTreeSet::from(["b2".to_string()])
    );
    let parts = s.parts("u1", 0, 10).await.expect("parts");
    assert_eq!(
        parts
            .iter()
            .map(|p| (p.part_number, p.blob_id.as_str(), p.size))
            .collect::<Vec<_>>(),
        vec![(1, "b1", 60), (2, "b3", 30)]
    );
    assert_eq!(parts[0], part_record(1, "b1", 60));
    assert_eq!(s.parts("u1", 1, 10).await.expect("after").len(), 1);
    // Activity was touched.
    assert_eq!(
        s.multipart("u1")
            .await
            .expect("get")
            .expect("u")
            .last_activity_ms,
        T0 + 3
    );
    assert_eq!(
        s.idle_multipart(T0 + 3, 10).await.expect("idle"),
        Vec::<String>::new()
    );
    assert_eq!(
        s.idle_multipart(T0 + 4, 10).await.expect("idle"),
        vec!["u1".to_string()]
    );
    // Unknown upload.
    let r = s.put_part("nope", &part_record(1, "bx", 1), 100, T0).await;
    assert!(matches!(r, Err(MetaError::NoSuchUpload)), "{r:?}");
}

async fn multipart_removal_makes_every_part_blob_loose(s: Store) {
    s.create_multipart(&upload("u2", "k", OWNER))
        .await
        .expect("create");
    for (blob, n) in [("p1", 1), ("p2", 2)] {
        s.register_loose_blob(blob, BUCKET, LATER)
            .await
            .expect("loose");
        assert!(
            s.put_part("u2", &part_record(n, blob, 10), 100, T0)
                .await
                .expect("put")
        );
    }
    // A part being written: loose, not due before its lease.
    s.register_loose_blob("inflight", BUCKET, LATER)
        .await
        .expect("loose");
    assert!(s.remove_multipart("u2", T0 + 5).await.expect("remove"));
    assert!(!s.remove_multipart("u2", T0 + 5).await.expect("again"));
    assert!(s.multipart("u2").await.expect("get").is_none());
    assert_eq!(
        loose_ids(&s, T0 + 5).await,
        BTreeSet::from(["p1".to_string(), "p2".to_string()])
    );
    assert!(loose_ids(&s, LATER).await.contains("inflight"));
    s.forget_loose_blob("p1").await.expect("forget");
    assert!(!loose_ids(&s, i64::MAX).await.contains("p1"));
}

async fn multipart_completion_frees_parts_and_is_remembered(s: Store) {
    s.create_multipart(&upload("u3", "k", OWNER))
        .await
        .expect("create");
    s.register_loose_blob("c1", BUCKET, LATER)
        .await
        .expect("loose");
    assert!(
        s.put_part("u3", &part_record(1, "c1", 10), 100, T0)
            .await
            .expect("put")
    );
    assert!(
        s.finish_multipart("u3", "e-1", T0 + 5)
            .await
            .expect("finish")
    );
    // Only an open upload completes; the completed one answers with its result.
    assert!(
        !s.finish_multipart("u3", "e-2", T0 + 6)
            .await
            .expect("again")
    );
    let done = s.multipart("u3").await.expect("get").expect("remembered");
    assert_eq!(done.completed_etag.as_deref(), Some("e-1"));
    assert_eq!(done.headers, headers(9));
    assert_eq!(done.last_activity_ms, T0 + 5);
    assert!(s.parts("u3", 0, 10).await.expect("parts").is_empty());
    assert!(loose_ids(&s, T0 + 5).await.contains("c1"));
    // No more parts; not listed as open; forgotten when idle.
    s.register_loose_blob("c2", BUCKET, LATER)
        .await
        .expect("loose");
    assert!(matches!(
        s.put_part("u3", &part_record(2, "c2", 10), 100, T0 + 7)
            .await,
        Err(MetaError::NoSuchUpload)
    ));
    let open = s
        .list_multipart(BUCKET, OWNER, "", "", "", 10)
        .await
        .expect("list");
    assert!(open.iter().all(|u| u.upload_id != "u3"));
    assert_eq!(
        s.idle_multipart(T0 + 6, 10).await.expect("idle"),
        vec!["u3".to_owned()]
    );
    assert!(s.remove_multipart("u3", LATER).await.expect("remove"));
    assert!(s.multipart("u3").await.expect("get").is_none());
}

async fn multipart_listing_is_scoped_to_owner_and_ordered(s: Store) {
    for (id, key, owner) in [
        ("u3", "b/x", OWNER),
        ("u1", "a/x", OWNER),
        ("u2", "a/x", OWNER),
        ("u9", "a/y", "someone-else"),
    ] {
        s.create_multipart(&upload(id, key, owner))
            .await
            .expect("create");
    }
    let ids = |v: Vec<MultipartUpload>| v.into_iter().map(|u| u.upload_id).collect::<Vec<_>>();
    assert_eq!(
        ids(s
            .list_multipart(BUCKET, OWNER, "", "", "", 10)
            .await
            .expect("l")),
        ["u1", "u2", "u3"]
    );
    assert_eq!(
        ids(s
            .list_multipart(BUCKET, OWNER, "a/", "", "", 10)
            .await
            .expect("l")),
        ["u1", "u2"]
    );
    assert_eq!(
        ids(s
            .list_multipart(BUCKET, OWNER, "", "a/x", "u1", 10)
            .await
            .expect("l")),
        ["u2", "u3"]
    );
    assert_eq!(
        ids(s
            .list_multipart(BUCKET, OWNER, "", "a/x", "", 1)
            .await
            .expect("l")),
        ["u1"]
    );
    assert_eq!(
        ids(s
            .list_multipart(BUCKET, "someone-else", "", "", "", 10)
            .await
            .expect("l")),
        ["u9"]
    );
}

async fn concurrent_parts_cannot_exceed_the_budget_together(s: Store) {
    s.create_multipart(&upload("race", "k", OWNER))
        .await
        .expect("create");
    // Ten different parts of 30 bytes race for a budget of 100: exactly three fit.
    let mut tasks = Vec::new();
    for n in 1..=10u32 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            let blob = format!("r{n}");
            s.register_loose_blob(&blob, BUCKET, LATER)
                .await
                .expect("loose");
            s.put_part("race", &part_record(n, &blob, 30), 100, T0)
                .await
                .expect("put")
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        if t.await.expect("join") {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
    let total: u64 = s
        .parts("race", 0, 100)
        .await
        .expect("parts")
        .iter()
        .map(|p| p.size)
        .sum();
    assert_eq!(total, 90);
}

// ---------------------------------------------------------------------------------------------
// Run-time buckets (S3 CreateBucket / DeleteBucket)
// ---------------------------------------------------------------------------------------------

fn runtime(name: &str, tenant: Option<&str>, at: i64) -> RuntimeBucket {
    RuntimeBucket {
        name: name.to_owned(),
        created_at_ms: at,
        tenant_id: tenant.map(str::to_owned),
    }
}

async fn tenant(s: &Store, id: &str) {
    use upgate::metadata::control::Tenant;
    as_control(s)
        .create_tenant(&Tenant {
            id: id.to_owned(),
            name: id.to_owned(),
            created_at_ms: T0,
            max_bytes: None,
            max_objects: None,
        })
        .await
        .expect("tenant");
}

async fn runtime_buckets_are_created_once_and_kept_apart_from_configured_ones(s: Store) {
    tenant(&s, "ta").await;
    s.ensure_bucket("configured", T0).await.expect("configured");
    let mine = runtime("made-by-op", None, T0 + 1);
    assert_eq!(
        s.create_bucket(&mine, 0).await.expect("create"),
        BucketCreation::Created
    );
    let theirs = runtime("made-by-ta", Some("ta"), T0 + 2);
    assert_eq!(
        s.create_bucket(&theirs, 5).await.expect("create"),
        BucketCreation::Created
    );
    // A second creation changes nothing and names the bucket that exists.
    assert_eq!(
        s.create_bucket(&runtime("made-by-ta", None, T0 + 9), 0)
            .await
            .expect("again"),
        BucketCreation::Exists(Some(theirs.clone()))
    );
    // A configured bucket is no run-time bucket.
    assert_eq!(
        s.create_bucket(&runtime("configured", None, T0 + 9), 0)
            .await
            .expect("configured"),
        BucketCreation::Exists(None)
    );
    assert_eq!(s.runtime_bucket("configured").await.expect("get"), None);
    assert_eq!(s.runtime_bucket("nothing").await.expect("get"), None);
    assert_eq!(s.runtime_bucket("made\0by").await.expect("nul"), None);
    assert_eq!(
        s.runtime_bucket("made-by-ta").await.expect("get"),
        Some(theirs.clone())
    );
    assert_eq!(
        s.runtime_buckets().await.expect("list"),
        vec![mine.clone(), theirs.clone()]
    );
    // Every bucket, configured or not, is among the recorded ones.
    let all: Vec<String> = s
        .buckets()
        .await
        .expect("all")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(all, ["configured", "made-by-op", "made-by-ta"]);
    // Deleting a configured bucket's row is not this call's business.
    assert_eq!(
        s.delete_bucket("configured").await.expect("delete"),
        BucketRemoval::NotFound
    );
    assert_eq!(s.buckets().await.expect("all").len(), 3);
}

async fn runtime_buckets_are_deleted_only_when_empty(s: Store) {
    for name in ["with-object", "with-pending", "with-upload", "empty"] {
        assert_eq!(
            s.create_bucket(&runtime(name, None, T0), 0)
                .await
                .expect("create"),
            BucketCreation::Created
        );
    }
    put(&s, "o1", "with-object", "k").await;
    s.insert_pending(&pending("p1", "with-pending", "k"))
        .await
        .expect("pending");
    let mut u = upload("u1", "k", OWNER);
    u.bucket = "with-upload".into();
    s.create_multipart(&u).await.expect("multipart");
    for name in ["with-object", "with-pending", "with-upload"] {
        assert_eq!(
            s.delete_bucket(name).await.expect("delete"),
            BucketRemoval::NotEmpty,
            "{name}"
        );
        assert!(
            s.runtime_bucket(name).await.expect("get").is_some(),
            "{name}"
        );
    }
    assert_eq!(
        s.delete_bucket("empty").await.expect("delete"),
        BucketRemoval::Removed
    );
    assert_eq!(s.runtime_bucket("empty").await.expect("get"), None);
    assert_eq!(
        s.delete_bucket("empty").await.expect("again"),
        BucketRemoval::NotFound
    );
    // Emptied buckets can go: a deleted object, a discarded pending row, a completed upload.
    s.delete_current("with-object", "k").await.expect("del");
    s.discard_pending("p1").await.expect("discard");
    assert!(
        s.finish_multipart("u1", "etag", T0).await.expect("finish"),
        "the upload was open"
    );
    for name in ["with-object", "with-pending", "with-upload"] {
        assert_eq!(
            s.delete_bucket(name).await.expect("delete"),
            BucketRemoval::Removed,
            "{name}"
        );
    }
    assert!(s.runtime_buckets().await.expect("list").is_empty());
    // The name is free again.
    assert_eq!(
        s.create_bucket(&runtime("empty", None, T0 + 5), 0)
            .await
            .expect("recreate"),
        BucketCreation::Created
    );
    // An object committed into a deleted bucket (an upload that had resolved it before the
    // deletion) does not show in a new bucket of that name: it is garbage for the sweeper.
    put(&s, "late", "with-object", "late-key").await;
    assert_eq!(
        s.create_bucket(&runtime("with-object", None, T0 + 6), 0)
            .await
            .expect("recreate"),
        BucketCreation::Created
    );
    assert_eq!(
        s.current("with-object", "late-key").await.expect("get"),
        None
    );
    assert!(sweep_ids(&s, T0).await.contains("late"));
    assert_eq!(
        s.delete_bucket("with-object").await.expect("delete"),
        BucketRemoval::Removed,
        "it starts empty"
    );
}

async fn concurrent_bucket_creations_cannot_exceed_a_tenant_bucket_quota(s: Store) {
    tenant(&s, "tq").await;
    tenant(&s, "other").await;
    assert_eq!(
        s.create_bucket(&runtime("other-1", Some("other"), T0), 3)
            .await
            .expect("other"),
        BucketCreation::Created
    );
    // Ten creations race for a quota of three: exactly three buckets are made.
    let mut tasks = Vec::new();
    for n in 0..10 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.create_bucket(&runtime(&format!("tq-{n}"), Some("tq"), T0), 3)
                .await
                .expect("create")
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.expect("join") {
            BucketCreation::Created => created += 1,
            BucketCreation::TooMany => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 3);
    let owned: Vec<RuntimeBucket> = s
        .runtime_buckets()
        .await
        .expect("list")
        .into_iter()
        .filter(|b| b.tenant_id.as_deref() == Some("tq"))
        .collect();
    assert_eq!(owned.len(), 3);
    // Deleting one makes room for one more; an operator's bucket counts for no tenant.
    let gone = &owned[0];
    assert_eq!(
        s.delete_bucket(&gone.name).await.expect("delete"),
        BucketRemoval::Removed
    );
    assert_eq!(
        s.create_bucket(&runtime("tq-again", Some("tq"), T0), 3)
            .await
            .expect("again"),
        BucketCreation::Created
    );
    assert_eq!(
        s.create_bucket(&runtime("tq-more", Some("tq"), T0), 3)
            .await
            .expect("more"),
        BucketCreation::TooMany
    );
    assert_eq!(
        s.create_bucket(&runtime("op-bucket", None, T0), 3)
            .await
            .expect("operator"),
        BucketCreation::Created
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopen_keeps_records() {
    let dir = tempfile::tempdir().unwrap();
    let first: Store = Arc::new(SqliteStore::open(&sqlite_url(&dir)).await.unwrap());
    put(&first, "v1", BUCKET, "k").await;
    drop(first);
    let again: Store = Arc::new(SqliteStore::open(&sqlite_url(&dir)).await.unwrap());
    assert_eq!(
        again.current(BUCKET, "k").await.unwrap().map(|r| r.id),
        Some("v1".to_owned())
    );
}

// ---- databases created by the migration runner that preceded sqlx's ----------------------

/// The migrations as that runner applied them: these files, in order, each recorded in
/// `schema_migrations`.
const OLD_SQLITE_MIGRATIONS: [&str; 4] = [
    include_str!("../../src/metadata/migrations/sqlite/0001_objects.sql"),
    include_str!("../../src/metadata/migrations/sqlite/0002_multipart.sql"),
    include_str!("../../src/metadata/migrations/sqlite/0003_control.sql"),
    include_str!("../../src/metadata/migrations/sqlite/0004_quotas.sql"),
];
const OLD_POSTGRES_MIGRATIONS: [&str; 4] = [
    include_str!("../../src/metadata/migrations/postgres/0001_objects.sql"),
    include_str!("../../src/metadata/migrations/postgres/0002_multipart.sql"),
    include_str!("../../src/metadata/migrations/postgres/0003_control.sql"),
    include_str!("../../src/metadata/migrations/postgres/0004_quotas.sql"),
];

/// The statements that leave what the old runner left after applying the first `version`
/// migrations, plus one committed object ("old" at "k") written by the old binary.
fn old_database(migrations: &[&str], version: usize) -> String {
    let mut sql = migrations[..version].concat();
    sql.push_str(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);",
    );
    for v in 1..=version {
        sql.push_str(&format!(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ({v}, {T0});"
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO objects (id, bucket, key, status, owner, size, sha256, etag, content_type, \
         created_at, committed_at) VALUES ('old', '{BUCKET}', 'k', 'committed', '{OWNER}', 3, \
         'sha', 'etag', 'text/plain', {T0}, {T0});"
    ));
    sql
}

/// An adopted database, opened again as `s` after the adopting open recorded `versions`:
/// nothing re-ran (the old object is there), every migration is recorded once, and those the
/// old runner had not applied have run (tenants and quotas work).
async fn assert_adopted(s: Store, versions: Vec<(i64, bool)>) {
    assert_eq!(versions, MIGRATION_VERSIONS.map(|v| (v, true)));
    assert_eq!(
        s.current(BUCKET, "k").await.unwrap().map(|r| r.id),
        Some("old".to_owned())
    );
    let tenant = upgate::metadata::control::Tenant {
        id: "t1".to_owned(),
        name: "tenant".to_owned(),
        created_at_ms: T0,
        max_bytes: None,
        max_objects: None,
    };
    as_control(&s).create_tenant(&tenant).await.unwrap();
    assert!(
        as_control(&s)
            .set_quota("t1", Some(10), Some(1))
            .await
            .unwrap()
    );
    assert_eq!(put(&s, "new", BUCKET, "k").await, vec!["old".to_owned()]);
}

/// Replicas that started together on one database: a record one of them writes is there when
/// the database is opened again (`reopen`), after all of them closed (`close`).
async fn records_survive_reopen<S, R, RF>(stores: Vec<S>, close: impl AsyncFn(&S), reopen: R)
where
    S: Both + Clone,
    R: FnOnce() -> RF,
    RF: Future<Output = S>,
{
    let first: Store = Arc::new(stores[0].clone());
    put(&first, "v1", BUCKET, "k").await;
    for store in &stores {
        close(store).await;
    }
    let again = reopen().await;
    assert_eq!(
        again.current(BUCKET, "k").await.unwrap().map(|r| r.id),
        Some("v1".to_owned())
    );
    close(&again).await;
}

/// Every migration version the stores embed.
const MIGRATION_VERSIONS: [i64; 14] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];

const SQLX_MIGRATIONS: &str = "SELECT version, success FROM _sqlx_migrations ORDER BY version";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_adopts_databases_of_the_old_migration_runner() {
    for version in [4, 2] {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir);
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        conn.execute(old_database(&OLD_SQLITE_MIGRATIONS, version).as_str())
            .await
            .unwrap();
        conn.close().await.unwrap();

        let first = SqliteStore::open(&url)
            .await
            .unwrap_or_else(|e| panic!("open a version {version} database: {e}"));
        drop(first);
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let versions = sqlx::query_as(SQLX_MIGRATIONS)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let again = SqliteStore::open(&url).await.unwrap();
        assert_adopted(Arc::new(again), versions).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_adopts_databases_of_the_old_migration_runner() {
    let url = postgres_url();
    for version in [4, 2] {
        let schema = fresh_schema(&format!("legacy{version}"));
        let (u, sch) = (url.clone(), schema.clone());
        let outcome = tokio::spawn(async move {
            let mut conn = PgConnection::connect(&u).await.unwrap();
            conn.execute(format!("CREATE SCHEMA {sch}; SET search_path TO {sch}").as_str())
                .await
                .unwrap();
            conn.execute(old_database(&OLD_POSTGRES_MIGRATIONS, version).as_str())
                .await
                .unwrap();

            // Replicas of the new binary start on it together: the adoption, too, runs once.
            let opens: Vec<_> = (0..3)
                .map(|_| {
                    let (u, sch) = (u.clone(), sch.clone());
                    tokio::spawn(async move { PgStore::open_with_schema(&u, &sch).await })
                })
                .collect();
            for open in opens {
                let store = open
                    .await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("open a version {version} database: {e}"));
                store.close().await;
            }
            let versions = sqlx::query_as(SQLX_MIGRATIONS)
                .fetch_all(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            let again = open_postgres(&u, &sch).await;
            assert_adopted(Arc::new(again.clone()), versions).await;
            again.close().await;
        })
        .await;
        drop_schema(&url, &schema).await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_startup_migrates_once_and_reopen_keeps_records() {
    let url = postgres_url();
    let schema = fresh_schema("startup");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move { PgStore::open_with_schema(&url, &schema).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap());
    }
    let outcome = {
        let (url, schema) = (url.clone(), schema.clone());
        async move {
            let stores: Vec<PgStore> = stores
                .into_iter()
                .map(|r| r.expect("every replica starts"))
                .collect();
            let mut conn = PgConnection::connect(&url).await.unwrap();
            let versions: Vec<(i64, bool)> = sqlx::query_as(&format!(
                "SELECT version, success FROM {schema}._sqlx_migrations ORDER BY version"
            ))
            .fetch_all(&mut conn)
            .await
            .unwrap();
            assert_eq!(
                versions,
                MIGRATION_VERSIONS.map(|v| (v, true)),
                "each migration recorded once"
            );
            let legacy: Option<String> = sqlx::query_scalar(&format!(
                "SELECT to_regclass('{schema}.schema_migrations')::TEXT"
            ))
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert_eq!(
                legacy, None,
                "a new database has no table of the old runner"
            );

            records_survive_reopen(stores, PgStore::close, || open_postgres(&url, &schema)).await;
        }
    };
    with_cleanup(outcome, drop_schema(&url, &schema)).await;
}

/// The database default collation may be linguistic (`en_US.UTF-8`); names and keys must still
/// compare bytewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_names_and_keys_use_byte_collation() {
    let url = postgres_url();
    let schema = fresh_schema("collation");
    let store = open_postgres(&url, &schema).await;
    store.close().await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let columns: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT table_name::TEXT, column_name::TEXT, collation_name::TEXT \
         FROM information_schema.columns \
         WHERE table_schema = $1 AND column_name IN ('name', 'bucket', 'key') \
         AND table_name IN ('buckets', 'objects', 'multipart_uploads', 'loose_blobs') \
         ORDER BY table_name, column_name",
    )
    .bind(&schema)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    drop_schema(&url, &schema).await;
    let c = Some("C".to_owned());
    assert_eq!(
        columns,
        vec![
            ("buckets".to_owned(), "name".to_owned(), c.clone()),
            ("loose_blobs".to_owned(), "bucket".to_owned(), c.clone()),
            (
                "multipart_uploads".to_owned(),
                "bucket".to_owned(),
                c.clone()
            ),
            ("multipart_uploads".to_owned(), "key".to_owned(), c.clone()),
            ("objects".to_owned(), "bucket".to_owned(), c.clone()),
            ("objects".to_owned(), "key".to_owned(), c),
        ]
    );
}

#[tokio::test]
async fn postgres_rejects_unsafe_schema_names() {
    for schema in ["", "Upper", "a b", "x; DROP TABLE objects", "1st"] {
        assert!(matches!(
            PgStore::open_with_schema(&postgres_url(), schema).await,
            Err(MetaError::Database(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_concurrent_startup_migrates_once_and_reopen_keeps_records() {
    let server = mysql_url();
    let database = fresh_schema("startup");
    let url = create_mysql_database(&server, &database).await;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { MySqlStore::open(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap());
    }
    let outcome = {
        let url = url.clone();
        async move {
            let stores: Vec<MySqlStore> = stores
                .into_iter()
                .map(|r| r.expect("every replica starts"))
                .collect();
            let mut conn = MySqlConnection::connect(&url).await.unwrap();
            let versions: Vec<(i64, bool)> = sqlx::query_as(SQLX_MIGRATIONS)
                .fetch_all(&mut conn)
                .await
                .unwrap();
            assert_eq!(
                versions,
                MIGRATION_VERSIONS.map(|v| (v, true)),
                "each migration recorded once"
            );
            let _ = conn.close().await;
            records_survive_reopen(stores, MySqlStore::close, || async {
                MySqlStore::open(&url).await.unwrap()
            })
            .await;
        }
    };
    with_cleanup(outcome, drop_mysql_database(&server, &database)).await;
}

/// The server's default collation is case-insensitive and pads with spaces; every string column
/// must be a binary string instead (compared bytewise on MySQL and MariaDB alike).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_string_columns_are_binary() {
    let server = mysql_url();
    let database = fresh_schema("collation");
    let url = create_mysql_database(&server, &database).await;
    MySqlStore::open(&url).await.unwrap().close().await;
    let mut conn = MySqlConnection::connect(&url).await.unwrap();
    let columns: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT CAST(table_name AS CHAR), CAST(column_name AS CHAR), CAST(data_type AS CHAR), \
         CAST(collation_name AS CHAR) FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name <> '_sqlx_migrations' \
         AND data_type NOT IN ('bigint') ORDER BY table_name, column_name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    drop_mysql_database(&server, &database).await;
    assert!(columns.len() > 50, "{columns:?}");
    for (table, column, data_type, collation) in &columns {
        if (table.as_str(), column.as_str()) == ("file_text", "body") {
            // The one character column: InnoDB indexes only those FULLTEXT. Never compared or
            // ordered by; searched only.
            assert_eq!(data_type, "mediumtext");
            assert!(
                collation
                    .as_deref()
                    .is_some_and(|c| c.starts_with("utf8mb4"))
            );
            continue;
        }
        assert!(
            ["varbinary", "blob", "mediumblob"].contains(&data_type.as_str())
                && collation.is_none(),
            "{table}.{column} is {data_type} ({collation:?})"
        );
    }
    for table in ["objects", "multipart_uploads", "resumable_uploads"] {
        assert!(
            columns
                .iter()
                .any(|(t, c, d, _)| t == table && c == "key" && d == "varbinary"),
            "{table}.key"
        );
    }
}
