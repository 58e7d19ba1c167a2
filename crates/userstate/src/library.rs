//! The Redis Function library (`src/userstate.lua`) and how it is loaded and called.
//!
//! The library and function names carry a hash of the Lua source, so two redrec versions sharing
//! a Redis never call each other's code, and a changed script is loaded under a new name instead
//! of replacing one a running process depends on. A call that finds the function missing (a
//! restarted Redis without persistence, a `FUNCTION FLUSH`) loads the library and retries once,
//! the Functions counterpart of reloading a script on `NOSCRIPT`.

use redis::{Value, aio::ConnectionLike};

use crate::Result;

const TEMPLATE: &str = include_str!("userstate.lua");

/// The library source with its names filled in.
#[derive(Debug, Clone)]
pub(crate) struct Library {
    pub name: String,
    pub apply: String,
    pub fold: String,
    pub source: String,
}

/// FNV-1a, 64 bit: a stable fingerprint of the source (not a security boundary).
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Library {
    pub fn new() -> Library {
        let tag = format!("{:016x}", fingerprint(TEMPLATE));
        let name = format!("redrec_features_{tag}");
        let apply = format!("redrec_apply_{tag}");
        let fold = format!("redrec_fold_{tag}");
        let source = TEMPLATE
            .replace("__LIBRARY__", &name)
            .replace("__APPLY__", &apply)
            .replace("__FOLD__", &fold);
        Library {
            name,
            apply,
            fold,
            source,
        }
    }

    /// `FUNCTION LOAD REPLACE`: idempotent, safe to race with other processes loading the same code.
    pub async fn load(&self, con: &mut impl ConnectionLike) -> Result<()> {
        let _: Value = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(&self.source)
            .query_async(con)
            .await?;
        Ok(())
    }

    /// `FCALL function numkeys keys... args...`, loading the library once if it is missing.
    pub async fn call(
        &self,
        con: &mut impl ConnectionLike,
        function: &str,
        keys: &[String],
        args: &[Vec<u8>],
    ) -> Result<Value> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(function).arg(keys.len()).arg(keys);
        for a in args {
            cmd.arg(a.as_slice());
        }
        match cmd.query_async::<Value>(con).await {
            Err(e) if is_missing_function(&e) => {
                self.load(con).await?;
                Ok(cmd.query_async::<Value>(con).await?)
            }
            other => Ok(other?),
        }
    }
}

fn is_missing_function(e: &redis::RedisError) -> bool {
    e.to_string().contains("Function not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_source_fingerprint() {
        let lib = Library::new();
        assert!(
            lib.source
                .starts_with(&format!("#!lua name={}\n", lib.name))
        );
        assert!(
            lib.source
                .contains(&format!("register_function('{}'", lib.apply))
        );
        assert!(
            lib.source
                .contains(&format!("register_function('{}'", lib.fold))
        );
        assert!(!lib.source.contains("__"), "placeholder left in the source");
        assert_eq!(lib.name.len(), "redrec_features_".len() + 16);
    }
}
