//! Minimal reader for `.safetensors` files holding F32 tensors: an 8-byte little-endian header
//! length, a JSON header `{name: {dtype, shape, data_offsets}}`, then the raw tensor bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// The tensors of one file, by name.
pub(crate) struct SafeTensors {
    path: PathBuf,
    header: HashMap<String, TensorInfo>,
    data: Vec<u8>,
}

impl SafeTensors {
    /// Reads the whole file into memory (all-MiniLM-L6-v2 is 90 MB).
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::ModelMissing {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let bad = |detail: String| Error::ModelFormat {
            path: path.to_owned(),
            detail,
        };
        let len_bytes: [u8; 8] = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("shorter than the 8-byte header length".into()))?;
        let header_len = usize::try_from(u64::from_le_bytes(len_bytes))
            .map_err(|_| bad("header length does not fit in memory".into()))?;
        let header_end = 8usize
            .checked_add(header_len)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| bad(format!("header length {header_len} exceeds the file")))?;
        let mut raw: HashMap<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..header_end])
                .map_err(|e| bad(format!("header is not JSON: {e}")))?;
        raw.remove("__metadata__");
        let header = raw
            .into_iter()
            .map(|(name, value)| {
                serde_json::from_value::<TensorInfo>(value)
                    .map(|info| (name.clone(), info))
                    .map_err(|e| bad(format!("tensor `{name}`: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            path: path.to_owned(),
            header,
            data: bytes[header_end..].to_vec(),
        })
    }

    fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let bad = |detail: String| Error::ModelFormat {
            path: self.path.clone(),
            detail,
        };
        let info = self
            .header
            .get(name)
            .ok_or_else(|| bad(format!("tensor `{name}` is missing")))?;
        if info.dtype != "F32" {
            return Err(bad(format!(
                "tensor `{name}` has dtype {}, expected F32",
                info.dtype
            )));
        }
        if info.shape != shape {
            return Err(bad(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                info.shape
            )));
        }
        let [start, end] = info.data_offsets;
        let expected_len = shape.iter().product::<usize>() * 4;
        let bytes = self
            .data
            .get(start..end)
            .filter(|b| b.len() == expected_len)
            .ok_or_else(|| {
                bad(format!(
                    "tensor `{name}` has bad data offsets {start}..{end}"
                ))
            })?;
        // a bulk copy (the data need not be 4-byte aligned in the file); safetensors stores
        // little-endian values
        let mut floats: Vec<f32> = bytemuck::pod_collect_to_vec(bytes);
        if cfg!(target_endian = "big") {
            for x in &mut floats {
                *x = f32::from_bits(x.to_bits().swap_bytes());
            }
        }
        Ok(floats)
    }

    /// A 1-d F32 tensor of length `len`.
    pub(crate) fn vector(&self, name: &str, len: usize) -> Result<Array1<f32>> {
        Ok(Array1::from_vec(self.floats(name, &[len])?))
    }

    /// A 2-d F32 tensor of shape `[rows, cols]`.
    pub(crate) fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>> {
        let data = self.floats(name, &[rows, cols])?;
        Array2::from_shape_vec((rows, cols), data).map_err(|e| Error::ModelFormat {
            path: self.path.clone(),
            detail: format!("tensor `{name}`: {e}"),
        })
    }

    /// A 2-d F32 tensor stored as `[rows, cols]`, returned transposed (`[cols, rows]`, standard
    /// layout).
    pub(crate) fn matrix_transposed(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Array2<f32>> {
        let data = self.floats(name, &[rows, cols])?;
        // plain slice loops: this crate may be built without optimisations in tests, where
        // ndarray's generic iterators are slow
        let mut out = vec![0.0f32; data.len()];
        for (r, row) in data.chunks_exact(cols).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                out[c * rows + r] = v;
            }
        }
        Array2::from_shape_vec((cols, rows), out).map_err(|e| Error::ModelFormat {
            path: self.path.clone(),
            detail: format!("tensor `{name}`: {e}"),
        })
    }
}
