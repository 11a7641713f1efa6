//! The SenSource API client: the only module that knows HTTP. [`ApiClient`]
//! opens SenSource's endpoints and hands their bodies back as [`RowStream`]s;
//! every request goes through one attempt loop with timeouts, retries and a
//! body cap.
//!
//! - `error`: [`ApiError`] and [`Target`] (endpoint and window, as data).
//! - `token`: the Bearer token: a static API token, or one minted from the
//!   API client and cached in a [`TokenCache`].
//! - `request`: `ApiClient::execute`, the one way a request is sent.
//! - [`retry`]: the pure retry decision and backoff.
//! - `body`: reading bodies under a cap, [`RowStream`].
//! - [`rows`]: the envelope and row boundaries of a streaming body.

mod body;
mod error;
mod request;
pub mod retry;
pub mod rows;
mod token;

use std::fmt;

use reqwest::Response;
use url::Url;

pub use body::RowStream;
pub use error::{ApiError, Target};
pub use token::TokenCache;

use crate::{
    chunk::DateRange,
    config::{Config, HttpSettings},
    schema::Table,
};
use token::Access;

/// A client for one connector configuration.
pub struct ApiClient {
    http: reqwest::Client,
    api_base_url: Url,
    settings: HttpSettings,
    access: Access,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ApiClient");
        debug.field("api_base_url", &self.api_base_url.as_str());
        match &self.access {
            Access::Minted { auth_url, .. } => debug.field("auth_url", &auth_url.as_str()),
            Access::Static(_) => debug.field("api_token", &"set"),
        };
        debug.finish_non_exhaustive()
    }
}

impl ApiClient {
    /// Builds a client with the configuration's URLs, timeouts and retry policy.
    ///
    /// # Errors
    /// [`ApiError::Client`] if TLS cannot be initialised.
    pub fn new(config: &Config, tokens: &TokenCache) -> Result<Self, ApiError> {
        #[allow(clippy::disallowed_methods)] // This is the one place that builds the HTTP client.
        let http = reqwest::Client::builder()
            .connect_timeout(config.http.connect_timeout)
            .timeout(config.http.request_timeout)
            .user_agent(concat!(
                "fivetran-sensource-connector/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(ApiError::Client)?;
        Ok(Self {
            http,
            api_base_url: config.api_base_url.clone(),
            settings: config.http.clone(),
            access: Access::new(&config.credentials, &config.auth_url, tokens),
        })
    }

    /// Opens a whole reference table for streaming. Accepts a bare JSON
    /// array or `{"results": [...]}`.
    ///
    /// # Errors
    /// Any [`ApiError`] before the body starts.
    pub async fn open_reference(&self, table: Table) -> Result<RowStream, ApiError> {
        let target = Target::new(format!("/api/{}", table.name()), None);
        let response = self.get(&target, &[]).await?;
        Ok(self.row_stream(response, target))
    }

    /// Opens the rows of a time-series table for whole UTC days
    /// `[range.start, range.end)`, requested with explicit UTC bounds.
    ///
    /// # Errors
    /// Any [`ApiError`] before the body starts; [`ApiError::NotTimeSeries`]
    /// (a bug in the caller) for a reference table.
    pub async fn open_series(
        &self,
        table: Table,
        range: DateRange,
        metrics: &[String],
    ) -> Result<RowStream, ApiError> {
        let (Some(series), Some(grouping)) = (table.series(), table.grouping()) else {
            return Err(ApiError::NotTimeSeries { table });
        };
        // A series table reads on past its window by its longest bucket, so
        // every bucket that starts inside the window arrives whole, whether
        // the API cuts buckets at `endDate` or not; the rows that start after
        // the window are left to the next chunk (see `record::BucketWindow`).
        // The hourly tables keep their exact day bounds.
        let end = match table {
            Table::Series(_) => range.end_utc_after(grouping.longest_bucket_secs()),
            _ => range.end_utc(),
        };
        let query = [
            ("relativeDate", "custom".to_owned()),
            ("startDate", range.start_utc()),
            ("endDate", end),
            ("dateGroupings", grouping.api_name().to_owned()),
            ("entityType", series.entity_type.to_owned()),
            ("metrics", metrics.join(",")),
        ];
        let target = Target::new(series.endpoint, Some(range));
        let response = self.get(&target, &query).await?;
        Ok(self.row_stream(response, target))
    }

    fn row_stream(&self, response: Response, target: Target) -> RowStream {
        RowStream::new(response, target, self.settings.max_response_bytes)
    }

    /// A GET of `target`'s endpoint under the API root, with the Bearer token.
    async fn get(&self, target: &Target, query: &[(&str, String)]) -> Result<Response, ApiError> {
        let mut url = self.api_base_url.clone();
        url.set_path(&format!(
            "{}{}",
            self.api_base_url.path().trim_end_matches('/'),
            target.endpoint
        ));
        self.execute(target, self.access.auth(), || {
            self.http.get(url.clone()).query(query)
        })
        .await
    }
}
