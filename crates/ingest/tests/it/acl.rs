//! `redrec-ingest` run as the least-privilege loader user of docs/SECURITY.md
//! (`redrec_store::acl::loader_rules`): seeding (index creation, item writes, the seed marker),
//! status and an event import work inside the namespace; writing another namespace is refused.

use std::process::{Command, Output};

use redrec_testkit::TestSpace;

use crate::common::tmp_dir;

const PASSWORD: &str = "loader-acl-pw";

fn cli(url: &str, namespace: &str, dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redrec-ingest"))
        .current_dir(dir)
        .env_remove("REDREC_CONFIG")
        .env("REDREC_REDIS__URL", url)
        .args(["--namespace", namespace, "--progress", "quiet"])
        .args(args)
        .output()
        .expect("run redrec-ingest")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn the_loader_runs_as_the_documented_least_privilege_user() {
    let space = TestSpace::new("acl_loader");
    let dir = tmp_dir("acl_loader");
    let user = space.acl_user(
        "loader",
        PASSWORD,
        &redrec_store::acl::loader_rules(&space.ns),
    );
    let url = user.url();
    let mut admin = space.conn().await;
    let ns = space.ns.name();

    let out = cli(
        &url,
        ns,
        &dir,
        &["seed", "synthetic", "--items", "200", "--dim", "8"],
    );
    assert!(
        out.status.success(),
        "seed as the loader user: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("written 200"),
        "{}",
        text(&out.stdout)
    );

    let out = cli(&url, ns, &dir, &["status"]);
    assert!(out.status.success(), "status: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("200 docs, 100.0% indexed"),
        "{}",
        text(&out.stdout)
    );

    std::fs::write(
        dir.join("events.jsonl"),
        "{\"user\": \"u1\", \"item\": \"s1\", \"ts\": 1767225600000, \"type\": \"purchase\"}\n\
         {\"user\": \"u1\", \"item\": \"s2\", \"ts\": 1767225660000, \"type\": \"click\"}\n",
    )
    .unwrap();
    let out = cli(
        &url,
        ns,
        &dir,
        &[
            "events",
            "events.jsonl",
            "--user-column",
            "user",
            "--item-column",
            "item",
            "--time-column",
            "ts",
            "--type-column",
            "type",
        ],
    );
    assert!(out.status.success(), "events: {}", text(&out.stderr));
    // the purchase reached the user's time-decayed purchase history, the click did not
    let bought: Vec<String> = redis::cmd("ZRANGE")
        .arg(space.ns.user_buys("u1"))
        .arg(0)
        .arg(-1)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(bought, ["s1"]);

    // Another namespace is out of reach: the write is refused and said so.
    let other = format!("{ns}x");
    let out = cli(
        &url,
        &other,
        &dir,
        &["seed", "synthetic", "--items", "10", "--dim", "8"],
    );
    assert!(!out.status.success(), "seeding another namespace must fail");
    let err = text(&out.stderr);
    assert!(
        err.contains("NOPERM") || err.to_lowercase().contains("permission"),
        "{err}"
    );

    drop(user);
    // the refused seed may have created an index over the other prefix (index names are not keys)
    let _: redis::RedisResult<()> = redis::cmd("FT.DROPINDEX")
        .arg(format!("{other}:items:v1"))
        .query_async(&mut admin)
        .await;
}
