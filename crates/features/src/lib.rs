//! redrec-features: real-time user features.
//!
//! Events (`view`, `click`, `dwell`, `cart_add`, `purchase`, `skip`) are validated in Rust and
//! applied by a Redis Function in one atomic server-side step per batch: the item's vector,
//! category, brand and price are read inside Redis, so concurrent events for one user never lose
//! an update. Reading returns [`redrec_core::user::UserFeatures`] in one pipelined round trip.
//! The Redis layout is documented in docs/FEATURES.md.
//!
//! ```no_run
//! use redrec_core::{keys::Namespace, schema::ItemFields};
//! use redrec_features::{Event, EventKind, FeatureStore, FeaturesConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = redis::Client::open("redis://127.0.0.1:6380")?;
//! let mut con = client.get_multiplexed_async_connection().await?;
//! let store = FeatureStore::new(Namespace::default(), ItemFields::default(), FeaturesConfig::default())?;
//! store.ensure_loaded(&mut con).await?;
//! let now_ms = 1_767_225_600_000;
//! let click = Event::new(EventKind::Click, "u1", "123").with_event_id("evt-1");
//! store.apply(&mut con, &[click], now_ms).await?;
//! let features = store.read(&mut con, "u1", now_ms).await?;
//! assert!(features.known);
//! # Ok(()) }
//! ```

mod config;
mod error;
mod event;
mod library;
mod store;

pub use config::{EventWeights, FeaturesConfig};
pub use error::{Error, Result};
pub use event::{Event, EventKind};
pub use store::{ApplyReport, FeatureStore, FoldReport, READ_COMMANDS, decay};
