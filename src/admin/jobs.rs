//! Long operations started from the admin API (the drift sweep, catch-up)
//! run as jobs whose progress and result can be polled. A job's result is
//! bounded (counts and the first entries); the whole list of entries (the
//! sweep's drift) is kept beside it and paged with [`Jobs::items`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use crate::store::now_ms;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Job {
    pub id: u64,
    pub kind: String,
    /// running, done or failed.
    pub state: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub progress: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// Every entry of the result, paged through `GET /v1/jobs/{id}/items`.
    #[serde(skip)]
    pub items: Vec<Value>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Jobs {
    next: Arc<AtomicU64>,
    jobs: Arc<Mutex<HashMap<u64, Job>>>,
}

impl Jobs {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<u64, Job>) -> T) -> T {
        match self.jobs.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Starts a job of `kind` unless one of that kind is running.
    pub(crate) fn start(&self, kind: &str) -> Result<u64, u64> {
        self.with(|jobs| {
            if let Some(running) = jobs
                .values()
                .find(|j| j.kind == kind && j.state == "running")
            {
                return Err(running.id);
            }
            let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
            jobs.insert(
                id,
                Job {
                    id,
                    kind: kind.to_owned(),
                    state: "running".to_owned(),
                    started_at: now_ms(),
                    finished_at: None,
                    progress: Value::Null,
                    result: None,
                    error: None,
                    items: Vec::new(),
                },
            );
            Ok(id)
        })
    }

    /// Runs `work(id)` as a job of `kind` (unless one of that kind is
    /// running: then `Err` with its id) and records its result.
    pub(crate) fn spawn<F, Fut, T, E>(&self, kind: &str, work: F) -> Result<u64, u64>
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>> + Send + 'static,
        T: Serialize,
        E: std::fmt::Display,
    {
        let id = self.start(kind)?;
        let jobs = self.clone();
        let work = work(id);
        tokio::spawn(async move {
            let result = work.await;
            jobs.finish(
                id,
                result
                    .map(|v| serde_json::to_value(v).unwrap_or_default())
                    .map_err(|e| e.to_string()),
            );
        });
        Ok(id)
    }

    pub(crate) fn progress(&self, id: u64, progress: Value) {
        self.with(|jobs| {
            if let Some(j) = jobs.get_mut(&id) {
                j.progress = progress;
            }
        });
    }

    pub(crate) fn finish(&self, id: u64, result: Result<Value, String>) {
        self.with(|jobs| {
            if let Some(j) = jobs.get_mut(&id) {
                j.finished_at = Some(now_ms());
                match result {
                    Ok(v) => {
                        j.state = "done".to_owned();
                        j.result = Some(v);
                    }
                    Err(e) => {
                        j.state = "failed".to_owned();
                        j.error = Some(e);
                    }
                }
            }
        });
    }

    pub(crate) fn get(&self, id: u64) -> Option<Job> {
        self.with(|jobs| {
            jobs.get(&id).map(|j| Job {
                items: Vec::new(),
                ..j.clone()
            })
        })
    }

    /// Keeps every entry of a job's result, for paging.
    pub(crate) fn set_items(&self, id: u64, items: Vec<Value>) {
        self.with(|jobs| {
            if let Some(j) = jobs.get_mut(&id) {
                j.items = items;
            }
        });
    }

    /// Up to `limit` entries of a job from `offset` on, and how many there
    /// are in all; `None` for an unknown job.
    pub(crate) fn items(
        &self,
        id: u64,
        offset: usize,
        limit: usize,
    ) -> Option<(Vec<Value>, usize)> {
        self.with(|jobs| {
            jobs.get(&id).map(|j| {
                let page = j.items.iter().skip(offset).take(limit).cloned().collect();
                (page, j.items.len())
            })
        })
    }
}
