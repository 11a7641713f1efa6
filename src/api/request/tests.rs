//! Tests of the attempt loop against a scripted local HTTP server, and of
//! the explanation pulled from error bodies.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use axum::{
    body::Body,
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response as Reply},
};
use bytes::Bytes;
use chrono::NaiveDate;

use super::*;
use crate::{api::TokenCache, config::Config, schema::Table};

/// One request the scripted server saw.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    path: String,
    /// The Bearer token sent, if any (test tokens only; never a real secret).
    bearer: Option<String>,
}

/// What the scripted server saw, in order.
type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves `answer(request number, path)` on `127.0.0.1:0`. The listener is
/// bound before this returns, so requests can be sent at once.
async fn serve(answer: impl Fn(usize, &str) -> Reply + Send + Sync + 'static) -> (String, Log) {
    let log: Log = Arc::default();
    let answer = Arc::new(answer);
    let seen = log.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let (answer, seen) = (answer.clone(), seen.clone());
        async move {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok()?.strip_prefix("Bearer "))
                .map(str::to_owned);
            let number = {
                let mut seen = seen.lock().unwrap();
                seen.push(Seen {
                    path: uri.path().to_owned(),
                    bearer,
                });
                seen.len()
            };
            answer(number, uri.path())
        }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, log)
}

/// A configuration against `base` with fast retries, and the given
/// credentials and settings.
fn config(base: &str, extra: &[(&str, &str)]) -> Config {
    let auth_url = format!("{base}/oauth/token");
    let mut raw: HashMap<String, String> = [
        ("api_base_url", base),
        ("auth_url", auth_url.as_str()),
        ("start_date", "2025-01-01"),
        ("retry_base_delay_ms", "1"),
        ("retry_max_delay_ms", "5"),
    ]
    .iter()
    .chain(extra)
    .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
    .collect();
    if !raw.contains_key("client_id") {
        raw.insert("api_token".into(), "test-static-token".into());
    }
    Config::from_map(&raw, day(2025, 2, 1)).unwrap()
}

fn client(config: &Config) -> ApiClient {
    ApiClient::new(config, &TokenCache::default()).unwrap()
}

fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

fn january() -> crate::chunk::DateRange {
    crate::chunk::DateRange::new(day(2025, 1, 1), day(2025, 1, 31)).unwrap()
}

fn paths(log: &Log) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .map(|seen| seen.path.clone())
        .collect()
}

/// A rejection's body that never ends is read only up to the cap; before
/// the cap, such a body was read until the request timed out.
#[tokio::test]
async fn endless_error_bodies_are_read_only_up_to_the_cap() {
    let (base, log) = serve(|_, _| {
        let piece = Bytes::from(vec![b' '; 8 * 1024]);
        let endless = futures_util::stream::repeat(Ok::<_, Infallible>(piece));
        (StatusCode::BAD_REQUEST, Body::from_stream(endless)).into_response()
    })
    .await;
    let api = client(&config(&base, &[("request_timeout_secs", "60")]));
    let error = api
        .open_series(Table::Traffic, january(), &["ins".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "SenSource rejected /api/data/traffic for 2025-01-01..2025-01-31 with HTTP 400: no explanation (the error body is too large)"
    );
    assert_eq!(paths(&log), ["/api/data/traffic"]);
}

/// A rejection quotes the body's explanation, cleaned, and is not retried.
#[tokio::test]
async fn rejections_quote_the_explanation_once() {
    let (base, log) = serve(|_, _| {
        let body = r#"{"message": "no such\u0007 table"}"#;
        (StatusCode::NOT_FOUND, body).into_response()
    })
    .await;
    let error = client(&config(&base, &[]))
        .open_reference(Table::Zone)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "SenSource rejected /api/zone with HTTP 404: no such table"
    );
    assert!(matches!(error, ApiError::Rejected { status: 404, .. }));
    assert_eq!(paths(&log), ["/api/zone"]);
}

/// `Retry-After`, as an asctime date or as seconds, is waited out, and the
/// answer that finally succeeds is streamed.
#[tokio::test]
async fn transient_answers_are_retried_after_their_retry_after() {
    let (base, log) = serve(|number, _| match number {
        1 => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "Sun Nov  6 08:49:37 1994")],
        )
            .into_response(),
        2 => (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "0")]).into_response(),
        _ => r#"[{"zoneId": "a"}, {"zoneId": "b"}]"#.into_response(),
    })
    .await;
    let api = client(&config(&base, &[]));
    let rows = api.open_reference(Table::Zone).await.unwrap();
    assert_eq!(rows.count_to_end().await.unwrap(), 2);
    assert_eq!(paths(&log), ["/api/zone"; 3]);
}

/// Transient failures stop at the attempt budget, naming the last problem.
#[tokio::test]
async fn transient_failures_stop_at_the_attempt_budget() {
    let (base, log) = serve(|_, _| StatusCode::BAD_GATEWAY.into_response()).await;
    let api = client(&config(&base, &[("max_attempts", "3")]));
    let error = api
        .open_series(Table::Occupancy, january(), &[])
        .await
        .unwrap_err();
    let ApiError::Unavailable { attempts, last, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!((*attempts, last.as_str()), (3, "HTTP 502"));
    assert!(
        error
            .to_string()
            .starts_with("SenSource is unavailable: /api/data/occupancy for 2025-01-01..2025-01-31 failed 3 time(s)"),
        "{error}"
    );
    assert_eq!(paths(&log), ["/api/data/occupancy"; 3]);
}

/// A token reply for the `number`th request.
fn token_reply(number: usize) -> Reply {
    let body = format!(r#"{{"access_token": "minted-{number}", "expires_in": 3600}}"#);
    (StatusCode::OK, body).into_response()
}

/// A refused minted token is replaced once, right away; the fresh token
/// refused too is the user's problem.
#[tokio::test]
async fn a_refused_minted_token_is_refreshed_once() {
    let (base, log) = serve(|number, path| match path {
        "/oauth/token" => token_reply(number),
        _ => StatusCode::UNAUTHORIZED.into_response(),
    })
    .await;
    let credentials = [("client_id", "client"), ("client_secret", "s3cret")];
    let error = client(&config(&base, &credentials))
        .open_reference(Table::Site)
        .await
        .unwrap_err();
    assert!(matches!(error, ApiError::Unauthorized { .. }), "{error:?}");
    let seen = log.lock().unwrap().clone();
    let bearers: Vec<_> = seen.iter().map(|seen| seen.bearer.as_deref()).collect();
    assert_eq!(
        paths(&log),
        ["/oauth/token", "/api/site", "/oauth/token", "/api/site"]
    );
    assert_eq!(
        bearers,
        [None, Some("minted-1"), None, Some("minted-3")],
        "each API request carries the token minted just before it"
    );
}

/// A minted token is cached: a second request, and a second client with
/// the same credentials and cache, mint nothing.
#[tokio::test]
async fn minted_tokens_are_shared_through_the_cache() {
    let (base, log) = serve(|number, path| match path {
        "/oauth/token" => token_reply(number),
        _ => "[]".into_response(),
    })
    .await;
    let config = config(
        &base,
        &[("client_id", "client"), ("client_secret", "s3cret")],
    );
    let tokens = TokenCache::default();
    for _ in 0..2 {
        let api = ApiClient::new(&config, &tokens).unwrap();
        let rows = api.open_reference(Table::Space).await.unwrap();
        assert_eq!(rows.count_to_end().await.unwrap(), 0);
    }
    assert_eq!(paths(&log), ["/oauth/token", "/api/space", "/api/space"]);
}

/// Refusals at the token endpoint are about the credentials; a refused
/// static token is never retried.
#[tokio::test]
async fn refused_credentials_are_not_retried() {
    let (base, log) = serve(|_, _| StatusCode::BAD_REQUEST.into_response()).await;
    let credentials = [("client_id", "client"), ("client_secret", "wrong")];
    let error = client(&config(&base, &credentials))
        .open_reference(Table::Sensor)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ApiError::InvalidCredentials { status: 400 }),
        "{error:?}"
    );
    assert_eq!(paths(&log), ["/oauth/token"]);

    let (base, log) = serve(|_, _| StatusCode::UNAUTHORIZED.into_response()).await;
    let error = client(&config(&base, &[]))
        .open_reference(Table::Sensor)
        .await
        .unwrap_err();
    assert!(matches!(error, ApiError::TokenRefused { .. }), "{error:?}");
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].bearer.as_deref(), Some("test-static-token"));
}

/// A success that declares a body over `max_response_mb` is refused before
/// it is read.
#[tokio::test]
async fn declared_oversized_bodies_are_refused() {
    let (base, _log) = serve(|_, _| vec![b' '; 1024 * 1024 + 1].into_response()).await;
    let api = client(&config(&base, &[("max_response_mb", "1")]));
    let error = api.open_reference(Table::Location).await.unwrap_err();
    assert!(
        error.to_string().ends_with(
            "the body is larger than the 1 MB limit (lower `chunk_days` or raise `max_response_mb`)"
        ),
        "{error}"
    );
}

/// A reference table has no time series: asking for one is refused before
/// any request, where it used to fetch traffic instead.
#[tokio::test]
async fn reference_tables_have_no_series_to_open() {
    let (base, log) = serve(|_, _| "[]".into_response()).await;
    let error = client(&config(&base, &[]))
        .open_series(Table::Zone, january(), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(error, ApiError::NotTimeSeries { table: Table::Zone }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "internal error: zone is not a time-series table, so it has no data endpoint"
    );
    assert!(paths(&log).is_empty());
}

/// The explanation is taken from the usual JSON fields, first match wins.
#[test]
fn explanations_come_from_the_usual_fields() {
    let cases: [(&str, &str); 6] = [
        (r#"{"message": "bad date"}"#, "bad date"),
        (r#"{"messages": ["one", 2, "two"]}"#, "one; two"),
        (
            r#"{"error": "invalid_request", "error_description": "missing grant"}"#,
            "missing grant",
        ),
        (r#"{"error": "invalid_request"}"#, "invalid_request"),
        (r#"{"message": 5, "error": "fallback"}"#, "fallback"),
        (r#"{"message": "a\nb\tc\u001b[31m"}"#, "abc[31m"),
    ];
    for (body, expected) in cases {
        assert_eq!(explain(body.as_bytes()), expected, "{body}");
    }
}

/// Bodies without an explanation never leak their content.
#[test]
fn bodies_without_an_explanation_are_not_quoted() {
    for body in [
        "",
        "<html>Internal error at zone 42</html>",
        r#"{"detail": "payload"}"#,
        r#"{"message": "   "}"#,
        r#"{"messages": []}"#,
        r#"[{"message": "a row"}]"#,
    ] {
        assert_eq!(explain(body.as_bytes()), "no explanation", "{body}");
    }
}

/// A long explanation is cut to a readable length.
#[test]
fn long_explanations_are_cut() {
    let long = format!(r#"{{"message": "{}"}}"#, "é".repeat(500));
    let detail = explain(long.as_bytes());
    assert_eq!(detail.chars().count(), DETAIL_MAX_CHARS);
}
