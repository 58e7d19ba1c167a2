//! JSON Lines: one JSON object per line; blank lines are skipped. A line that is not a JSON
//! object is a row-level reject, not a fatal error.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
};

use super::{Rows, SourceItem, SourceRow, Value};
use crate::{Error, Result, validate::Reject};

pub(super) fn open(path: &Path) -> Result<Rows> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = BufReader::with_capacity(1 << 16, file);
    let file_name = path.display().to_string();
    let path = path.to_owned();
    let mut line_no = 0u64;
    Ok(Box::new(reader.lines().filter_map(move |line| {
        line_no += 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => return Some(Err(Error::io(&path, e))),
        };
        if line.trim().is_empty() {
            return None;
        }
        let reject = |message: String| {
            Some(Ok(SourceItem::Bad(Reject {
                file: file_name.clone(),
                row: line_no,
                field: "-".into(),
                message,
            })))
        };
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(map)) => Some(Ok(SourceItem::Row(SourceRow {
                row: line_no,
                columns: map
                    .into_iter()
                    .map(|(k, v)| (k, Value::from_json(v)))
                    .collect(),
            }))),
            Ok(other) => reject(format!(
                "expected a JSON object per line, got {}",
                Value::from_json(other).kind()
            )),
            Err(e) => reject(format!("not valid JSON: {e}")),
        }
    })))
}
