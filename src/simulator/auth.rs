//! The OAuth token endpoint ([`TOKEN_PATH`]): a client-credentials request, as JSON or a form,
//! checked against the configured client and answered with a minted token pair.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use serde::Deserialize;
use serde_json::json;

use super::{response::json_value, state::SimulatorState};

/// Path of the token endpoint (the real one lives on a separate host; here it shares the server).
pub const TOKEN_PATH: &str = "/oauth/token";

#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Parses a token request body as JSON or form-urlencoded, like the real endpoint accepts.
/// Without a telling content type, a body starting with `{` is taken as JSON.
fn parse_token_request(headers: &HeaderMap, body: &[u8]) -> Option<TokenRequest> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let looks_json = body.trim_ascii_start().starts_with(b"{");
    if content_type.contains("json")
        || (!content_type.contains("x-www-form-urlencoded") && looks_json)
    {
        return serde_json::from_slice(body).ok();
    }
    let mut request = TokenRequest::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        let slot = match key.as_ref() {
            "grant_type" => &mut request.grant_type,
            "client_id" => &mut request.client_id,
            "client_secret" => &mut request.client_secret,
            _ => continue,
        };
        *slot = Some(value.into_owned());
    }
    Some(request)
}

/// `POST` [`TOKEN_PATH`].
pub(super) async fn token(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Rate limiting happens before the request is even read, as at an API gateway, so every
    // token request counts, well-formed or not.
    if let Some(limited) = state.token_rate_limited() {
        return limited;
    }
    let Some(request) = parse_token_request(&headers, &body) else {
        return json_value(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "error_description": "Malformed request body"}),
        );
    };
    if request.grant_type.as_deref() != Some("client_credentials") {
        return json_value(
            StatusCode::BAD_REQUEST,
            &json!({"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}),
        );
    }
    if request.client_id.as_deref() != Some(state.client_id.as_str())
        || request.client_secret.as_deref() != Some(state.client_secret.expose())
    {
        return json_value(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "access_denied", "error_description": "Unauthorized"}),
        );
    }
    let (access_token, refresh_token) = state.mint();
    json_value(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "refresh_token": refresh_token,
            "expires_in": state.token_lifetime.as_secs(),
            "token_type": "Bearer",
        }),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::simulator::{SimulatorOptions, test_support::InProcessSimulator};

    use super::*;

    #[tokio::test]
    async fn token_endpoint_accepts_json_and_form_and_rejects_bad_input() {
        let sim = InProcessSimulator::new(SimulatorOptions::default());
        let (status, _, body) = sim
            .post_token(
                "application/json",
                r#"{"grant_type":"client_credentials","client_id":"sim-client","client_secret":"sim-secret"}"#,
            )
            .await;
        assert_eq!(status, 200);
        let body: Value = serde_json::from_str(&body).unwrap();
        for key in ["access_token", "refresh_token"] {
            let token = body[key].as_str().unwrap();
            assert_eq!(token.len(), 64);
            assert!(
                token
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["token_type"], "Bearer");

        let form_token = sim.mint().await;
        assert_ne!(form_token, body["access_token"].as_str().unwrap());

        let bad = [
            (
                "grant_type=client_credentials&client_id=sim-client&client_secret=nope",
                "application/x-www-form-urlencoded",
                401,
            ),
            (
                "grant_type=password&client_id=sim-client&client_secret=sim-secret",
                "application/x-www-form-urlencoded",
                400,
            ),
            (
                "client_id=sim-client&client_secret=sim-secret",
                "application/x-www-form-urlencoded",
                400,
            ),
            ("{not json", "application/json", 400),
        ];
        for (body, content_type, status) in bad {
            let (actual, _, text) = sim.post_token(content_type, body).await;
            assert_eq!(actual, status, "{body}");
            if status == 401 {
                let error: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(
                    error,
                    json!({"error": "access_denied", "error_description": "Unauthorized"})
                );
            }
        }
        assert_eq!(sim.stats.token_mints(), 2);
        assert_eq!(sim.stats.api_requests(), 0);
        assert_eq!(sim.stats.requests_log().len(), 6);
    }
}
