//! What the server can do, detected once at startup: whether `FT.HYBRID` exists and which syntax
//! its Search module version speaks.

use redis::Value;

use redrec_core::hybrid::HybridSyntax;

use super::Retriever;
use crate::error::Result;
use redrec_core::reply::module_version;

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
            let version = replies.get(1).and_then(|v| module_version(v, "search"));
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
