//! How many graph candidates (`EF_RUNTIME`) a KNN query needs for a recall target, measured on
//! the live index.
//!
//! HNSW's recall at a fixed `EF_RUNTIME` falls as the catalog grows (measured on the bench's
//! synthetic catalog: 0.99 at 100k items, 0.59 at 1M with the default EF 100; see
//! docs/RETRIEVAL.md), so a constant is right for one catalog size only. `redrec-ingest
//! calibrate` measures recall@k of unfiltered KNN at several EF values against exact brute force
//! over the stored vectors and stores the curve next to the index (the key of
//! [`Namespace::ef_curve`](crate::keys::Namespace::ef_curve)); the retriever, given
//! `retriever.recall_target`, reads it in the background and sends the smallest measured EF that
//! reaches the target.

use serde::{Deserialize, Serialize};

/// Recall@k of unfiltered KNN on one index, per `EF_RUNTIME`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EfCurve {
    /// The concrete index it was measured on (a re-index needs its own curve).
    pub index: String,
    /// Documents in the index when measured.
    pub items: u64,
    /// The k of recall@k (and of the KNN queries).
    pub k: usize,
    /// Queries per point.
    pub queries: usize,
    /// When it was measured (Unix ms).
    pub measured_at_ms: u64,
    /// Ascending by `ef`.
    pub points: Vec<EfPoint>,
}

/// Mean recall@k of the calibration queries at one `EF_RUNTIME`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EfPoint {
    pub ef: u32,
    pub recall: f64,
}

impl EfCurve {
    /// Checks the curve is usable: points ascending by a positive EF, recalls within 0..=1.
    pub fn validate(&self) -> Result<(), String> {
        if self.points.is_empty() {
            return Err("the curve has no points".into());
        }
        if self.k == 0 {
            return Err("k must be positive".into());
        }
        for (i, p) in self.points.iter().enumerate() {
            if p.ef == 0 {
                return Err(format!("point {i}: ef must be positive"));
            }
            if !(0.0..=1.0).contains(&p.recall) {
                return Err(format!(
                    "point {i}: recall {} is not within 0..=1",
                    p.recall
                ));
            }
            if i > 0 && self.points[i - 1].ef >= p.ef {
                return Err(format!("point {i}: ef values must ascend"));
            }
        }
        Ok(())
    }

    /// Reads a stored curve (JSON) and checks it ([`EfCurve::validate`]).
    pub fn parse(json: &[u8]) -> Result<EfCurve, String> {
        let c: EfCurve = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    /// The JSON stored under [`Namespace::ef_curve`](crate::keys::Namespace::ef_curve).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a curve always serialises")
    }

    /// The smallest measured `EF_RUNTIME` whose recall reaches `target`; when none does, the
    /// largest measured one (the best the curve knows of). `None` for an empty curve.
    pub fn ef_for(&self, target: f64) -> Option<u32> {
        self.points
            .iter()
            .find(|p| p.recall >= target)
            .or(self.points.last())
            .map(|p| p.ef)
    }

    /// The recall the curve measured at `ef` (`None` when `ef` is not one of its points).
    pub fn recall_at(&self, ef: u32) -> Option<f64> {
        self.points.iter().find(|p| p.ef == ef).map(|p| p.recall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(points: &[(u32, f64)]) -> EfCurve {
        EfCurve {
            index: "shop:items:v1".into(),
            items: 1_000_000,
            k: 50,
            queries: 50,
            measured_at_ms: 0,
            points: points
                .iter()
                .map(|&(ef, recall)| EfPoint { ef, recall })
                .collect(),
        }
    }

    #[test]
    fn the_smallest_ef_that_reaches_the_target_or_else_the_largest() {
        let c = curve(&[(100, 0.6), (400, 0.8), (1600, 0.96), (3200, 0.99)]);
        assert_eq!(c.ef_for(0.5), Some(100));
        assert_eq!(c.ef_for(0.8), Some(400));
        assert_eq!(c.ef_for(0.95), Some(1600));
        assert_eq!(c.ef_for(0.999), Some(3200));
        assert_eq!(c.recall_at(1600), Some(0.96));
        assert_eq!(c.recall_at(200), None);
        assert_eq!(curve(&[]).ef_for(0.9), None);
    }

    #[test]
    fn validation_names_the_bad_point() {
        assert!(curve(&[(100, 0.6), (400, 0.8)]).validate().is_ok());
        assert_eq!(
            curve(&[(400, 0.8), (100, 0.6)]).validate().unwrap_err(),
            "point 1: ef values must ascend"
        );
        assert_eq!(
            curve(&[(100, 1.5)]).validate().unwrap_err(),
            "point 0: recall 1.5 is not within 0..=1"
        );
        assert_eq!(
            curve(&[(0, 0.5)]).validate().unwrap_err(),
            "point 0: ef must be positive"
        );
        assert_eq!(
            curve(&[]).validate().unwrap_err(),
            "the curve has no points"
        );
    }

    #[test]
    fn round_trips_through_json_and_parsing_validates() {
        let c = curve(&[(100, 0.6), (400, 0.8)]);
        assert_eq!(EfCurve::parse(c.to_json().as_bytes()).unwrap(), c);
        let bad = curve(&[(400, 0.8), (100, 0.6)]);
        assert_eq!(
            EfCurve::parse(bad.to_json().as_bytes()).unwrap_err(),
            "point 1: ef values must ascend"
        );
        assert!(EfCurve::parse(b"{}").unwrap_err().contains("missing field"));
    }
}
