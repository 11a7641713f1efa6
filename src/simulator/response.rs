//! The response shapes the simulated API answers with: a JSON body with its content type, the
//! `{"message": ...}` errors of auth and infrastructure, and the `{"messages": [...]}` of a
//! rejected data request.

use axum::{
    body::Body,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// `body` as JSON with `status`.
pub(super) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// `value` serialized, with `status`.
pub(super) fn json_value(status: StatusCode, value: &Value) -> Response {
    json_response(status, value.to_string())
}

/// The `{"message": ...}` shape the API uses for auth and infrastructure errors.
pub(super) fn message(status: StatusCode, text: &str) -> Response {
    json_value(status, &json!({ "message": text }))
}

/// The `{"messages": [...]}` shape used for rejected data requests.
pub(super) fn bad_request(text: &str) -> Response {
    json_value(StatusCode::BAD_REQUEST, &json!({ "messages": [text] }))
}

/// A missing, unknown or expired bearer token.
pub(super) fn unauthorized() -> Response {
    message(StatusCode::UNAUTHORIZED, "Unauthorized")
}

/// The 500 of a failing server.
pub(super) fn internal_error() -> Response {
    message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}
