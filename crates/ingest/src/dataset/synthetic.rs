//! The synthetic catalog as an ingest row source. The generator itself is
//! [`redrec_core::synthetic`] (shared with the bench and the tests); this module only maps its
//! items onto the default item schema's columns.

use std::sync::Arc;

pub use redrec_core::synthetic::{Synthetic, SyntheticItem, SyntheticParams};

use crate::{
    Result,
    load::RowFactory,
    source::{Rows, SourceItem, SourceRow, Value},
};

/// Item `i` as source row `row`, with the default item schema's column names.
pub fn into_row(item: SyntheticItem, row: u64) -> SourceRow {
    SourceRow {
        row,
        columns: vec![
            ("id".into(), Value::Str(item.id)),
            ("text".into(), Value::Str(item.text)),
            ("category".into(), Value::Str(item.category)),
            ("department".into(), Value::Str(item.department)),
            ("brand".into(), Value::Str(item.brand)),
            ("price".into(), Value::Num(item.price)),
            ("popularity".into(), Value::Num(item.popularity)),
            (
                "in_stock".into(),
                Value::Str(if item.in_stock { "true" } else { "false" }.into()),
            ),
            ("embedding".into(), Value::Vector(item.vector)),
        ],
    }
}

/// The synthetic catalog as a re-openable row source.
pub struct SyntheticRows(pub Arc<Synthetic>);

impl RowFactory for SyntheticRows {
    fn open(&self) -> Result<Rows> {
        let generator = Arc::clone(&self.0);
        Ok(Box::new((0..generator.params.items).map(move |i| {
            Ok(SourceItem::Row(into_row(generator.item(i), i + 1)))
        })))
    }
    fn label(&self) -> String {
        let p = self.0.params;
        format!(
            "synthetic(items={}, dims={}, seed={})",
            p.items, p.dims, p.seed
        )
    }
    fn known_len(&self) -> Option<u64> {
        Some(self.0.params.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_every_schema_column_in_order() {
        let generator = Arc::new(Synthetic::new(SyntheticParams {
            items: 3,
            dims: 4,
            seed: 1,
        }));
        let rows: Vec<SourceRow> = SyntheticRows(generator.clone())
            .open()
            .unwrap()
            .map(|r| match r.unwrap() {
                SourceItem::Row(row) => row,
                other => panic!("expected a row, got {other:?}"),
            })
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].row, 3);
        let names: Vec<&str> = rows[0].columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "text",
                "category",
                "department",
                "brand",
                "price",
                "popularity",
                "in_stock",
                "embedding"
            ]
        );
        assert_eq!(rows[1].columns[0].1, Value::Str("s1".into()));
        assert_eq!(
            rows[1].columns[8].1,
            Value::Vector(generator.item(1).vector)
        );
    }
}
