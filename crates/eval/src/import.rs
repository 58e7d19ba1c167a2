//! The training baskets of the evaluated users into the gateway's user state, through the
//! interaction import of redrec-ingest ([`redrec_ingest::events::import`]): the same atomic Redis
//! Function as `POST /v1/events`, batched and pipelined, each event at its basket's time (so
//! the decays inside the gateway see the real ages).
//!
//! The events are first written as a JSONL interaction file (`train-events.jsonl` in the report
//! directory, the documented `redrec-ingest events` format), so the import can be repeated by
//! hand: `redrec-ingest --namespace eval events target/eval/train-events.jsonl`.

use std::{
    io::{BufWriter, Write},
    path::Path,
    sync::Arc,
};

use anyhow::{Context, Result};
use redis::aio::MultiplexedConnection;
use redrec_core::{keys::Namespace, schema::ItemFields};
use redrec_ingest::{
    events::{self, ImportOptions},
    load::OnInvalid,
    progress::ProgressMode,
    source::SourceSpec,
};
use redrec_userstate::{UserStateConfig, UserStateStore};
use serde::Serialize;

use crate::{data::Dataset, split::Split};

/// How the training events reach the gateway's user state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ImportVia {
    /// `redrec_ingest::events::import` straight into Redis, at each basket's time (default).
    #[default]
    Events,
    /// `POST /v1/events` of the gateway: stamped with the server clock, about half as fast.
    Http,
}

/// What an import did, whichever way it went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportStats {
    pub via: ImportVia,
    pub users: usize,
    pub events: usize,
    pub batches: usize,
    /// Writing and reading the event file (events import only).
    pub prepare_secs: f64,
    /// Applying the events.
    pub secs: f64,
    /// Events per second of the apply phase.
    pub events_per_sec: f64,
}

/// The event id of one training line: the same in both import paths, so a repeated import
/// applies nothing twice.
pub fn event_id(user: &str, basket: usize, item: &str) -> String {
    format!("eval-{user}-{basket}-{item}")
}

/// Writes the evaluated users' training baskets as purchase events (JSONL, time in unix ms);
/// returns how many lines.
pub fn write_training_events(path: &Path, data: &Dataset, split: &Split) -> Result<usize> {
    #[derive(Serialize)]
    struct Line<'a> {
        user_id: &'a str,
        item_id: &'a str,
        timestamp: i64,
        #[serde(rename = "type")]
        kind: &'a str,
        event_id: String,
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut lines = 0;
    for case in &split.cases {
        let user = &data.users[case.user as usize];
        for (b, basket) in split.train[case.user as usize].iter().enumerate() {
            for &i in &basket.items {
                let item = &data.items[i as usize];
                let line = Line {
                    user_id: user,
                    item_id: item,
                    timestamp: basket.time * 1000,
                    kind: "purchase",
                    event_id: event_id(user, b, item),
                };
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
                lines += 1;
            }
        }
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(lines)
}

/// Where the events import writes and with which settings.
#[derive(Debug, Clone)]
pub struct EventsTarget {
    /// The item field names of the namespace's index (the Redis Function reads them).
    pub fields: ItemFields,
    /// The gateway's user-state settings: imported events must weigh and decay the same way.
    pub user_state: UserStateConfig,
}

/// Applies the event file through the interaction import, `batch` events per `FCALL` (capped
/// at `user_state.max_batch`), `in_flight` batches pipelined; every row must be valid (strict).
pub async fn import_events(
    con: &MultiplexedConnection,
    ns: &Namespace,
    target: &EventsTarget,
    file: &Path,
    batch: usize,
    in_flight: usize,
) -> Result<ImportStats> {
    let config = UserStateConfig {
        // the evaluation resets its namespace's markers before each import; a resumed import
        // needs them only for minutes
        idempotency_ttl_ms: 15 * 60 * 1000,
        ..target.user_state.clone()
    };
    let store = UserStateStore::new(ns.clone(), target.fields.clone(), config)
        .context("user_state config")?;
    let opts = ImportOptions {
        on_invalid: OnInvalid::Strict,
        batch_size: batch,
        in_flight,
        progress: ProgressMode::Quiet,
        ..ImportOptions::default()
    };
    let spec = SourceSpec::new(file)?;
    let r = events::import(con, &store, Arc::new(spec), &opts)
        .await
        .with_context(|| format!("importing {}", file.display()))?;
    Ok(ImportStats {
        via: ImportVia::Events,
        users: r.users as usize,
        events: (r.applied + r.duplicates) as usize,
        batches: r.batches as usize,
        prepare_secs: r.read_secs,
        secs: r.apply_secs,
        events_per_sec: r.events_per_sec,
    })
}
