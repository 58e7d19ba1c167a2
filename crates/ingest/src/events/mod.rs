//! Interaction import: user events from JSONL / CSV / Parquet files applied through the same
//! atomic Redis Function as `POST /v1/events` (redrec-userstate), at the time each event
//! happened, so the decays of affinities and purchase history see the real ages.
//!
//! 1. Read and validate every row (strict: any invalid row fails the import before a write;
//!    skip-invalid: invalid rows go to the rejects file), then check that every item exists.
//! 2. Keep the events before `until` and of the chosen users, sort them by time (file order
//!    among equal times): the EMA vectors, the recent list and the seen set depend on order.
//! 3. Apply them in batches of up to `max_batch` events per `FCALL`, `in_flight` batches
//!    pipelined on one multiplexed connection (Redis runs them in the order sent).
//!
//! Every event carries an id (the file's, or one derived from its content, see
//! [`parse::derived_event_id`]), so a re-run or a resumed import applies each event once while
//! the markers live (`idempotency_ttl_ms` of the store's config).
//!
//! The whole selection is held in memory for the sort (about 200 bytes per event: the 1.47M
//! Complete Journey lines take about 300 MB); split larger files by time.

pub mod parse;
pub mod time;

use std::{
    collections::{BTreeSet, HashSet},
    io::Write,
    sync::Arc,
    time::Instant,
};

use futures::{StreamExt, TryStreamExt};
use redis::aio::MultiplexedConnection;
use redrec_userstate::UserStateStore;
use serde::Serialize;

pub use self::parse::{EventColumns, ParsedEvent, derived_event_id};
use crate::{
    Error, Result,
    load::{OnInvalid, RowFactory},
    progress::{Progress, ProgressMode},
    source::SourceItem,
    validate::Reject,
};

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub columns: EventColumns,
    pub on_invalid: OnInvalid,
    /// Import only events strictly before this instant (unix ms): a train / test split by time.
    pub until_ms: Option<i64>,
    /// Import only these users' events.
    pub users: Option<HashSet<String>>,
    /// Events per `FCALL` (capped at the store's `max_batch`).
    pub batch_size: usize,
    /// Batches in flight at once.
    pub in_flight: usize,
    pub progress: ProgressMode,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            columns: EventColumns::default(),
            on_invalid: OnInvalid::Strict,
            until_ms: None,
            users: None,
            batch_size: 100,
            in_flight: 8,
            progress: ProgressMode::Auto,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub rows_read: u64,
    pub rejected: u64,
    /// Valid events at or after `until`.
    pub after_until: u64,
    /// Valid events of users outside the subset.
    pub other_users: u64,
    /// Events applied now.
    pub applied: u64,
    /// Events skipped because their id was applied before (a re-run or a resumed import).
    pub duplicates: u64,
    pub users: u64,
    pub batches: u64,
    /// Reading, validating, the item check and sorting.
    pub read_secs: f64,
    pub apply_secs: f64,
    /// Applied and duplicate events per second of the apply phase.
    pub events_per_sec: f64,
    /// Time range of the selected events (unix ms).
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// Up to 20 rejects, for the summary.
    pub first_rejects: Vec<Reject>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rows read {}, rejected {}, after --until {}, other users {}; applied {} events of {} users ({} duplicates) in {} batches; read {:.1}s, apply {:.1}s ({:.0} events/s)",
            self.rows_read,
            self.rejected,
            self.after_until,
            self.other_users,
            self.applied,
            self.users,
            self.duplicates,
            self.batches,
            self.read_secs,
            self.apply_secs,
            self.events_per_sec
        )
    }
}

struct Selection {
    events: Vec<ParsedEvent>,
    rows_read: u64,
    rejected: u64,
    after_until: u64,
    other_users: u64,
    first_rejects: Vec<Reject>,
    rejects_out: Option<(std::path::PathBuf, std::io::BufWriter<std::fs::File>)>,
}

impl Selection {
    fn reject(&mut self, r: Reject) -> Result<()> {
        if let Some((path, out)) = self.rejects_out.as_mut() {
            let line = serde_json::to_string(&r).expect("reject serialises");
            writeln!(out, "{line}").map_err(|e| Error::io(path.clone(), e))?;
        }
        if self.first_rejects.len() < 20 {
            self.first_rejects.push(r);
        }
        Ok(())
    }
}

fn read_all(
    rows: &dyn RowFactory,
    store: &UserStateStore,
    opts: &ImportOptions,
) -> Result<Selection> {
    let rejects_out = match &opts.on_invalid {
        OnInvalid::Skip { rejects: Some(p) } => Some((
            p.clone(),
            std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| Error::io(p, e))?),
        )),
        _ => None,
    };
    let mut sel = Selection {
        events: Vec::new(),
        rows_read: 0,
        rejected: 0,
        after_until: 0,
        other_users: 0,
        first_rejects: Vec::new(),
        rejects_out,
    };
    let label = rows.label();
    let progress = Progress::new(opts.progress, "read", rows.known_len());
    for item in rows.open()? {
        sel.rows_read += 1;
        if sel.rows_read.is_multiple_of(4096) {
            progress.inc(4096);
        }
        let parsed = match item? {
            SourceItem::Row(row) => parse::parse_row(&row, &opts.columns, store, &label),
            SourceItem::Bad(r) => Err(vec![r]),
        };
        match parsed {
            Ok(e) => {
                if opts.until_ms.is_some_and(|u| e.at_ms >= u) {
                    sel.after_until += 1;
                } else if opts
                    .users
                    .as_ref()
                    .is_some_and(|u| !u.contains(&e.event.user_id))
                {
                    sel.other_users += 1;
                } else {
                    sel.events.push(e);
                }
            }
            Err(rs) => {
                sel.rejected += 1;
                for r in rs {
                    sel.reject(r)?;
                }
            }
        }
    }
    progress.finish();
    Ok(sel)
}

/// Items (of `ids`) that do not exist, by pipelined `EXISTS`.
async fn missing_items(
    con: &MultiplexedConnection,
    store: &UserStateStore,
    ids: &BTreeSet<&str>,
) -> Result<HashSet<String>> {
    let ns = store.namespace();
    let ids: Vec<&str> = ids.iter().copied().collect();
    let mut missing = HashSet::new();
    for chunk in ids.chunks(1000) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.cmd("EXISTS").arg(ns.item(id));
        }
        let mut c = con.clone();
        let found: Vec<i64> = pipe.query_async(&mut c).await?;
        missing.extend(
            chunk
                .iter()
                .zip(found)
                .filter(|(_, n)| *n == 0)
                .map(|(id, _)| (*id).to_owned()),
        );
    }
    Ok(missing)
}

/// Imports the events of `rows` into the feature store (see the module docs).
pub async fn import(
    con: &MultiplexedConnection,
    store: &UserStateStore,
    rows: Arc<dyn RowFactory>,
    opts: &ImportOptions,
) -> Result<ImportReport> {
    let started = Instant::now();
    let mut sel = {
        let (rows, store, opts) = (Arc::clone(&rows), store.clone(), opts.clone());
        tokio::task::spawn_blocking(move || read_all(&*rows, &store, &opts))
            .await
            .map_err(|e| Error::Internal {
                message: format!("reader task: {e}"),
            })??
    };

    // Unknown items fail an FCALL batch as a whole: find them before writing anything.
    let item_ids: BTreeSet<&str> = sel
        .events
        .iter()
        .map(|e| e.event.item_id.as_str())
        .collect();
    let missing = missing_items(con, store, &item_ids).await?;
    if !missing.is_empty() {
        let label = rows.label();
        let item_col = opts.columns.item.clone();
        let (bad, good): (Vec<ParsedEvent>, Vec<ParsedEvent>) = std::mem::take(&mut sel.events)
            .into_iter()
            .partition(|e| missing.contains(&e.event.item_id));
        sel.events = good;
        for e in bad {
            sel.rejected += 1;
            sel.reject(Reject {
                file: label.clone(),
                row: e.row,
                field: item_col.clone(),
                message: format!(
                    "unknown item `{}` (load the catalog first)",
                    e.event.item_id
                ),
            })?;
        }
    }
    if let Some((path, out)) = sel.rejects_out.as_mut() {
        out.flush().map_err(|e| Error::io(path.clone(), e))?;
    }
    if sel.rejected > 0 && opts.on_invalid == OnInvalid::Strict {
        return Err(Error::Invalid {
            count: sel.rejected,
            first: sel.first_rejects,
        });
    }
    sel.events.sort_by_key(|e| (e.at_ms, e.row));
    let read_secs = started.elapsed().as_secs_f64();

    let mut report = ImportReport {
        rows_read: sel.rows_read,
        rejected: sel.rejected,
        after_until: sel.after_until,
        other_users: sel.other_users,
        users: sel
            .events
            .iter()
            .map(|e| e.event.user_id.as_str())
            .collect::<HashSet<_>>()
            .len() as u64,
        first_ms: sel.events.first().map(|e| e.at_ms),
        last_ms: sel.events.last().map(|e| e.at_ms),
        read_secs,
        first_rejects: std::mem::take(&mut sel.first_rejects),
        ..ImportReport::default()
    };

    let apply_started = Instant::now();
    let batch_size = opts.batch_size.clamp(1, store.config().max_batch);
    let progress = Progress::new(opts.progress, "apply", Some(sel.events.len() as u64));
    let batches: Vec<Vec<redrec_userstate::Event>> = sel
        .events
        .chunks(batch_size)
        .map(|c| c.iter().map(|e| e.event.clone()).collect())
        .collect();
    drop(sel);
    let mut results = futures::stream::iter(batches.into_iter().map(|batch| {
        let mut c = con.clone();
        let progress = &progress;
        async move {
            // every event carries its own time; the batch clock only fills a missing one
            let now = batch.iter().filter_map(|e| e.at_ms).max().unwrap_or(0);
            let r = store.apply(&mut c, &batch, now).await?;
            progress.inc(batch.len() as u64);
            Ok::<_, Error>(r)
        }
    }))
    .buffered(opts.in_flight.max(1));
    while let Some(r) = results.try_next().await? {
        report.applied += r.applied as u64;
        report.duplicates += r.duplicates.len() as u64;
        report.batches += 1;
    }
    progress.finish();
    report.apply_secs = apply_started.elapsed().as_secs_f64();
    report.events_per_sec =
        (report.applied + report.duplicates) as f64 / report.apply_secs.max(1e-9);
    Ok(report)
}
