//! The impression writer: served lists go into a bounded queue without waiting, and one
//! background task writes them to Redis in pipelined batches (`redrec_store::online`). A full
//! queue (Redis slow or down) drops lists and counts them rather than slow requests down;
//! a failed batch is counted and logged. Started on first use, so building the state needs no
//! runtime; it ends when the state is dropped.

use std::sync::{
    Arc, Mutex, OnceLock,
    atomic::{AtomicU64, Ordering},
};

use redrec_core::keys::Namespace;
use redrec_store::{Redis, Route, online::ServedList};
use tokio::sync::{mpsc, oneshot};

use super::OnlineCounters;

enum Msg {
    List(ServedList),
    Flush(oneshot::Sender<()>),
}

pub struct Writer {
    tx: mpsc::Sender<Msg>,
    rx: Mutex<Option<mpsc::Receiver<Msg>>>,
    started: OnceLock<()>,
    task: Arc<Task>,
}

struct Task {
    redis: Redis,
    ns: Namespace,
    batch: usize,
    window_ms: AtomicU64,
    counters: Arc<OnlineCounters>,
}

impl Writer {
    pub fn new(
        redis: Redis,
        ns: Namespace,
        queue: usize,
        batch: usize,
        window_ms: u64,
        counters: Arc<OnlineCounters>,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(queue.max(1));
        Writer {
            tx,
            rx: Mutex::new(Some(rx)),
            started: OnceLock::new(),
            task: Arc::new(Task {
                redis,
                ns,
                batch: batch.max(1),
                window_ms: AtomicU64::new(window_ms),
                counters,
            }),
        }
    }

    /// How long lists written from now on are kept.
    pub fn set_window_ms(&self, ms: u64) {
        self.task.window_ms.store(ms, Ordering::Relaxed);
    }

    fn start(&self) {
        self.started.get_or_init(|| {
            let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(rx) = rx {
                tokio::spawn(run(rx, self.task.clone()));
            }
        });
    }

    /// Queues `list`; never waits.
    pub fn send(&self, list: ServedList) {
        self.start();
        if self.tx.try_send(Msg::List(list)).is_err() {
            self.task.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Resolves once everything queued before it is written (or failed).
    pub async fn flush(&self) {
        self.start();
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Msg>, task: Arc<Task>) {
    let mut buf = Vec::with_capacity(task.batch);
    let mut lists = Vec::with_capacity(task.batch);
    let mut flushes = Vec::new();
    while rx.recv_many(&mut buf, task.batch).await > 0 {
        for m in buf.drain(..) {
            match m {
                Msg::List(l) => lists.push(l),
                Msg::Flush(done) => flushes.push(done),
            }
        }
        if !lists.is_empty() {
            write(&task, &lists).await;
            lists.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn write(task: &Task, lists: &[ServedList]) {
    let n = lists.len() as u64;
    let ttl_ms = task.window_ms.load(Ordering::Relaxed);
    let written = async {
        let mut con = task.redis.conn(Route::Primary).await?;
        task.redis
            .call(
                "record served lists",
                redrec_store::online::record_lists(&mut con, &task.ns, lists, ttl_ms),
            )
            .await
    }
    .await;
    match written {
        Ok(()) => task.counters.recorded.fetch_add(n, Ordering::Relaxed),
        Err(e) => {
            tracing::warn!(error = %e, lists = n, "served lists not recorded");
            task.counters.failed.fetch_add(n, Ordering::Relaxed)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> ServedList {
        ServedList {
            rec_id: format!("r{n}"),
            at_ms: 0,
            route: "recommendations".into(),
            user_id: None,
            profile: "default".into(),
            experiment: None,
            items: vec!["a".into()],
            sources: vec!["popular".into()],
        }
    }

    /// On a current-thread runtime the writer cannot run between the sends, so a queue of 2
    /// takes exactly 2 lists and drops the rest; the 2 then fail against a Redis that is not
    /// there. Neither case waits or errors on the sending side.
    #[tokio::test]
    async fn a_full_queue_drops_and_a_failed_write_counts() {
        let redis = Redis::new(&redrec_core::config::RedisConfig {
            // nothing listens on port 1
            url: "redis://127.0.0.1:1".into(),
            connect_timeout_ms: 100,
            command_timeout_ms: 100,
            ..Default::default()
        })
        .expect("pool");
        let counters = Arc::new(OnlineCounters::default());
        let writer = Writer::new(redis, Namespace::new("t"), 2, 8, 1000, counters.clone());
        for n in 0..10 {
            writer.send(list(n));
        }
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 8);
        writer.flush().await;
        assert_eq!(counters.failed.load(Ordering::Relaxed), 2);
        assert_eq!(counters.recorded.load(Ordering::Relaxed), 0);
    }
}
