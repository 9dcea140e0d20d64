//! Guards aggregates: bucket boundaries (hour, day, total, before the epoch), the counted
//! dimension's values, row order, and the refusal of an empty range.

use trailmix_query::model::{ModelRecord, ModelSource};
use trailmix_query::{AggregateQuery, Bucket, CountRow, Dimension, QueryError, aggregate};

const H: i64 = 3_600_000_000_000;

fn store() -> ModelSource {
    let rows = [
        ("beta", -H / 2, Some(("gpt", Some("v1")))),
        ("acme", 0, Some(("gpt", None))),
        ("acme", H - 1, Some(("gpt", Some("v1")))),
        ("acme", H, None),
        ("beta", 25 * H, Some(("gpt", None))),
        ("acme", 25 * H + 5, Some(("gpt", None))),
    ];
    let mut s = ModelSource::new();
    for (seq, (tenant, time, model)) in (0u64..).zip(rows) {
        let record = ModelRecord {
            seq,
            event_time_ns: time,
            tenant: tenant.into(),
            model_name: model.map(|(n, _)| n.into()),
            model_version: model.and_then(|(_, v)| v.map(Into::into)),
            ..ModelRecord::default()
        };
        s.push(record).expect("increasing");
    }
    s
}

fn row(bucket_start_ns: i64, tenant: &str, value: &str, count: u64) -> CountRow {
    CountRow {
        bucket_start_ns,
        tenant: tenant.into(),
        value: value.into(),
        count,
    }
}

fn query(tenant: Option<&str>, dimension: Dimension, bucket: Bucket) -> AggregateQuery {
    AggregateQuery {
        tenant: tenant.map(Into::into),
        dimension,
        bucket,
        since: None,
        until: None,
    }
}

#[test]
fn hourly_buckets_align_to_the_epoch_even_before_it() {
    let a = aggregate(&query(None, Dimension::Tenant, Bucket::Hour), &store()).expect("model");
    assert_eq!(
        a.rows,
        [
            row(-H, "beta", "beta", 1),
            row(0, "acme", "acme", 2),
            row(H, "acme", "acme", 1),
            row(25 * H, "acme", "acme", 1),
            row(25 * H, "beta", "beta", 1),
        ]
    );
    assert_eq!(a.total(), 6);
}

#[test]
fn daily_model_counts_of_one_tenant() {
    let a = aggregate(
        &query(Some("acme"), Dimension::Model, Bucket::Day),
        &store(),
    )
    .expect("model");
    assert_eq!(
        a.rows,
        [
            row(0, "acme", "", 1),
            row(0, "acme", "gpt", 1),
            row(0, "acme", "gpt@v1", 1),
            row(24 * H, "acme", "gpt", 1)
        ]
    );
}

#[test]
fn a_total_is_one_bucket_starting_at_since() {
    let q = AggregateQuery {
        since: Some(0),
        until: Some(25 * H + 1),
        ..query(None, Dimension::Tenant, Bucket::Total)
    };
    let a = aggregate(&q, &store()).expect("model");
    assert_eq!(
        a.rows,
        [row(0, "acme", "acme", 3), row(0, "beta", "beta", 1)]
    );
    let all = aggregate(&query(None, Dimension::Decision, Bucket::Total), &store()).expect("model");
    assert_eq!(
        all.rows,
        [row(i64::MIN, "acme", "", 4), row(i64::MIN, "beta", "", 2)]
    );
}

#[test]
fn an_empty_range_is_refused() {
    let q = AggregateQuery {
        since: Some(5),
        until: Some(5),
        ..query(None, Dimension::Kind, Bucket::Day)
    };
    let e = aggregate(&q, &store()).expect_err("empty");
    assert!(
        matches!(
            e,
            QueryError::EmptyRange {
                since: 5,
                until: 5,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "aggregate event-time range: the start 5 is not before the end 5, so the range is empty"
    );
}
