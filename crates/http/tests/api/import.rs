//! Bulk import in VictoriaMetrics' JSON-lines format (issue 21): `POST /api/v1/import`
//! through a real server — a body streamed in chunks that cut lines in two, longer than
//! the body limit; lines that cannot be stored named with their field; gzip.

use super::*;

const IMPORT: &str = "/api/v1/import";

fn line(labels: Value, values: &[f64], timestamps: &[i64]) -> String {
    format!(
        "{}\n",
        json!({"metric": labels, "values": values, "timestamps": timestamps})
    )
}

/// Posts `body` streamed in pieces of `piece` bytes (chunked transfer), as a client
/// piping a file does.
async fn post_streamed(app: &TestServer, body: Vec<u8>, piece: usize) -> Reply {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(piece).map(|c| Ok(c.to_vec())).collect();
    let response = app
        .client
        .post(format!("{}{IMPORT}", app.base))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    app.reply(Method::POST, IMPORT, response).await
}

async fn stored(
    app: &TestServer,
    model: &str,
    metric: &str,
    dataset: Option<&str>,
) -> Vec<(i64, f64)> {
    let dataset = dataset.map_or(String::new(), |d| format!("&dataset={d}"));
    let path = format!(
        "/api/v1/models/{model}/versions/v1/metrics/{metric}?from=0&to=4102444800000{dataset}"
    );
    let reply = app.call(Method::GET, SERIES, &path, None).await;
    if reply.status == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let at = Timestamp::parse(p["timestamp"].as_str().unwrap()).unwrap();
            (at.as_millis(), p["value"].as_f64().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_import_longer_than_the_body_limit_stores_every_line() {
    let app = spawn_app_with(Limits {
        max_body_bytes: 4096,
        ..Limits::default()
    })
    .await;
    let mut body = String::new();
    // 40 series of 100 samples: 40 lines of ~2.5 kB, 100 kB in all.
    for model in 0..40 {
        let timestamps: Vec<i64> = (0..100).map(|i| 1_700_000_000_000 + i * 60_000).collect();
        let values: Vec<f64> = (0..100).map(|i| 0.5 + f64::from(i) / 1000.0).collect();
        body += &line(
            json!({"__name__": "model_perf", "model": format!("m{model}"), "version": "v1", "metric": "accuracy"}),
            &values,
            &timestamps,
        );
    }
    // The metric name names the metric when there is no metric label; a dataset label.
    body += &line(
        json!({"__name__": "latency_p99_ms", "model": "m0", "version": "v1", "dataset": "prod"}),
        &[12.5, 13.0],
        &[1_700_000_000_000, 1_700_000_060_000],
    );
    // The last line needs no newline.
    body.pop();
    assert!(body.len() > 4096 * 20);
    let reply = post_streamed(&app, body.into_bytes(), 1000).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, json!({"accepted": 4002, "lines": 41}));
    let points = stored(&app, "m39", "accuracy", None).await;
    assert_eq!(points.len(), 100);
    assert_eq!(points[99], (1_700_000_000_000 + 99 * 60_000, 0.599));
    assert_eq!(
        stored(&app, "m0", "latency_p99_ms", Some("prod")).await,
        vec![(1_700_000_000_000, 12.5), (1_700_000_060_000, 13.0)]
    );

    // One line over the limit is 413.
    let values = vec![0.5; 600];
    let timestamps: Vec<i64> = (0..600).map(|i| 1_700_000_000_000 + i).collect();
    let long = line(
        json!({"model": "big", "version": "v1", "metric": "accuracy"}),
        &values,
        &timestamps,
    );
    assert!(long.len() > 4096);
    let reply = post_streamed(&app, long.into_bytes(), 512).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.body
    );
    assert!(stored(&app, "big", "accuracy", None).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_that_cannot_be_stored_is_named_and_the_lines_before_it_are_kept() {
    let app = spawn_app().await;
    let good = |model: &str| {
        line(
            json!({"model": model, "version": "v1", "metric": "accuracy"}),
            &[0.9, 0.8],
            &[1_700_000_000_000, 1_700_000_060_000],
        )
    };
    let cases = [
        (
            line(json!({"model": "x", "version": "v1", "metric": "accuracy"}), &[0.9, 0.8], &[1]),
            "line 3.timestamps",
        ),
        (
            line(json!({"version": "v1", "metric": "accuracy"}), &[0.9], &[1]),
            "line 3.metric",
        ),
        (
            line(json!({"model": "bad name", "version": "v1", "metric": "accuracy"}), &[0.9], &[1]),
            "line 3.metric.model",
        ),
        (
            "{\"metric\": {\"model\": \"x\", \"version\": \"v1\"}, \"values\": [\"0.5\"], \"timestamps\": [1]}\n".into(),
            "line 3.values[0]",
        ),
        ("not json\n".into(), "line 3"),
    ];
    for (index, (bad, field)) in cases.into_iter().enumerate() {
        let first = format!("before{index}");
        let body = format!("{}{}{bad}{}", good(&first), "\n", good("after"));
        let reply = post_streamed(&app, body.into_bytes(), 64).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{field}: {}",
            reply.body
        );
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.body);
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("the first 2 samples were stored"),
            "{}",
            reply.body
        );
        assert_eq!(stored(&app, &first, "accuracy", None).await.len(), 2);
        assert!(stored(&app, "after", "accuracy", None).await.is_empty());
    }

    // A value the store refuses (accuracy above 1) refuses its batch, and says where.
    let body = format!(
        "{}{}",
        good("kept"),
        line(
            json!({"model": "over", "version": "v1", "metric": "accuracy"}),
            &[0.5, 1.5],
            &[1, 2]
        )
    );
    let reply = post_streamed(&app, body.into_bytes(), 64).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(
        reply.body["error"]["field"], "line 2.values[1]",
        "{}",
        reply.body
    );
    assert!(stored(&app, "over", "accuracy", None).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzipped_import_is_read() {
    let app = spawn_app().await;
    let body = line(
        json!({"model": "zipped", "version": "v1", "metric": "recall"}),
        &[0.7, 0.75, 0.8],
        &[1_700_000_000_000, 1_700_000_060_000, 1_700_000_120_000],
    );
    let response = app
        .post_raw(
            IMPORT,
            gzip(body.as_bytes()),
            &[("content-encoding", "gzip")],
        )
        .await;
    let reply = app.reply(Method::POST, IMPORT, response).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["accepted"], 3);
    assert_eq!(stored(&app, "zipped", "recall", None).await.len(), 3);
}
