//! redrec-userstate: real-time user state (events in, the reranker's user features out).
//!
//! Events (`view`, `click`, `dwell`, `cart_add`, `purchase`, `skip`) are validated in Rust and
//! applied by a Redis Function in one atomic server-side step per batch: the item's vector,
//! category, brand and price are read inside Redis, so concurrent events for one user never lose
//! an update. Reading returns [`redrec_core::user::UserFeatures`] in one pipelined round trip.
//! The Redis layout is documented in docs/USER_STATE.md. User state may live on a Redis Cluster
//! of its own ([`UserStateStore::for_cluster`], [`UserStateStore::apply_clustered`]: every key
//! of a user under the user's hash tag, the items read from the catalog first; docs/SCALING.md).
//!
//! ```no_run
//! use redrec_core::{keys::Namespace, schema::ItemFields};
//! use redrec_userstate::{Event, EventKind, UserStateStore, UserStateConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = redis::Client::open("redis://127.0.0.1:6380")?;
//! let mut con = client.get_multiplexed_async_connection().await?;
//! let store = UserStateStore::new(Namespace::default(), ItemFields::default(), UserStateConfig::default())?;
//! store.ensure_loaded(&mut con).await?;
//! let now_ms = 1_767_225_600_000;
//! let click = Event::new(EventKind::Click, "u1", "123").with_event_id("evt-1");
//! store.apply(&mut con, &[click], now_ms).await?;
//! let features = store.read(&mut con, "u1", now_ms).await?;
//! assert!(features.known);
//! # Ok(()) }
//! ```

mod cluster;
mod config;
mod error;
mod event;
mod keys;
mod library;
mod store;

pub use config::{AckMode, EventWeights, UserStateConfig};
pub use error::{Error, Result};
pub use event::{Event, EventKind, MAX_POSITION, RESERVED_SUFFIXES};
pub use store::{ApplyReport, FoldReport, READ_COMMANDS, UserStateStore, decay};
