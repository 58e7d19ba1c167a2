//! The `[reranker]` TOML section as a binary would load it (figment), including the example
//! of docs/RANKING.md.

use figment::{
    Figment,
    providers::{Format, Toml},
};
use redrec_core::user::UserFeatures;
use redrec_reranker::{Error, Feature, Reranker, RerankerConfig};

use crate::support::{ids, item, items, rank};

/// The first TOML block of docs/RANKING.md, so the documented example is the tested one.
fn documented_example() -> &'static str {
    let doc = include_str!("../../../../docs/RANKING.md");
    let start = doc
        .find("```toml\n")
        .expect("docs/RANKING.md has a toml block")
        + "```toml\n".len();
    let len = doc[start..].find("```").expect("the toml block is closed");
    &doc[start..start + len]
}

fn load(toml: &str) -> Result<RerankerConfig, figment::Error> {
    Figment::from(Toml::string(toml)).extract_inner("reranker")
}

#[test]
fn the_documented_example_loads_and_serves() {
    let reranker = Reranker::from_config(load(documented_example()).unwrap()).unwrap();
    assert_eq!(
        reranker.profiles().names(),
        [
            "default",
            "discovery",
            "house_brands",
            "repurchase",
            "seasonal"
        ]
    );
    let default = reranker.profiles().get("default").unwrap();
    assert_eq!(default.weight(Feature::CategoryAffinity), 0.3);
    assert_eq!(default.config.bury[0].value, "KIOSK-GAS");
    let seasonal = reranker.profiles().get("seasonal").unwrap();
    assert_eq!(seasonal.weight(Feature::Freshness), 0.5);
    assert_eq!(seasonal.weight(Feature::InCart), -0.5);
    assert_eq!(seasonal.max_per_category(), Some(3));
    assert!(seasonal.drop_out_of_stock());
    let house = reranker.profiles().get("house_brands").unwrap();
    assert_eq!(house.weight(Feature::PriceFit), 0.2);
    assert_eq!(reranker.profiles().popularity_max(), Some(5000.0));
    let c = items(vec![
        item("1").text(0.9).field("brand", "national"),
        item("2").text(0.8).field("brand", "private"),
        item("3").text(0.95).field("department", "kiosk-gas"),
        item("1082185").text(0.1),
    ]);
    let ranked = rank(&reranker, "house_brands", &c, &UserFeatures::default(), 4);
    assert_eq!(ids(&ranked), ["1082185", "2", "1", "3"]);
}

#[test]
fn typos_and_bad_values_in_toml_are_reported() {
    // an unknown key inside a profile is a deserialisation error naming it
    let err = load("[reranker.profiles.p]\nweigths = { similarity = 1.0 }\n").unwrap_err();
    assert!(err.to_string().contains("weigths"), "{err}");
    // TOML can spell nan: validation rejects it with the key
    let config = load("[reranker.profiles.p]\nweights = { similarity = nan }\n").unwrap();
    let err = Reranker::from_config(config).unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "profiles.p.weights.similarity"),
        "{err}"
    );
    // an empty section is fine: built-ins only
    let reranker = Reranker::from_config(load("[reranker]\n").unwrap()).unwrap();
    assert_eq!(reranker.profiles().names().len(), 3);
}
