//! Interaction import end to end: JSONL, CSV and Parquet files applied through the feature
//! store's event function at their own timestamps, strict and skip-invalid, resumable.

use std::{collections::HashSet, fs::File, sync::Arc};

use parquet::{
    data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type},
    file::{properties::WriterProperties, writer::SerializedFileWriter},
    schema::parser::parse_message_type,
};
use redrec_core::{schema::ItemFields, vector};
use redrec_ingest::{
    dataset::complete_journey,
    events::{self, ImportOptions},
    load::OnInvalid,
    progress::ProgressMode,
    source::SourceSpec,
};
use redrec_testkit::TestSpace;
use redrec_userstate::{UserStateConfig, UserStateStore};

use crate::common::{conn, tmp_dir};

const WEEK: i64 = 7 * 24 * 3600 * 1000;
/// 2017-01-01T00:00:00Z
const T0: i64 = 1_483_228_800_000;

async fn setup(label: &str) -> (TestSpace, UserStateStore) {
    let space = TestSpace::new(label);
    let mut c = space.conn().await;
    for (i, id) in ["i1", "i2", "i3", "101", "102"].iter().enumerate() {
        let mut v = vec![0.0f32; 4];
        v[i % 4] = 1.0;
        let _: () = redis::cmd("HSET")
            .arg(space.ns.item(id))
            .arg("embedding")
            .arg(vector::encode(&v))
            .arg("category")
            .arg(if i % 2 == 0 { "milk" } else { "bread" })
            .arg("price")
            .arg(2.0)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let config = UserStateConfig {
        history_half_life_ms: WEEK as u64,
        ..UserStateConfig::default()
    };
    let store = UserStateStore::new(space.ns.clone(), ItemFields::default(), config).unwrap();
    (space, store)
}

fn opts(on_invalid: OnInvalid) -> ImportOptions {
    ImportOptions {
        on_invalid,
        progress: ProgressMode::Quiet,
        ..ImportOptions::default()
    }
}

fn purchases(f: &redrec_core::user::UserFeatures) -> Vec<(String, f64)> {
    f.purchases
        .iter()
        .map(|p| (p.item_id.clone(), (p.score * 1e9).round() / 1e9))
        .collect()
}

#[tokio::test]
async fn jsonl_import_applies_events_at_their_time_and_is_idempotent() {
    let (space, store) = setup("ev_jsonl").await;
    let dir = tmp_dir("ev_jsonl");
    let file = dir.join("events.jsonl");
    // out of time order on purpose; the purchase with a quantity and no type
    std::fs::write(
        &file,
        [
            r#"{"user_id":"u1","item_id":"i2","timestamp":"2017-01-15","type":"purchase"}"#,
            r#"{"user_id":"u1","item_id":"i1","timestamp":"2017-01-01T00:00:00Z","quantity":3}"#,
            r#"{"user_id":"u1","item_id":"i1","timestamp":1484438400,"type":"purchase"}"#,
            r#"{"user_id":"u1","item_id":"i3","timestamp":1484438400000,"type":"view"}"#,
            "",
            r#"{"user_id":2,"item_id":101,"timestamp":"2017-01-08 10:00:00","type":"click","event_id":"e-7"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let con = conn().await;
    let spec = Arc::new(SourceSpec::new(&file).unwrap());
    let r = events::import(&con, &store, spec.clone(), &opts(OnInvalid::Strict))
        .await
        .unwrap();
    assert_eq!(
        (r.rows_read, r.rejected, r.applied, r.duplicates),
        (5, 0, 5, 0)
    );
    assert_eq!(r.users, 2);
    assert_eq!(r.first_ms, Some(T0));
    assert_eq!(r.last_ms, Some(T0 + 2 * WEEK));
    let mut c = space.conn().await;
    let f = store.read(&mut c, "u1", T0 + 2 * WEEK).await.unwrap();
    // i1 bought 2 weeks and 0 weeks before the read, i2 once at the read time: decayed counts
    assert_eq!(
        purchases(&f),
        [("i1".to_owned(), 1.25), ("i2".to_owned(), 1.0)]
    );
    assert_eq!(f.recent[0].at_ms, T0 + 2 * WEEK);
    assert_eq!(f.counters["purchase"], 3);
    let f2 = store.read(&mut c, "2", T0 + WEEK).await.unwrap();
    assert_eq!(f2.counters["click"], 1);

    // a second run (or a resumed one) applies nothing twice
    let again = events::import(&con, &store, spec, &opts(OnInvalid::Strict))
        .await
        .unwrap();
    assert_eq!((again.applied, again.duplicates), (0, 5));
    let f = store.read(&mut c, "u1", T0 + 2 * WEEK).await.unwrap();
    assert_eq!(f.counters["purchase"], 3);
}

#[tokio::test]
async fn csv_strict_writes_nothing_and_skip_invalid_records_the_rejects() {
    let (space, store) = setup("ev_csv").await;
    let dir = tmp_dir("ev_csv");
    let file = dir.join("events.csv");
    std::fs::write(
        &file,
        "user_id,item_id,timestamp,type,quantity\n\
         u1,i1,2017-01-01,,1\n\
         u1,i2,not-a-date,view,\n\
         u1,nope,2017-01-02,view,\n\
         u2,i1,2017-01-03,,0\n\
         u2,i3,2017-01-04,skip,\n",
    )
    .unwrap();
    let con = conn().await;
    let spec = Arc::new(SourceSpec::new(&file).unwrap());
    let err = events::import(&con, &store, spec.clone(), &opts(OnInvalid::Strict))
        .await
        .unwrap_err();
    let redrec_ingest::Error::Invalid { count, first } = &err else {
        panic!("{err}");
    };
    assert_eq!(*count, 3);
    let text: Vec<String> = first.iter().map(|r| r.to_string()).collect();
    assert!(
        text[0].ends_with(
            "row 2: field `timestamp`: timestamp `not-a-date`: expected a date `YYYY-MM-DD`"
        ),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("row 4: field `quantity`: is 0")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("row 3: field `item_id`: unknown item `nope`")),
        "{text:?}"
    );
    let mut c = space.conn().await;
    assert!(
        !store.read(&mut c, "u1", T0).await.unwrap().known,
        "strict mode wrote"
    );

    let rejects = dir.join("rejects.jsonl");
    let r = events::import(
        &con,
        &store,
        spec,
        &opts(OnInvalid::Skip {
            rejects: Some(rejects.clone()),
        }),
    )
    .await
    .unwrap();
    assert_eq!((r.rejected, r.applied), (3, 2));
    let lines = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(lines.contains(r#""field":"timestamp""#), "{lines}");
    let f = store.read(&mut c, "u2", T0 + WEEK).await.unwrap();
    assert_eq!(f.counters.get("skip"), Some(&1));
    assert!(f.purchases.is_empty());
}

fn write_transactions(path: &std::path::Path) {
    let schema = Arc::new(
        parse_message_type(
            "message t { required int64 household_id; required int64 product_id; \
             required double quantity; required binary basket_id (UTF8); \
             required binary transaction_timestamp (UTF8); }",
        )
        .unwrap(),
    );
    let mut w = SerializedFileWriter::new(
        File::create(path).unwrap(),
        schema,
        Arc::new(WriterProperties::builder().build()),
    )
    .unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut i = 0;
    let text = |v: &[&str]| v.iter().map(|s| ByteArray::from(*s)).collect::<Vec<_>>();
    while let Some(mut col) = rg.next_column().unwrap() {
        match i {
            0 => col
                .typed::<Int64Type>()
                .write_batch(&[7, 7, 7, 9], None, None),
            1 => col
                .typed::<Int64Type>()
                .write_batch(&[101, 101, 102, 101], None, None),
            2 => col
                .typed::<DoubleType>()
                .write_batch(&[1.0, 2.0, 1.0, 1.0], None, None),
            3 => col.typed::<ByteArrayType>().write_batch(
                &text(&["b1", "b2", "b2", "b3"]),
                None,
                None,
            ),
            _ => col.typed::<ByteArrayType>().write_batch(
                &text(&[
                    "2017-01-01 09:00:00",
                    "2017-01-08 09:00:00",
                    "2017-01-08 09:00:00",
                    "2017-02-01 09:00:00",
                ]),
                None,
                None,
            ),
        }
        .unwrap();
        col.close().unwrap();
        i += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
}

#[tokio::test]
async fn parquet_transactions_with_a_cut_off_and_a_user_subset() {
    let (space, store) = setup("ev_parquet").await;
    let dir = tmp_dir("ev_parquet");
    let file = dir.join("transactions.parquet");
    write_transactions(&file);
    let con = conn().await;
    let spec = Arc::new(SourceSpec::new(&file).unwrap());
    let opts = ImportOptions {
        columns: complete_journey::transaction_columns(),
        until_ms: Some(T0 + WEEK),
        users: Some(HashSet::from(["7".to_owned()])),
        ..opts(OnInvalid::Strict)
    };
    let r = events::import(&con, &store, spec.clone(), &opts)
        .await
        .unwrap();
    // household 7's basket b1 only: b2 (two lines) is at the cut-off, and so is household 9's
    // line (the cut-off is counted first)
    assert_eq!((r.applied, r.after_until, r.other_users), (1, 3, 0));
    let mut c = space.conn().await;
    let f = store.read(&mut c, "7", T0 + 9 * 3600 * 1000).await.unwrap();
    assert_eq!(purchases(&f), [("101".to_owned(), 1.0)]);
    assert!(!store.read(&mut c, "9", T0).await.unwrap().known);
    // without the cut-off, household 9 is left out by the subset
    let opts = ImportOptions {
        until_ms: None,
        ..opts
    };
    let r = events::import(&con, &store, spec, &opts).await.unwrap();
    assert_eq!((r.applied, r.duplicates, r.other_users), (2, 1, 1));
    assert_eq!(
        complete_journey::first_households(&file, 1).unwrap(),
        HashSet::from(["7".to_owned()])
    );
}
