//! The services served next to the connector: health and reflection.

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::support::spawn_connector;

/// The health service reports SERVING for the server and the connector.
#[tokio::test]
async fn health_reports_serving() {
    let connector = spawn_connector().await;
    let mut health = HealthClient::new(connector.channel.clone());
    for service in ["", "fivetran_sdk.v2.SourceConnector"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            response.status,
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
}

/// Reflection lists the connector, so grpcurl needs no proto files.
#[tokio::test]
async fn reflection_lists_the_connector_service() {
    let connector = spawn_connector().await;
    let mut reflection = ServerReflectionClient::new(connector.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"fivetran_sdk.v2.SourceConnector"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}
