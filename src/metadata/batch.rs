//! Group commit of minted links: concurrent mints share one transaction.
//!
//! A mint is two inserts (the file and its link) that nothing else can conflict with (fresh
//! random ids), so many can commit together: while one transaction runs, the mints that arrive
//! queue up, and the next transaction takes every queued one (at most [`MAX_BATCH`]). A lone
//! mint waits for nothing. With durable commits (an fsync each) this turns N flushes into one;
//! single use is unaffected, since a link is inserted unused and spent later by its own
//! conditional update.
//!
//! If a batch fails, each of its mints is retried alone, so one bad insert (a duplicate id)
//! fails only its own request.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::MetaError;
use super::control::{ControlStore, Minted};
use crate::metrics::Metrics;

/// Most mints committed in one transaction.
pub const MAX_BATCH: usize = 256;

struct Job {
    mint: Minted,
    done: oneshot::Sender<Result<(), MetaError>>,
}

/// The queue in front of [`ControlStore::insert_minted`].
#[derive(Clone)]
pub struct MintBatcher {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for MintBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintBatcher").finish_non_exhaustive()
    }
}

impl MintBatcher {
    /// Starts the committing task on the current runtime; it ends when every handle is gone.
    pub fn start(store: Arc<dyn ControlStore>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(store, rx, metrics));
        Self { tx }
    }

    /// Commits `mint` (with whatever other mints are queued); returns once it is committed.
    pub async fn insert(&self, mint: Minted) -> Result<(), MetaError> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Job { mint, done })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// The committing task is gone (the process is stopping): as a closed database pool.
fn closed() -> MetaError {
    MetaError::Database(sqlx::Error::PoolClosed)
}

async fn run(store: Arc<dyn ControlStore>, mut rx: mpsc::Receiver<Job>, metrics: Arc<Metrics>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (batch, done): (Vec<Minted>, Vec<_>) = jobs.drain(..).map(|j| (j.mint, j.done)).unzip();
        match store.insert_minted(&batch).await {
            Ok(()) => {
                metrics.mint_batch(batch.len());
                for d in done {
                    let _ = d.send(Ok(()));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(d) = done.into_iter().next() {
                    let _ = d.send(Err(e));
                }
            }
            Err(_) => {
                // Nothing of the batch committed: each alone, so only a bad one fails.
                for (m, d) in batch.iter().zip(done) {
                    let _ = d.send(store.insert_minted(std::slice::from_ref(m)).await);
                }
            }
        }
    }
}
