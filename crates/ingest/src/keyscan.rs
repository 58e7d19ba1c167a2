//! `SCAN` over the keys matching a pattern, one batch of keys per round trip: the one cursor
//! loop of the crates that walk a namespace's keys (the `cf_vector` re-train, the evaluation's
//! catalog read and user-state reset).

use redis::aio::MultiplexedConnection;

use crate::Result;

/// A `SCAN ... MATCH pattern COUNT count` in progress.
#[derive(Debug, Clone)]
pub struct KeyScan {
    pattern: String,
    count: usize,
    cursor: u64,
    done: bool,
}

impl KeyScan {
    pub fn new(pattern: impl Into<String>, count: usize) -> KeyScan {
        KeyScan {
            pattern: pattern.into(),
            count: count.max(1),
            cursor: 0,
            done: false,
        }
    }

    /// The next batch of keys (possibly empty: `SCAN` may return none in a step), or `None`
    /// once the cursor is back at 0. A key may come twice when the keyspace changes meanwhile.
    pub async fn next_batch(
        &mut self,
        con: &mut MultiplexedConnection,
    ) -> Result<Option<Vec<String>>> {
        if self.done {
            return Ok(None);
        }
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(self.cursor)
            .arg("MATCH")
            .arg(&self.pattern)
            .arg("COUNT")
            .arg(self.count)
            .query_async(con)
            .await?;
        self.cursor = next;
        self.done = next == 0;
        Ok(Some(keys))
    }
}
