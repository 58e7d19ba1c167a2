//! Vector files keyed by an id file: NumPy `.npy` (2-d, C order, `<f4` or `<f8`) or raw
//! little-endian f32 with a given dimension. Row i of the vector file belongs to the id on line i
//! of the id file; the two must have the same number of rows (checked before any row is read).

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    path::Path,
};

use super::{Rows, SourceItem, SourceRow, SourceSpec, Value};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy)]
enum DType {
    F32,
    F64,
}

struct Layout {
    rows: u64,
    dims: usize,
    dtype: DType,
    data_offset: u64,
}

fn layout(spec: &SourceSpec) -> Result<Layout> {
    let path = &spec.path;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    match spec.format {
        super::Format::Npy => npy_layout(path, meta.len()),
        _ => {
            let dims = spec.dims.filter(|d| *d > 0).ok_or_else(|| {
                Error::source(path, "a raw f32 vector file needs its dimension (--dims)")
            })?;
            let row_bytes = 4 * dims as u64;
            if meta.len() % row_bytes != 0 {
                return Err(Error::source(
                    path,
                    format!(
                        "has {} bytes, not a multiple of {row_bytes} ({dims} dims x 4 bytes)",
                        meta.len()
                    ),
                ));
            }
            Ok(Layout {
                rows: meta.len() / row_bytes,
                dims,
                dtype: DType::F32,
                data_offset: 0,
            })
        }
    }
}

fn npy_layout(path: &Path, file_len: u64) -> Result<Layout> {
    let bad = |m: String| Error::source(path, m);
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic)
        .map_err(|_| bad("too short for an .npy file".into()))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(bad("not an .npy file (bad magic)".into()));
    }
    let header_len = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            f.read_exact(&mut b).map_err(|e| Error::io(path, e))?;
            u64::from(u16::from_le_bytes(b))
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            f.read_exact(&mut b).map_err(|e| Error::io(path, e))?;
            u64::from(u32::from_le_bytes(b))
        }
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    let prefix = if magic[6] == 1 { 10 } else { 12 };
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
    let header = String::from_utf8_lossy(&header);
    let dtype = if header.contains("'<f4'") || header.contains("'float32'") {
        DType::F32
    } else if header.contains("'<f8'") {
        DType::F64
    } else {
        return Err(bad(format!(
            "unsupported dtype in header {header:?}: expected little-endian float32 ('<f4') or float64 ('<f8')"
        )));
    };
    if header.contains("'fortran_order': True") {
        return Err(bad(
            "Fortran-ordered arrays are not supported: save with C order".into(),
        ));
    }
    let shape = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad(format!("no shape in header {header:?}")))?;
    let dims: Vec<u64> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(format!("bad shape ({shape})")))?;
    let [rows, cols] = dims[..] else {
        return Err(bad(format!(
            "expected a 2-d array (rows, dims), got shape ({shape})"
        )));
    };
    let width = match dtype {
        DType::F32 => 4,
        DType::F64 => 8,
    };
    let data_offset = prefix + header_len;
    if file_len < data_offset + rows * cols * width {
        return Err(bad(format!(
            "truncated: shape ({shape}) needs more data than the file has"
        )));
    }
    Ok(Layout {
        rows,
        dims: cols as usize,
        dtype,
        data_offset,
    })
}

pub(super) fn len(spec: &SourceSpec) -> Result<u64> {
    Ok(layout(spec)?.rows)
}

fn read_ids(spec: &SourceSpec) -> Result<Vec<String>> {
    let ids = spec.ids.as_ref().ok_or_else(|| {
        Error::source(
            &spec.path,
            "a vector file needs an id file (--ids, one id per line)",
        )
    })?;
    let f = File::open(ids).map_err(|e| Error::io(ids, e))?;
    BufReader::new(f)
        .lines()
        .map(|l| {
            l.map(|l| l.trim().to_owned())
                .map_err(|e| Error::io(ids, e))
        })
        .collect()
}

pub(super) fn open(spec: &SourceSpec) -> Result<Rows> {
    let layout = layout(spec)?;
    // The id file holds one short string per row: small next to the vectors, so it is read
    // whole; the vectors stream.
    let mut ids = read_ids(spec)?;
    while ids.last().is_some_and(|s| s.is_empty()) {
        ids.pop();
    }
    if ids.len() as u64 != layout.rows {
        return Err(Error::source(
            &spec.path,
            format!(
                "has {} vectors but the id file {} has {} ids",
                layout.rows,
                spec.ids
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                ids.len()
            ),
        ));
    }
    let mut f = File::open(&spec.path).map_err(|e| Error::io(&spec.path, e))?;
    std::io::copy(&mut (&mut f).take(layout.data_offset), &mut std::io::sink())
        .map_err(|e| Error::io(&spec.path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, f);
    let (id_col, vec_col, path) = (
        spec.id_column.clone(),
        spec.vector_column.clone(),
        spec.path.clone(),
    );
    let width = match layout.dtype {
        DType::F32 => 4,
        DType::F64 => 8,
    };
    let mut buf = vec![0u8; layout.dims * width];
    Ok(Box::new(ids.into_iter().enumerate().map(move |(i, id)| {
        reader
            .read_exact(&mut buf)
            .map_err(|e| Error::io(&path, e))?;
        let vector: Vec<f32> = match layout.dtype {
            DType::F32 => buf
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F64 => buf
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
        };
        let id = if id.is_empty() {
            Value::Null
        } else {
            Value::Str(id)
        };
        Ok(SourceItem::Row(SourceRow {
            row: i as u64 + 1,
            columns: vec![
                (id_col.clone(), id),
                (vec_col.clone(), Value::Vector(vector)),
            ],
        }))
    })))
}

/// Writes vectors as a `.npy` file (float32, C order): used by tests and to export datasets.
pub fn write_npy(path: &Path, vectors: &[Vec<f32>]) -> Result<()> {
    use std::io::Write;
    let dims = vectors.first().map_or(0, Vec::len);
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {dims}), }}",
        vectors.len()
    );
    // Pad so the data starts on a 64-byte boundary, as NumPy does.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + vectors.len() * dims * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in vectors {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(&out).map_err(|e| Error::io(path, e))
}
