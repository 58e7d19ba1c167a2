//! What the server can do, detected once at startup: whether `FT.HYBRID` exists and which syntax
//! its Search module version speaks.

use redis::Value;

use redrec_core::hybrid::HybridSyntax;

use super::Retriever;
use crate::error::Result;
use crate::reply::text;

impl Retriever {
    /// Asks the server whether `FT.HYBRID` exists (`COMMAND INFO`) and, if so, which syntax its
    /// Search module version speaks (`MODULE LIST`). One round trip.
    pub async fn detect_hybrid(&mut self) -> Result<Option<HybridSyntax>> {
        let mut pipe = redis::pipe();
        pipe.cmd("COMMAND").arg("INFO").arg("FT.HYBRID");
        pipe.cmd("MODULE").arg("LIST");
        let replies = self.run(&pipe).await?;
        let exists = match replies.first() {
            Some(Value::Array(a)) => a.first().is_some_and(|v| !matches!(v, Value::Nil)),
            _ => false,
        };
        self.hybrid = if exists {
            let version = replies.get(1).and_then(search_module_version);
            // FT.HYBRID exists but the version is unreadable: assume the current syntax
            Some(version.map_or(Some(HybridSyntax::V8_4_3), HybridSyntax::for_module_version))
                .flatten()
        } else {
            None
        };
        tracing::info!(ft_hybrid = ?self.hybrid, "retriever capabilities detected");
        Ok(self.hybrid)
    }
}

/// The `search` module version from a `MODULE LIST` reply (RESP2 arrays or RESP3 maps).
fn search_module_version(v: &Value) -> Option<u32> {
    let Value::Array(modules) = v else {
        return None;
    };
    for m in modules {
        let pairs: Vec<(String, &Value)> = match m {
            Value::Map(p) => p.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect(),
            Value::Array(a) => a
                .chunks_exact(2)
                .filter_map(|c| Some((text(&c[0])?, &c[1])))
                .collect(),
            _ => continue,
        };
        let name = pairs
            .iter()
            .find(|(k, _)| k == "name")
            .and_then(|(_, v)| text(v));
        if name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case("search"))
        {
            return pairs
                .iter()
                .find(|(k, _)| k == "ver")
                .and_then(|(_, v)| text(v))
                .and_then(|v| v.parse().ok());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_search_module_version() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let v = Value::Array(vec![
            Value::Map(vec![
                (b("name"), b("ReJSON")),
                (b("ver"), Value::Int(20803)),
            ]),
            Value::Map(vec![
                (b("name"), b("search")),
                (b("ver"), Value::Int(80403)),
            ]),
        ]);
        assert_eq!(search_module_version(&v), Some(80403));
        let v = Value::Array(vec![Value::Array(vec![
            b("name"),
            b("search"),
            b("ver"),
            Value::Int(21005),
        ])]);
        assert_eq!(search_module_version(&v), Some(21005));
    }
}
