//! The vector codec: embeddings are stored in Redis as little-endian f32 blobs, the format
//! RediSearch expects for `TYPE FLOAT32` fields and for KNN query parameters.

use crate::{Error, Result};

/// Encodes a vector as a little-endian f32 blob.
pub fn encode(vector: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(vector.len() * 4);
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Decodes a little-endian f32 blob.
pub fn decode(blob: &[u8]) -> Result<Vec<f32>> {
    if !blob.len().is_multiple_of(4) {
        return Err(Error::VectorBlobLength { len: blob.len() });
    }
    Ok(blob
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Largest magnitude of a vector component accepted. Similarities are computed in f32 (the
/// reranker's dot products, RediSearch's distances): with components up to this bound a squared
/// norm stays finite for any supported dimension, so a stored vector can never make a later
/// query fail.
pub const MAX_ABS_COMPONENT: f32 = 1e9;

/// Checks the dimension and that every component is finite and at most [`MAX_ABS_COMPONENT`]
/// in magnitude.
pub fn validate(vector: &[f32], expected_dims: usize) -> Result<()> {
    if vector.len() != expected_dims {
        return Err(Error::VectorDimension {
            expected: expected_dims,
            actual: vector.len(),
        });
    }
    if let Some((index, value)) = vector.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::VectorNotFinite {
            index,
            value: *value,
        });
    }
    if let Some((index, value)) = vector
        .iter()
        .enumerate()
        .find(|(_, v)| v.abs() > MAX_ABS_COMPONENT)
    {
        return Err(Error::VectorComponentTooLarge {
            index,
            value: *value,
            max: MAX_ABS_COMPONENT,
        });
    }
    Ok(())
}

/// [`validate`], plus: under the cosine metric a query vector must not be all zeros (its cosine
/// distance to anything is undefined, so the server's ranking would be arbitrary).
pub fn validate_query(
    vector: &[f32],
    expected_dims: usize,
    metric: crate::schema::DistanceMetric,
) -> Result<()> {
    validate(vector, expected_dims)?;
    if metric == crate::schema::DistanceMetric::Cosine && vector.iter().all(|v| *v == 0.0) {
        return Err(Error::VectorZeroQuery);
    }
    Ok(())
}

/// Scales a vector to unit L2 norm in place.
pub fn normalize(vector: &mut [f32]) -> Result<()> {
    let norm = vector
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return Err(Error::VectorZero);
    }
    for x in vector.iter_mut() {
        *x = (f64::from(*x) / norm) as f32;
    }
    Ok(())
}

/// Cosine similarity of two equal-length vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        dot += f64::from(*x) * f64::from(*y);
        na += f64::from(*x) * f64::from(*x);
        nb += f64::from(*y) * f64::from(*y);
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na.sqrt() * nb.sqrt())) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_little_endian() {
        assert_eq!(encode(&[1.0, -2.5]), vec![0, 0, 128, 63, 0, 0, 32, 192]);
    }

    #[test]
    fn rejects_bad_blobs_and_vectors() {
        assert_eq!(decode(&[1, 2, 3]), Err(Error::VectorBlobLength { len: 3 }));
        assert_eq!(
            validate(&[1.0], 2),
            Err(Error::VectorDimension {
                expected: 2,
                actual: 1
            })
        );
        let err = validate(&[1.0, f32::NAN], 2).unwrap_err();
        assert!(
            matches!(err, Error::VectorNotFinite { index: 1, .. }),
            "{err:?}"
        );
        assert_eq!(normalize(&mut [0.0, 0.0]), Err(Error::VectorZero));
    }

    #[test]
    fn rejects_components_whose_squares_could_overflow_f32() {
        assert!(validate(&[MAX_ABS_COMPONENT, -MAX_ABS_COMPONENT], 2).is_ok());
        // f32::MAX was accepted before: stored, it made every later rerank of the item fail
        assert_eq!(
            validate(&[0.5, f32::MAX], 2),
            Err(Error::VectorComponentTooLarge {
                index: 1,
                value: f32::MAX,
                max: MAX_ABS_COMPONENT
            })
        );
        assert!(validate(&[-2e9, 0.0], 2).is_err());
        // the bound keeps a squared norm finite at any dimension RediSearch supports
        let dims = 32_768f32;
        assert!((MAX_ABS_COMPONENT * MAX_ABS_COMPONENT * dims).is_finite());
    }

    #[test]
    fn cosine_queries_reject_the_zero_vector_only() {
        use crate::schema::DistanceMetric;
        assert_eq!(
            validate_query(&[0.0, -0.0], 2, DistanceMetric::Cosine),
            Err(Error::VectorZeroQuery)
        );
        assert!(validate_query(&[0.0, 1e-30], 2, DistanceMetric::Cosine).is_ok());
        // L2 and inner product are defined for the origin
        assert!(validate_query(&[0.0, 0.0], 2, DistanceMetric::L2).is_ok());
        assert!(validate_query(&[0.0, 0.0], 2, DistanceMetric::Ip).is_ok());
        // the dimension is still checked first
        assert!(matches!(
            validate_query(&[0.0], 2, DistanceMetric::Cosine),
            Err(Error::VectorDimension { .. })
        ));
    }

    #[test]
    fn normalizes_to_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v).unwrap();
        assert_eq!(v, vec![0.6, 0.8]);
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }

    proptest! {
        #[test]
        fn roundtrips(v in proptest::collection::vec(any::<f32>(), 0..64)) {
            let back = decode(&encode(&v)).unwrap();
            prop_assert_eq!(v.len(), back.len());
            for (a, b) in v.iter().zip(&back) {
                prop_assert_eq!(a.to_bits(), b.to_bits());
            }
        }
    }
}
