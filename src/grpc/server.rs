//! Serving: bind the port (dual-stack `[::]`, falling back to `0.0.0.0`),
//! add health and reflection next to the connector, and stop on a signal.

use std::{
    future::Future,
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{codec::CompressionEncoding, transport::Server};
use tracing::info;

use super::{pb, pb::source_connector_server::SourceConnectorServer, service::ConnectorService};

/// Fivetran allows messages of up to 128 MiB each way.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// How the connector compresses the messages it sends.
///
/// Uncompressed by default, whatever the client accepts: standard gRPC
/// clients (grpc-java in Fivetran's worker, grpcio, grpc-go) advertise gzip on
/// every call, and the worker runs beside the connector, so gzipping every
/// `UpdateResponse` would cost most of the server's CPU and buy nothing.
/// Gzip is an opt-in for a connector behind a slow link. Requests are
/// accepted gzipped either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResponseCompression {
    /// Send messages as they are (the default).
    #[default]
    None,
    /// Gzip messages for clients that accept it.
    Gzip,
}

impl ResponseCompression {
    /// The names accepted on the command line, in help order.
    pub const NAMES: [&'static str; 2] = ["none", "gzip"];

    /// The command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
        }
    }
}

impl std::str::FromStr for ResponseCompression {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            _ => Err(format!(
                "unknown compression {text:?}: use one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// Errors while starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port could not be bound.
    #[error("could not listen on port {port}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// Why.
        source: io::Error,
    },
    /// The reflection service could not be built from our descriptors.
    #[error("could not build gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("gRPC transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Binds `[::]:port` as a dual-stack socket (IPv4 and IPv6, as Fivetran's
/// tester reaches us through `host.docker.internal`), or `0.0.0.0:port` where
/// IPv6 is unavailable.
///
/// # Errors
/// [`ServeError::Bind`] when neither address can be bound.
pub fn bind(port: u16) -> Result<TcpListener, ServeError> {
    bind_dual_stack(port).or_else(|ipv6_error| {
        info!(error = %ipv6_error, "IPv6 unavailable; listening on IPv4 only.");
        std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .and_then(|listener| {
                listener.set_nonblocking(true)?;
                TcpListener::from_std(listener)
            })
            .map_err(|source| ServeError::Bind { port, source })
    })
}

fn bind_dual_stack(port: u16) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Serves the connector, health (`SERVING`) and reflection (v1 and v1alpha)
/// on `listener` until `shutdown` completes, then drains open calls. The
/// connector's responses are compressed as `compression` says.
///
/// # Errors
/// [`ServeError`] if reflection cannot be built or the transport fails.
pub async fn serve(
    listener: TcpListener,
    service: ConnectorService,
    compression: ResponseCompression,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<SourceConnectorServer<ConnectorService>>()
        .await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let mut connector = SourceConnectorServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
        .accept_compressed(CompressionEncoding::Gzip);
    if compression == ResponseCompression::Gzip {
        connector = connector.send_compressed(CompressionEncoding::Gzip);
    }

    if let Ok(address) = listener.local_addr() {
        info!(address = %address, compression = compression.name(), "Serving fivetran_sdk.v2.SourceConnector.");
    }
    Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(connector)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    info!("Server stopped.");
    Ok(())
}
