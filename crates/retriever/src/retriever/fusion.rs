//! Text sources: a BM25 page and a KNN page fused here (RRF or linear, `redrec_core::hybrid`),
//! or the server's `FT.HYBRID` page, as one ranked list whose entries carry a `Lexical` and/or
//! a `QueryText` hit.

use std::collections::BTreeMap;

use redrec_core::candidate::{SourceHit, SourceKind};
use redrec_core::hybrid::{FusedHit, Fusion, RankedHit, fuse};

use super::Retriever;
use crate::merge::{ListEntry, RankedList};
use redrec_core::reply::Page;

impl Retriever {
    /// Fuses a BM25 page and a KNN page with the configured fusion into one list of at most
    /// `fetch` entries.
    pub(super) fn client_fused(&self, text: Page, vector: Page, fetch: usize) -> RankedList {
        let mut fields: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let text_hits: Vec<RankedHit> = text
            .hits
            .into_iter()
            .map(|h| {
                let id = self.id_of(&h.key);
                fields.entry(id.clone()).or_insert(h.fields);
                RankedHit {
                    id,
                    score: h.score.unwrap_or(0.0),
                }
            })
            .collect();
        let vector_hits: Vec<RankedHit> = vector
            .hits
            .into_iter()
            .map(|mut h| {
                let id = self.id_of(&h.key);
                let similarity = Self::take_similarity(&mut h, self.metric);
                fields.entry(id.clone()).or_insert(h.fields);
                RankedHit {
                    id,
                    score: f64::from(similarity),
                }
            })
            .collect();
        let fused = fuse(&self.config.fusion, &text_hits, &vector_hits);
        RankedList {
            entries: fused
                .into_iter()
                .take(fetch)
                .map(|f| fused_entry(f, &mut fields))
                .collect(),
        }
    }

    /// The server's `FT.HYBRID` page: its fused score is the similarity.
    pub(super) fn server_fused(&self, page: Page) -> RankedList {
        self.ranked_list(page, SourceKind::QueryText, |h| {
            h.score.unwrap_or(0.0) as f32
        })
    }
}

fn fused_entry(f: FusedHit, fields: &mut BTreeMap<String, BTreeMap<String, String>>) -> ListEntry {
    let mut hits = Vec::new();
    if let Some((rank, score)) = f.text {
        hits.push(SourceHit {
            source: SourceKind::Lexical,
            rank,
            similarity: score as f32,
        });
    }
    if let Some((rank, sim)) = f.vector {
        hits.push(SourceHit {
            source: SourceKind::QueryText,
            rank,
            similarity: sim as f32,
        });
    }
    ListEntry {
        fields: fields.remove(&f.id).unwrap_or_default(),
        id: f.id,
        hits,
        vector: None,
    }
}

/// `f` with its candidate window set to `window`.
pub(super) fn with_window(f: Fusion, window: usize) -> Fusion {
    match f {
        Fusion::Rrf { constant, .. } => Fusion::Rrf { constant, window },
        Fusion::Linear { alpha, beta, .. } => Fusion::Linear {
            alpha,
            beta,
            window,
        },
    }
}
