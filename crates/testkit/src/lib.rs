//! Test support for crates whose tests talk to the real Redis with the Search module.
//!
//! The server comes from `REDREC_REDIS__URL` (set by `cargo xtask test`), defaulting to the
//! embedded server's `redis://127.0.0.1:6380`. When it cannot be reached the test FAILS with the
//! command to run: there is no silent skip.
//!
//! Tests of user state on a Redis Cluster take a [`TestCluster`]: the primaries listed in
//! `REDREC_TEST_CLUSTER` (comma-separated URLs, set by `cargo xtask test`, which starts a
//! three-primary cluster), defaulting to the cluster `cargo xtask redis cluster up --port 7000
//! --shards 3` starts. Unreachable, it fails the test with that command, like the server.
//!
//! Each test takes a [`TestSpace`]: a unique key namespace (and so unique index and alias names)
//! whose keys and indexes are dropped when it goes out of scope. [`TestSpace::acl_user`] creates a
//! Redis ACL user for the space (deleted on drop) and [`with_user`] puts its credentials in a URL.

pub mod proxy;
pub mod tls;

use std::sync::atomic::{AtomicU32, Ordering};

use redrec_core::keys::Namespace;

/// URL of the Redis under test.
pub fn redis_url() -> String {
    std::env::var("REDREC_REDIS__URL").unwrap_or_else(|_| {
        format!(
            "redis://127.0.0.1:{}",
            redrec_core::config::DEFAULT_REDIS_PORT
        )
    })
}

fn unreachable(url: &str, err: &dyn std::fmt::Display) -> ! {
    let url = redrec_core::config::redact_url(url);
    panic!(
        "redis under test at {url} is not reachable ({err}).\n\
         Run the tests with `cargo xtask test` (it starts the embedded Redis), or start it with \
         `cargo xtask redis up`, or point REDREC_REDIS__URL at a Redis 7.2+/8 with the Search module."
    )
}

/// `url` with `user:password@` as its credentials (replacing any it had).
pub fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a redis:// URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host}")
}

/// A Redis ACL user made for one test; deleted on drop.
pub struct AclUser {
    pub name: String,
    pub password: String,
    client: redis::Client,
}

impl AclUser {
    /// The URL of the Redis under test with this user's credentials.
    pub fn url(&self) -> String {
        with_user(&redis_url(), &self.name, &self.password)
    }
}

impl Drop for AclUser {
    fn drop(&mut self) {
        if let Ok(mut con) = self.client.get_connection() {
            let _: redis::RedisResult<i64> = redis::cmd("ACL")
                .arg("DELUSER")
                .arg(&self.name)
                .query(&mut con);
        }
    }
}

/// A unique namespace for one test, cleaned up on drop.
pub struct TestSpace {
    pub ns: Namespace,
    client: redis::Client,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestSpace {
    /// Reserves a namespace such as `t:4711:3:knn_order` and checks the server has Search.
    pub fn new(label: &str) -> TestSpace {
        let url = redis_url();
        let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| unreachable(&url, &e));
        let mut con = client
            .get_connection()
            .unwrap_or_else(|e| unreachable(&url, &e));
        let modules: redis::Value = redis::cmd("MODULE")
            .arg("LIST")
            .query(&mut con)
            .unwrap_or_else(|e| unreachable(&url, &e));
        assert!(
            format!("{modules:?}").to_lowercase().contains("search"),
            "redis at {} has no Search module (MODULE LIST: {modules:?}); use `cargo xtask redis up`",
            redrec_core::config::redact_url(&url)
        );
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let ns = Namespace::new(&format!("t:{}:{n}:{label}", std::process::id()));
        let space = TestSpace { ns, client };
        space.cleanup();
        space
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A fresh multiplexed async connection.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client
            .get_multiplexed_async_connection()
            .await
            .expect("async connection to redis under test")
    }

    /// A blocking connection.
    pub fn sync_conn(&self) -> redis::Connection {
        self.client
            .get_connection()
            .expect("connection to redis under test")
    }

    /// Creates (replacing) the ACL user `{namespace}-{role}` (made URL-safe) with `password` and
    /// `rules` (e.g. `redrec_store::acl::gateway_rules`), deleted when the returned value drops.
    pub fn acl_user(&self, role: &str, password: &str, rules: &[String]) -> AclUser {
        // a URL-safe name (the namespace holds `:`)
        let name: String = format!("{}-{role}", self.ns.name())
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER")
            .arg(&name)
            .arg("reset")
            .arg("on")
            .arg(format!(">{password}"));
        for r in rules {
            cmd.arg(r);
        }
        let () = cmd.query(&mut self.sync_conn()).expect("ACL SETUSER");
        AclUser {
            name,
            password: password.to_owned(),
            client: self.client.clone(),
        }
    }

    /// Drops every index whose name starts with this namespace and deletes its keys.
    pub fn cleanup(&self) {
        let Ok(mut con) = self.client.get_connection() else {
            return;
        };
        let prefix = format!("{}:", self.ns.name());
        let indexes: Vec<String> = redis::cmd("FT._LIST").query(&mut con).unwrap_or_default();
        for idx in indexes.iter().filter(|i| i.starts_with(&prefix)) {
            let _: redis::RedisResult<()> = redis::cmd("FT.DROPINDEX").arg(idx).query(&mut con);
        }
        let aliases = [self.ns.alias()];
        for alias in aliases {
            let _: redis::RedisResult<()> = redis::cmd("FT.ALIASDEL").arg(alias).query(&mut con);
        }
        let pattern = format!("{prefix}*");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query(&mut con)
            .unwrap_or_default();
        for chunk in keys.chunks(1000) {
            let _: redis::RedisResult<()> = redis::cmd("UNLINK").arg(chunk).query(&mut con);
        }
    }
}

impl Drop for TestSpace {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Primaries of the Redis Cluster under test.
pub fn cluster_urls() -> Vec<String> {
    std::env::var("REDREC_TEST_CLUSTER")
        .unwrap_or_else(|_| {
            "redis://127.0.0.1:7000,redis://127.0.0.1:7001,redis://127.0.0.1:7002".into()
        })
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect()
}

fn cluster_unusable(url: &str, err: &dyn std::fmt::Display) -> ! {
    panic!(
        "redis cluster node {} under test is not usable ({err}).\n\
         Run the tests with `cargo xtask test` (it starts a three-primary cluster), or start one \
         with `cargo xtask redis cluster up --port 7000 --shards 3 --no-persist`, or list every \
         primary of yours in REDREC_TEST_CLUSTER (comma-separated URLs).",
        redrec_core::config::redact_url(url)
    )
}

/// The keys of one namespace on the Redis Cluster under test (listed as `REDREC_TEST_CLUSTER`,
/// every primary), deleted when the test starts and when it ends.
pub struct TestCluster {
    /// The primaries' URLs.
    pub urls: Vec<String>,
    prefix: String,
    nodes: Vec<redis::Client>,
}

impl TestCluster {
    /// Checks every primary answers as part of a healthy cluster and clears `ns`'s keys there.
    pub fn new(ns: &Namespace) -> TestCluster {
        let urls = cluster_urls();
        let fail = cluster_unusable;
        let nodes: Vec<redis::Client> = urls
            .iter()
            .map(|url| {
                let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| fail(url, &e));
                let mut con = client.get_connection().unwrap_or_else(|e| fail(url, &e));
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut con)
                    .unwrap_or_else(|e| fail(url, &e));
                if !info.contains("cluster_state:ok") {
                    fail(url, &"CLUSTER INFO does not say cluster_state:ok");
                }
                client
            })
            .collect();
        let cluster = TestCluster {
            urls,
            prefix: format!("{}:", ns.name()),
            nodes,
        };
        cluster.cleanup();
        cluster
    }

    /// A cluster connection (RESP3, a generous response timeout: the machine is shared).
    pub async fn conn(&self) -> redis::cluster_async::ClusterConnection {
        redis::cluster::ClusterClientBuilder::new(self.urls.clone())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .response_timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("cluster client")
            .get_async_connection()
            .await
            .expect("connection to the redis cluster under test")
    }

    /// `(node URL, key)` for every key of the namespace, node by node.
    pub fn keys(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (url, client) in self.urls.iter().zip(&self.nodes) {
            let mut con = client.get_connection().expect("cluster node");
            let mut keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", self.prefix))
                .query(&mut con)
                .expect("KEYS");
            keys.sort();
            out.extend(keys.into_iter().map(|k| (url.clone(), k)));
        }
        out
    }

    /// Deletes the namespace's keys on every primary (one key per command: a cluster node
    /// refuses a multi-key command across slots).
    pub fn cleanup(&self) {
        for client in &self.nodes {
            let Ok(mut con) = client.get_connection() else {
                continue;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", self.prefix))
                .query(&mut con)
                .unwrap_or_default();
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("UNLINK").arg(key).ignore();
            }
            let _: redis::RedisResult<()> = pipe.query(&mut con);
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.cleanup();
    }
}
