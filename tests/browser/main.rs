//! The demo page in headless Chromium (via chromedriver): type a query, pick a department, click
//! an item, and check that the next list moved toward the clicked item's category. Saves a
//! screenshot to `target/browser/demo.png`. The operator dashboard's test is in `admin.rs`.
//!
//! Not part of a plain `cargo test` (`test = false`): `cargo xtask test` runs it when Chromium and
//! chromedriver are installed, and says so when they are not. Run it alone with
//! `cargo test -p redrec-tests --test browser`.

mod admin;
#[path = "../../crates/gateway/tests/it/fixture.rs"]
mod fixture;
#[path = "../e2e/http.rs"]
mod http;
#[path = "../e2e/support.rs"]
mod support;
mod webdriver;

use std::collections::BTreeMap;

use serde_json::Value;

/// Categories of the first `n` result cards, in order.
const TOP_CATEGORIES: &str = "return [...document.querySelectorAll('#grid .card')].slice(0, 8).map(c => c.dataset.category);";

fn share(cats: &[String], category: &str) -> f64 {
    cats.iter().filter(|c| *c == category).count() as f64 / cats.len().max(1) as f64
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_search_filter_click_moves_the_list() {
    let (_space, gw) = support::catalog_gateway("browser_demo").await;
    let browser = webdriver::Browser::launch().await;
    let base = format!("http://{}/", gw.addr);
    browser.goto(&format!("{base}#key={}", support::KEY)).await;

    // The page loads facets and a first (cold-start) list.
    browser
        .wait_for("the first list", "return document.querySelectorAll('#grid .card').length > 0 && document.body.dataset.loadedAt;")
        .await;

    // Type a query, then pick a department: each triggers a new list.
    let q = browser.find("#q").await;
    browser.type_into(&q, "breakfast\u{E007}").await; // \u{E007} = Enter
    let loaded = browser
        .script("return document.body.dataset.loadedAt;")
        .await;
    let option = browser.find("#department option[value='GROCERY']").await;
    let department = browser.find("#department").await;
    browser.click(&department).await;
    browser.click(&option).await;
    let wait_new = |previous: Value| {
        format!(
            "return document.body.dataset.loadedAt !== {previous} && document.getElementById('status').textContent.includes('items') && document.body.dataset.loadedAt;"
        )
    };
    let loaded = browser
        .wait_for("the filtered list", &wait_new(loaded))
        .await;
    let before = strings(&browser.script(TOP_CATEGORIES).await);
    assert!(!before.is_empty(), "no results after filtering");
    assert!(
        before.iter().all(|c| c == "DAIRY" || c == "BAKERY"),
        "department filter not applied: {before:?}"
    );

    // Click an item of the category that is least present in the top of the list.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::from([("DAIRY", 0), ("BAKERY", 0)]);
    for c in &before {
        *counts.get_mut(c.as_str()).unwrap() += 1;
    }
    let target = counts
        .iter()
        .min_by_key(|(_, n)| **n)
        .map(|(c, _)| (*c).to_owned())
        .unwrap();
    let card = browser
        .find(&format!("#grid .card[data-category='{target}']"))
        .await;
    browser.click(&card).await;
    browser
        .wait_for("the list after the click", &wait_new(loaded))
        .await;
    let status = browser
        .script("return document.getElementById('status').textContent;")
        .await;
    assert!(
        status.as_str().unwrap().contains("after clicking"),
        "the click did not refresh the list: {status}"
    );
    let after = strings(&browser.script(TOP_CATEGORIES).await);
    let (b, a) = (share(&before, &target), share(&after, &target));
    println!("share of {target} in the top 8: {b:.2} {before:?} -> {a:.2} {after:?}");
    assert!(
        a > b,
        "the list did not move toward {target}: {before:?} -> {after:?}"
    );

    // The page shows stage timings and explanations.
    let timings = browser
        .script("return document.getElementById('timings').textContent;")
        .await;
    assert!(timings.as_str().unwrap().contains("retrieve"), "{timings}");
    let why = browser
        .script("return document.querySelectorAll('#grid details.why').length;")
        .await;
    assert!(why.as_u64().unwrap() > 0);

    // Purchases made elsewhere (another channel, an import) show in the side panel after the next
    // list, by name, with the most recent first.
    let user = browser
        .script("return document.getElementById('user').value;")
        .await;
    let user = user.as_str().unwrap().to_owned();
    let bought = strings(
        &browser
            .script("return [...document.querySelectorAll('#grid .card')].slice(2, 4).map(c => c.dataset.id);")
            .await,
    );
    assert_eq!(bought.len(), 2, "two cards to buy: {bought:?}");
    let events: Vec<Value> = bought
        .iter()
        .map(|id| serde_json::json!({"type": "purchase", "user_id": user, "item_id": id}))
        .collect();
    let addr = gw.addr.to_string();
    let r = http::json(
        &addr,
        "POST",
        "/v1/events",
        Some(support::KEY),
        Some(&Value::Array(events)),
    )
    .await;
    assert!(r.status < 300, "purchase events: {} {}", r.status, r.text());
    let go = browser.find("#go").await;
    browser.click(&go).await;
    browser
        .wait_for(
            "the purchases panel",
            "return document.querySelectorAll('#purchases .row').length >= 2;",
        )
        .await;
    let listed = strings(
        &browser
            .script(
                "return [...document.querySelectorAll('#purchases .row')].map(r => r.dataset.id);",
            )
            .await,
    );
    for id in &bought {
        assert!(listed.contains(id), "purchase {id} not listed: {listed:?}");
    }
    let names = browser
        .script("return [...document.querySelectorAll('#purchases .row span:first-child')].map(s => s.textContent).join('|');")
        .await;
    assert!(
        !bought
            .iter()
            .any(|id| names.as_str().unwrap().split('|').any(|n| n == id)),
        "purchases are listed by id, not by name: {names}"
    );

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("demo.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
    browser.quit().await;
    gw.shutdown().await;
}
