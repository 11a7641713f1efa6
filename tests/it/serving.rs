//! The services served next to the connector: health and reflection.

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use std::sync::Arc;

use fivetran_source::{
    clock::FixedClock,
    grpc::{pb, server::ResponseCompression},
};

use crate::support::{
    configuration, now, spawn_connector, spawn_connector_compressing, spawn_simulator,
};

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

/// Reflection can describe the connector (what `grpcurl describe` asks),
/// through both the v1 and the v1alpha service.
#[tokio::test]
async fn reflection_describes_the_connector_in_v1_and_v1alpha() {
    use tonic_reflection::pb::v1alpha;

    let connector = spawn_connector().await;
    let mut v1 = ServerReflectionClient::new(connector.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "fivetran_sdk.v2.SourceConnector".into(),
        )),
    };
    let response = v1
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("no descriptor for the connector");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    let mut alpha =
        v1alpha::server_reflection_client::ServerReflectionClient::new(connector.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let response = alpha
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected v1alpha answer");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "fivetran_sdk.v2.SourceConnector")
    );
}

/// Responses of one Update and one ConfigurationForm, and whether any of
/// them came gzipped, for a client that advertises gzip like grpc-java.
async fn response_encodings(compression: ResponseCompression) -> Vec<Option<String>> {
    let sim = spawn_simulator().await;
    let connector = spawn_connector_compressing(Arc::new(FixedClock(now())), compression).await;
    let mut client = connector.client.clone();
    let encoding = |metadata: &tonic::metadata::MetadataMap| {
        metadata
            .get("grpc-encoding")
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let form = client
        .configuration_form(pb::ConfigurationFormRequest {})
        .await
        .unwrap();
    let mut encodings = vec![encoding(form.metadata())];
    let mut selection_zone_only = configuration(&sim);
    selection_zone_only.insert("static_endpoints".into(), "zone".into());
    let response = client
        .update(pb::UpdateRequest {
            configuration: selection_zone_only,
            selection: None,
            state_json: None,
        })
        .await
        .unwrap();
    encodings.push(encoding(response.metadata()));
    let mut stream = response.into_inner();
    let mut messages = 0;
    while stream.message().await.unwrap().is_some() {
        messages += 1;
    }
    assert!(messages > 10, "the sync sent {messages} messages");
    encodings
}

/// A client that accepts gzip (grpc-java, grpcio and grpc-go all advertise
/// it) still gets uncompressed messages: compressing for a worker on the same
/// host costs CPU for nothing.
#[tokio::test]
async fn responses_are_uncompressed_by_default_even_when_gzip_is_accepted() {
    let encodings = response_encodings(ResponseCompression::default()).await;
    assert_eq!(encodings, [None, None]);
}

/// `--compression gzip` gzips the messages for clients that accept it.
#[tokio::test]
async fn gzip_is_sent_when_chosen() {
    let encodings = response_encodings(ResponseCompression::Gzip).await;
    let gzip = Some("gzip".to_owned());
    assert_eq!(encodings, [gzip.clone(), gzip]);
}
