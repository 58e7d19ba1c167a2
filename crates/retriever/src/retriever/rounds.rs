//! The round trips of one retrieval: sources validated and planned as one query each, the search
//! pipeline (sent again once, larger, when exclusions cost results), and the optional `HMGET`
//! of the winners' fields and vectors.

use std::collections::{BTreeMap, BTreeSet};

use redis::Value;

use redrec_core::candidate::{Candidate, SourceKind};
use redrec_core::filter::Filter;
use redrec_core::hybrid::HybridQuery;
use redrec_core::keys::validate_id;
use redrec_core::query::{InKeysQuery, SearchArgs, SortedQuery, TextQuery, lexical_expression};
use redrec_core::schema::DistanceMetric;
use redrec_core::vector;

use super::capabilities::CfField;
use super::fusion::with_window;
use super::{Retriever, Target};
use crate::config::FetchMode;
use crate::error::{Error, Result};
use crate::merge::{Merged, RankedList, merge};
use crate::request::{FusionPath, Source};
use crate::selectivity::FieldSample;
use redrec_core::reply::{Page, Shape, parse_hmget, parse_hybrid, parse_search};

/// One query to send per source.
pub(super) struct Plan {
    kind: PlanKind,
    source: SourceKind,
}

impl Plan {
    /// A KNN query of a vector (the query's own or collaborative).
    pub(super) fn is_knn(&self) -> bool {
        matches!(self.kind, PlanKind::Knn(_) | PlanKind::CfKnn(..))
    }

    /// KNN and text plans search the vector field, so only they care about `HYBRID_POLICY`.
    pub(super) fn searches_vectors(&self) -> bool {
        matches!(
            self.kind,
            PlanKind::Knn(_) | PlanKind::Text(..) | PlanKind::CfKnn(..)
        )
    }
}

enum PlanKind {
    Knn(Vec<f32>),
    /// KNN on the collaborative vector field.
    CfKnn(Vec<f32>, CfField),
    Popular,
    /// BM25 + KNN (client fusion) or FT.HYBRID.
    Text(String, Vec<f32>),
    /// The history's items restricted by the filter (`INKEYS`).
    InKeys(Vec<(String, f32)>),
}

/// What one search pipeline gave back.
struct Round {
    lists: Vec<RankedList>,
    /// A reply carried a partial-results warning.
    partial: bool,
    fusion: FusionPath,
    /// Some list came back full, so more results may exist past it.
    full: bool,
}

/// The outcome of the search rounds (one, or two after a retry).
pub(super) struct Searched {
    pub(super) merged: Merged,
    pub(super) round_trips: u32,
    pub(super) retried: bool,
    pub(super) partial: bool,
    pub(super) fusion: FusionPath,
}

/// Where a planned query's replies sit in the pipeline, for reading them back.
enum Slot {
    /// A KNN reply and the metric its distances are in.
    Knn(SourceKind, usize, DistanceMetric),
    Popular(usize),
    ClientText {
        text: usize,
        knn: usize,
        fetch: usize,
    },
    ServerText(usize),
    /// The history source's `INKEYS` search (`None`: an empty history, nothing sent).
    History {
        index: Option<usize>,
        items: Vec<(String, f32)>,
    },
}

/// A search pipeline being built: the commands and where each plan's replies will be.
struct RoundPipeline {
    pipe: redis::Pipeline,
    commands: usize,
    slots: Vec<Slot>,
    fusion: FusionPath,
}

impl RoundPipeline {
    fn add(&mut self, args: SearchArgs) -> usize {
        self.pipe.add_command(args.cmd());
        self.commands += 1;
        self.commands - 1
    }
}

/// KNN and sorted replies always carry fields (`RETURN` holds at least the distance).
const WITH_FIELDS: Shape = Shape {
    with_scores: false,
    with_content: true,
};

impl Retriever {
    /// Validates every source before any I/O; returns the ids whose stored vectors are needed.
    pub(super) fn validate_sources(&self, sources: &[Source]) -> Result<Vec<String>> {
        let mut needed: Vec<String> = Vec::new();
        for s in sources {
            match s {
                Source::Vector(v) | Source::Session(v) | Source::LongTerm(v) => {
                    self.validate_vector(v)?
                }
                // checked against the collaborative field's dimension when planned
                Source::CfSession(v) | Source::CfLongTerm(v) => {
                    if v.iter().any(|x| !x.is_finite()) {
                        return Err(bad_query(
                            "collaborative user vector has a non-finite value",
                        ));
                    }
                }
                Source::Text { text, vector } => {
                    self.validate_vector(vector)?;
                    lexical_expression(Some(&self.fields.text), text)?;
                }
                Source::SimilarItem(id) => {
                    validate_id(id)?;
                    needed.push(id.clone());
                }
                Source::Examples {
                    positive,
                    negative,
                    negative_weight,
                } => {
                    if positive.is_empty() {
                        return Err(bad_query("examples need at least one positive item"));
                    }
                    if !negative_weight.is_finite() || *negative_weight < 0.0 {
                        return Err(bad_query(format!(
                            "negative_weight is {negative_weight}, expected a number >= 0"
                        )));
                    }
                    for id in positive.iter().chain(negative) {
                        validate_id(id)?;
                        needed.push(id.clone());
                    }
                }
                Source::Popular => {}
                Source::History(items) => {
                    for (id, _) in items {
                        validate_id(id)?;
                    }
                }
            }
        }
        needed.sort();
        needed.dedup();
        Ok(needed)
    }

    /// One query per source (popularity when there is none); ids the plans search around are
    /// added to `exclude`. Collaborative sources are planned only when the index has the field
    /// (`cf`) and the vector has its dimension.
    pub(super) fn plan(
        &self,
        sources: &[Source],
        stored: &BTreeMap<String, Vec<f32>>,
        cf: Option<&CfField>,
        exclude: &mut BTreeSet<String>,
    ) -> Result<Vec<Plan>> {
        let mut plans = Vec::new();
        for s in sources {
            let (kind, source) = match s {
                Source::CfSession(v) | Source::CfLongTerm(v) => {
                    let kind = if matches!(s, Source::CfSession(_)) {
                        SourceKind::CfSession
                    } else {
                        SourceKind::CfLongTerm
                    };
                    match cf {
                        Some(field) if field.dims == v.len() => {
                            (PlanKind::CfKnn(v.clone(), field.clone()), kind)
                        }
                        Some(field) => {
                            tracing::debug!(
                                source = kind.as_str(),
                                dims = v.len(),
                                field_dims = field.dims,
                                "collaborative vector of another dimension; source skipped"
                            );
                            continue;
                        }
                        None => continue,
                    }
                }
                Source::Vector(v) => (PlanKind::Knn(v.clone()), SourceKind::QueryVector),
                Source::Session(v) => (PlanKind::Knn(v.clone()), SourceKind::Session),
                Source::LongTerm(v) => (PlanKind::Knn(v.clone()), SourceKind::LongTerm),
                Source::Text { text, vector } => (
                    PlanKind::Text(text.clone(), vector.clone()),
                    SourceKind::QueryText,
                ),
                Source::SimilarItem(id) => {
                    exclude.insert(id.clone());
                    (PlanKind::Knn(stored[id].clone()), SourceKind::SimilarItem)
                }
                Source::Examples {
                    positive,
                    negative,
                    negative_weight,
                } => {
                    let v = self.examples_vector(positive, negative, *negative_weight, stored)?;
                    exclude.extend(positive.iter().chain(negative).cloned());
                    (PlanKind::Knn(v), SourceKind::Examples)
                }
                Source::Popular => (PlanKind::Popular, SourceKind::Popular),
                Source::History(items) => (PlanKind::InKeys(items.clone()), SourceKind::History),
            };
            plans.push(Plan { kind, source });
        }
        if plans.is_empty() {
            plans.push(Plan {
                kind: PlanKind::Popular,
                source: SourceKind::Popular,
            });
        }
        Ok(plans)
    }

    /// `mean(positive) - negative_weight * mean(negative)`, normalised.
    fn examples_vector(
        &self,
        positive: &[String],
        negative: &[String],
        negative_weight: f32,
        stored: &BTreeMap<String, Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let mut v = mean(positive.iter().map(|id| &stored[id]), self.dims);
        if !negative.is_empty() {
            let n = mean(negative.iter().map(|id| &stored[id]), self.dims);
            for (x, y) in v.iter_mut().zip(&n) {
                *x -= negative_weight * y;
            }
        }
        vector::normalize(&mut v)
            .map_err(|_| bad_query("positive and negative examples cancel out (zero vector)"))?;
        Ok(v)
    }

    /// Runs the search pipeline and merges its lists into at most `k` candidates (with their
    /// vectors from the KNN and popular pages when `vectors`); sends it again once, larger, when
    /// exclusions cost results and a list was cut short.
    pub(super) async fn search(
        &self,
        plans: &[Plan],
        target: &Target<'_>,
        exclude: &BTreeSet<String>,
        post: Option<&Filter>,
        (k, vectors, kept): (usize, bool, f64),
    ) -> Result<Searched> {
        // Over-fetch so that exclusions still leave k: all of a small exclusion set, or 2k; and
        // by 1/kept (with a quarter and 10 more: near the query the share may be lower than
        // over the catalog) when `post` is expected to keep only that share.
        let max_fetch = self.config.max_k.max(k);
        let base = k + exclude.len().min(2 * k);
        let mut fetch = if kept < 1.0 {
            (base as f64 * 1.25 / kept.max(0.01)).ceil() as usize + 10
        } else {
            base
        }
        .min(max_fetch);
        let mut searched = Searched {
            merged: Merged::default(),
            round_trips: 0,
            retried: false,
            partial: false,
            fusion: FusionPath::None,
        };
        loop {
            let round = self.search_round(plans, fetch, target, vectors).await?;
            searched.round_trips += 1;
            searched.partial |= round.partial;
            searched.fusion = round.fusion;
            let mut lists = round.lists;
            let dropped = match post {
                Some(f) => self.drop_excluded(&mut lists, f),
                None => 0,
            };
            let mut merged = merge(lists, exclude, k);
            merged.excluded += dropped;
            let want_more = merged.candidates.len() < k && merged.excluded > 0 && round.full;
            let next = (k + exclude.len()).max(fetch * 4).min(max_fetch);
            if want_more && !searched.retried && next > fetch {
                tracing::debug!(
                    fetch,
                    next,
                    excluded = merged.excluded,
                    "retrying with larger k"
                );
                fetch = next;
                searched.retried = true;
                continue;
            }
            searched.merged = merged;
            return Ok(searched);
        }
    }

    /// Removes the entries `exclusion` does not keep, judged on their returned fields (the
    /// fields the exclusion names are read with every hit); returns how many went.
    fn drop_excluded(&self, lists: &mut [RankedList], exclusion: &Filter) -> usize {
        let mut names = BTreeSet::new();
        filter_fields(exclusion, &mut names);
        let rows: Vec<BTreeMap<String, String>> = lists
            .iter()
            .flat_map(|l| &l.entries)
            .map(|e| {
                names
                    .iter()
                    .filter_map(|n| e.fields.get(*n).map(|v| ((*n).to_owned(), v.clone())))
                    .collect()
            })
            .collect();
        let Some(keep) = FieldSample::new(&self.schema, rows).keeps(exclusion) else {
            return 0;
        };
        let mut keep = keep.into_iter();
        let mut dropped = 0;
        for list in lists.iter_mut() {
            list.entries.retain(|_| {
                let kept = keep.next().unwrap_or(true);
                dropped += usize::from(!kept);
                kept
            });
        }
        dropped
    }

    /// Sends every planned query, each fetching `fetch`, in one pipeline and turns the replies
    /// into ranked lists.
    async fn search_round(
        &self,
        plans: &[Plan],
        fetch: usize,
        target: &Target<'_>,
        vectors: bool,
    ) -> Result<Round> {
        let built = self.round_pipeline(plans, fetch, target, vectors)?;
        let replies = self.run(&built.pipe).await?;
        if replies.len() != built.commands {
            return Err(Error::protocol(format!(
                "pipeline of {} commands returned {} replies",
                built.commands,
                replies.len()
            )));
        }
        let mut round = Round {
            lists: Vec::new(),
            partial: false,
            fusion: built.fusion,
            full: false,
        };
        for slot in &built.slots {
            self.read_slot(slot, fetch, &replies, &mut round)?;
        }
        Ok(round)
    }

    fn round_pipeline(
        &self,
        plans: &[Plan],
        fetch: usize,
        target: &Target<'_>,
        vectors: bool,
    ) -> Result<RoundPipeline> {
        // KNN and popular pages carry the vectors when asked; text and history pages do not
        // (their entries are rebuilt from fields; `hydrate` reads what is missing).
        let with_vectors = self.projection(vectors);
        let plain = self.projection(false);
        let mut p = RoundPipeline {
            pipe: redis::pipe(),
            commands: 0,
            slots: Vec::new(),
            fusion: FusionPath::None,
        };
        for plan in plans {
            let slot = match &plan.kind {
                PlanKind::Knn(v) => {
                    let mut q = self.knn(target, v.clone(), fetch);
                    q.projection = with_vectors.clone();
                    Slot::Knn(plan.source, p.add(q.args()?), self.metric)
                }
                PlanKind::CfKnn(v, field) => {
                    let mut q = self.knn_on(target, &field.name, field.hnsw, v.clone(), fetch);
                    q.projection = with_vectors.clone();
                    Slot::Knn(plan.source, p.add(q.args()?), field.metric)
                }
                PlanKind::Popular => {
                    let q = SortedQuery {
                        index: target.index.to_owned(),
                        filter: target.filter.to_owned(),
                        sort_field: self.fields.popularity.clone(),
                        descending: true,
                        offset: 0,
                        limit: fetch,
                        projection: with_vectors.clone(),
                        timeout_ms: self.timeout(),
                    };
                    Slot::Popular(p.add(q.args()))
                }
                PlanKind::Text(text, v) => self.add_text(&mut p, text, v, fetch, target)?,
                PlanKind::InKeys(items) if items.is_empty() => Slot::History {
                    index: None,
                    items: Vec::new(),
                },
                PlanKind::InKeys(items) => {
                    let q = InKeysQuery {
                        index: target.index.to_owned(),
                        filter: target.filter.to_owned(),
                        keys: items.iter().map(|(id, _)| self.ns.item(id)).collect(),
                        projection: plain.clone(),
                        timeout_ms: self.timeout(),
                    };
                    Slot::History {
                        index: Some(p.add(q.args()?)),
                        items: items.clone(),
                    }
                }
            };
            p.slots.push(slot);
        }
        Ok(p)
    }

    /// A text source: `FT.HYBRID` when the server has it and the config allows it, else BM25
    /// and KNN over a window of at least `fetch`, fused here.
    fn add_text(
        &self,
        p: &mut RoundPipeline,
        text: &str,
        v: &[f32],
        fetch: usize,
        target: &Target<'_>,
    ) -> Result<Slot> {
        let expr = lexical_expression(Some(&self.fields.text), text)?;
        let window = self.config.fusion.window().max(fetch);
        if let (Some(syntax), true) = (self.hybrid, self.config.use_ft_hybrid) {
            let q = HybridQuery {
                index: target.index.to_owned(),
                text: expr,
                filter: target.filter.to_owned(),
                vector_field: self.fields.vector.clone(),
                vector: v.to_vec(),
                ef_runtime: self.hnsw.then(|| self.ef_runtime_for(fetch)),
                fusion: with_window(self.config.fusion, window),
                limit: fetch,
                load: self.return_fields.clone(),
                policy: target.policy,
                timeout_ms: self.timeout(),
            };
            p.fusion = FusionPath::Server(syntax);
            return Ok(Slot::ServerText(p.add(q.args(syntax)?)));
        }
        let t = TextQuery {
            index: target.index.to_owned(),
            text: expr,
            filter: target.filter.to_owned(),
            limit: window,
            scorer: self.config.text_scorer.clone(),
            projection: self.projection(false),
            timeout_ms: self.timeout(),
        };
        let text_slot = p.add(t.args());
        let knn_slot = p.add(self.knn(target, v.to_vec(), window).args()?);
        p.fusion = FusionPath::Client;
        Ok(Slot::ClientText {
            text: text_slot,
            knn: knn_slot,
            fetch,
        })
    }

    /// Reads one slot's replies into `round` as one ranked list.
    fn read_slot(
        &self,
        slot: &Slot,
        fetch: usize,
        replies: &[Value],
        round: &mut Round,
    ) -> Result<()> {
        let mut page_of = |i: usize, shape: Shape| -> Result<Page> {
            let page = parse_search(&replies[i], shape)?;
            if !page.warnings.is_empty() {
                tracing::warn!(warnings = ?page.warnings, "partial search results");
                round.partial = true;
            }
            Ok(page)
        };
        let (list, full) = match *slot {
            Slot::Knn(source, i, metric) => {
                let page = page_of(i, WITH_FIELDS)?;
                let full = page.hits.len() >= fetch;
                (self.vector_list(source, page, metric), full)
            }
            Slot::Popular(i) => {
                let page = page_of(i, WITH_FIELDS)?;
                let full = page.hits.len() >= fetch;
                (self.popular_list(page), full)
            }
            Slot::ClientText { text, knn, fetch } => {
                let text_shape = Shape {
                    with_scores: true,
                    with_content: self.config.fetch == FetchMode::Return,
                };
                let tpage = page_of(text, text_shape)?;
                let vpage = page_of(knn, WITH_FIELDS)?;
                let full = tpage.hits.len() >= fetch || vpage.hits.len() >= fetch;
                (self.client_fused(tpage, vpage, fetch), full)
            }
            Slot::History { index, ref items } => {
                let page = match index {
                    None => Page::default(),
                    Some(i) => page_of(
                        i,
                        Shape {
                            with_scores: false,
                            with_content: self.config.fetch == FetchMode::Return,
                        },
                    )?,
                };
                // every history item that passes the filter came back: nothing more to fetch
                let list = crate::history::history_list(page, items, fetch, |k| self.id_of(k));
                (list, false)
            }
            Slot::ServerText(i) => {
                let page = parse_hybrid(&replies[i])?;
                if !page.warnings.is_empty() {
                    tracing::warn!(warnings = ?page.warnings, "partial hybrid results");
                    round.partial = true;
                }
                let full = page.hits.len() >= fetch;
                (self.server_fused(page), full)
            }
        };
        round.full |= full;
        round.lists.push(list);
        Ok(())
    }

    /// The last round trip, only when needed: the winners' fields (ids-then-fetch mode) and/or
    /// vectors (`with_vectors`). Returns whether it ran.
    pub(super) async fn hydrate(
        &self,
        candidates: &mut [Candidate],
        with_vectors: bool,
    ) -> Result<bool> {
        let need_fields = self.config.fetch == FetchMode::IdsThenHmget;
        // vectors usually came with the search (KNN and popular pages); read only the rest
        let with_vectors = with_vectors && candidates.iter().any(|c| c.vector.is_none());
        if !(need_fields || with_vectors) || candidates.is_empty() {
            return Ok(false);
        }
        let mut wanted: Vec<String> = Vec::new();
        if need_fields {
            wanted.extend(self.return_fields.iter().cloned());
        }
        if with_vectors {
            wanted.push(self.fields.vector.clone());
        }
        // every candidate when fields are needed, else only those still without a vector
        let mut pipe = redis::pipe();
        let mut targets: Vec<&mut Candidate> = candidates
            .iter_mut()
            .filter(|c| need_fields || c.vector.is_none())
            .collect();
        for c in &targets {
            pipe.cmd("HMGET").arg(self.ns.item(&c.id)).arg(&wanted);
        }
        let replies = self.run(&pipe).await?;
        for (c, r) in targets.iter_mut().zip(&replies) {
            let values = parse_hmget(r)?;
            for (name, value) in wanted.iter().zip(values) {
                let Some(value) = value else { continue };
                if with_vectors && *name == self.fields.vector {
                    c.vector = vector::decode(value).ok();
                } else {
                    c.fields
                        .insert(name.clone(), String::from_utf8_lossy(value).into_owned());
                }
            }
        }
        Ok(true)
    }
}

pub(super) fn bad_query(message: impl Into<String>) -> Error {
    Error::BadQuery(redrec_core::Error::Query {
        message: message.into(),
    })
}

fn mean<'a>(vs: impl Iterator<Item = &'a Vec<f32>>, dims: usize) -> Vec<f32> {
    let mut sum = vec![0f32; dims];
    let mut n = 0;
    for v in vs {
        n += 1;
        for (s, x) in sum.iter_mut().zip(v) {
            *s += x;
        }
    }
    if n > 0 {
        for s in &mut sum {
            *s /= n as f32;
        }
    }
    sum
}

/// The field names `filter` reads.
pub(super) fn filter_fields<'a>(filter: &'a Filter, out: &mut BTreeSet<&'a str>) {
    match filter {
        Filter::All | Filter::Text(_) => {}
        Filter::Tag(t) => {
            out.insert(&t.field);
        }
        Filter::Range(r) => {
            out.insert(&r.field);
        }
        Filter::And(children) | Filter::Or(children) => {
            for c in children {
                filter_fields(c, out);
            }
        }
        Filter::Not(child) => filter_fields(child, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_vectors() {
        let a = vec![1.0, 0.0];
        let b = vec![0.0, 1.0];
        assert_eq!(mean([&a, &b].into_iter(), 2), vec![0.5, 0.5]);
    }
}
