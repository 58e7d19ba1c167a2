//! Text + vector fusion: the client-side fusion (RRF or linear) used where the server lacks
//! `FT.HYBRID`, and the `FT.HYBRID` argument builder for servers that have it (Redis 8.4+).
//!
//! `FT.HYBRID` changed its vector pre-filter syntax after 8.4.0: up to RediSearch 8.4.2 the VSIM
//! clause takes `FILTER <expr>`; from 8.4.3 it takes a counted block
//! `FILTER <count> <expr> [POLICY ADHOC|BATCHES] [BATCH_SIZE <n>]`. [`HybridSyntax`] picks the
//! variant from the module version reported by `MODULE LIST`.

use serde::{Deserialize, Serialize};

use crate::query::{Arg, HybridPolicy, SearchArgs};
use crate::vector;
use crate::{Error, Result};

/// How text and vector result lists are combined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fusion {
    /// Reciprocal Rank Fusion: `sum 1 / (constant + rank)`, ranks from 1, over the top `window`
    /// of each list.
    Rrf { constant: f64, window: usize },
    /// `alpha * text + beta * vector`, with the text score divided by the best text score in the
    /// window (so it lies in 0..=1) and the vector side a similarity (distance converted).
    Linear {
        alpha: f64,
        beta: f64,
        window: usize,
    },
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf {
            constant: 60.0,
            window: 20,
        }
    }
}

impl Fusion {
    pub fn window(&self) -> usize {
        match *self {
            Fusion::Rrf { window, .. } | Fusion::Linear { window, .. } => window,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |message: String| Err(Error::Query { message });
        if self.window() == 0 {
            return bad("fusion window must be at least 1".into());
        }
        match *self {
            Fusion::Rrf { constant, .. } if !(constant.is_finite() && constant >= 0.0) => bad(
                format!("RRF constant is {constant}, expected a number >= 0"),
            ),
            Fusion::Linear { alpha, beta, .. }
                if !(alpha.is_finite() && beta.is_finite() && alpha >= 0.0 && beta >= 0.0) =>
            {
                bad(format!(
                    "linear fusion weights alpha={alpha} beta={beta}, expected numbers >= 0"
                ))
            }
            _ => Ok(()),
        }
    }
}

/// One entry of a ranked list, best first; `score` is larger-is-better (BM25 score for text,
/// similarity for vectors).
#[derive(Debug, Clone, PartialEq)]
pub struct RankedHit {
    pub id: String,
    pub score: f64,
}

/// A fused entry with where it stood in each input list (0-based ranks).
#[derive(Debug, Clone, PartialEq)]
pub struct FusedHit {
    pub id: String,
    pub score: f64,
    pub text: Option<(u32, f64)>,
    pub vector: Option<(u32, f64)>,
}

/// Fuses a text list and a vector list (each best first) into one list, best first. Ties are
/// broken by the better single-list rank, then by id, so the order is deterministic.
pub fn fuse(fusion: &Fusion, text: &[RankedHit], vector: &[RankedHit]) -> Vec<FusedHit> {
    let window = fusion.window();
    let text = &text[..text.len().min(window)];
    let vector = &vector[..vector.len().min(window)];
    let mut out: Vec<FusedHit> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut entry = |id: &str, out: &mut Vec<FusedHit>| -> usize {
        *index.entry(id.to_owned()).or_insert_with(|| {
            out.push(FusedHit {
                id: id.to_owned(),
                score: 0.0,
                text: None,
                vector: None,
            });
            out.len() - 1
        })
    };
    let max_text = text
        .iter()
        .map(|h| h.score)
        .fold(f64::NEG_INFINITY, f64::max);
    for (rank, h) in text.iter().enumerate() {
        let i = entry(&h.id, &mut out);
        if out[i].text.is_some() {
            continue; // a duplicate id in one list counts once, at its best rank
        }
        out[i].text = Some((rank as u32, h.score));
        out[i].score += match *fusion {
            Fusion::Rrf { constant, .. } => 1.0 / (constant + rank as f64 + 1.0),
            Fusion::Linear { alpha, .. } => {
                let norm = if max_text > 0.0 {
                    (h.score / max_text).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                alpha * norm
            }
        };
    }
    for (rank, h) in vector.iter().enumerate() {
        let i = entry(&h.id, &mut out);
        if out[i].vector.is_some() {
            continue;
        }
        out[i].vector = Some((rank as u32, h.score));
        out[i].score += match *fusion {
            Fusion::Rrf { constant, .. } => 1.0 / (constant + rank as f64 + 1.0),
            Fusion::Linear { beta, .. } => beta * h.score.clamp(0.0, 1.0),
        };
    }
    let best_rank = |h: &FusedHit| {
        h.text
            .map(|t| t.0)
            .into_iter()
            .chain(h.vector.map(|v| v.0))
            .min()
            .unwrap_or(u32::MAX)
    };
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| best_rank(a).cmp(&best_rank(b)))
            .then_with(|| a.id.cmp(&b.id))
    });
    out
}

/// Which `FT.HYBRID` argument syntax the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HybridSyntax {
    /// RediSearch 8.4.0 - 8.4.2: `VSIM ... FILTER <expr>`.
    V8_4_0,
    /// RediSearch 8.4.3 and later: `VSIM ... FILTER <count> <expr> [POLICY ..] [BATCH_SIZE ..]`.
    V8_4_3,
}

impl HybridSyntax {
    /// The syntax for a Search module version as `MODULE LIST` reports it (8.4.3 is `80403`);
    /// `None` below 8.4.0, where `FT.HYBRID` does not exist.
    pub fn for_module_version(version: u32) -> Option<HybridSyntax> {
        match version {
            v if v >= 80403 => Some(HybridSyntax::V8_4_3),
            v if v >= 80400 => Some(HybridSyntax::V8_4_0),
            _ => None,
        }
    }
}

/// An `FT.HYBRID` request: BM25 text search and filtered KNN, fused by the server.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridQuery {
    pub index: String,
    /// Text expression for the `SEARCH` side (see [`crate::query::lexical_expression`]).
    pub text: String,
    /// Rendered filter (`*` for none); applied to both sides.
    pub filter: String,
    pub vector_field: String,
    pub vector: Vec<f32>,
    pub ef_runtime: Option<u32>,
    pub fusion: Fusion,
    pub limit: usize,
    /// Fields to return with each result.
    pub load: Vec<String>,
    /// Only rendered with [`HybridSyntax::V8_4_3`] (the earlier syntax has no policy).
    pub policy: Option<HybridPolicy>,
    pub timeout_ms: Option<u64>,
}

impl HybridQuery {
    pub fn args(&self, syntax: HybridSyntax) -> Result<SearchArgs> {
        self.fusion.validate()?;
        if self.vector.is_empty() {
            return Err(Error::Query {
                message: "query vector is empty".into(),
            });
        }
        vector::validate(&self.vector, self.vector.len())?;
        let filter = self.filter.trim();
        let has_filter = !(filter.is_empty() || filter == "*");
        let mut a = SearchArgs::new("FT.HYBRID");
        a.push(self.index.as_str());
        let search = if has_filter {
            format!("{} ({filter})", self.text)
        } else {
            self.text.clone()
        };
        a.push("SEARCH").push(search);
        a.push("VSIM")
            .push(format!("@{}", self.vector_field))
            .push("$vec");
        let window = self.fusion.window();
        let mut knn = vec!["K".to_owned(), window.to_string()];
        if let Some(ef) = self.ef_runtime {
            knn.extend(["EF_RUNTIME".to_owned(), ef.to_string()]);
        }
        a.push("KNN").push(knn.len().to_string());
        for x in knn {
            a.push(x);
        }
        if has_filter {
            match syntax {
                HybridSyntax::V8_4_0 => {
                    a.push("FILTER").push(filter);
                }
                HybridSyntax::V8_4_3 => {
                    let mut block = vec![filter.to_owned()];
                    match self.policy {
                        None => {}
                        Some(HybridPolicy::AdhocBf) => {
                            block.extend(["POLICY".into(), "ADHOC".into()]);
                        }
                        Some(HybridPolicy::Batches { batch_size }) => {
                            block.extend(["POLICY".into(), "BATCHES".into()]);
                            if let Some(bs) = batch_size {
                                block.extend(["BATCH_SIZE".into(), bs.to_string()]);
                            }
                        }
                    }
                    a.push("FILTER").push(block.len().to_string());
                    for x in block {
                        a.push(x);
                    }
                }
            }
        }
        let combine: Vec<String> = match self.fusion {
            Fusion::Rrf { constant, window } => vec![
                "CONSTANT".into(),
                constant.to_string(),
                "WINDOW".into(),
                window.to_string(),
            ],
            Fusion::Linear {
                alpha,
                beta,
                window,
            } => vec![
                "ALPHA".into(),
                alpha.to_string(),
                "BETA".into(),
                beta.to_string(),
                "WINDOW".into(),
                window.to_string(),
            ],
        };
        a.push("COMBINE").push(match self.fusion {
            Fusion::Rrf { .. } => "RRF",
            Fusion::Linear { .. } => "LINEAR",
        });
        a.push(combine.len().to_string());
        for x in combine {
            a.push(x);
        }
        if !self.load.is_empty() {
            a.push("LOAD").push(self.load.len().to_string());
            for f in &self.load {
                a.push(format!("@{f}"));
            }
        }
        a.push("LIMIT").push("0").push(self.limit.to_string());
        a.push("PARAMS").push("2").push("vec");
        a.args.push(Arg::Blob(vector::encode(&self.vector)));
        if let Some(t) = self.timeout_ms {
            a.push("TIMEOUT").push(t.to_string());
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn hits(ids: &[&str]) -> Vec<RankedHit> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| RankedHit {
                id: (*id).to_owned(),
                score: 1.0 - i as f64 * 0.1,
            })
            .collect()
    }

    #[test]
    fn rrf_orders_a_hand_checked_example() {
        // text: a b c d ; vector: c a e
        // a: 1/61 + 1/62 = 0.032522 ; c: 1/63 + 1/61 = 0.032266 ; b: 1/62 = 0.016129
        // e: 1/63 = 0.015873 ; d: 1/64 = 0.015625
        let fused = fuse(
            &Fusion::default(),
            &hits(&["a", "b", "c", "d"]),
            &hits(&["c", "a", "e"]),
        );
        let order: Vec<&str> = fused.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(order, ["a", "c", "b", "e", "d"]);
        assert!((fused[0].score - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-12);
        assert_eq!(fused[0].text, Some((0, 1.0)));
        assert_eq!(fused[0].vector, Some((1, 0.9)));
        assert_eq!(fused[3].text, None);
    }

    #[test]
    fn window_cuts_each_list() {
        let f = Fusion::Rrf {
            constant: 60.0,
            window: 2,
        };
        let fused = fuse(&f, &hits(&["a", "b", "c"]), &hits(&["d", "e", "c"]));
        let order: Vec<&str> = fused.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(order, ["a", "d", "b", "e"]);
    }

    #[test]
    fn linear_uses_normalised_text_and_similarity() {
        let f = Fusion::Linear {
            alpha: 0.5,
            beta: 0.5,
            window: 10,
        };
        let text = vec![
            RankedHit {
                id: "a".into(),
                score: 8.0,
            },
            RankedHit {
                id: "b".into(),
                score: 2.0,
            },
        ];
        let vector = vec![
            RankedHit {
                id: "b".into(),
                score: 0.9,
            },
            RankedHit {
                id: "c".into(),
                score: 0.8,
            },
        ];
        // a: 0.5*1 = 0.5 ; b: 0.5*0.25 + 0.5*0.9 = 0.575 ; c: 0.4
        let fused = fuse(&f, &text, &vector);
        let got: Vec<(String, f64)> = fused
            .iter()
            .map(|h| (h.id.clone(), (h.score * 1000.0).round() / 1000.0))
            .collect();
        assert_eq!(
            got,
            [("b".into(), 0.575), ("a".into(), 0.5), ("c".into(), 0.4)]
        );
    }

    #[test]
    fn validates_fusion() {
        assert!(
            Fusion::Rrf {
                constant: -1.0,
                window: 3
            }
            .validate()
            .is_err()
        );
        assert!(
            Fusion::Linear {
                alpha: 1.0,
                beta: 0.0,
                window: 0
            }
            .validate()
            .is_err()
        );
        let f: Fusion =
            serde_json::from_str(r#"{"method":"linear","alpha":0.3,"beta":0.7,"window":20}"#)
                .unwrap();
        assert_eq!(
            f,
            Fusion::Linear {
                alpha: 0.3,
                beta: 0.7,
                window: 20
            }
        );
    }

    fn hybrid() -> HybridQuery {
        HybridQuery {
            index: "shop:items".into(),
            text: "@text:(whole | milk)".into(),
            filter: "@category:{MILK} @price:[1 5]".into(),
            vector_field: "embedding".into(),
            vector: vec![0.0, 1.0],
            ef_runtime: Some(100),
            fusion: Fusion::default(),
            limit: 10,
            load: vec!["category".into(), "price".into()],
            policy: Some(HybridPolicy::Batches {
                batch_size: Some(50),
            }),
            timeout_ms: Some(50),
        }
    }

    #[test]
    fn renders_ft_hybrid_for_8_4_0() {
        expect![[r#"FT.HYBRID shop:items SEARCH '@text:(whole | milk) (@category:{MILK} @price:[1 5])' VSIM @embedding $vec KNN 4 K 20 EF_RUNTIME 100 FILTER '@category:{MILK} @price:[1 5]' COMBINE RRF 4 CONSTANT 60 WINDOW 20 LOAD 2 @category @price LIMIT 0 10 PARAMS 2 vec <blob 8 bytes> TIMEOUT 50"#]]
        .assert_eq(&hybrid().args(HybridSyntax::V8_4_0).unwrap().display());
    }

    #[test]
    fn renders_ft_hybrid_for_8_4_3_and_later() {
        expect![[r#"FT.HYBRID shop:items SEARCH '@text:(whole | milk) (@category:{MILK} @price:[1 5])' VSIM @embedding $vec KNN 4 K 20 EF_RUNTIME 100 FILTER 5 '@category:{MILK} @price:[1 5]' POLICY BATCHES BATCH_SIZE 50 COMBINE RRF 4 CONSTANT 60 WINDOW 20 LOAD 2 @category @price LIMIT 0 10 PARAMS 2 vec <blob 8 bytes> TIMEOUT 50"#]]
        .assert_eq(&hybrid().args(HybridSyntax::V8_4_3).unwrap().display());
        let mut q = hybrid();
        q.filter = "*".into();
        q.fusion = Fusion::Linear {
            alpha: 0.3,
            beta: 0.7,
            window: 30,
        };
        q.ef_runtime = None;
        q.load.clear();
        q.timeout_ms = None;
        expect![[r#"FT.HYBRID shop:items SEARCH '@text:(whole | milk)' VSIM @embedding $vec KNN 2 K 30 COMBINE LINEAR 6 ALPHA 0.3 BETA 0.7 WINDOW 30 LIMIT 0 10 PARAMS 2 vec <blob 8 bytes>"#]]
        .assert_eq(&q.args(HybridSyntax::V8_4_3).unwrap().display());
    }

    #[test]
    fn picks_syntax_by_module_version() {
        assert_eq!(HybridSyntax::for_module_version(21005), None);
        assert_eq!(
            HybridSyntax::for_module_version(80400),
            Some(HybridSyntax::V8_4_0)
        );
        assert_eq!(
            HybridSyntax::for_module_version(80402),
            Some(HybridSyntax::V8_4_0)
        );
        assert_eq!(
            HybridSyntax::for_module_version(80403),
            Some(HybridSyntax::V8_4_3)
        );
        assert_eq!(
            HybridSyntax::for_module_version(80600),
            Some(HybridSyntax::V8_4_3)
        );
    }
}
