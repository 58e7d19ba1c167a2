//! CSV with a header row. Every cell is read as a string (empty cells as missing); validation
//! parses numbers and vectors (`[0.1, 0.2]`, `0.1,0.2` or `0.1 0.2` in one quoted cell).

use std::{fs::File, path::Path};

use super::{Rows, SourceItem, SourceRow, Value};
use crate::{Error, Result, validate::Reject};

pub(super) fn open(path: &Path) -> Result<Rows> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(std::io::BufReader::with_capacity(1 << 16, file));
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::source(path, format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if headers.iter().all(|h| h.is_empty()) {
        return Err(Error::source(path, "the CSV header row is empty"));
    }
    let file_name = path.display().to_string();
    let mut row_no = 0u64;
    Ok(Box::new(reader.into_records().map(move |rec| {
        row_no += 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                return Ok(SourceItem::Bad(Reject {
                    file: file_name.clone(),
                    row: row_no,
                    field: "-".into(),
                    message: format!("unreadable CSV record: {e}"),
                }));
            }
        };
        if rec.len() != headers.len() {
            return Ok(SourceItem::Bad(Reject {
                file: file_name.clone(),
                row: row_no,
                field: "-".into(),
                message: format!(
                    "has {} cells, the header has {} columns",
                    rec.len(),
                    headers.len()
                ),
            }));
        }
        let columns = headers
            .iter()
            .zip(rec.iter())
            .map(|(h, cell)| {
                let v = if cell.is_empty() {
                    Value::Null
                } else {
                    Value::Str(cell.to_owned())
                };
                (h.clone(), v)
            })
            .collect();
        Ok(SourceItem::Row(SourceRow {
            row: row_no,
            columns,
        }))
    })))
}
