//! The evaluation on a small synthetic dataset with planted structure, whose right answers are
//! worked out by hand below: the whole offline path (CSV file -> split -> baselines -> metrics ->
//! report files) must reproduce them exactly.

use std::{fmt::Write as _, path::PathBuf};

use redrec_eval::{
    EvalConfig,
    baselines::TifuParams,
    catalog::NonMerchRule,
    data::{Columns, TimeUnit, parse_datetime},
    report::Report,
    split::SplitKind,
};

/// Three groups of ten households. Every household buys `milk` and its own staple `s{g}-{m}` in
/// each of five baskets before the cut-off; members 1..9 also buy their group's pair `a{g}` and
/// `b{g}` together; member 0 (the newcomer) only ever bought `a{g}`.
/// Targets (first basket after the cut-off): members 1..9 `{s, a}` (both repeats); the newcomer
/// `{s, b}` (`b` is an explore item: never bought by them, always bought by their neighbours).
fn planted_csv() -> String {
    let mut csv = String::from("household,product,day,basket\n");
    for g in 0..3 {
        for m in 0..10 {
            let h = format!("h{g}-{m}");
            let mut line = |item: &str, day: u32| {
                let _ = writeln!(csv, "{h},{item},2020-01-{day:02}T10:00:00Z,{h}-{day}");
            };
            for day in 1..=5 {
                line("milk", day);
                line(&format!("a{g}"), day);
                if m > 0 {
                    line(&format!("b{g}"), day);
                }
                line(&format!("s{g}-{m}"), day);
            }
            line(&format!("s{g}-{m}"), 11);
            line(&format!("{}{g}", if m > 0 { "a" } else { "b" }), 11);
        }
    }
    csv
}

fn config(dir: &std::path::Path, file: PathBuf) -> EvalConfig {
    EvalConfig {
        interactions: file,
        format: None,
        columns: Columns {
            user: "household".into(),
            item: "product".into(),
            time: "day".into(),
            basket: Some("basket".into()),
            quantity: None,
        },
        time_unit: TimeUnit::Auto,
        split: SplitKind::Cutoff {
            at: parse_datetime("2020-01-10").unwrap(),
        },
        min_baskets: 3,
        max_users: None,
        seed: 7,
        k: 4,
        resamples: 200,
        tifu: TifuParams {
            group_size: 7,
            within_decay: 0.9,
            group_decay: 0.7,
            neighbours: 5,
            alpha: 0.5,
        },
        als: None,
        frontier: false,
        cf: redrec_eval::cf::CfMode::Off,
        cf_params: Default::default(),
        half_life_days: 30.0,
        non_merch: NonMerchRule::new("department", &[], "category", &[]),
        redis_url: None,
        namespace: "unused".into(),
        gateway: None,
        out: dir.join("out"),
    }
}

fn arm<'a>(report: &'a Report, prefix: &str) -> &'a redrec_eval::metrics::Summary {
    &report
        .arms
        .iter()
        .find(|a| a.name.starts_with(prefix))
        .unwrap_or_else(|| panic!("no arm {prefix}"))
        .summary
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn planted_structure_gives_the_known_answers() {
    let dir = std::env::temp_dir().join(format!("redrec-eval-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("planted.csv");
    std::fs::write(&file, planted_csv()).unwrap();
    let report = redrec_eval::run(&config(&dir, file)).await.unwrap();

    assert_eq!(report.split_stats.evaluated_users, 30);
    assert_eq!(report.split_stats.train_baskets, 150);
    // 30 targets of 2 items; only the 3 newcomers' `b` is not a repeat.
    assert!(close(report.split_stats.repeat_share, 57.0 / 60.0));

    // G-Pop lists milk, a0, a1, a2 (150 / 50 / 50 / 50 baskets): members hit `a` (1 of 2),
    // newcomers hit nothing.
    let gpop = arm(&report, "G-Pop");
    assert!(close(gpop.recall.mean, 27.0 * 0.5 / 30.0), "{gpop:?}");
    assert!(close(gpop.phr.mean, 27.0 / 30.0));
    assert!(close(gpop.explore_recall.mean, 0.0));
    assert_eq!(gpop.explore_recall.n, 3);
    assert!(close(gpop.repeat_recall.mean, 27.0 * 0.5 / 30.0));
    // 4 distinct items of 37.
    assert!(close(gpop.coverage, 4.0 / 37.0));

    // P-Pop: members' four items all listed (recall 1); a newcomer's list is milk, a, s and a
    // G-Pop filler, so only `s` hits.
    let ppop = arm(&report, "P-Pop");
    assert!(close(ppop.recall.mean, (27.0 + 1.5) / 30.0), "{ppop:?}");
    assert!(close(ppop.repeat_recall.mean, 1.0));
    assert!(close(ppop.explore_recall.mean, 0.0));
    let decayed = arm(&report, "decayed P-Pop");
    assert!(close(decayed.recall.mean, ppop.recall.mean));

    // TIFU-KNN: a newcomer's five nearest neighbours are members of its group, who all bought
    // `b`: it scores 0.5 (neighbours) like the newcomer's own `s` and wins the tie on global
    // popularity, so the newcomer's list is milk, a, b, s: both targets hit.
    let tifu = arm(&report, "TIFU-KNN");
    assert!(close(tifu.recall.mean, 1.0), "{tifu:?}");
    assert!(close(tifu.explore_recall.mean, 1.0));

    // Intervals bracket the means; a constant figure has a zero-width interval.
    for s in [gpop, ppop, tifu] {
        for e in [s.recall, s.ndcg, s.phr, s.repeat_recall] {
            assert!(e.lo <= e.mean + 1e-12 && e.mean <= e.hi + 1e-12, "{e:?}");
        }
    }
    assert!(gpop.recall.lo < gpop.recall.hi);
    assert_eq!((tifu.recall.lo, tifu.recall.hi), (1.0, 1.0));

    let out = dir.join("out");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| TIFU-KNN | 1.000 [1.000, 1.000]"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["arms"].as_array().unwrap().len(), 4);
    assert_eq!(json["split_stats"]["evaluated_users"], 30);
    if out.join("quality.png").exists() {
        assert!(
            std::fs::read(out.join("quality.png"))
                .unwrap()
                .starts_with(b"\x89PNG")
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The explore frontier's arms: every list full, and an arm that gives every place to
/// never-bought items lists no repeat at all, while one place keeps the household's own top
/// items first.
#[tokio::test]
async fn frontier_arms_give_places_to_never_bought_items() {
    let dir = std::env::temp_dir().join(format!("redrec-eval-frontier-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("planted.csv");
    std::fs::write(&file, planted_csv()).unwrap();
    let mut cfg = config(&dir, file);
    cfg.frontier = true;
    let report = redrec_eval::run(&cfg).await.unwrap();
    let frontier: Vec<_> = report
        .arms
        .iter()
        .filter(|a| a.name.starts_with("frontier:"))
        .collect();
    // G-Pop and the neighbours (no ALS in this run)
    assert_eq!(frontier.len(), 2 * redrec_eval::frontier::PLACES.len());
    let all_new = arm(&report, "frontier: decayed P-Pop + G-Pop fixed 10");
    assert!(close(all_new.repeat_recall.mean, 0.0), "{all_new:?}");
    let decayed = arm(&report, "decayed P-Pop");
    let one = arm(&report, "frontier: decayed P-Pop + G-Pop fixed 1");
    // members' four items fill k = 4 places: one explore place costs one of them
    assert!(
        one.repeat_recall.mean < decayed.repeat_recall.mean,
        "{one:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_row_without_a_user_is_an_error_naming_file_row_and_column() {
    let dir = std::env::temp_dir().join(format!("redrec-eval-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.csv");
    std::fs::write(
        &file,
        "household,product,day,basket\nh1,x,2020-01-01,b1\n,x,2020-01-02,b2\n",
    )
    .unwrap();
    let err = redrec_eval::run(&config(&dir, file)).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("bad.csv row 2: column `household`"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}
