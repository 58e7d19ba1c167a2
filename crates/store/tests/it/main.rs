//! redrec-store against the real Redis: the typed calls over the deployment's RESP3 pool, in
//! the protocol the gateway uses, and over a plain (RESP2) multiplexed connection as ingest and
//! bench use them.

mod filter_fuzz;

use redrec_core::config::RedisConfig;
use redrec_core::schema::{ItemFields, VectorSettings, items_schema};
use redrec_store::{Error, Redis, Route, catalog, index, ratelimit};
use redrec_testkit::TestSpace;

fn redis() -> Redis {
    Redis::new(&RedisConfig {
        url: redrec_testkit::redis_url(),
        ..RedisConfig::default()
    })
    .expect("pool")
}

async fn create_index(space: &TestSpace) {
    let schema = items_schema(
        &space.ns.index(1),
        &space.ns.item_prefix(),
        &ItemFields::default(),
        &VectorSettings {
            dims: 4,
            ..VectorSettings::default()
        },
    );
    let mut con = space.conn().await;
    let _: () = schema
        .ft_create_cmd()
        .query_async(&mut con)
        .await
        .expect("FT.CREATE");
    let _: () = redis::cmd("FT.ALIASADD")
        .arg(space.ns.alias())
        .arg(space.ns.index(1))
        .query_async(&mut con)
        .await
        .expect("FT.ALIASADD");
}

fn item(category: &str, department: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("category".into(), category.as_bytes().to_vec()),
        ("department".into(), department.as_bytes().to_vec()),
        ("price".into(), b"2.5".to_vec()),
    ]
}

#[tokio::test]
async fn items_are_replaced_read_and_deleted() {
    let space = TestSpace::new("store_items");
    let redis = redis();
    let mut con = redis.conn(Route::Primary).await.unwrap();
    assert!(
        catalog::replace_item(&mut con, &space.ns, "a1", &item("fruit", "food"))
            .await
            .unwrap()
    );
    // a replace drops the fields the new version does not have
    let fewer = vec![("category".to_owned(), b"veg".to_vec())];
    assert!(
        !catalog::replace_item(&mut con, &space.ns, "a1", &fewer)
            .await
            .unwrap()
    );
    let stored = catalog::read_item(&mut con, &space.ns, "a1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored["category"], b"veg");
    assert_eq!(
        catalog::read_item(&mut con, &space.ns, "nope")
            .await
            .unwrap(),
        None
    );
    assert!(
        catalog::delete_item(&mut con, &space.ns, "a1")
            .await
            .unwrap()
    );
    assert!(
        !catalog::delete_item(&mut con, &space.ns, "a1")
            .await
            .unwrap()
    );
    let bad = catalog::read_item(&mut con, &space.ns, "has space").await;
    assert!(matches!(bad, Err(Error::BadInput(_))), "{bad:?}");
}

/// (department, category) groups of the index, sorted.
async fn groups(con: &mut impl redis::aio::ConnectionLike, alias: &str) -> Vec<(String, String)> {
    let rows = index::group_values(con, alias, &["department", "category"], 100, 1000)
        .await
        .unwrap();
    let mut pairs: Vec<(String, String)> = rows
        .into_iter()
        .map(|r| (r["department"].clone(), r["category"].clone()))
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test]
async fn index_info_and_group_values_read_both_protocols() {
    let space = TestSpace::new("store_index");
    create_index(&space).await;
    let redis = redis();
    let mut pooled = redis.conn(Route::Replica).await.unwrap();
    for (id, cat, dept) in [
        ("1", "fruit", "food"),
        ("2", "veg", "food"),
        ("3", "soap", "home"),
    ] {
        catalog::replace_item(&mut pooled, &space.ns, id, &item(cat, dept))
            .await
            .unwrap();
    }
    let mut plain = space.conn().await;
    // FT.CREATE scans the keyspace in the background: until that scan ends, two readings may
    // differ in `indexing` / `percent_indexed` (about 1 run in 3 here), so both protocols are
    // compared once it has ended
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let resp3 = loop {
        let info = index::require_info(&mut pooled, &space.ns.alias())
            .await
            .unwrap();
        if (!info.indexing && info.percent_indexed >= 1.0) || std::time::Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let resp2 = index::require_info(&mut plain, &space.ns.alias())
        .await
        .unwrap();
    assert_eq!(resp3, resp2);
    assert_eq!(resp3.name, space.ns.index(1));
    assert_eq!(resp3.vector_dims("embedding"), Some(4));
    assert_eq!(
        resp3.attribute("price").unwrap().flags,
        resp2.attribute("price").unwrap().flags
    );
    assert!(
        resp3
            .attribute("price")
            .unwrap()
            .flags
            .contains(&"SORTABLE".to_owned())
    );
    assert_eq!(
        index::info(&mut pooled, "no-such-index").await.unwrap(),
        None
    );
    let missing = index::require_info(&mut plain, "no-such-index").await;
    assert!(
        matches!(missing, Err(Error::IndexMissing { .. })),
        "{missing:?}"
    );

    let expected = [
        ("food".to_owned(), "fruit".to_owned()),
        ("food".into(), "veg".into()),
        ("home".into(), "soap".into()),
    ];
    assert_eq!(groups(&mut pooled, &space.ns.alias()).await, expected);
    assert_eq!(groups(&mut plain, &space.ns.alias()).await, expected);
    index::ping(&mut pooled).await.unwrap();
}

#[tokio::test]
async fn index_admin_creates_alters_aliases_records_and_drops() {
    let space = TestSpace::new("store_admin");
    let redis = redis();
    let mut con = redis.conn(Route::Primary).await.unwrap();
    let (ns, v1) = (&space.ns, space.ns.index(1));
    let schema = items_schema(
        &v1,
        &ns.item_prefix(),
        &ItemFields::default(),
        &VectorSettings {
            dims: 4,
            ..VectorSettings::default()
        },
    );
    index::create(&mut con, &schema.ft_create_args())
        .await
        .unwrap();
    let again = index::create(&mut con, &schema.ft_create_args()).await;
    assert!(matches!(again, Err(Error::Rejected { .. })), "{again:?}");
    assert!(index::list(&mut con).await.unwrap().contains(&v1));

    index::point_alias(&mut con, &ns.alias(), &v1)
        .await
        .unwrap();
    assert_eq!(
        index::require_info(&mut con, &ns.alias())
            .await
            .unwrap()
            .name,
        v1
    );
    let nowhere = index::point_alias(&mut con, &ns.alias(), "no-such-index").await;
    assert!(
        matches!(nowhere, Err(Error::IndexMissing { .. })),
        "{nowhere:?}"
    );

    let field = redrec_core::schema::FieldDef::tag("colour");
    index::add_field(&mut con, &v1, &schema.field_args(&field))
        .await
        .unwrap();
    let info = index::require_info(&mut con, &v1).await.unwrap();
    assert_eq!(info.attribute("colour").unwrap().kind, "TAG");
    let missing = index::add_field(&mut con, "no-such-index", &schema.field_args(&field)).await;
    assert!(
        matches!(missing, Err(Error::IndexMissing { .. })),
        "{missing:?}"
    );

    assert_eq!(
        index::recorded_schema(&mut con, ns, &v1).await.unwrap(),
        None
    );
    index::record_schema(&mut con, ns, &v1, &schema)
        .await
        .unwrap();
    assert_eq!(
        index::recorded_schema(&mut con, ns, &v1).await.unwrap(),
        Some(schema.clone())
    );
    index::forget_schema(&mut con, ns, &v1).await.unwrap();
    assert_eq!(
        index::recorded_schema(&mut con, ns, &v1).await.unwrap(),
        None
    );

    assert!(index::remove_alias(&mut con, &ns.alias()).await.unwrap());
    assert!(!index::remove_alias(&mut con, &ns.alias()).await.unwrap());
    assert!(index::drop(&mut con, &v1, true).await.unwrap());
    assert!(!index::drop(&mut con, &v1, true).await.unwrap());
    assert!(!index::list(&mut con).await.unwrap().contains(&v1));
}

#[tokio::test]
async fn rate_limit_windows_count_and_expire() {
    let space = TestSpace::new("store_rl");
    let redis = redis();
    let mut con = redis.conn(Route::Primary).await.unwrap();
    let window = 60_000;
    let now = 1_000_000 * window + 5;
    for expected in 1..=3 {
        let n = ratelimit::hit(&mut con, &space.ns, "key:ab", now, window)
            .await
            .unwrap();
        assert_eq!(n, expected);
    }
    // the next window starts again at one
    let n = ratelimit::hit(&mut con, &space.ns, "key:ab", now + window, window)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(space.ns.rate_limit(&format!("key:ab:{}", now / window)))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(ttl > window as i64 && ttl <= 2 * window as i64, "{ttl}");
}

#[tokio::test]
async fn unreachable_redis_is_unavailable_and_bad_urls_are_config_errors() {
    let down = Redis::new(&RedisConfig {
        url: "redis://127.0.0.1:1".into(),
        connect_timeout_ms: 200,
        command_timeout_ms: 300,
        ..RedisConfig::default()
    })
    .unwrap();
    let e = down
        .conn(Route::Primary)
        .await
        .err()
        .expect("no server on port 1");
    assert!(e.is_unavailable(), "{e}");
    let bad = Redis::new(&RedisConfig {
        url: "http://not-redis".into(),
        ..RedisConfig::default()
    });
    assert!(
        matches!(
            bad,
            Err(Error::Config {
                key: "redis.url",
                ..
            })
        ),
        "{:?}",
        bad.err()
    );
}

/// A replica that refuses connections is left out: reads fall back to the primary at once,
/// readiness reports the replica, and bad replica / Sentinel settings name their key.
#[tokio::test]
async fn a_down_replica_is_left_out_and_reads_fall_back_to_the_primary() {
    let redis = Redis::new(&RedisConfig {
        url: redrec_testkit::redis_url(),
        replicas: vec!["redis://127.0.0.1:1".into()],
        connect_timeout_ms: 200,
        replica_retry_ms: 60_000,
        ..RedisConfig::default()
    })
    .unwrap();
    assert!(!redis.is_single_node());
    for _ in 0..3 {
        let mut con = redis
            .conn(Route::Replica)
            .await
            .expect("the primary serves");
        index::ping(&mut con).await.unwrap();
    }
    let checks = redis.check_nodes().await;
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert_eq!(
        (checks[0].role, checks[0].result.is_ok()),
        ("primary", true)
    );
    assert_eq!(checks[1].role, "replica");
    assert_eq!(checks[1].addr, "127.0.0.1:1");
    assert!(checks[1].result.is_err(), "{checks:?}");

    let bad = |cfg: RedisConfig| match Redis::new(&cfg) {
        Err(Error::Config { key, .. }) => key,
        other => panic!("expected a config error, got {:?}", other.err()),
    };
    assert_eq!(
        bad(RedisConfig {
            replicas: vec!["http://nope".into()],
            ..RedisConfig::default()
        }),
        "redis.replicas"
    );
    let sentinel = |master: &str, nodes: &[&str]| RedisConfig {
        sentinel: Some(redrec_core::config::SentinelConfig {
            master_name: master.into(),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            check_ms: 1_000,
        }),
        ..RedisConfig::default()
    };
    assert_eq!(
        bad(sentinel("", &["127.0.0.1:26379"])),
        "redis.sentinel.master_name"
    );
    assert_eq!(bad(sentinel("redrec", &[])), "redis.sentinel.nodes");
    assert_eq!(
        bad(sentinel("redrec", &["127.0.0.1"])),
        "redis.sentinel.nodes"
    );
}

/// With Sentinel configured but no Sentinel answering, a primary call is unavailable and says
/// that the Sentinels were asked.
#[tokio::test]
async fn no_sentinel_answering_is_unavailable() {
    let redis = Redis::new(&RedisConfig {
        url: redrec_testkit::redis_url(),
        connect_timeout_ms: 200,
        sentinel: Some(redrec_core::config::SentinelConfig {
            master_name: "redrec".into(),
            nodes: vec!["127.0.0.1:1".into()],
            check_ms: 1_000,
        }),
        ..RedisConfig::default()
    })
    .unwrap();
    let e = redis.conn(Route::Primary).await.err().expect("no sentinel");
    assert!(e.is_unavailable(), "{e}");
    assert!(e.to_string().contains("sentinel"), "{e}");
}

#[tokio::test]
async fn served_lists_are_recorded_attributed_once_and_counted_per_variant() {
    use redrec_store::online::{self, FeedbackHit, ServedList};
    let space = TestSpace::new("store_online");
    let redis = redis();
    let mut con = redis.conn(Route::Primary).await.unwrap();
    let exp = Some(("e".to_owned(), "b".to_owned()));
    let list = |id: &str, items: &[&str]| ServedList {
        rec_id: id.to_owned(),
        at_ms: 1_700_000_000_000,
        route: "recommendations".into(),
        user_id: Some("u1".into()),
        profile: "discovery".into(),
        experiment: exp.clone(),
        items: items.iter().map(|s| (*s).to_owned()).collect(),
        sources: items.iter().map(|_| "popular".to_owned()).collect(),
    };
    online::record_lists(
        &mut con,
        &space.ns,
        &[list("r1", &["a", "b", "c"]), list("r2", &["c", "d"])],
        60_000,
    )
    .await
    .unwrap();
    let read = online::read_lists(&mut con, &space.ns, &["r1", "nope"])
        .await
        .unwrap();
    let r1 = read[0].as_ref().expect("r1 recorded");
    assert_eq!(r1.items, ["a", "b", "c"]);
    assert_eq!(r1.experiment, exp);
    assert_eq!(r1.user_id.as_deref(), Some("u1"));
    assert!(read[1].is_none());
    let ttl: i64 = redis::cmd("PTTL")
        .arg(space.ns.rec("r1"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!((1..=60_000).contains(&ttl), "{ttl}");

    let hit = |rec: &str, kind: &'static str, position: usize| FeedbackHit {
        rec_id: rec.to_owned(),
        kind,
        position,
        experiment: exp.clone(),
    };
    let firsts = online::count_feedback(
        &mut con,
        &space.ns,
        &[
            hit("r1", "click", 1),
            hit("r1", "click", 2),
            hit("r2", "click", 0),
        ],
        60_000,
    )
    .await
    .unwrap();
    assert_eq!(firsts, [true, false, true]);
    let c = online::read_counters(&mut con, &space.ns, "e", &["b", "a"])
        .await
        .unwrap();
    assert_eq!(c[0].get(online::IMPRESSIONS), 2);
    assert_eq!(c[0].get(online::ITEMS_SERVED), 5);
    assert_eq!(c[0].get("click"), 3);
    assert_eq!(c[0].get(&online::lists_field("click")), 2);
    // first clicks at positions 1 and 0: 1-based 2 + 1
    assert_eq!(c[0].get(online::FIRST_CLICK_POSITION_SUM), 3);
    assert_eq!(c[0].distinct_items, 4);
    assert_eq!(c[1], online::VariantCounters::default());
    online::reset_counters(&mut con, &space.ns, "e", &["b"])
        .await
        .unwrap();
    let c = online::read_counters(&mut con, &space.ns, "e", &["b"])
        .await
        .unwrap();
    assert_eq!(c[0].get(online::IMPRESSIONS), 0);
}

/// A slow, off-the-hot-path call runs on a dedicated connection with its own timeout: a command
/// that outlasts `command_timeout_ms` fails on a pooled connection and succeeds on the dedicated
/// one, and the pool still answers at once while the slow call runs (no head-of-line blocking).
#[tokio::test]
async fn a_dedicated_connection_outlasts_the_command_timeout_without_blocking_the_pool() {
    let space = TestSpace::new("store_slow");
    let redis = Redis::new(&RedisConfig {
        url: redrec_testkit::redis_url(),
        command_timeout_ms: 100,
        pool_size: 1,
        ..RedisConfig::default()
    })
    .unwrap();
    // BLPOP on an empty list blocks for its timeout (0.3 s): a stand-in for a slow aggregation.
    let empty = space.ns.meta("never-filled");
    let slow = |mut con: redis::aio::MultiplexedConnection, key: String| async move {
        redis::cmd("BLPOP")
            .arg(key)
            .arg(0.3)
            .query_async::<Option<(String, String)>>(&mut con)
            .await
    };
    {
        let pooled = redis.conn(Route::Primary).await.unwrap();
        let e = slow((*pooled).clone(), empty.clone())
            .await
            .expect_err("0.3 s > 100 ms");
        assert!(e.is_timeout(), "{e}");
    }
    // the timed-out reply arrives on the pooled connection; let it drain
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;

    let long = redis
        .dedicated_conn(Route::Replica, std::time::Duration::from_secs(2))
        .await
        .unwrap();
    let slow_call = tokio::spawn(slow(long, empty));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // while the slow call runs, the pool's one connection answers within its 100 ms
    let mut con = redis.conn(Route::Primary).await.unwrap();
    index::ping(&mut con).await.unwrap();
    assert!(!slow_call.is_finished(), "BLPOP should still be blocking");
    assert_eq!(slow_call.await.unwrap().unwrap(), None);
}
