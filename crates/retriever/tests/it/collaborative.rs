//! The collaborative sources (`cf_session`, `cf_long_term`): KNN on the index's `cf_vector`
//! field within the request filter, used only once `FT.INFO` shows the field (an index without
//! it keeps serving every other source).

use std::time::{Duration, Instant};

use redrec_core::candidate::SourceKind;
use redrec_core::filter::Filter;
use redrec_core::vector;
use redrec_retriever::{RetrievalRequest, RetrieverConfig, Source};

use crate::support::{self, Item, Rng};

const DIMS: usize = 8;
const CF_DIMS: usize = 4;

/// 40 items: text vectors at random; collaborative vectors planted for 30 of them: `a{i}` at
/// angle `i * 2` degrees from cf axis 0 (so `a0` is nearest, then `a1`, ...), `b{i}` around
/// axis 1; category `x` for even i, `y` for odd i. `n{i}` have no collaborative vector.
fn catalog() -> (Vec<Item>, Vec<(String, Vec<f32>)>) {
    let mut rng = Rng::new(11);
    let mut items = Vec::new();
    let mut cf = Vec::new();
    for (prefix, n) in [("a", 15), ("b", 15), ("n", 10)] {
        for i in 0..n {
            let id = format!("{prefix}{i}");
            items.push(Item {
                id: id.clone(),
                vector: support::random_unit(&mut rng, DIMS),
                fields: support::fields(&[
                    ("category", if i % 2 == 0 { "x" } else { "y" }.into()),
                    ("popularity", (100 - i).to_string()),
                ]),
            });
            let angle = (i as f32 * 2.0).to_radians();
            let v = match prefix {
                "a" => vec![angle.cos(), angle.sin(), 0.0, 0.0],
                "b" => vec![0.0, angle.cos(), angle.sin(), 0.0],
                _ => continue,
            };
            cf.push((id, v));
        }
    }
    (items, cf)
}

fn cf_axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; CF_DIMS];
    v[i] = 1.0;
    v
}

#[tokio::test]
async fn cf_sources_search_the_collaborative_field_once_the_index_has_it() {
    let space = redrec_testkit::TestSpace::new("cf_source");
    let schema = support::schema(&space.ns, DIMS);
    support::create_index(&space, &schema).await;
    let (items, cf) = catalog();
    support::load(&space, &items, 100).await;
    // look the field up on every request, so the test sees the FT.ALTER at once
    let config = RetrieverConfig {
        cf_recheck_secs: 0,
        ..RetrieverConfig::default()
    };
    let r = support::retriever(&space, &schema, config);
    let user_sources = || {
        vec![
            Source::CfLongTerm(cf_axis(0)),
            Source::CfSession(cf_axis(1)),
            Source::Popular,
        ]
    };

    // 1. no cf_vector on the index: the cf sources are skipped, popularity still serves
    assert_eq!(r.detect_cf().await.unwrap(), None);
    let got = r
        .retrieve(&RetrievalRequest::new(user_sources(), 5))
        .await
        .unwrap();
    assert_eq!(got.candidates.len(), 5);
    assert!(
        got.candidates
            .iter()
            .all(|c| { c.sources.iter().all(|h| h.source == SourceKind::Popular) })
    );

    // 2. the field is added to the live index (what redrec-ingest cf does) and filled
    let mut con = space.conn().await;
    support::add_cf_field(&space, &schema.index.name, CF_DIMS).await;
    let mut pipe = redis::pipe();
    for (id, v) in &cf {
        pipe.cmd("HSET")
            .arg(space.ns.item(id))
            .arg("cf_vector")
            .arg(vector::encode(v))
            .ignore();
    }
    let _: () = pipe.query_async(&mut con).await.unwrap();
    let field = r.detect_cf().await.unwrap().expect("cf_vector detected");
    assert_eq!((field.name.as_str(), field.dims), ("cf_vector", CF_DIMS));
    // FT.ALTER indexes existing documents in the background
    let deadline = Instant::now() + Duration::from_secs(30);
    let want_a: Vec<String> = ["a0", "a2", "a4", "a6", "a8"].map(String::from).to_vec();
    let long_term_ids = |got: &redrec_retriever::Retrieval| -> Vec<String> {
        let mut hits: Vec<(u32, String)> = got
            .candidates
            .iter()
            .filter_map(|c| {
                c.sources
                    .iter()
                    .find(|h| h.source == SourceKind::CfLongTerm)
                    .map(|h| (h.rank, c.id.clone()))
            })
            .collect();
        hits.sort();
        hits.into_iter().map(|(_, id)| id).collect()
    };

    // 3. within the filter: the planted nearest neighbours in order, similarity from cosine
    let mut req = RetrievalRequest::new(vec![Source::CfLongTerm(cf_axis(0))], 5);
    req.filter = Filter::tag_any("category", ["x"]);
    let got = loop {
        let got = r.retrieve(&req).await.unwrap();
        if long_term_ids(&got) == want_a || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(long_term_ids(&got), want_a);
    let first = &got.candidates[0];
    assert_eq!(first.id, "a0");
    assert!((first.sources[0].similarity - 1.0).abs() < 1e-4);
    let a4 = got.candidates.iter().find(|c| c.id == "a4").unwrap();
    assert!((a4.sources[0].similarity - 8f32.to_radians().cos()).abs() < 1e-4);
    assert_eq!(first.field("category"), Some("x"));
    assert!(!first.fields.contains_key("cf_vector"));

    // 4. both user sources in one request; items without a cf vector come only from popularity
    let got = r
        .retrieve(&RetrievalRequest::new(user_sources(), 100))
        .await
        .unwrap();
    let from = |kind: SourceKind| -> Vec<&str> {
        got.candidates
            .iter()
            .filter(|c| c.sources.iter().any(|h| h.source == kind))
            .map(|c| c.id.as_str())
            .collect()
    };
    assert!(from(SourceKind::CfLongTerm).contains(&"a0"));
    assert!(from(SourceKind::CfSession).contains(&"b0"));
    for kind in [SourceKind::CfLongTerm, SourceKind::CfSession] {
        assert!(from(kind).iter().all(|id| !id.starts_with('n')), "{kind:?}");
    }
    assert_eq!(got.round_trips, 1);

    // 5. a user vector of another dimension (a stale one) is skipped, not an error
    let got = r
        .retrieve(&RetrievalRequest::new(
            vec![Source::CfSession(vec![1.0, 0.0]), Source::Popular],
            5,
        ))
        .await
        .unwrap();
    assert_eq!(got.candidates.len(), 5);
    assert!(
        got.candidates
            .iter()
            .all(|c| c.sources[0].source == SourceKind::Popular)
    );

    // 6. a non-finite value is the caller's mistake
    assert!(
        r.retrieve(&RetrievalRequest::new(
            vec![Source::CfSession(vec![f32::NAN; CF_DIMS])],
            5
        ))
        .await
        .is_err()
    );
}

#[test]
fn cf_sources_come_from_the_users_collaborative_vectors() {
    let user = redrec_core::user::UserFeatures {
        cf_session_vector: Some(cf_axis(0)),
        cf_long_term_vector: Some(cf_axis(1)),
        session_vector: Some(vec![1.0; DIMS]),
        ..Default::default()
    };
    assert_eq!(
        Source::cf_from_user(&user),
        vec![
            Source::CfSession(cf_axis(0)),
            Source::CfLongTerm(cf_axis(1))
        ]
    );
    assert!(Source::cf_from_user(&Default::default()).is_empty());
    assert!(Source::CfSession(vec![]).is_collaborative());
    assert!(!Source::Session(vec![]).is_collaborative());
}
