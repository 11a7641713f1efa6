//! [`app`]: the router from each path to its endpoint, and the observer every request passes
//! through (statistics, the request log, the `latency_ms` fault).

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};

use super::{
    auth::{TOKEN_PATH, token},
    reference::{location_by_id, locations, sensors, sites, spaces, zones},
    response::message,
    series::{occupancy, traffic},
    state::{RequestLogEntry, SimulatorState},
};

/// The router. Every request passes through `observe` (stats, request log, latency).
pub fn app(state: Arc<SimulatorState>) -> Router {
    Router::new()
        .route(TOKEN_PATH, post(token))
        .route("/api/location", get(locations))
        .route("/api/location/{id}", get(location_by_id))
        .route("/api/site", get(sites))
        .route("/api/zone", get(zones))
        .route("/api/space", get(spaces))
        .route("/api/sensor", get(sensors))
        .route("/api/data/traffic", get(traffic))
        .route("/api/data/occupancy", get(occupancy))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn observe(
    State(state): State<Arc<SimulatorState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    if path != TOKEN_PATH {
        state
            .stats
            .count_api_request(path.starts_with("/api/data/"));
        // Read under the lock, sleep after it is released.
        let latency = state.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state.stats.log_request(RequestLogEntry {
        path,
        query,
        status,
    });
    response
}

async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not Found")
}
