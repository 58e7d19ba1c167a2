//! Serving helpers around an [`Embedder`]: a bounded cache of query-text embeddings
//! ([`EmbeddingCache`]) and micro-batching of concurrent single-text calls ([`MicroBatcher`]).
//!
//! A text's vector depends only on the text and the model, so cached vectors never go stale for
//! one embedder. Concurrent queries on a busy gateway each embed one short text; one forward pass
//! over several texts costs less than the same passes one by one (shared matrix products), so the
//! batcher's worker takes every text queued while it was busy as one batch.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redrec_core::lru::{CacheStats, Lru};

use crate::{Embedder, Error, Result};

/// Query-text embeddings, least recently used dropped first.
pub struct EmbeddingCache {
    lru: Mutex<Lru<String, Arc<Vec<f32>>>>,
}

impl EmbeddingCache {
    /// At most `entries` texts (0: nothing is cached).
    pub fn new(entries: usize) -> EmbeddingCache {
        EmbeddingCache {
            lru: Mutex::new(Lru::new(entries)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru<String, Arc<Vec<f32>>>> {
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, text: &str) -> Option<Arc<Vec<f32>>> {
        self.lock().get(text)
    }

    pub fn insert(&self, text: String, vector: Arc<Vec<f32>>) {
        self.lock().insert(text, vector);
    }

    /// Drops everything (another model was loaded).
    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn stats(&self) -> CacheStats {
        self.lock().stats()
    }
}

struct Job {
    text: String,
    reply: SyncSender<Result<Vec<f32>>>,
}

/// Counters of a [`MicroBatcher`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Forward passes (batches) run.
    pub batches: u64,
    /// Texts embedded through them.
    pub texts: u64,
    /// Largest batch so far.
    pub largest: usize,
}

/// Embeds concurrent single texts as batches on one worker thread. A text that arrives while the
/// worker is idle is embedded at once (plus `wait`, 0 by default); texts that arrive while it is
/// busy are taken together, up to `max_batch`, when it is free again.
pub struct MicroBatcher {
    inner: Arc<dyn Embedder>,
    jobs: Mutex<Option<SyncSender<Job>>>,
    stats: Arc<Mutex<BatchStats>>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl MicroBatcher {
    /// Starts the worker thread. `wait`: how long the worker waits for more texts after the
    /// first of a batch (bounded added latency; 0 = only what is already queued).
    pub fn new(inner: Arc<dyn Embedder>, max_batch: usize, wait: Duration) -> Result<MicroBatcher> {
        if max_batch == 0 {
            return Err(Error::InvalidConfig {
                field: "embedder.micro_batch",
                expected: "a batch size of at least 1".into(),
            });
        }
        let (tx, rx) = mpsc::sync_channel::<Job>(max_batch * 16);
        let stats = Arc::new(Mutex::new(BatchStats::default()));
        let worker = {
            let inner = inner.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("embed-batcher".into())
                .spawn(move || run_worker(&*inner, &rx, max_batch, wait, &stats))
                .map_err(|_| Error::WorkerStopped)?
        };
        Ok(MicroBatcher {
            inner,
            jobs: Mutex::new(Some(tx)),
            stats,
            worker: Mutex::new(Some(worker)),
        })
    }

    pub fn stats(&self) -> BatchStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn run_worker(
    inner: &dyn Embedder,
    rx: &Receiver<Job>,
    max_batch: usize,
    wait: Duration,
    stats: &Mutex<BatchStats>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let until = Instant::now() + wait;
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(job) => batch.push(job),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        let texts: Vec<&str> = batch.iter().map(|j| j.text.as_str()).collect();
        let result = inner.embed(&texts);
        {
            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
            s.batches += 1;
            s.texts += batch.len() as u64;
            s.largest = s.largest.max(batch.len());
        }
        match result {
            Ok(vectors) if vectors.len() == batch.len() => {
                for (job, v) in batch.into_iter().zip(vectors) {
                    let _ = job.reply.send(Ok(v));
                }
            }
            Ok(vectors) => {
                let detail = format!(
                    "embedder returned {} vectors for {} texts",
                    vectors.len(),
                    batch.len()
                );
                for job in batch {
                    let _ = job.reply.send(Err(Error::InvalidInput {
                        detail: detail.clone(),
                    }));
                }
            }
            Err(e) => {
                let detail = e.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(Error::InvalidInput {
                        detail: format!("batched embedding failed: {detail}"),
                    }));
                }
            }
        }
    }
}

impl Embedder for MicroBatcher {
    fn dims(&self) -> usize {
        self.inner.dims()
    }

    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    /// Several texts are a batch already: embedded directly on the calling thread.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.len() == 1 {
            return Ok(vec![self.embed_one(texts[0])?]);
        }
        self.inner.embed(texts)
    }

    /// Queues the text for the worker and blocks until its batch is done.
    fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        let (reply, answer) = mpsc::sync_channel(1);
        let sender = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(Error::WorkerStopped)?;
        sender
            .send(Job {
                text: text.to_owned(),
                reply,
            })
            .map_err(|_| Error::WorkerStopped)?;
        answer.recv().map_err(|_| Error::WorkerStopped)?
    }
}

impl Drop for MicroBatcher {
    fn drop(&mut self) {
        // closing the queue ends the worker's loop
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic stand-in for a model: the vector of a text is (length, first byte), and each
    /// call takes `pause` (a forward pass), so concurrent callers pile up behind it.
    struct Slow {
        pause: Duration,
        calls: Mutex<Vec<usize>>,
    }

    impl Embedder for Slow {
        fn dims(&self) -> usize {
            2
        }
        fn model_id(&self) -> &str {
            "slow"
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            std::thread::sleep(self.pause);
            self.calls.lock().unwrap().push(texts.len());
            Ok(texts
                .iter()
                .map(|t| vec![t.len() as f32, f32::from(t.as_bytes()[0])])
                .collect())
        }
    }

    #[test]
    fn concurrent_texts_share_forward_passes_and_get_their_own_vectors() {
        let slow = Arc::new(Slow {
            pause: Duration::from_millis(50),
            calls: Mutex::new(Vec::new()),
        });
        let b = Arc::new(MicroBatcher::new(slow.clone(), 32, Duration::ZERO).unwrap());
        let texts: Vec<String> = (0..8)
            .map(|i| format!("{}{}", (b'a' + i) as char, "x".repeat(i as usize)))
            .collect();
        let handles: Vec<_> = texts
            .iter()
            .cloned()
            .map(|t| {
                let b = b.clone();
                std::thread::spawn(move || (b.embed_one(&t).unwrap(), t))
            })
            .collect();
        for h in handles {
            let (v, t) = h.join().unwrap();
            assert_eq!(v, vec![t.len() as f32, f32::from(t.as_bytes()[0])], "{t}");
        }
        let s = b.stats();
        assert_eq!(s.texts, 8);
        assert!(s.batches < 8 && s.largest > 1, "no batching: {s:?}");
        assert_eq!(slow.calls.lock().unwrap().iter().sum::<usize>(), 8);
        // several texts at once bypass the queue
        assert_eq!(b.embed(&["ab", "c"]).unwrap().len(), 2);
        assert_eq!(b.stats().texts, 8);
        assert!(MicroBatcher::new(slow, 0, Duration::ZERO).is_err());
    }

    #[test]
    fn a_bounded_wait_gathers_a_batch_from_sequential_arrivals() {
        let slow = Arc::new(Slow {
            pause: Duration::ZERO,
            calls: Mutex::new(Vec::new()),
        });
        let b = Arc::new(MicroBatcher::new(slow, 4, Duration::from_millis(300)).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let b = b.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20 * i));
                    b.embed_one("q").unwrap()
                })
            })
            .collect();
        let started = Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(b.stats().batches, 1, "{:?}", b.stats());
        // a full batch goes at once, without waiting out the window
        assert!(started.elapsed() < Duration::from_millis(290));
    }

    #[test]
    fn the_cache_counts_hits_and_stays_bounded() {
        let c = EmbeddingCache::new(2);
        assert_eq!(c.get("milk"), None);
        c.insert("milk".into(), Arc::new(vec![1.0]));
        c.insert("bread".into(), Arc::new(vec![2.0]));
        c.insert("eggs".into(), Arc::new(vec![3.0]));
        assert_eq!(c.get("milk"), None, "evicted");
        assert_eq!(c.get("eggs").unwrap().as_slice(), &[3.0]);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries, s.evictions), (1, 2, 2, 1));
        c.clear();
        assert_eq!(c.stats().entries, 0);
    }
}
