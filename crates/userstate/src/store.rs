//! [`UserStateStore`]: applies event batches through the Redis Function in one atomic step, reads
//! a user's features back in one pipelined round trip (decay applied at read time), deletes a
//! user, and folds event popularity into the indexed item hashes.
//!
//! Every function takes any `redis::aio::ConnectionLike` (a multiplexed connection, a pooled
//! deadpool-redis connection) and the current time in unix milliseconds, so callers and tests
//! control the clock.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use redis::{Value, aio::ConnectionLike};
use redrec_core::{
    keys::Namespace,
    reply::{integer, text},
    schema::ItemFields,
    user::{Interaction, PriceBand, PurchaseFrequency, UserFeatures},
    vector,
};

use crate::{
    Error, Result, UserStateConfig,
    event::{CheckedEvent, Event, EventKind, check_event, validate_user_id},
    keys::UserKeys,
    library::Library,
};

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Events applied now.
    pub applied: usize,
    /// Indexes of events skipped because their `event_id` was already applied.
    pub duplicates: Vec<usize>,
}

/// What a popularity fold did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldReport {
    /// Items whose indexed popularity field was incremented.
    pub folded: usize,
    /// Pending deltas dropped because their item no longer exists.
    pub dropped: usize,
    /// `FCALL`s issued (one per batch).
    pub batches: usize,
}

/// Number of commands [`UserStateStore::queue_read`] adds to a pipeline.
pub const READ_COMMANDS: usize = 6;

/// The user-feature store of one namespace.
#[derive(Debug, Clone)]
pub struct UserStateStore {
    ns: Namespace,
    /// Per-user key names: plain on a single node, under the user's hash tag for a cluster.
    pub(crate) keys: UserKeys,
    fields: ItemFields,
    config: UserStateConfig,
    /// Shared: the Lua source is ~10 KB and the store is cloned into request handlers.
    library: Arc<Library>,
}

fn ms(v: u64) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn f(v: f64) -> Vec<u8> {
    // `{:?}` prints the shortest representation that round-trips, which Lua's tonumber reads.
    format!("{v:?}").into_bytes()
}

impl UserStateStore {
    /// A store for namespace `ns`, reading item vectors, categories, brands and prices from the
    /// item hash fields named in `item_fields`.
    pub fn new(
        ns: Namespace,
        item_fields: ItemFields,
        config: UserStateConfig,
    ) -> Result<UserStateStore> {
        config.validate()?;
        Ok(UserStateStore {
            keys: UserKeys::plain(ns.clone()),
            ns,
            fields: item_fields,
            config,
            library: Arc::new(Library::new()),
        })
    }

    /// This store for user state on a Redis Cluster (`[redis.user_state]`): per-user keys under
    /// the user's hash tag (`{ns}:user:{id}...`), idempotency markers in a per-user hash,
    /// events applied with [`apply_clustered`](Self::apply_clustered). Refused for a namespace
    /// holding braces and for `ack` other than `memory` (not supported on a cluster yet).
    pub fn for_cluster(mut self) -> Result<UserStateStore> {
        if self.config.ack != crate::AckMode::Memory {
            return Err(Error::Config {
                field: "user_state.ack",
                message: "only `memory` is supported with user state on a Redis Cluster \
                          (`[redis.user_state]`)"
                    .into(),
            });
        }
        self.keys = UserKeys::tagged(self.ns.clone())?;
        Ok(self)
    }

    /// Whether this store keeps user state on a Redis Cluster ([`for_cluster`](Self::for_cluster)).
    pub fn is_clustered(&self) -> bool {
        self.keys.is_tagged()
    }

    pub fn config(&self) -> &UserStateConfig {
        &self.config
    }

    pub(crate) fn fields(&self) -> &ItemFields {
        &self.fields
    }

    pub(crate) fn library(&self) -> &Library {
        &self.library
    }

    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// Name of the Redis Function library this version loads (`redrec_features_<hash>`).
    pub fn library_name(&self) -> &str {
        &self.library.name
    }

    /// Loads the Redis Function library (`FUNCTION LOAD REPLACE`). Optional: calls load it on
    /// demand, but doing it at startup surfaces a Redis without Functions support early.
    pub async fn ensure_loaded(&self, con: &mut impl ConnectionLike) -> Result<()> {
        self.library.load(con).await
    }

    /// Validates one event as [`UserStateStore::apply`] would (everything except item existence,
    /// which only Redis knows); `index` is the position reported in the error.
    pub fn check(&self, index: usize, event: &Event) -> Result<()> {
        check_event(index, event, &self.config).map(|_| ())
    }

    /// Validates a batch and applies it in one atomic `FCALL`. An invalid event or an unknown
    /// item fails the whole batch with the index of the first bad event, and nothing is written.
    /// Events with an `event_id` seen within `idempotency_ttl_ms` are skipped and reported.
    pub async fn apply(
        &self,
        con: &mut impl ConnectionLike,
        events: &[Event],
        now_ms: i64,
    ) -> Result<ApplyReport> {
        if self.is_clustered() {
            return Err(Error::Config {
                field: "redis.user_state",
                message: "user state on a cluster is applied with `apply_clustered` (the items \
                          are read from the catalog deployment first)"
                    .into(),
            });
        }
        let checked = self.check_batch(events)?;
        if checked.is_empty() {
            return Ok(ApplyReport::default());
        }
        let (keys, args) = self.apply_call(&checked, now_ms);
        let reply = self
            .library
            .call(con, &self.library.apply, &keys, &args)
            .await?;
        parse_apply_reply(&reply, &checked)
    }

    /// Validates a batch: its size, then every event.
    pub(crate) fn check_batch<'a>(&self, events: &'a [Event]) -> Result<Vec<CheckedEvent<'a>>> {
        if events.len() > self.config.max_batch {
            return Err(Error::BatchTooLarge {
                size: events.len(),
                max: self.config.max_batch,
            });
        }
        events
            .iter()
            .enumerate()
            .map(|(i, e)| check_event(i, e, &self.config))
            .collect()
    }

    /// The longest extra wait [`apply_acknowledged`](Self::apply_acknowledged) adds to a call
    /// (zero with `ack = memory`): callers bounding the call add it to their timeout.
    pub fn ack_wait(&self) -> std::time::Duration {
        match self.config.ack {
            crate::AckMode::Memory => std::time::Duration::ZERO,
            _ => std::time::Duration::from_millis(self.config.ack_timeout_ms),
        }
    }

    /// [`apply`](Self::apply), then waits for the durability `config.ack` asks for, on the same
    /// connection (both waits cover that connection's writes): `WAITAOF 1 0` for `aof`, `WAIT 1`
    /// for `replica`, each bounded by `ack_timeout_ms`. [`Error::NotDurable`] when the wait ends
    /// unconfirmed: the events are applied, and resending them with the same event ids is safe.
    pub async fn apply_acknowledged(
        &self,
        con: &mut impl ConnectionLike,
        events: &[Event],
        now_ms: i64,
    ) -> Result<ApplyReport> {
        let report = self.apply(con, events, now_ms).await?;
        if report.applied == 0 {
            return Ok(report);
        }
        let timeout = self.config.ack_timeout_ms;
        match self.config.ack {
            crate::AckMode::Memory => {}
            crate::AckMode::Aof => {
                let reply: redis::RedisResult<(i64, i64)> = redis::cmd("WAITAOF")
                    .arg(1)
                    .arg(0)
                    .arg(timeout)
                    .query_async(con)
                    .await;
                match reply {
                    Ok((local, _)) if local >= 1 => {}
                    Ok(_) => {
                        return Err(Error::NotDurable {
                            mode: "aof",
                            message: format!(
                                "the append-only file was not fsynced within {timeout} ms"
                            ),
                        });
                    }
                    Err(e) if e.to_string().contains("appendonly") => {
                        return Err(Error::NotDurable {
                            mode: "aof",
                            message:
                                "the server runs without an append-only file: set `appendonly yes` \
                                      on Redis, or `user_state.ack = \"memory\"`"
                                    .into(),
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            crate::AckMode::Replica => {
                let replicas: i64 = redis::cmd("WAIT")
                    .arg(1)
                    .arg(timeout)
                    .query_async(con)
                    .await?;
                if replicas < 1 {
                    return Err(Error::NotDurable {
                        mode: "replica",
                        message: format!("no replica confirmed the write within {timeout} ms"),
                    });
                }
            }
        }
        Ok(report)
    }

    fn apply_call(&self, events: &[CheckedEvent<'_>], now_ms: i64) -> (Vec<String>, Vec<Vec<u8>>) {
        let mut keys = Vec::with_capacity(1 + events.len() * 8);
        keys.push(self.ns.popularity());
        let mut args = self.header_args(events.len(), now_ms, true, 0);
        for e in events {
            self.push_event(&mut keys, &mut args, e, self.ns.item(e.item_id));
        }
        (keys, args)
    }

    /// The function's header arguments: the clock, the batch size, the item field names, the
    /// settings; whether it counts popularity itself, the marker layout, items passed in.
    pub(crate) fn header_args(
        &self,
        events: usize,
        now_ms: i64,
        count_popularity: bool,
        items_passed: usize,
    ) -> Vec<Vec<u8>> {
        let c = &self.config;
        vec![
            now_ms.to_string().into_bytes(),
            events.to_string().into_bytes(),
            self.fields.vector.clone().into_bytes(),
            self.fields.category.clone().into_bytes(),
            self.fields.brand.clone().into_bytes(),
            self.fields.price.clone().into_bytes(),
            f(c.session_alpha),
            f(c.long_term_alpha),
            ms(c.affinity_half_life_ms),
            ms(c.session_ttl_ms),
            c.seen_cap.to_string().into_bytes(),
            ms(c.seen_ttl_ms),
            c.recent_cap.to_string().into_bytes(),
            ms(c.cart_ttl_ms),
            ms(c.idempotency_ttl_ms),
            ms(c.history_half_life_ms),
            c.history_cap.to_string().into_bytes(),
            self.fields.cf_vector.clone().into_bytes(),
            f(c.cf_session_alpha),
            f(c.cf_long_term_alpha),
            if count_popularity {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            },
            if self.keys.is_tagged() {
                b"field".to_vec()
            } else {
                b"key".to_vec()
            },
            items_passed.to_string().into_bytes(),
        ]
    }

    /// One event's keys and arguments; `item_key` fills the item's key slot (its hash, or with
    /// items passed in, any key of the user's slot).
    pub(crate) fn push_event(
        &self,
        keys: &mut Vec<String>,
        args: &mut Vec<Vec<u8>>,
        e: &CheckedEvent<'_>,
        item_key: String,
    ) {
        let u = e.user_id;
        keys.push(self.keys.user(u));
        keys.push(self.keys.session(u));
        keys.push(self.keys.seen(u));
        keys.push(self.keys.recent(u));
        keys.push(self.keys.cart(u));
        keys.push(item_key);
        // Without an event_id no marker is touched; the user key fills the slot so every
        // event has the same stride.
        keys.push(match e.event_id {
            Some(id) => self.keys.marker(u, id),
            None => self.keys.user(u),
        });
        keys.push(self.keys.buys(u));
        let cart_op = match e.kind {
            EventKind::CartAdd => "add",
            EventKind::Purchase => "remove",
            _ => "-",
        };
        let price = matches!(e.kind, EventKind::CartAdd | EventKind::Purchase);
        args.push(e.kind.as_str().as_bytes().to_vec());
        args.push(e.item_id.as_bytes().to_vec());
        args.push(f(e.weight));
        args.push(if e.event_id.is_some() {
            b"1".to_vec()
        } else {
            b"0".to_vec()
        });
        args.push(if price { b"1".to_vec() } else { b"0".to_vec() });
        args.push(cart_op.as_bytes().to_vec());
        args.push(f(e.weight.max(0.0)));
        args.push(
            e.at_ms
                .map(|t| t.to_string().into_bytes())
                .unwrap_or_default(),
        );
        args.push(e.event_id.unwrap_or_default().as_bytes().to_vec());
    }

    /// Reads everything the request path needs about a user in one pipelined round trip.
    /// A user with nothing stored comes back as `UserFeatures { known: false, .. }`.
    pub async fn read(
        &self,
        con: &mut impl ConnectionLike,
        user_id: &str,
        now_ms: i64,
    ) -> Result<UserFeatures> {
        let mut pipe = redis::pipe();
        self.queue_read(&mut pipe, user_id, now_ms)?;
        let replies: Vec<Value> = pipe.query_async(con).await?;
        self.decode_read(user_id, now_ms, &replies)
    }

    /// Queues the [`READ_COMMANDS`] read commands on a caller's pipeline, so they can share a
    /// round trip with other work; decode their replies with [`UserStateStore::decode_read`].
    pub fn queue_read(&self, pipe: &mut redis::Pipeline, user_id: &str, now_ms: i64) -> Result<()> {
        check_user_id(user_id)?;
        let c = &self.config;
        pipe.cmd("HGETALL").arg(self.keys.user(user_id));
        pipe.cmd("HGETALL").arg(self.keys.session(user_id));
        pipe.cmd("LRANGE")
            .arg(self.keys.recent(user_id))
            .arg(0)
            .arg(c.recent_cap as i64 - 1);
        pipe.cmd("ZRANGE")
            .arg(self.keys.seen(user_id))
            .arg("+inf")
            .arg(now_ms.saturating_sub(c.seen_ttl_ms as i64))
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(c.seen_cap);
        pipe.cmd("SMEMBERS").arg(self.keys.cart(user_id));
        pipe.cmd("ZRANGE")
            .arg(self.keys.buys(user_id))
            .arg(0)
            .arg(c.history_read as i64 - 1)
            .arg("REV")
            .arg("WITHSCORES");
        Ok(())
    }

    /// Turns the replies of the commands queued by [`UserStateStore::queue_read`] into features,
    /// decaying affinities to `now_ms` and dropping a session idle for longer than its TTL.
    pub fn decode_read(
        &self,
        user_id: &str,
        now_ms: i64,
        replies: &[Value],
    ) -> Result<UserFeatures> {
        let [user, session, recent, seen, cart, buys] = replies else {
            return Err(Error::Protocol {
                message: format!(
                    "expected {READ_COMMANDS} replies for a feature read, got {}",
                    replies.len()
                ),
            });
        };
        let user: HashMap<String, Vec<u8>> = redis::from_redis_value_ref(user)?;
        let session: HashMap<String, Vec<u8>> = redis::from_redis_value_ref(session)?;
        let recent: Vec<String> = redis::from_redis_value_ref(recent)?;
        let seen: Vec<String> = redis::from_redis_value_ref(seen)?;
        let cart: Vec<String> = redis::from_redis_value_ref(cart)?;
        let buys: Vec<(String, f64)> = redis::from_redis_value_ref(buys)?;
        let user_key = self.keys.user(user_id);
        let corrupt = |key: &str, message: String| Error::Corrupt {
            key: key.to_owned(),
            message,
        };

        let mut out = UserFeatures {
            user_id: user_id.to_owned(),
            known: !user.is_empty() || !session.is_empty() || !recent.is_empty(),
            ..UserFeatures::default()
        };
        let half_life = self.config.affinity_half_life_ms as f64;
        let mut pb = (0u64, 0f64, 0f64);
        for (field, raw) in &user {
            let text = || String::from_utf8_lossy(raw).into_owned();
            if let Some(name) = field.strip_prefix("cat:") {
                let score = decay_field(&text(), now_ms, half_life)
                    .ok_or_else(|| corrupt(&user_key, format!("field `{field}` = {:?}", text())))?;
                out.category_affinity.insert(name.to_owned(), score);
            } else if let Some(name) = field.strip_prefix("brand:") {
                let score = decay_field(&text(), now_ms, half_life)
                    .ok_or_else(|| corrupt(&user_key, format!("field `{field}` = {:?}", text())))?;
                out.brand_affinity.insert(name.to_owned(), score);
            } else if let Some(kind) = field.strip_prefix("n:") {
                let n = text()
                    .parse()
                    .map_err(|_| corrupt(&user_key, format!("field `{field}` = {:?}", text())))?;
                out.counters.insert(kind.to_owned(), n);
            } else if field == "lt_vec" {
                out.long_term_vector = Some(
                    vector::decode(raw).map_err(|e| corrupt(&user_key, format!("lt_vec: {e}")))?,
                );
            } else if field == "cf_lt_vec" {
                out.cf_long_term_vector = Some(
                    vector::decode(raw)
                        .map_err(|e| corrupt(&user_key, format!("cf_lt_vec: {e}")))?,
                );
            } else if field == "updated_ms" {
                out.last_event_ms =
                    Some(text().parse().map_err(|_| {
                        corrupt(&user_key, format!("field `{field}` = {:?}", text()))
                    })?);
            } else if field.starts_with("pb_") {
                let v: f64 = text()
                    .parse()
                    .map_err(|_| corrupt(&user_key, format!("field `{field}` = {:?}", text())))?;
                match field.as_str() {
                    "pb_n" => pb.0 = v as u64,
                    "pb_mean" => pb.1 = v,
                    "pb_m2" => pb.2 = v,
                    _ => {}
                }
            }
        }
        if pb.0 > 0 {
            out.price_band = Some(PriceBand {
                mean: pb.1,
                std_dev: (pb.2 / pb.0 as f64).max(0.0).sqrt(),
                count: pb.0,
            });
        }

        // Redis expires the session on its own clock; the check against the caller's clock
        // keeps reads consistent with the clock the events were applied with.
        let session_key = self.keys.session(user_id);
        let session_updated = session
            .get("updated_ms")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok());
        let session_live = session_updated
            .is_some_and(|t| now_ms.saturating_sub(t) <= self.config.session_ttl_ms as i64);
        if session_live && let Some(blob) = session.get("vec") {
            out.session_vector =
                Some(vector::decode(blob).map_err(|e| corrupt(&session_key, format!("vec: {e}")))?);
        }
        if session_live && let Some(blob) = session.get("cf_vec") {
            out.cf_session_vector = Some(
                vector::decode(blob).map_err(|e| corrupt(&session_key, format!("cf_vec: {e}")))?,
            );
        }

        let recent_key = self.keys.recent(user_id);
        out.recent = recent
            .iter()
            .map(|entry| {
                serde_json::from_str::<Interaction>(entry)
                    .map_err(|e| corrupt(&recent_key, format!("entry {entry:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        out.seen = seen.into_iter().collect::<BTreeSet<_>>();
        out.cart = cart.into_iter().collect::<BTreeSet<_>>();
        if !buys.is_empty() {
            let raw = user.get("buys_ref_ms").map(|v| String::from_utf8_lossy(v));
            let reference: f64 = raw
                .as_deref()
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| corrupt(&user_key, format!("field `buys_ref_ms` = {raw:?}")))?;
            // forward decay: the stored score is relative to the reference time
            let half_life = self.config.history_half_life_ms as f64;
            let factor = ((reference - now_ms as f64) / half_life).exp2();
            let last = out.last_event_ms.map_or(now_ms as f64, |t| t as f64);
            let count_factor = ((reference - last) / half_life).exp2();
            out.purchases = buys
                .into_iter()
                .filter(|(_, s)| s.is_finite())
                .map(|(item_id, s)| PurchaseFrequency {
                    item_id,
                    score: s * factor,
                    count: s * count_factor,
                })
                .collect();
        }
        Ok(out)
    }

    /// Deletes everything stored for a user (long-term, session, seen, recent, cart, purchase
    /// history; on a cluster also the user's idempotency markers). Returns whether anything
    /// existed. On a single node idempotency markers are keyed by event id and expire on their
    /// own; popularity is not per-user and stays.
    pub async fn delete(&self, con: &mut impl ConnectionLike, user_id: &str) -> Result<bool> {
        check_user_id(user_id)?;
        let n: i64 = redis::cmd("UNLINK")
            .arg(self.user_keys(user_id))
            .query_async(con)
            .await?;
        Ok(n > 0)
    }

    /// Every per-user key of `user_id`.
    pub fn user_keys(&self, user_id: &str) -> Vec<String> {
        self.keys.all(user_id)
    }

    /// Pending (not yet folded) popularity deltas of some items, from the popularity zset.
    pub async fn pending_popularity(
        &self,
        con: &mut impl ConnectionLike,
        item_ids: &[&str],
    ) -> Result<Vec<f64>> {
        if item_ids.is_empty() {
            return Ok(Vec::new());
        }
        let scores: Vec<Option<f64>> = redis::cmd("ZMSCORE")
            .arg(self.ns.popularity())
            .arg(item_ids)
            .query_async(con)
            .await?;
        Ok(scores.into_iter().map(|s| s.unwrap_or(0.0)).collect())
    }

    /// Moves the pending popularity deltas into the indexed `popularity` field of the item
    /// hashes, `batch_size` items per atomic `FCALL`, so a hot item is re-indexed once per fold
    /// instead of once per event. Deltas that arrive during the fold are kept for the next one.
    /// The batches run back to back; a server under load wants them spaced out (see
    /// [`UserStateStore::fold_popularity_batch`]).
    pub async fn fold_popularity(
        &self,
        con: &mut impl ConnectionLike,
        batch_size: usize,
    ) -> Result<FoldReport> {
        let batch_size = batch_size.max(1);
        let mut report = FoldReport::default();
        // Bounded so a fold under constant traffic ends: each round removes what it read.
        let rounds = self.popularity_backlog(con).await?.div_ceil(batch_size) + 1;
        for _ in 0..rounds {
            if !self
                .fold_popularity_batch(con, batch_size, &mut report)
                .await?
            {
                break;
            }
        }
        Ok(report)
    }

    /// How many items have popularity deltas waiting for a fold.
    pub async fn popularity_backlog(&self, con: &mut impl ConnectionLike) -> Result<usize> {
        Ok(redis::cmd("ZCARD")
            .arg(self.ns.popularity())
            .query_async(con)
            .await?)
    }

    /// One batch of [`UserStateStore::fold_popularity`]: up to `batch_size` items folded in one
    /// `FCALL`, added to `report`. False when nothing was pending. Every item written is
    /// re-indexed (vector included), which blocks Redis for a few hundred microseconds an item:
    /// callers on a live server keep batches small and pause between them.
    pub async fn fold_popularity_batch(
        &self,
        con: &mut impl ConnectionLike,
        batch_size: usize,
        report: &mut FoldReport,
    ) -> Result<bool> {
        let pop = self.ns.popularity();
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&pop)
            .arg(0)
            .arg(batch_size.max(1) as i64 - 1)
            .query_async(con)
            .await?;
        if members.is_empty() {
            return Ok(false);
        }
        let mut keys = vec![pop];
        keys.extend(members.iter().map(|m| self.ns.item(m)));
        let mut args = vec![self.fields.popularity.clone().into_bytes()];
        args.extend(members.iter().map(|m| m.clone().into_bytes()));
        let reply = self
            .library
            .call(con, &self.library.fold, &keys, &args)
            .await?;
        let (folded, dropped): (usize, usize) = redis::from_redis_value(reply)?;
        report.folded += folded;
        report.dropped += dropped;
        report.batches += 1;
        Ok(true)
    }
}

fn check_user_id(user_id: &str) -> Result<()> {
    validate_user_id(user_id).map_err(|message| Error::InvalidUserId {
        user_id: user_id.to_owned(),
        message,
    })
}

/// Decays a stored `"<score>|<updated_ms>"` affinity to `now_ms`:
/// `score * 2^(-(now - updated) / half_life)` (no decay when `now` is before `updated`).
pub(crate) fn decay_field(raw: &str, now_ms: i64, half_life_ms: f64) -> Option<f64> {
    let (score, at) = raw.rsplit_once('|')?;
    let score: f64 = score.parse().ok()?;
    let at: f64 = at.parse().ok()?;
    Some(decay(score, now_ms as f64 - at, half_life_ms))
}

/// `score * 2^(-elapsed / half_life)`, the decay the Lua side applies on write.
pub fn decay(score: f64, elapsed_ms: f64, half_life_ms: f64) -> f64 {
    if elapsed_ms <= 0.0 {
        score
    } else {
        score * (-elapsed_ms / half_life_ms).exp2()
    }
}

pub(crate) fn parse_apply_reply(reply: &Value, events: &[CheckedEvent<'_>]) -> Result<ApplyReport> {
    let protocol = || Error::Protocol {
        message: format!("{reply:?}"),
    };
    let Value::Array(items) = reply else {
        return Err(protocol());
    };
    let status = items.first().and_then(text).ok_or_else(protocol)?;
    match status.as_str() {
        "ok" => {
            let applied = items.get(1).and_then(integer).ok_or_else(protocol)?;
            let duplicates = items[2..]
                .iter()
                .map(|v| integer(v).map(|i| i as usize).ok_or_else(protocol))
                .collect::<Result<Vec<_>>>()?;
            Ok(ApplyReport {
                applied: applied as usize,
                duplicates,
            })
        }
        "unknown_item" => {
            let index = items.get(1).and_then(integer).ok_or_else(protocol)? as usize;
            let item_id = events.get(index).ok_or_else(protocol)?.item_id.to_owned();
            Err(Error::UnknownItem { index, item_id })
        }
        _ => Err(protocol()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decays_by_half_life() {
        assert_eq!(decay(8.0, 0.0, 1000.0), 8.0);
        assert_eq!(decay(8.0, -5.0, 1000.0), 8.0);
        assert!((decay(8.0, 1000.0, 1000.0) - 4.0).abs() < 1e-12);
        assert!((decay(8.0, 3000.0, 1000.0) - 1.0).abs() < 1e-12);
        assert_eq!(decay_field("2.5|1000", 1000, 10.0), Some(2.5));
        assert_eq!(decay_field("2.5|1000", 1010, 10.0), Some(1.25));
        assert_eq!(decay_field("garbage", 1010, 10.0), None);
    }
}
