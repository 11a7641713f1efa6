//! Helpers for the simulator's own tests: a spawned simulator driven over HTTP with reqwest.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::SimulatorHandle;

pub(super) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

pub(super) async fn mint(client: &reqwest::Client, sim: &SimulatorHandle) -> String {
    let response = client
        .post(&sim.auth_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

pub(super) async fn get(
    client: &reqwest::Client,
    sim: &SimulatorHandle,
    path: &str,
    token: Option<&str>,
) -> (u16, HeaderMap, String) {
    let mut request = client.get(format!("{}{path}", sim.base_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

pub(super) fn traffic_path(start: &str, end: &str) -> String {
    format!(
        "/api/data/traffic?relativeDate=custom&startDate={start}&endDate={end}\
         &dateGroupings=hour&entityType=zone&metrics=ins,outs"
    )
}

pub(super) async fn send(
    client: &reqwest::Client,
    sim: &SimulatorHandle,
    path: &str,
    token: &str,
) -> reqwest::Response {
    client
        .get(format!("{}{path}", sim.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Reads a body chunk by chunk; the error, if the body broke off.
pub(super) async fn read_body(
    mut response: reqwest::Response,
) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return (bytes, None),
            Err(error) => return (bytes, Some(error)),
        }
    }
}

pub(super) fn results(body: &str) -> Vec<Value> {
    let value: Value = serde_json::from_str(body).unwrap();
    assert_eq!(value["messages"], json!([]));
    value["results"].as_array().unwrap().clone()
}
