//! The operator dashboard (`/admin`) in headless Chromium: after real traffic (served lists in
//! an experiment, events attributed to them), the page shows the serving index, events per
//! minute, stage latency percentiles and the experiment's variants with their live figures, each
//! checked against what the gateway's own routes say. Saves `target/browser/admin.png`.

use serde_json::{Value, json};

use redrec_gateway::online::{ExperimentConfig, VariantConfig};

use crate::{http, support, webdriver};

const EXPERIMENT: &str = "admin-ab";
const USERS: usize = 12;

/// The cells of every row of table `#id` (the header row first), as text.
fn rows(v: &Value) -> Vec<Vec<String>> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a table: {v}"))
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .collect()
}

async fn table(browser: &webdriver::Browser, id: &str) -> Vec<Vec<String>> {
    rows(
        &browser
            .script(&format!(
                "return [...document.querySelectorAll('#{id} tr')].map(r => [...r.children].map(c => c.textContent));"
            ))
            .await,
    )
}

/// The row of `table` whose first cell is `label`.
fn row<'a>(table: &'a [Vec<String>], label: &str) -> &'a [String] {
    table
        .iter()
        .find(|r| r.first().map(String::as_str) == Some(label))
        .unwrap_or_else(|| panic!("no row `{label}` in {table:?}"))
}

fn number(cell: &str) -> f64 {
    cell.trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("`{cell}` is not a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_dashboard_shows_index_traffic_stage_latency_and_experiments() {
    let (_space, gw) = support::catalog_gateway_with("browser_admin", |s| {
        s.online.impressions = true;
        s.online.experiments = vec![ExperimentConfig {
            name: EXPERIMENT.into(),
            routes: vec!["recommendations".into()],
            variants: ["default", "discovery"]
                .map(|p| VariantConfig {
                    profile: p.into(),
                    name: None,
                    weight: 1,
                })
                .to_vec(),
        }];
    })
    .await;
    let addr = gw.addr.clone();
    let key = Some(support::KEY);

    // Traffic: a list for each user (each in one of the two variants), a click on the first
    // item of the first half of them, attributed through the list's rec_id.
    let mut clicks = Vec::new();
    let mut shown = Vec::new();
    for u in 0..USERS {
        let user = format!("admin-u{u}");
        let r = http::json(
            &addr,
            "POST",
            "/v1/recommendations",
            None,
            Some(&json!({"user_id": user, "k": 5})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let list = r.json();
        assert_eq!(list["experiment"]["name"], EXPERIMENT, "{list}");
        shown.push(list["items"][1]["id"].clone());
        if u < USERS / 2 {
            clicks.push(json!({"type": "click", "user_id": user,
                "item_id": list["items"][0]["id"], "rec_id": list["rec_id"], "position": 0}));
        }
    }
    let r = http::json(
        &addr,
        "POST",
        "/v1/events",
        key,
        Some(&Value::Array(clicks)),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    // the impression writer records in the background: wait until every list is in the report
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let report = loop {
        let r = http::json(
            &addr,
            "GET",
            &format!("/v1/experiments/{EXPERIMENT}"),
            key,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let report = r.json();
        let lists: u64 = report["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["impressions"].as_u64().unwrap())
            .sum();
        let clicked: u64 = report["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["clicks"].as_u64().unwrap())
            .sum();
        if lists == USERS as u64 && clicked == (USERS / 2) as u64 {
            break report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lists not recorded: {report}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let index = http::json(&addr, "GET", "/v1/index", key, None)
        .await
        .json();

    let browser = webdriver::Browser::launch().await;
    browser
        .goto(&format!("http://{addr}/admin#key={}", support::KEY))
        .await;
    browser
        .wait_for(
            "the first refresh",
            "return Number(document.body.dataset.refreshes || 0) >= 1;",
        )
        .await;

    // More events after the first refresh, then a second refresh: the per-minute rates are
    // the difference between the two.
    let views: Vec<Value> = shown[..5]
        .iter()
        .map(|item| json!({"type": "view", "user_id": "admin-u0", "item_id": item}))
        .collect();
    let r = http::json(&addr, "POST", "/v1/events", key, Some(&Value::Array(views))).await;
    assert_eq!(r.status, 202, "{}", r.text());
    browser
        .script("document.getElementById('key').dispatchEvent(new Event('change')); return true;")
        .await;
    // the first refresh that counts all 11 events (6 clicks, 5 views); read at once, before
    // the next periodic refresh (5 s) compares against it
    let traffic = rows(
        &browser
            .wait_for(
                "a refresh after the views",
                &format!(
                    "const rows = [...document.querySelectorAll('#traffic tr')].map(r => [...r.children].map(c => c.textContent)); \
                     return rows.some(r => r[0] === 'events accepted' && r[1] === '{}') && rows;",
                    USERS / 2 + 5
                ),
            )
            .await,
    );
    let status = browser
        .script("return document.getElementById('status').textContent;")
        .await;
    assert!(
        status.as_str().unwrap().starts_with("updated"),
        "the dashboard reports an error: {status}"
    );

    // Catalog and index: what GET /v1/index says.
    let t = table(&browser, "index").await;
    assert_eq!(row(&t, "index")[1], index["index_name"].as_str().unwrap());
    assert_eq!(
        row(&t, "documents")[1],
        index["num_docs"].as_u64().unwrap().to_string()
    );
    assert_eq!(row(&t, "indexed")[1], "100.0%");

    // Traffic: 11 events accepted in all, 5 of them since the previous refresh.
    let t = traffic;
    let events = row(&t, "events accepted");
    assert!(number(&events[2]) > 0.0, "no events per minute: {t:?}");
    let lists = row(&t, "served lists");
    assert_eq!(lists[1], USERS.to_string(), "{t:?}");

    // Stage latency: every stage the lists went through, with a p50 <= p99.
    let t = table(&browser, "stages").await;
    for stage in ["features", "retrieve", "rerank"] {
        let r = row(&t, stage);
        assert!(number(&r[1]) >= USERS as f64, "{stage}: {r:?}");
        let (p50, p99) = (number(&r[2]), number(&r[3]));
        assert!(p50 > 0.0 && p50 <= p99, "{stage}: p50 {p50} p99 {p99}");
    }

    // Online evaluation and the experiment: the report's figures, variant by variant.
    let t = table(&browser, "online").await;
    assert_eq!(row(&t, "attributed events")[1], (USERS / 2).to_string());
    let heading = browser
        .script("return document.querySelector('#experiments h2').textContent;")
        .await;
    assert!(
        heading.as_str().unwrap().starts_with(EXPERIMENT),
        "{heading}"
    );
    let t = table(&browser, &format!("exp-{EXPERIMENT}")).await;
    for variant in report["variants"].as_array().unwrap() {
        let name = variant["name"].as_str().unwrap();
        let r = row(&t, name);
        assert_eq!(r[1], variant["impressions"].as_u64().unwrap().to_string());
        let ctr = match variant["ctr"].as_f64() {
            Some(ctr) => format!("{:.1}%", 100.0 * ctr),
            None => "-".to_owned(),
        };
        assert_eq!(r[2], ctr, "{name}: {r:?}");
    }
    assert_eq!(row(&t, "default")[7], "control");

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("admin.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
    browser.quit().await;
    gw.shutdown().await;
}
