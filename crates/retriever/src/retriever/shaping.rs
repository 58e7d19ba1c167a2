//! Search pages into ranked lists: item ids from keys, similarities from distances (in the
//! index metric) or from popularity scaled to the page's best.

use redrec_core::candidate::{SourceHit, SourceKind};
use redrec_core::query::DISTANCE_ALIAS;
use redrec_core::schema::DistanceMetric;
use redrec_core::vector;

use super::Retriever;
use crate::merge::{ListEntry, RankedList};
use redrec_core::reply::{Hit, Page};

impl Retriever {
    /// The vector a hit returned, decoded; `None` when it returned none or a blob that is not
    /// a vector of the index's dimension (`hydrate` then reads it with `HMGET`).
    pub(super) fn hit_vector(&self, hit: &mut Hit) -> Option<Vec<f32>> {
        let blob = hit.vector.take()?;
        vector::decode(&blob).ok().filter(|v| v.len() == self.dims)
    }

    pub(super) fn id_of(&self, key: &str) -> String {
        self.ns.item_id(key).unwrap_or(key).to_owned()
    }

    /// The similarity of a KNN hit, taking its distance (in `metric`) out of the hit's fields
    /// (an unreadable distance ranks as far as possible).
    pub(super) fn take_similarity(hit: &mut Hit, metric: DistanceMetric) -> f32 {
        let distance = hit
            .fields
            .remove(DISTANCE_ALIAS)
            .and_then(|d| d.parse::<f32>().ok())
            .unwrap_or(f32::MAX);
        metric.similarity(distance)
    }

    pub(super) fn vector_list(
        &self,
        source: SourceKind,
        page: Page,
        metric: DistanceMetric,
    ) -> RankedList {
        self.ranked_list(page, source, |h| Self::take_similarity(h, metric))
    }

    /// A page as a list of one-hit entries, best first, each hit's similarity read by `similarity`.
    pub(super) fn ranked_list(
        &self,
        page: Page,
        source: SourceKind,
        similarity: impl Fn(&mut Hit) -> f32,
    ) -> RankedList {
        RankedList {
            entries: page
                .hits
                .into_iter()
                .enumerate()
                .map(|(rank, mut h)| ListEntry {
                    id: self.id_of(&h.key),
                    hits: vec![SourceHit {
                        source,
                        rank: rank as u32,
                        similarity: similarity(&mut h),
                    }],
                    vector: self.hit_vector(&mut h),
                    fields: h.fields,
                })
                .collect(),
        }
    }

    pub(super) fn popular_list(&self, page: Page) -> RankedList {
        let pop = |h: &Hit| {
            h.fields
                .get(&self.fields.popularity)
                .and_then(|p| p.parse::<f64>().ok())
                .filter(|p| p.is_finite())
                .unwrap_or(0.0)
        };
        let max = page.hits.iter().map(pop).fold(0.0, f64::max);
        RankedList {
            entries: page
                .hits
                .into_iter()
                .enumerate()
                .map(|(rank, mut h)| ListEntry {
                    id: self.id_of(&h.key),
                    vector: self.hit_vector(&mut h),
                    hits: vec![SourceHit {
                        source: SourceKind::Popular,
                        rank: rank as u32,
                        similarity: if max > 0.0 {
                            (pop(&h) / max) as f32
                        } else {
                            0.0
                        },
                    }],
                    fields: h.fields,
                })
                .collect(),
        }
    }
}
