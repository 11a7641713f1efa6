//! The reference list endpoints (`/api/location`, `/api/location/{id}`, `/api/site`,
//! `/api/zone`, `/api/space`, `/api/sensor`): the dataset's objects minus the removed ones, as
//! a bare array or wrapped in `{"results": ...}` like the real API.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde_json::{Value, json};

use super::{
    data::Dataset,
    faults::EndpointKind,
    response::{json_value, message, unauthorized},
    state::SimulatorState,
};

/// Auth, faults, then the body built from the dataset's objects minus the removed ones.
/// `id_key` is the objects' own id field, the one [`SimulatorState::remove_entity`] matches.
fn reference(
    state: &SimulatorState,
    headers: &HeaderMap,
    id_key: &str,
    list: impl FnOnce(&Dataset) -> Vec<Value>,
    build: impl FnOnce(Vec<Value>) -> Option<Value>,
) -> Response {
    if !state.authorized(headers) {
        return unauthorized();
    }
    if let Some(failure) = state.injected_failure(EndpointKind::Reference) {
        return failure;
    }
    let mut items = list(&state.dataset);
    let removed = state.removed();
    if !removed.is_empty() {
        items.retain(|item| {
            item.get(id_key)
                .and_then(Value::as_str)
                .is_none_or(|id| !removed.contains(id))
        });
    }
    match build(items) {
        Some(value) => json_value(StatusCode::OK, &value),
        None => message(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `/location` and `/zone` answer bare arrays (confirmed).
fn bare(items: Vec<Value>) -> Option<Value> {
    Some(Value::Array(items))
}

/// The others are wrapped in `{"results": ...}` so that clients are exercised on both shapes.
fn wrapped(items: Vec<Value>) -> Option<Value> {
    Some(json!({ "results": items }))
}

pub(super) async fn locations(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
) -> Response {
    reference(&state, &headers, "locationId", Dataset::locations, bare)
}

pub(super) async fn location_by_id(
    State(state): State<Arc<SimulatorState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    reference(
        &state,
        &headers,
        "locationId",
        Dataset::locations,
        |items| {
            items
                .into_iter()
                .find(|l| l.get("locationId").and_then(Value::as_str) == Some(id.as_str()))
        },
    )
}

pub(super) async fn zones(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
) -> Response {
    reference(&state, &headers, "zoneId", Dataset::zones, bare)
}

pub(super) async fn sites(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
) -> Response {
    reference(&state, &headers, "siteId", Dataset::sites, wrapped)
}

pub(super) async fn spaces(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
) -> Response {
    reference(&state, &headers, "spaceId", Dataset::spaces, wrapped)
}

pub(super) async fn sensors(
    State(state): State<Arc<SimulatorState>>,
    headers: HeaderMap,
) -> Response {
    reference(&state, &headers, "sensorId", Dataset::sensors, wrapped)
}

#[cfg(test)]
mod tests {
    use crate::simulator::{
        SimulatorOptions,
        test_support::{InProcessSimulator, results, traffic_path},
    };

    use super::*;

    #[tokio::test]
    async fn reference_endpoints_use_both_list_shapes() {
        let sim = InProcessSimulator::new(SimulatorOptions::default());
        let token = sim.mint().await;
        let mut location_id = String::new();
        for (path, bare, len) in [
            ("/api/location", true, 2),
            ("/api/zone", true, 6),
            ("/api/site", false, 2),
            ("/api/space", false, 3),
            ("/api/sensor", false, 6),
        ] {
            let (status, _, body) = sim.get(path, Some(&token)).await;
            assert_eq!(status, 200);
            let value: Value = serde_json::from_str(&body).unwrap();
            let items = if bare { &value } else { &value["results"] };
            assert_eq!(items.as_array().unwrap().len(), len, "{path}");
            if path == "/api/location" {
                location_id = items[0]["locationId"].as_str().unwrap().to_owned();
            }
        }
        let (status, _, body) = sim
            .get(&format!("/api/location/{location_id}"), Some(&token))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["locationId"],
            location_id
        );
        assert_eq!(sim.get("/api/location/nope", Some(&token)).await.0, 404);
        assert_eq!(sim.get("/api/nothing", Some(&token)).await.0, 404);
    }

    #[tokio::test]
    async fn removed_entities_disappear_from_reference_and_data() {
        let sim = InProcessSimulator::new(SimulatorOptions::default());
        let token = sim.mint().await;
        let list = |body: &str, bare: bool| -> Vec<Value> {
            let value: Value = serde_json::from_str(body).unwrap();
            let items = if bare {
                value
            } else {
                value["results"].clone()
            };
            items.as_array().unwrap().clone()
        };
        let mut removed = Vec::new();
        for (path, key, bare) in [
            ("/api/location", "locationId", true),
            ("/api/site", "siteId", false),
            ("/api/zone", "zoneId", true),
            ("/api/space", "spaceId", false),
            ("/api/sensor", "sensorId", false),
        ] {
            let items = list(&sim.get(path, Some(&token)).await.2, bare);
            let id = items[1][key].as_str().unwrap().to_owned();
            sim.remove_entity(&id);
            let after = list(&sim.get(path, Some(&token)).await.2, bare);
            assert_eq!(after.len(), items.len() - 1, "{path}");
            assert!(after.iter().all(|item| item[key] != id.as_str()), "{path}");
            removed.push(id);
        }
        assert_eq!(
            sim.get(&format!("/api/location/{}", removed[0]), Some(&token))
                .await
                .0,
            404
        );
        let (zone_id, space_id) = (&removed[2], &removed[3]);
        let path = traffic_path("2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z");
        let rows = results(&sim.get(&path, Some(&token)).await.2);
        assert_eq!(rows.len(), 24 * 5);
        assert!(rows.iter().all(|r| r["zoneId"] != zone_id.as_str()));
        let occupancy = "/api/data/occupancy?relativeDate=custom&startDate=2025-02-03T00:00:00Z\
                         &endDate=2025-02-04T00:00:00Z&dateGroupings=hour&entityType=space\
                         &metrics=occupancy(max)";
        let rows = results(&sim.get(occupancy, Some(&token)).await.2);
        assert_eq!(rows.len(), 24 * 2);
        assert!(rows.iter().all(|r| r["spaceId"] != space_id.as_str()));
    }
}
