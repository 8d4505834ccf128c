//! Group commit: concurrent writes share one transaction.
//!
//! While one transaction runs, the writes that arrive queue up, and the next transaction takes
//! every queued one (at most [`MAX_BATCH`]). A lone write waits for nothing. Three kinds:
//!
//! - a minted link (its file and link rows) and the pending record an upload writes before its
//!   first byte: plain inserts of fresh random ids, which cannot conflict, a multi-row `INSERT`
//!   for many of them (a statement is a round trip to the database);
//! - the commit of an uploaded object, on a single writer (SQLite) only: the commits of the
//!   group run in arrival order, exactly as if they ran one after the other, which with one
//!   writer they would anyway; one that its condition or its quota may refuse after its first
//!   change runs in a savepoint of its own. With several writers (PostgreSQL, MySQL) commits run
//!   concurrently on their own and are not grouped: a group would hold the locks of all its
//!   keys until its end.
//!
//! Why: SQLite has one writer. A thousand uploads that start together would otherwise queue a
//! thousand transactions for that writer (an fsync each with durable commits), and the ones at
//! the back time out waiting for it; grouped, they are a handful of transactions. Single use is
//! unaffected, since a link is inserted unused and spent later by its own conditional update.
//!
//! A write that fails on its own (a commit's condition, its quota) fails only its request. If
//! the transaction fails, each of its writes is tried again alone, so one bad insert (a
//! duplicate id) fails only its own request; a commit whose transaction may have landed
//! anyway is then refused as no longer pending, which its caller checks (see
//! `upload::put::commit_object`).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::control::{ControlStore, Minted};
use super::{CommitInfo, MetaError, MetadataStore, NewPending};
use crate::metrics::Metrics;

/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 256;

/// What each write of a batch gives back, or why it failed on its own.
type Outcomes<O> = Vec<Result<O, MetaError>>;

/// Where a batch goes: one transaction for all of it. An error means the transaction did not
/// commit; otherwise an outcome per write, in order.
#[async_trait]
pub trait Sink<T>: Send + Sync + 'static {
    type Output: Send + 'static;
    async fn write(&self, batch: &[T]) -> Result<Outcomes<Self::Output>, MetaError>;
    /// A transaction committed `n` writes.
    fn committed(&self, n: usize);
}

struct Job<T, O> {
    item: T,
    done: oneshot::Sender<Result<O, MetaError>>,
}

/// The queue in front of a [`Sink`] of `T` whose writes give back `O`.
pub struct Batcher<T, O = ()> {
    tx: mpsc::Sender<Job<T, O>>,
}

impl<T, O> Clone for Batcher<T, O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T, O> std::fmt::Debug for Batcher<T, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static, O: Send + 'static> Batcher<T, O> {
    /// Starts the committing task on the current runtime; it ends when every handle is gone.
    pub fn start(sink: impl Sink<T, Output = O>) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(sink, rx));
        Self { tx }
    }

    /// Writes `item` (with whatever else is queued); returns its outcome once committed.
    pub async fn write(&self, item: T) -> Result<O, MetaError> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Job { item, done })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// The committing task is gone (the process is stopping): as a closed database pool.
fn closed() -> MetaError {
    MetaError::Database(sqlx::Error::PoolClosed)
}

async fn run<T, S>(sink: S, mut rx: mpsc::Receiver<Job<T, S::Output>>)
where
    T: Send + Sync + 'static,
    S: Sink<T>,
{
    let mut jobs: Vec<Job<T, S::Output>> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (batch, done): (Vec<T>, Vec<_>) = jobs.drain(..).map(|j| (j.item, j.done)).unzip();
        match sink.write(&batch).await {
            Ok(outcomes) => {
                let landed = outcomes.iter().filter(|o| o.is_ok()).count();
                if landed > 0 {
                    sink.committed(landed);
                }
                for (d, outcome) in done.into_iter().zip(outcomes) {
                    let _ = d.send(outcome);
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(d) = done.into_iter().next() {
                    let _ = d.send(Err(e));
                }
            }
            Err(_) => {
                // The transaction did not commit: each alone, so only a bad one fails.
                for (item, d) in batch.iter().zip(done) {
                    let outcome = match sink.write(std::slice::from_ref(item)).await {
                        Ok(outcomes) => {
                            let outcome =
                                outcomes.into_iter().next().unwrap_or_else(|| Err(closed()));
                            if outcome.is_ok() {
                                sink.committed(1);
                            }
                            outcome
                        }
                        Err(e) => Err(e),
                    };
                    let _ = d.send(outcome);
                }
            }
        }
    }
}

/// Every write of a batch of inserts succeeded (they commit all or none).
fn all_done(n: usize) -> Outcomes<()> {
    (0..n).map(|_| Ok(())).collect()
}

/// Minted links and their new files ([`ControlStore::insert_minted`]).
pub struct Mints {
    pub store: Arc<dyn ControlStore>,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl Sink<Minted> for Mints {
    type Output = ();
    async fn write(&self, batch: &[Minted]) -> Result<Outcomes<()>, MetaError> {
        self.store.insert_minted(batch).await?;
        Ok(all_done(batch.len()))
    }
    fn committed(&self, n: usize) {
        self.metrics.mint_batch(n);
    }
}

/// The pending records of starting uploads ([`MetadataStore::insert_pendings`]).
pub struct Pendings {
    pub store: Arc<dyn MetadataStore>,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl Sink<NewPending> for Pendings {
    type Output = ();
    async fn write(&self, batch: &[NewPending]) -> Result<Outcomes<()>, MetaError> {
        self.store.insert_pendings(batch).await?;
        Ok(all_done(batch.len()))
    }
    fn committed(&self, n: usize) {
        self.metrics.pending_batch(n);
    }
}

/// The commits of uploaded objects on a single writer ([`MetadataStore::commit_many`]): each
/// gives back the ids of the versions it retired.
pub struct Commits {
    pub store: Arc<dyn MetadataStore>,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl Sink<(String, CommitInfo)> for Commits {
    type Output = Vec<String>;
    async fn write(
        &self,
        batch: &[(String, CommitInfo)],
    ) -> Result<Outcomes<Vec<String>>, MetaError> {
        match batch {
            // One commit is its own transaction, without a savepoint.
            [(id, info)] => Ok(vec![self.store.commit(id, info).await]),
            _ => self.store.commit_many(batch).await,
        }
    }
    fn committed(&self, n: usize) {
        self.metrics.commit_batch(n);
    }
}
