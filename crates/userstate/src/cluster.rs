//! Applying events when user state lives on a Redis Cluster and the catalog elsewhere
//! ([`UserStateStore::apply_clustered`]).
//!
//! The atomic step may only touch keys of one slot, so a batch becomes one `FCALL` per user
//! (every key of a user shares the user's hash tag, `keys.rs`), in the order the users first
//! appear. What the single-node function reads from the item hashes (vector, category, brand,
//! price, collaborative vector) is read first from the catalog deployment, in one pipeline,
//! and passed in as arguments; an unknown item fails the whole batch before anything is
//! written, as on a single node. Popularity is catalog data (the fold moves it into the indexed
//! item hashes, on the catalog deployment), so it is counted there after the step, for the
//! events the step applied (not for duplicates).

use std::collections::{BTreeMap, HashMap};

use redis::{Value, aio::ConnectionLike};

use crate::{ApplyReport, Error, Event, Result, UserStateStore, event::CheckedEvent};

/// The fields of one item the event step needs, as stored (absent fields empty).
struct ItemValues {
    vector: Vec<u8>,
    category: Vec<u8>,
    brand: Vec<u8>,
    price: Vec<u8>,
    cf_vector: Vec<u8>,
}

impl UserStateStore {
    /// Validates a batch and applies it with user state on a cluster (`users`, a cluster
    /// connection) and items on the catalog deployment (`catalog`, its primary). Atomic per
    /// user: a batch of several users is one atomic step per user, run one after the other; if
    /// one fails, the users before it stay applied and the error is returned (resending the
    /// batch with the same event ids is deduplicated). Popularity is counted on the catalog
    /// after the steps; a failure there is returned too (the user state is then applied but
    /// the popularity of those events is lost: popularity is at most once here).
    pub async fn apply_clustered(
        &self,
        catalog: &mut impl ConnectionLike,
        users: &mut impl ConnectionLike,
        events: &[Event],
        now_ms: i64,
    ) -> Result<ApplyReport> {
        if !self.is_clustered() {
            return Err(Error::Config {
                field: "redis.user_state",
                message: "`apply_clustered` needs a store made with `for_cluster`".into(),
            });
        }
        let checked = self.check_batch(events)?;
        if checked.is_empty() {
            return Ok(ApplyReport::default());
        }
        let items = self.read_items(&mut *catalog, &checked).await?;

        // users in order of first appearance, each with the indexes of its events
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, e) in checked.iter().enumerate() {
            match groups.iter_mut().find(|(u, _)| *u == e.user_id) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((e.user_id, vec![i])),
            }
        }
        let mut report = ApplyReport::default();
        let mut popularity: BTreeMap<&str, f64> = BTreeMap::new();
        let mut failure = None;
        for (user, indexes) in &groups {
            match self
                .apply_user(&mut *users, user, indexes, &checked, &items, now_ms)
                .await
            {
                Ok((applied, duplicates)) => {
                    report.applied += applied;
                    for &i in indexes {
                        let pop = checked[i].weight.max(0.0);
                        if pop > 0.0 && !duplicates.contains(&i) {
                            *popularity.entry(checked[i].item_id).or_default() += pop;
                        }
                    }
                    report.duplicates.extend(duplicates);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !popularity.is_empty() {
            let mut pipe = redis::pipe();
            let key = self.namespace().popularity();
            for (item, delta) in &popularity {
                pipe.cmd("ZINCRBY")
                    .arg(&key)
                    .arg(*delta)
                    .arg(*item)
                    .ignore();
            }
            let counted: redis::RedisResult<()> = pipe.query_async(&mut *catalog).await;
            if let Err(e) = counted
                && failure.is_none()
            {
                failure = Some(e.into());
            }
        }
        match failure {
            Some(e) => Err(e),
            None => {
                report.duplicates.sort_unstable();
                Ok(report)
            }
        }
    }

    /// Reads the distinct items of a batch from the catalog (one pipeline: `EXISTS` and `HMGET`
    /// per item). [`Error::UnknownItem`] names the first event whose item does not exist.
    async fn read_items<'a>(
        &self,
        catalog: &mut impl ConnectionLike,
        events: &[CheckedEvent<'a>],
    ) -> Result<HashMap<&'a str, ItemValues>> {
        let mut ids: Vec<&str> = events.iter().map(|e| e.item_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let fields = self.fields();
        let mut pipe = redis::pipe();
        for id in &ids {
            let key = self.namespace().item(id);
            pipe.cmd("EXISTS").arg(&key);
            let hmget = pipe
                .cmd("HMGET")
                .arg(&key)
                .arg(&fields.vector)
                .arg(&fields.category)
                .arg(&fields.brand)
                .arg(&fields.price);
            if !fields.cf_vector.is_empty() {
                hmget.arg(&fields.cf_vector);
            }
        }
        let replies: Vec<Value> = pipe.query_async(catalog).await?;
        let mut out = HashMap::with_capacity(ids.len());
        for (id, pair) in ids.iter().zip(replies.chunks(2)) {
            let [exists, values] = pair else {
                return Err(Error::Protocol {
                    message: format!("expected 2 replies per item, got {replies:?}"),
                });
            };
            let exists: i64 = redis::from_redis_value_ref(exists)?;
            if exists == 0 {
                let index = events
                    .iter()
                    .position(|e| e.item_id == *id)
                    .unwrap_or_default();
                return Err(Error::UnknownItem {
                    index,
                    item_id: (*id).to_owned(),
                });
            }
            let mut values: Vec<Option<Vec<u8>>> = redis::from_redis_value_ref(values)?;
            values.resize(5, None);
            let mut take = |i: usize| values[i].take().unwrap_or_default();
            out.insert(
                *id,
                ItemValues {
                    vector: take(0),
                    category: take(1),
                    brand: take(2),
                    price: take(3),
                    cf_vector: take(4),
                },
            );
        }
        Ok(out)
    }

    /// One user's events (`indexes` into `events`) in one `FCALL` on the user's slot: keys all
    /// under the user's tag, the items' fields passed in, popularity left to the caller.
    /// Returns the events applied and the batch indexes of the duplicates.
    async fn apply_user(
        &self,
        users: &mut impl ConnectionLike,
        user: &str,
        indexes: &[usize],
        events: &[CheckedEvent<'_>],
        items: &HashMap<&str, ItemValues>,
        now_ms: i64,
    ) -> Result<(usize, Vec<usize>)> {
        let mut ids: Vec<&str> = indexes.iter().map(|&i| events[i].item_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut keys = Vec::with_capacity(1 + indexes.len() * 8);
        // KEYS[1] is the popularity zset on a single node; here any key of the user's slot
        keys.push(self.keys.user(user));
        let mut args = self.header_args(indexes.len(), now_ms, false, ids.len());
        for &i in indexes {
            self.push_event(&mut keys, &mut args, &events[i], self.keys.user(user));
        }
        for id in &ids {
            let item = items.get(id).ok_or_else(|| Error::Protocol {
                message: format!("item `{id}` was not read"),
            })?;
            args.push(id.as_bytes().to_vec());
            args.push(item.vector.clone());
            args.push(item.category.clone());
            args.push(item.brand.clone());
            args.push(item.price.clone());
            args.push(item.cf_vector.clone());
        }
        let library = self.library();
        let reply = library.call(users, &library.apply, &keys, &args).await?;
        let local: Vec<CheckedEvent<'_>> = indexes.iter().map(|&i| events[i].clone()).collect();
        let report = crate::store::parse_apply_reply(&reply, &local).map_err(|e| match e {
            // mapped back to the batch's index
            Error::UnknownItem { index, item_id } => Error::UnknownItem {
                index: indexes[index],
                item_id,
            },
            other => other,
        })?;
        let duplicates = report.duplicates.iter().map(|&j| indexes[j]).collect();
        Ok((report.applied, duplicates))
    }
}
