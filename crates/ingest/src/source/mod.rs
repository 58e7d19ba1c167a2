//! Streaming row sources: JSONL, CSV, Parquet, and vector files (NPY or raw little-endian f32)
//! keyed by an id file. Every source yields one [`SourceRow`] at a time, so memory stays bounded
//! by one row (plus the reader's buffer), whatever the file size. A source can be opened again
//! for a second pass (strict mode validates the whole input before writing anything).

mod csv;
mod jsonl;
mod parquet;
mod vectors;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result, validate::Reject};

pub use self::parquet::{ParquetRows, read_columns};
pub use self::vectors::write_npy;

/// A value read from a source column, before validation against the schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    List(Vec<Value>),
    /// A vector read from a binary vector file (already f32).
    Vector(Vec<f32>),
    /// Something no schema field accepts (an object, raw bytes, ...), described for messages.
    Other(&'static str),
}

impl Value {
    /// Describes the kind of value for an error message ("a string", "an object", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Num(_) => "a number",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Vector(_) => "a vector",
            Value::Other(k) => k,
        }
    }

    pub(crate) fn from_json(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => n
                .as_f64()
                .map_or(Value::Other("a number out of range"), Value::Num),
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => {
                Value::List(a.into_iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(_) => Value::Other("an object"),
        }
    }
}

/// One row of a source: its 1-based position (line number for JSONL and CSV data rows counted
/// from 1, row index + 1 for Parquet and vector files) and its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub row: u64,
    pub columns: Vec<(String, Value)>,
}

impl SourceRow {
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.columns
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, v)| v)
    }

    pub fn take(&mut self, column: &str) -> Option<Value> {
        let pos = self.columns.iter().position(|(name, _)| name == column)?;
        Some(self.columns.swap_remove(pos).1)
    }
}

/// What a source yields: a row, or a row that could not even be parsed (reported, not fatal).
#[derive(Debug)]
pub enum SourceItem {
    Row(SourceRow),
    Bad(Reject),
}

/// A boxed stream of rows; an `Err` ends the stream (the file itself is unreadable).
pub type Rows = Box<dyn Iterator<Item = Result<SourceItem>> + Send>;

/// Input file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet (flat columns; list columns for vectors).
    Parquet,
    /// NumPy `.npy` 2-d array of float32 (or float64), one row per id in the id file.
    Npy,
    /// Raw little-endian float32, `dims` values per row, one row per id in the id file.
    F32,
}

impl Format {
    /// Infers the format from the file extension.
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        Ok(match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Format::Jsonl,
            "csv" => Format::Csv,
            "parquet" | "pq" => Format::Parquet,
            "npy" => Format::Npy,
            "f32" | "bin" | "fvecs32" => Format::F32,
            _ => {
                return Err(Error::source(
                    path,
                    format!(
                        "cannot tell the format from the extension `{ext}`: expected .jsonl, .csv, \
                         .parquet, .npy or .f32 (or pass --format)"
                    ),
                ));
            }
        })
    }
}

/// Where rows come from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    pub path: PathBuf,
    pub format: Format,
    /// Id file (one id per line) for vector files: row i of the vector file belongs to line i.
    pub ids: Option<PathBuf>,
    /// Components per vector in a raw f32 file.
    pub dims: Option<usize>,
    /// Column names a vector file's rows are given (so the same mapping applies).
    pub id_column: String,
    pub vector_column: String,
}

impl SourceSpec {
    /// A spec for `path` with the format taken from its extension.
    pub fn new(path: impl Into<PathBuf>) -> Result<SourceSpec> {
        let path = path.into();
        let format = Format::from_path(&path)?;
        Ok(SourceSpec {
            path,
            format,
            ids: None,
            dims: None,
            id_column: "id".into(),
            vector_column: "embedding".into(),
        })
    }

    /// Opens the source for one pass over its rows.
    pub fn open(&self) -> Result<Rows> {
        match self.format {
            Format::Jsonl => jsonl::open(&self.path),
            Format::Csv => csv::open(&self.path),
            Format::Parquet => Ok(Box::new(ParquetRows::open(&self.path, None)?)),
            Format::Npy | Format::F32 => vectors::open(self),
        }
    }

    /// Number of rows when the format records it (Parquet, vector files) without a full pass.
    pub fn known_len(&self) -> Option<u64> {
        match self.format {
            Format::Parquet => ParquetRows::open(&self.path, None).ok().map(|r| r.len()),
            Format::Npy | Format::F32 => vectors::len(self).ok(),
            Format::Jsonl | Format::Csv => None,
        }
    }

    pub(crate) fn display(&self) -> String {
        self.path.display().to_string()
    }
}
