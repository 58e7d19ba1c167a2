//! The `redrec-ingest` binary: exit codes, messages, config from the environment.

use std::process::{Command, Output};

use redrec_testkit::TestSpace;

use crate::common::tmp_dir;

fn cli(space: &TestSpace, dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_redrec-ingest"))
        .current_dir(dir)
        .env_remove("REDREC_CONFIG")
        .env("REDREC_REDIS__URL", redrec_testkit::redis_url())
        .env("REDREC_INDEX__VECTOR__DIMS", "2")
        .env("REDREC_MAPPING__ID", "sku")
        .args(["--namespace", space.ns.name(), "--progress", "quiet"])
        .args(args)
        .output()
        .expect("run redrec-ingest")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn load_strict_then_skip_invalid_then_status_and_schema_export() {
    let space = TestSpace::new("cli");
    let dir = tmp_dir("cli");
    std::fs::write(
        dir.join("items.jsonl"),
        "{\"sku\": \"a\", \"text\": \"tea\", \"price\": 3, \"embedding\": [1, 0]}\n\
         {\"sku\": \"b\", \"text\": \"coffee\", \"price\": \"n/a\", \"embedding\": [0, 1]}\n",
    )
    .unwrap();

    let out = cli(&space, &dir, &["load", "items.jsonl"]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "strict load of a bad file succeeded");
    assert!(
        err.contains("row 2: field `price`: expected a number, got `n/a`"),
        "{err}"
    );
    assert!(
        err.contains("1 invalid row(s) in items.jsonl: nothing written"),
        "{err}"
    );

    let out = cli(
        &space,
        &dir,
        &[
            "load",
            "items.jsonl",
            "--skip-invalid",
            "--rejects",
            "bad.jsonl",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("rows read 2, written 1, rejected 1"),
        "{stdout}"
    );
    let rejects = std::fs::read_to_string(dir.join("bad.jsonl")).unwrap();
    assert!(
        rejects.contains("\"row\":2") && rejects.contains("\"field\":\"price\""),
        "{rejects}"
    );

    let out = cli(&space, &dir, &["status"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "{} -> {}: 1 docs, 100.0% indexed",
            space.ns.alias(),
            space.ns.index(1)
        )),
        "{stdout}"
    );

    let out = cli(&space, &dir, &["schema", "export"]);
    let yaml = text(&out.stdout);
    let schema = redrec_core::schema::IndexSchema::from_yaml(&yaml).unwrap();
    assert_eq!(schema.vector_field("embedding").unwrap().dims, 2);
    assert_eq!(schema.index.name, space.ns.index(1));
}

#[tokio::test]
async fn seed_synthetic_once_then_skip_unless_forced() {
    let space = TestSpace::new("cli_seed");
    let dir = tmp_dir("cli_seed");
    let args = [
        "seed",
        "synthetic",
        "--items",
        "300",
        "--dim",
        "8",
        "--seed",
        "3",
    ];
    let out = cli(&space, &dir, &args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("rows read 300, written 300, rejected 0"),
        "{stdout}"
    );
    let out = cli(&space, &dir, &args);
    assert!(
        text(&out.stdout).contains("already holds synthetic items=300 dim=8 seed=3"),
        "{}",
        text(&out.stdout)
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    let out = cli(&space, &dir, &forced);
    assert!(
        text(&out.stdout).contains("written 300"),
        "{}",
        text(&out.stdout)
    );
}
