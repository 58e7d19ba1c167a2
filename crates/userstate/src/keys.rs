//! Names of the per-user keys, in one of two layouts.
//!
//! - **Plain** (a single node, the default; the names every existing deployment has):
//!   `{ns}:user:u1`, `{ns}:user:u1:session`, ..., and one idempotency marker key per event id,
//!   `{ns}:evt:{event_id}`.
//! - **Tagged** (user state on a Redis Cluster): `{ns}:user:{u1}`, `{ns}:user:{u1}:session`,
//!   ..., and the user's idempotency markers as fields of `{ns}:user:{u1}:evt`. The braces are a
//!   hash tag: Redis Cluster hashes only `u1`, so every key of a user lives in one slot and the
//!   atomic event step may touch them all. Ids cannot contain braces (`validate_id`), so the tag
//!   is always exactly the user id; a namespace with braces is refused (its tag would put every
//!   user in one slot).

use redrec_core::keys::Namespace;

use crate::{Error, Result};

/// The per-user key names of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct UserKeys {
    ns: Namespace,
    tagged: bool,
}

impl UserKeys {
    pub fn plain(ns: Namespace) -> UserKeys {
        UserKeys { ns, tagged: false }
    }

    pub fn tagged(ns: Namespace) -> Result<UserKeys> {
        if ns.name().contains(['{', '}']) {
            return Err(Error::Config {
                field: "index.namespace",
                message: format!(
                    "`{}` contains a brace: with user state on a Redis Cluster the namespace \
                     must not hold `{{` or `}}` (the user id is the keys' hash tag)",
                    ns.name()
                ),
            });
        }
        Ok(UserKeys { ns, tagged: true })
    }

    pub fn is_tagged(&self) -> bool {
        self.tagged
    }

    /// The long-term hash; every other key of the user is this name plus a suffix.
    pub fn user(&self, id: &str) -> String {
        if self.tagged {
            format!("{}:user:{{{id}}}", self.ns.name())
        } else {
            self.ns.user(id)
        }
    }

    fn with_suffix(&self, id: &str, suffix: &str) -> String {
        let mut key = self.user(id);
        key.push_str(suffix);
        key
    }

    pub fn session(&self, id: &str) -> String {
        self.with_suffix(id, ":session")
    }

    pub fn seen(&self, id: &str) -> String {
        self.with_suffix(id, ":seen")
    }

    pub fn recent(&self, id: &str) -> String {
        self.with_suffix(id, ":recent")
    }

    pub fn cart(&self, id: &str) -> String {
        self.with_suffix(id, ":cart")
    }

    pub fn buys(&self, id: &str) -> String {
        self.with_suffix(id, ":buys")
    }

    /// The key holding the marker of `event_id` sent by user `id`: the per-user marker hash
    /// (tagged) or the event's own key (plain).
    pub fn marker(&self, id: &str, event_id: &str) -> String {
        if self.tagged {
            self.with_suffix(id, ":evt")
        } else {
            self.ns.event_marker(event_id)
        }
    }

    /// Every key stored for user `id` (with the tagged layout, its idempotency markers too;
    /// plain markers are keyed by event id and expire on their own).
    pub fn all(&self, id: &str) -> Vec<String> {
        let mut keys = vec![
            self.user(id),
            self.session(id),
            self.seen(id),
            self.recent(id),
            self.cart(id),
            self.buys(id),
        ];
        if self.tagged {
            keys.push(self.with_suffix(id, ":evt"));
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_are_the_namespace_keys_and_tagged_keys_share_the_user_tag() {
        let ns = Namespace::new("shop");
        let plain = UserKeys::plain(ns.clone());
        assert_eq!(plain.user("u1"), ns.user("u1"));
        assert_eq!(plain.session("u1"), ns.user_session("u1"));
        assert_eq!(plain.seen("u1"), ns.user_seen("u1"));
        assert_eq!(plain.recent("u1"), ns.user_recent("u1"));
        assert_eq!(plain.cart("u1"), ns.user_cart("u1"));
        assert_eq!(plain.buys("u1"), ns.user_buys("u1"));
        assert_eq!(plain.marker("u1", "e9"), ns.event_marker("e9"));
        assert_eq!(plain.all("u1").len(), 6);

        let tagged = UserKeys::tagged(ns).unwrap();
        let all = tagged.all("u1");
        assert_eq!(all[0], "shop:user:{u1}");
        assert_eq!(all[1], "shop:user:{u1}:session");
        assert_eq!(all[6], "shop:user:{u1}:evt");
        assert_eq!(tagged.marker("u1", "e9"), "shop:user:{u1}:evt");
        // the hash tag of every key is the user id
        for key in &all {
            let open = key.find('{').unwrap();
            let close = open + key[open..].find('}').unwrap();
            assert_eq!(&key[open + 1..close], "u1", "{key}");
        }
        let err = UserKeys::tagged(Namespace::new("a{b}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("index.namespace"), "{err}");
    }
}
