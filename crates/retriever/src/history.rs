//! The `history` candidate source: the user's own purchases that pass the request's filter,
//! ranked by time-decayed purchase count.
//!
//! Why `FT.SEARCH ... INKEYS` and not filter evaluation on fetched fields: the server evaluates
//! the filter with exactly the semantics every other source gets (TAG case folding and
//! separators, numeric bounds, text matching, fields renamed by a migration), in the same
//! pipeline as the other sources, so the source costs no extra round trip. A client-side
//! evaluator would be a second implementation of the filter language that can drift from
//! RediSearch's, and it would need an `HMGET` round trip for the fields anyway. The history is
//! short (at most `history_read` ids), so `INKEYS` with `LIMIT 0 n` returns every match and the
//! ranking by purchase count happens here.

use std::collections::HashMap;

use redrec_core::candidate::{SourceHit, SourceKind};
use redrec_core::user::UserFeatures;

use crate::merge::{ListEntry, RankedList};
use redrec_core::reply::Page;

/// The user's purchase history as `(item id, score)` pairs, score = decayed purchase count
/// over the user's largest (in `(0, 1]`), largest first. Empty when the user bought nothing.
pub fn history_items(user: &UserFeatures) -> Vec<(String, f32)> {
    let top = user.top_purchase_score();
    if top <= 0.0 {
        return Vec::new();
    }
    let mut items: Vec<(String, f32)> = user
        .purchases
        .iter()
        .filter(|p| p.score.is_finite() && p.score > 0.0)
        .map(|p| (p.item_id.clone(), (p.score / top) as f32))
        .collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    items
}

/// Ranks the items of an `INKEYS` reply by their history score (ties by id), at most `fetch`.
pub(crate) fn history_list(
    page: Page,
    scores: &[(String, f32)],
    fetch: usize,
    id_of: impl Fn(&str) -> String,
) -> RankedList {
    let score: HashMap<&str, f32> = scores.iter().map(|(id, s)| (id.as_str(), *s)).collect();
    let mut found: Vec<(String, f32, _)> = page
        .hits
        .into_iter()
        .filter_map(|h| {
            let id = id_of(&h.key);
            let s = *score.get(id.as_str())?;
            Some((id, s, h.fields))
        })
        .collect();
    found.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    RankedList {
        entries: found
            .into_iter()
            .take(fetch)
            .enumerate()
            .map(|(rank, (id, similarity, fields))| ListEntry {
                id,
                hits: vec![SourceHit {
                    source: SourceKind::History,
                    rank: rank as u32,
                    similarity,
                }],
                fields,
                vector: None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use redrec_core::user::PurchaseFrequency;

    use super::*;
    use redrec_core::reply::Hit;

    #[test]
    fn scores_are_relative_to_the_largest_purchase_count() {
        let user = UserFeatures {
            purchases: vec![
                PurchaseFrequency {
                    item_id: "b".into(),
                    score: 1.0,
                    count: 0.0,
                },
                PurchaseFrequency {
                    item_id: "a".into(),
                    score: 4.0,
                    count: 0.0,
                },
                PurchaseFrequency {
                    item_id: "z".into(),
                    score: f64::NAN,
                    count: 0.0,
                },
            ],
            ..UserFeatures::default()
        };
        assert_eq!(
            history_items(&user),
            vec![("a".to_owned(), 1.0), ("b".to_owned(), 0.25)]
        );
        assert!(history_items(&UserFeatures::default()).is_empty());
    }

    #[test]
    fn ranks_the_filtered_items_by_score() {
        let hit = |key: &str| Hit {
            key: key.into(),
            score: None,
            fields: BTreeMap::from([("category".to_owned(), "MILK".to_owned())]),
            vector: None,
        };
        // the server returned c and a (b did not pass the filter), in index order
        let page = Page {
            total: 2,
            hits: vec![hit("ns:item:c"), hit("ns:item:a")],
            warnings: vec![],
        };
        let scores = vec![
            ("a".to_owned(), 1.0),
            ("b".to_owned(), 0.9),
            ("c".to_owned(), 0.5),
        ];
        let list = history_list(page, &scores, 10, |k| {
            k.trim_start_matches("ns:item:").to_owned()
        });
        let got: Vec<(&str, u32, f32)> = list
            .entries
            .iter()
            .map(|e| (e.id.as_str(), e.hits[0].rank, e.hits[0].similarity))
            .collect();
        assert_eq!(got, [("a", 0, 1.0), ("c", 1, 0.5)]);
        assert_eq!(list.entries[0].fields["category"], "MILK");
    }
}
