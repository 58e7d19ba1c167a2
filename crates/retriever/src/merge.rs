//! Merging the ranked lists of several candidate sources into one candidate list: dedupe by item
//! id, keep every source's hit (best similarity first), drop excluded ids, and order items by
//! reciprocal-rank fusion over the lists (scale-free, so cosine similarities, BM25 scores and
//! popularity can be combined), ties broken by best similarity, then id. Items found by the
//! `history` source (the user's own purchases, at most `history_read` of them) are kept even
//! beyond `k`: RRF against several long KNN lists would otherwise cut the very items a
//! repeat-purchase profile ranks first.
//!
//! Pure computation: no Redis here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use redrec_core::candidate::{Candidate, SourceHit, SourceKind};

/// Rank constant of the cross-source fusion (the common RRF default).
pub const MERGE_RRF_CONSTANT: f64 = 60.0;

/// One entry of a source's ranked list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListEntry {
    pub id: String,
    /// The hits this entry stands for (one, or two for a fused text+vector entry).
    pub hits: Vec<SourceHit>,
    pub fields: BTreeMap<String, String>,
    /// The item's vector, when the search returned it (see `Retriever::projection`).
    pub vector: Option<Vec<f32>>,
}

/// A source's list, best first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RankedList {
    pub entries: Vec<ListEntry>,
}

/// The merged result.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Merged {
    pub candidates: Vec<Candidate>,
    /// How many list entries were dropped because their id is excluded.
    pub excluded: usize,
}

/// Merges `lists` into at most `k` candidates (plus the `history` items beyond them), skipping
/// ids in `exclude`. Consumes the lists: ids, fields and vectors move into the candidates (the
/// first list that has an item gives each field; later lists only add fields it lacked).
pub fn merge(lists: Vec<RankedList>, exclude: &BTreeSet<String>, k: usize) -> Merged {
    let mut order: Vec<(Candidate, f64)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut excluded = 0;
    for list in lists {
        for (rank, e) in list.entries.into_iter().enumerate() {
            if exclude.contains(&e.id) {
                excluded += 1;
                continue;
            }
            let ListEntry {
                id,
                hits,
                fields,
                vector,
            } = e;
            let i = match index.get(&id) {
                Some(&i) => i,
                None => {
                    order.push((
                        Candidate {
                            id: id.clone(),
                            fields: BTreeMap::new(),
                            vector: None,
                            sources: Vec::new(),
                        },
                        0.0,
                    ));
                    index.insert(id, order.len() - 1);
                    order.len() - 1
                }
            };
            let (cand, score) = &mut order[i];
            *score += 1.0 / (MERGE_RRF_CONSTANT + rank as f64 + 1.0);
            for h in hits {
                match cand.sources.iter_mut().find(|s| s.source == h.source) {
                    // the same source twice (two lists of one kind): keep its better hit
                    Some(s) if s.similarity >= h.similarity => {}
                    Some(s) => *s = h,
                    None => cand.sources.push(h),
                }
            }
            if cand.vector.is_none() {
                cand.vector = vector;
            }
            if cand.fields.is_empty() {
                cand.fields = fields;
            } else {
                for (k, v) in fields {
                    cand.fields.entry(k).or_insert(v);
                }
            }
        }
    }
    for (c, _) in &mut order {
        c.sources.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.source.cmp(&b.source))
        });
    }
    order.sort_by(|(a, sa), (b, sb)| {
        sb.total_cmp(sa)
            .then_with(|| b.best_similarity().total_cmp(&a.best_similarity()))
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut candidates = Vec::with_capacity(k.min(order.len()));
    for (i, (c, _)) in order.into_iter().enumerate() {
        if i < k || c.sources.iter().any(|s| s.source == SourceKind::History) {
            candidates.push(c);
        }
    }
    Merged {
        candidates,
        excluded,
    }
}

/// A list from plain `(id, similarity)` pairs of one source (used by tests and simple sources).
pub fn list_of(source: SourceKind, items: &[(&str, f32)]) -> RankedList {
    RankedList {
        entries: items
            .iter()
            .enumerate()
            .map(|(rank, (id, sim))| ListEntry {
                id: (*id).to_owned(),
                hits: vec![SourceHit {
                    source,
                    rank: rank as u32,
                    similarity: *sim,
                }],
                fields: BTreeMap::new(),
                vector: None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupes_keeps_all_sources_and_excludes() {
        let session = list_of(SourceKind::Session, &[("a", 0.9), ("b", 0.8), ("c", 0.7)]);
        let query = list_of(
            SourceKind::QueryVector,
            &[("c", 0.95), ("d", 0.6), ("a", 0.5)],
        );
        let exclude: BTreeSet<String> = ["d".to_owned()].into();
        let m = merge(vec![session, query], &exclude, 10);
        assert_eq!(m.excluded, 1);
        let ids: Vec<&str> = m.candidates.iter().map(|c| c.id.as_str()).collect();
        // a: 1/61 + 1/63 ; c: 1/63 + 1/61 (tie, c has the better similarity) ; b: 1/62
        assert_eq!(ids, ["c", "a", "b"]);
        let c = &m.candidates[0];
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.sources[0].source, SourceKind::QueryVector);
        assert_eq!(c.best_similarity(), 0.95);
        let a = &m.candidates[1];
        assert_eq!(a.sources[0].source, SourceKind::Session);
        assert_eq!(a.sources[0].similarity, 0.9);
    }

    #[test]
    fn keeps_history_items_beyond_k() {
        let session = list_of(SourceKind::Session, &[("a", 0.9), ("b", 0.8), ("c", 0.7)]);
        let history = list_of(SourceKind::History, &[("x", 1.0), ("y", 0.5)]);
        let exclude: BTreeSet<String> = ["y".to_owned()].into();
        let m = merge(vec![session, history], &exclude, 2);
        let ids: Vec<&str> = m.candidates.iter().map(|c| c.id.as_str()).collect();
        // a and x tie at 1/61 (x has the better similarity), b is cut at k = 2, y is excluded
        assert_eq!(ids, ["x", "a"]);
        let m = merge(
            vec![
                list_of(SourceKind::Session, &[("a", 0.9), ("b", 0.8)]),
                list_of(SourceKind::History, &[("x", 1.0)]),
            ],
            &BTreeSet::new(),
            1,
        );
        let ids: Vec<&str> = m.candidates.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["x"]);
        let m = merge(
            vec![
                list_of(SourceKind::Session, &[("a", 0.9)]),
                list_of(SourceKind::History, &[("b", 0.2), ("x", 0.1)]),
            ],
            &BTreeSet::new(),
            1,
        );
        let ids: Vec<&str> = m.candidates.iter().map(|c| c.id.as_str()).collect();
        // k = 1 keeps the best RRF item (a, tied with b but more similar); history items stay
        assert_eq!(ids, ["a", "b", "x"]);
    }

    #[test]
    fn keeps_the_best_hit_of_a_repeated_source_and_truncates() {
        let one = list_of(SourceKind::Session, &[("a", 0.4), ("b", 0.3)]);
        let two = list_of(SourceKind::Session, &[("a", 0.7)]);
        let m = merge(vec![one, two], &BTreeSet::new(), 1);
        assert_eq!(m.candidates.len(), 1);
        assert_eq!(m.candidates[0].sources.len(), 1);
        assert_eq!(m.candidates[0].sources[0].similarity, 0.7);
    }
}
