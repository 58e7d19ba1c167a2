//! Configuration types shared by the binaries, and the one way they are layered:
//! defaults < `redrec.toml` (or the file named by `REDREC_CONFIG`) < `REDREC_*` environment
//! variables with `__` for nesting (`REDREC_REDIS__URL`).
//!
//! Libraries never load configuration themselves: a binary calls [`figment`] with its own
//! defaults, extracts its settings struct and hands plain values to the libraries.

use std::path::PathBuf;

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

use crate::{
    keys::Namespace,
    schema::{IndexSchema, ItemFields, VectorSettings, items_schema},
};

/// Default port of the embedded Redis (6380, so it never collides with a system Redis on 6379).
pub const DEFAULT_REDIS_PORT: u16 = 6380;

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Deadline for any single Redis call on the request path.
    pub command_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// PEM file of the certificate authority that signed the server's TLS certificate, for
    /// `rediss://` URLs to servers whose CA is not in the system trust store (self-signed,
    /// private CAs). Unset: the system's trusted roots.
    pub tls_ca_file: Option<String>,
    /// Read replicas (`redis://host:port` URLs) that serve searches, item reads and index
    /// information, balanced by least outstanding requests; writes and the acting user's
    /// features stay on the primary. Empty (the default): the primary serves everything.
    pub replicas: Vec<String>,
    /// A replica that refused or timed out a connection is left out this long, then tried again.
    pub replica_retry_ms: u64,
    /// Find the primary through Sentinel instead of `url` (whose scheme, credentials and
    /// database are still used for the primary Sentinel names). Unset: `url` is the primary.
    pub sentinel: Option<SentinelConfig>,
    /// A separate deployment for user state (`[redis.user_state]`): per-user features, event
    /// idempotency markers and rate-limit counters. Unset (the default): they live with the
    /// catalog on the deployment above.
    pub user_state: Option<UserStateRedisConfig>,
}

/// Where user state lives when it does not live with the catalog (`[redis.user_state]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserStateRedisConfig {
    /// Seed nodes of a Redis Cluster (`redis://host:port` URLs; the client discovers the rest
    /// from them). Connections use `redis.connect_timeout_ms`, `redis.command_timeout_ms` and
    /// `redis.tls_ca_file`.
    pub cluster: Vec<String>,
}

/// Where the Sentinels are and which primary to ask them for (`[redis.sentinel]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// The name the Sentinels monitor the primary under (`sentinel monitor <name> ...`).
    pub master_name: String,
    /// Sentinel addresses, `host:port`, asked in order.
    pub nodes: Vec<String>,
    /// How often the gateway asks a Sentinel which node is the primary, besides asking at once
    /// when the primary cannot be reached (a demoted primary still accepts connections).
    #[serde(default = "default_sentinel_check_ms")]
    pub check_ms: u64,
}

fn default_sentinel_check_ms() -> u64 {
    1_000
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: format!("redis://127.0.0.1:{DEFAULT_REDIS_PORT}"),
            pool_size: 16,
            command_timeout_ms: 100,
            connect_timeout_ms: 1000,
            tls_ca_file: None,
            replicas: Vec::new(),
            replica_retry_ms: 2_000,
            sentinel: None,
            user_state: None,
        }
    }
}

/// What the item index looks like and where its keys live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Key namespace shared by every redrec key (`{namespace}:item:{id}`, ...).
    pub namespace: String,
    /// Optional RedisVL YAML schema; when absent the default item schema is used.
    pub schema_file: Option<PathBuf>,
    pub fields: ItemFields,
    pub vector: VectorSettings,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            namespace: "redrec".into(),
            schema_file: None,
            fields: ItemFields::default(),
            vector: VectorSettings::default(),
        }
    }
}

impl IndexConfig {
    pub fn namespace(&self) -> Namespace {
        Namespace::new(&self.namespace)
    }

    /// The schema of index version `version` (`{namespace}:items:v{version}`).
    pub fn schema(&self, version: u32) -> crate::Result<IndexSchema> {
        let ns = self.namespace();
        let mut schema = match &self.schema_file {
            None => items_schema(
                &ns.index(version),
                &ns.item_prefix(),
                &self.fields,
                &self.vector,
            ),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| crate::Error::Schema {
                    message: format!("cannot read schema file {}: {e}", path.display()),
                })?;
                IndexSchema::from_yaml(&text)?
            }
        };
        if self.schema_file.is_none() {
            schema.index.name = ns.index(version);
        }
        schema.validate()?;
        Ok(schema)
    }
}

/// The layered configuration for a binary whose settings default to `defaults`.
///
/// `REDREC_CONFIG` names the TOML file (an error if it is set and missing); otherwise
/// `./redrec.toml` is read when present.
pub fn figment<T: Serialize>(defaults: &T) -> Result<Figment, figment::Error> {
    let mut fig = Figment::from(Serialized::defaults(defaults));
    match std::env::var_os("REDREC_CONFIG") {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(figment::Error::from(format!(
                    "REDREC_CONFIG names {}, which is not a readable file",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        None => fig = fig.merge(Toml::file_exact("redrec.toml").nested_if_present()),
    }
    Ok(fig.merge(Env::prefixed("REDREC_").ignore(&["config"]).split("__")))
}

/// Small extension so a missing default `redrec.toml` is not an error.
trait NestedIfPresent {
    fn nested_if_present(self) -> Figment;
}

impl NestedIfPresent for figment::providers::Data<Toml> {
    fn nested_if_present(self) -> Figment {
        if std::path::Path::new("redrec.toml").is_file() {
            Figment::from(self)
        } else {
            Figment::new()
        }
    }
}

/// `url` with the password of its user-info replaced by `***` (`redis://app:***@host:6379`), for
/// messages and logs. A URL without a password is returned unchanged; text that is not a URL is
/// redacted from its last `@` back to the scheme, so a malformed URL cannot leak one either.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        // `redis://password@host` (no user) is how some clients spell a password alone
        None if !userinfo.is_empty() => format!("{scheme}://***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_url_hides_passwords_only() {
        use super::redact_url;
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis://app:s3cret@h:6379/0"),
            "redis://app:***@h:6379/0"
        );
        assert_eq!(redact_url("rediss://:s3cret@h"), "rediss://:***@h");
        assert_eq!(redact_url("redis://s3cret@h"), "redis://***@h");
        // a password holding `@` or `:` is still hidden whole
        assert_eq!(redact_url("redis://app:a@b:c@h:1"), "redis://app:***@h:1");
        assert_eq!(
            redact_url("redis://app:pw@h:notaport"),
            "redis://app:***@h:notaport"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }

    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Settings {
        redis: RedisConfig,
        index: IndexConfig,
    }

    #[test]
    fn layers_defaults_file_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "redrec.toml",
                "[redis]\nurl = \"redis://file:1\"\npool_size = 3\n[index]\nnamespace = \"shop\"\n",
            )?;
            jail.set_env("REDREC_REDIS__URL", "redis://env:2");
            let s: Settings = figment(&Settings::default()).unwrap().extract()?;
            assert_eq!(s.redis.url, "redis://env:2");
            assert_eq!(s.redis.pool_size, 3);
            assert_eq!(s.index.namespace, "shop");
            assert_eq!(s.index.schema(1).unwrap().index.name, "shop:items:v1");
            Ok(())
        });
    }

    #[test]
    fn replicas_and_sentinel_come_from_file_or_env() {
        figment::Jail::expect_with(|jail| {
            let s: Settings = figment(&Settings::default()).unwrap().extract()?;
            assert!(s.redis.replicas.is_empty() && s.redis.sentinel.is_none());
            jail.create_file(
                "redrec.toml",
                "[redis]\nreplicas = [\"redis://r1:6379\"]\n\
                 [redis.sentinel]\nmaster_name = \"redrec\"\nnodes = [\"s1:26379\"]\n",
            )?;
            let s: Settings = figment(&Settings::default()).unwrap().extract()?;
            assert_eq!(s.redis.replicas, ["redis://r1:6379"]);
            let sentinel = s.redis.sentinel.unwrap();
            assert_eq!(
                (sentinel.master_name.as_str(), sentinel.check_ms),
                ("redrec", 1_000)
            );
            assert_eq!(sentinel.nodes, ["s1:26379"]);
            jail.set_env(
                "REDREC_REDIS__REPLICAS",
                "[\"redis://a:1\",\"redis://b:2\"]",
            );
            jail.set_env("REDREC_REDIS__SENTINEL__NODES", "[\"s2:1\",\"s3:2\"]");
            let s: Settings = figment(&Settings::default()).unwrap().extract()?;
            assert_eq!(s.redis.replicas, ["redis://a:1", "redis://b:2"]);
            assert_eq!(s.redis.sentinel.unwrap().nodes, ["s2:1", "s3:2"]);
            Ok(())
        });
    }

    #[test]
    fn a_user_state_cluster_comes_from_file_or_env() {
        figment::Jail::expect_with(|jail| {
            let s: Settings = figment(&Settings::default()).unwrap().extract()?;
            assert_eq!(
                s.redis.user_state, None,
                "user state lives with the catalog"
            );
            jail.create_file(
                "redrec.toml",
                "[redis.user_state]\ncluster = [\"redis://c1:7100\", \"redis://c2:7101\"]\n",
            )?;
            let s: Settings = figment(&Settings::default()).unwrap().extract()?;
            assert_eq!(
                s.redis.user_state.unwrap().cluster,
                ["redis://c1:7100", "redis://c2:7101"]
            );
            jail.set_env("REDREC_REDIS__USER_STATE__CLUSTER", "[\"redis://c3:1\"]");
            let s: Settings = figment(&Settings::default()).unwrap().extract()?;
            assert_eq!(s.redis.user_state.unwrap().cluster, ["redis://c3:1"]);
            jail.create_file("redrec.toml", "[redis.user_state]\nclustr = []\n")?;
            let err = figment(&Settings::default())
                .unwrap()
                .extract::<Settings>()
                .unwrap_err()
                .to_string();
            assert!(err.contains("clustr"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn names_the_source_of_a_bad_value() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("custom.toml", "[redis]\npool_size = \"many\"\n")?;
            jail.set_env("REDREC_CONFIG", "custom.toml");
            let err = figment(&Settings::default())
                .unwrap()
                .extract::<Settings>()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("redis.pool_size") && err.contains("custom.toml"),
                "{err}"
            );
            jail.set_env("REDREC_CONFIG", "missing.toml");
            let err = figment(&Settings::default()).unwrap_err().to_string();
            assert!(err.contains("missing.toml"), "{err}");
            Ok(())
        });
    }
}
