//! Helpers for the simulator's own tests: an [`InProcessSimulator`] whose requests go through
//! the router without a socket, and, in [`socket`], the few helpers for tests that need a real
//! connection (a body that breaks off or never ends, shutting a server down).

use std::sync::Arc;

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{HeaderMap, Method, Request, header},
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::{Dataset, Faults, SimulatorOptions, SimulatorState, Stats, TOKEN_PATH, app};

/// The credentials of [`SimulatorOptions::default`], as a token request form.
const CREDENTIALS: [(&str, &str); 3] = [
    ("grant_type", "client_credentials"),
    ("client_id", "sim-client"),
    ("client_secret", "sim-secret"),
];

pub(super) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub(super) fn traffic_path(start: &str, end: &str) -> String {
    format!(
        "/api/data/traffic?relativeDate=custom&startDate={start}&endDate={end}\
         &dateGroupings=hour&entityType=zone&metrics=ins,outs"
    )
}

/// The rows of a data body, after checking its envelope.
pub(super) fn results(body: &str) -> Vec<Value> {
    let value: Value = serde_json::from_str(body).unwrap();
    assert_eq!(value["messages"], json!([]));
    value["results"].as_array().unwrap().clone()
}

/// The access token of a token endpoint's answer.
fn access_token(body: &str) -> String {
    let body: Value = serde_json::from_str(body).unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// A simulator served in-process: every request goes through [`app`] with `oneshot`.
pub(super) struct InProcessSimulator {
    router: Router,
    state: Arc<SimulatorState>,
    pub(super) stats: Arc<Stats>,
    pub(super) dataset: Arc<Dataset>,
}

impl InProcessSimulator {
    pub(super) fn new(options: SimulatorOptions) -> InProcessSimulator {
        let state = Arc::new(SimulatorState::new(options));
        InProcessSimulator {
            router: app(state.clone()),
            stats: state.stats.clone(),
            dataset: state.dataset.clone(),
            state,
        }
    }

    /// Status, headers and body (decoded like reqwest's `text`: invalid UTF-8 replaced, as in
    /// a body cut in half).
    async fn send(&self, request: Request<Body>) -> (u16, HeaderMap, String) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// `GET path`, with `token` as the bearer token if any.
    pub(super) async fn get(&self, path: &str, token: Option<&str>) -> (u16, HeaderMap, String) {
        let mut request = Request::builder().uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// A token request with this content type and body.
    pub(super) async fn post_token(
        &self,
        content_type: &str,
        body: impl Into<Body>,
    ) -> (u16, HeaderMap, String) {
        let request = Request::builder()
            .method(Method::POST)
            .uri(TOKEN_PATH)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    /// A token request with `form` as its form-urlencoded body.
    pub(super) async fn post_form(&self, form: &[(&str, &str)]) -> (u16, HeaderMap, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.post_token("application/x-www-form-urlencoded", body)
            .await
    }

    /// Logs in with the default credentials; the access token.
    pub(super) async fn mint(&self) -> String {
        let (status, _, body) = self.post_form(&CREDENTIALS).await;
        assert_eq!(status, 200);
        access_token(&body)
    }

    pub(super) fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    pub(super) fn set_now(&self, now: DateTime<Utc>) {
        self.state.set_now(now);
    }

    pub(super) fn remove_entity(&self, id: &str) {
        self.state.remove_entity(id);
    }
}

/// Helpers for a [`spawn`](super::spawn)ed simulator, over HTTP with reqwest.
pub(super) mod socket {
    use axum::http::HeaderMap;

    use super::{CREDENTIALS, access_token};
    use crate::simulator::SimulatorHandle;

    pub(in crate::simulator) fn client() -> reqwest::Client {
        reqwest::Client::builder().build().unwrap()
    }

    /// Logs in with the default credentials; the access token.
    pub(in crate::simulator) async fn mint(
        client: &reqwest::Client,
        sim: &SimulatorHandle,
    ) -> String {
        let response = client
            .post(&sim.auth_url)
            .form(&CREDENTIALS)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        access_token(&response.text().await.unwrap())
    }

    pub(in crate::simulator) async fn get(
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

    pub(in crate::simulator) async fn send(
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
    pub(in crate::simulator) async fn read_body(
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
}
