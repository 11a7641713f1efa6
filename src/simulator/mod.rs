//! The built-in SenSource "Vea" API simulator, for tests and local runs. This module is its
//! public face: [`serve`] and [`spawn`], the [`SimulatorHandle`] of a spawned server, and the
//! re-exported types.
//!
//! One concern per module:
//! - `options`: [`SimulatorOptions`], how a simulator is set up.
//! - `faults`: [`Faults`], the injected failures: knobs, counters, decisions and effects.
//! - `state`: [`SimulatorState`] and its one lock, token minting and authorization, [`Stats`].
//! - `routes`: [`app`], the router and the observer every request passes through.
//! - `response`: the response shapes of the API.
//! - `auth`: the OAuth token endpoint ([`TOKEN_PATH`]).
//! - `reference`: the reference list endpoints.
//! - `series`: the time-series endpoints: query parsing and validation.
//! - `body`: time-series bodies written as text, whole or endless.
//! - [`data`]: the deterministic dataset.

#![warn(missing_docs)]

mod auth;
mod body;
pub mod buckets;
pub mod data;
mod faults;
pub mod local_time;
mod options;
mod reference;
mod response;
mod routes;
mod series;
mod state;
#[cfg(test)]
mod test_support;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use auth::TOKEN_PATH;
pub use data::{Dataset, OccupancyValues};
pub use faults::Faults;
pub use options::SimulatorOptions;
pub use routes::app;
pub use state::{RequestLogEntry, SimulatorState, Stats};

/// Serves the simulator on `listener` until `shutdown` resolves.
///
/// # Errors
/// When accepting or serving connections fails.
pub async fn serve(
    listener: TcpListener,
    options: SimulatorOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_state(listener, Arc::new(SimulatorState::new(options)), shutdown).await
}

async fn serve_state(
    listener: TcpListener,
    state: Arc<SimulatorState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A running simulator. Dropping it stops the server.
pub struct SimulatorHandle {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// `base_url` + `/oauth/token`
    pub auth_url: String,
    /// The server's counters and request log, readable while it runs.
    pub stats: Arc<Stats>,
    /// The dataset it serves, for computing the rows a sync should deliver.
    pub dataset: Arc<Dataset>,
    state: Arc<SimulatorState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl SimulatorHandle {
    /// Replaces the faults and restarts their counters and RNG.
    pub fn set_faults(&self, faults: Faults) {
        self.state.set_faults(faults);
    }

    /// Moves the simulated clock (e.g. forward between two syncs).
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.state.set_now(now);
    }

    /// The simulated clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.state.now()
    }

    /// See [`SimulatorState::remove_entity`].
    pub fn remove_entity(&self, id: &str) {
        self.state.remove_entity(id);
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    ///
    /// # Errors
    /// When serving failed, or the server task panicked.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            // The server may already be gone; nothing to do then.
            let _ = sender.send(());
        }
    }
}

/// Binds 127.0.0.1 on a free port and serves in a background task. The listener is bound
/// before this returns, so clients can connect immediately.
///
/// # Errors
/// When no port can be bound.
pub async fn spawn(options: SimulatorOptions) -> std::io::Result<SimulatorHandle> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    let state = Arc::new(SimulatorState::new(options));
    let (sender, receiver) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_state(listener, state.clone(), async move {
        // A dropped sender also means "stop".
        let _ = receiver.await;
    }));
    let base_url = format!("http://{address}");
    Ok(SimulatorHandle {
        auth_url: format!("{base_url}{TOKEN_PATH}"),
        base_url,
        stats: state.stats.clone(),
        dataset: state.dataset.clone(),
        state,
        shutdown: Some(sender),
        task: Some(task),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{
        test_support::socket::{client, get, mint},
        *,
    };

    /// Over a real socket: spawn, log in, call, shut down.
    #[tokio::test]
    async fn api_requires_a_live_token() {
        let sim = spawn(SimulatorOptions::default()).await.unwrap();
        let client = client();
        let (status, _, body) = get(&client, &sim, "/api/zone", None).await;
        assert_eq!(status, 401);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"message": "Unauthorized"})
        );
        let (status, _, _) = get(&client, &sim, "/api/zone", Some("deadbeef")).await;
        assert_eq!(status, 401);
        let token = mint(&client, &sim).await;
        let (status, _, _) = get(&client, &sim, "/api/zone", Some(&token)).await;
        assert_eq!(status, 200);
        assert_eq!(sim.stats.api_requests(), 3);
        sim.shutdown().await.unwrap();
    }
}
