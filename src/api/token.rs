//! Where a request's Bearer token comes from: a configured long-lived API
//! token, or an access token minted from the API client's credentials and
//! cached across RPCs, refreshed before it expires and once when refused.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::header;
use serde_json::Value as Json;
use tracing::info;
use url::Url;

use super::{ApiClient, ApiError, Target, body::read_capped, retry::Auth};
use crate::{config::Credentials, secret::Secret};

/// A token reply is tiny; anything larger is not one.
const TOKEN_REPLY_CAP_BYTES: usize = 64 * 1024;

/// The lifetime assumed when a reply does not say (SenSource's is an hour).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Access tokens shared across RPCs, one slot per set of credentials, so a
/// Test followed by an Update does not mint twice (SenSource may rate-limit
/// minting and may keep only one live token per client).
#[derive(Debug, Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<u64, Arc<TokenSlot>>>,
}

impl TokenCache {
    fn slot(&self, auth_url: &Url, client_id: &str, client_secret: &Secret) -> Arc<TokenSlot> {
        // The key is a hash that never leaves this process; the secret is part
        // of it so a changed secret gets a fresh token.
        let mut hasher = DefaultHasher::new();
        auth_url.as_str().hash(&mut hasher);
        client_id.hash(&mut hasher);
        client_secret.expose().hash(&mut hasher);
        let key = hasher.finish();
        let mut slots = match self.slots.lock() {
            Ok(slots) => slots,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots.entry(key).or_default().clone()
    }
}

/// One cached token. The async mutex makes concurrent requests wait for a
/// single mint instead of each minting (and invalidating the others).
#[derive(Debug, Default)]
pub(super) struct TokenSlot {
    current: tokio::sync::Mutex<Option<CachedToken>>,
}

/// A token ready to be sent.
#[derive(Debug, Clone)]
pub(super) struct CachedToken {
    pub(super) access_token: Secret,
    /// When to mint a new one: a margin before the server's expiry.
    refresh_at: Instant,
    /// Distinguishes tokens, so a 401 invalidates only the token it was for.
    pub(super) generation: u64,
}

/// Where the Bearer token of a request comes from.
pub(super) enum Access {
    /// Minted from an API client's credentials and cached.
    Minted {
        auth_url: Url,
        client_id: String,
        client_secret: Secret,
        token: Arc<TokenSlot>,
    },
    /// The configured long-lived API token, used as it is.
    Static(Secret),
}

impl Access {
    /// The access the configured credentials give, sharing `tokens`' slot for them.
    pub(super) fn new(credentials: &Credentials, auth_url: &Url, tokens: &TokenCache) -> Self {
        match credentials {
            Credentials::Client {
                client_id,
                client_secret,
            } => Access::Minted {
                auth_url: auth_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                token: tokens.slot(auth_url, client_id, client_secret),
            },
            Credentials::Token(token) => Access::Static(token.clone()),
        }
    }

    /// How API requests made with this access are authorized.
    pub(super) fn auth(&self) -> Auth {
        match self {
            Access::Minted { .. } => Auth::MintedToken,
            Access::Static(_) => Auth::StaticToken,
        }
    }
}

impl ApiClient {
    /// Returns a valid access token, minting one if there is none or it is
    /// about to expire. Holding the slot's lock while minting is deliberate:
    /// other requests wait for this token instead of minting their own.
    pub(super) async fn access_token(&self) -> Result<CachedToken, ApiError> {
        let (slot, auth_url, client_id, client_secret) = match &self.access {
            Access::Minted {
                token,
                auth_url,
                client_id,
                client_secret,
            } => (token, auth_url, client_id, client_secret),
            Access::Static(token) => {
                return Ok(CachedToken {
                    access_token: token.clone(),
                    refresh_at: Instant::now(),
                    generation: 0,
                });
            }
        };
        let mut current = slot.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.refresh_at > Instant::now()) {
            return Ok(token.clone());
        }
        let generation = current.as_ref().map_or(1, |t| t.generation + 1);
        // Boxed: minting goes through `execute`, which calls this function for
        // bearer requests, so the future types would otherwise be recursive.
        let token = Box::pin(self.mint(auth_url, client_id, client_secret, generation)).await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// Forgets the token a request was refused with, unless it was already replaced.
    pub(super) async fn invalidate(&self, generation: u64) {
        let Access::Minted { token, .. } = &self.access else {
            return;
        };
        let mut current = token.current.lock().await;
        if current.as_ref().is_some_and(|t| t.generation == generation) {
            *current = None;
        }
    }

    async fn mint(
        &self,
        auth_url: &Url,
        client_id: &str,
        client_secret: &Secret,
        generation: u64,
    ) -> Result<CachedToken, ApiError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", client_secret.expose())
            .finish();
        let started = Instant::now();
        let target = Target::token_endpoint();
        let response = self
            .execute(&target, Auth::TokenRequest, || {
                self.http
                    .post(auth_url.clone())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.clone())
            })
            .await?;
        let invalid = |reason: &str| ApiError::InvalidResponse {
            target: target.clone(),
            reason: reason.into(),
        };
        let bytes = read_capped(response, TOKEN_REPLY_CAP_BYTES)
            .await
            .map_err(|_| invalid("the reply is not a readable token response"))?;
        let reply = TokenReply::parse(&bytes).map_err(invalid)?;
        info!(
            lifetime_secs = reply.lifetime.as_secs(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Obtained a SenSource access token."
        );
        Ok(CachedToken {
            access_token: reply.access_token,
            refresh_at: started + refresh_after(reply.lifetime),
            generation,
        })
    }
}

/// The parts of a token reply the connector uses.
#[derive(Debug)]
struct TokenReply {
    access_token: Secret,
    lifetime: Duration,
}

impl TokenReply {
    /// Reads `{"access_token": "...", "expires_in": 3600, ...}`. `expires_in`
    /// may be a number or a numeric string, and defaults to an hour. The
    /// error says what is wrong, never what the reply holds.
    fn parse(body: &[u8]) -> Result<Self, &'static str> {
        let reply: Json = serde_json::from_slice(body).map_err(|_| "not valid JSON")?;
        let access_token = reply
            .get("access_token")
            .and_then(Json::as_str)
            .filter(|token| !token.is_empty())
            .ok_or("no `access_token` in the reply")?;
        let lifetime = reply
            .get("expires_in")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        Ok(Self {
            access_token: Secret::new(access_token),
            lifetime,
        })
    }
}

/// How long after minting a token is refreshed: a little early, so a token
/// never expires in flight (a tenth of its lifetime, at most a minute).
fn refresh_after(lifetime: Duration) -> Duration {
    let margin = (lifetime / 10).min(Duration::from_secs(60));
    lifetime.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        text.parse().unwrap()
    }

    /// One slot per (token URL, client ID, secret): the same credentials share
    /// a token across clients; any change gets a slot of its own.
    #[test]
    fn the_cache_keys_slots_by_all_of_the_credentials() {
        let cache = TokenCache::default();
        let auth = url("https://auth.example/oauth/token");
        let secret = Secret::new("s3cret");
        let first = cache.slot(&auth, "client", &secret);
        assert!(Arc::ptr_eq(&first, &cache.slot(&auth, "client", &secret)));
        let others = [
            cache.slot(&auth, "client", &Secret::new("changed")),
            cache.slot(&auth, "other-client", &secret),
            cache.slot(&url("https://other.example/oauth/token"), "client", &secret),
        ];
        for other in &others {
            assert!(!Arc::ptr_eq(&first, other));
        }
        assert_eq!(cache.slots.lock().unwrap().len(), 4);
    }

    /// Static tokens are never minted or refreshed; minted ones are.
    #[test]
    fn access_says_how_requests_are_authorized() {
        let cache = TokenCache::default();
        let auth_url = url("https://auth.example/oauth/token");
        let client = Credentials::Client {
            client_id: "client".into(),
            client_secret: Secret::new("s3cret"),
        };
        let token = Credentials::Token(Secret::new("long-lived"));
        assert_eq!(
            Access::new(&client, &auth_url, &cache).auth(),
            Auth::MintedToken
        );
        assert_eq!(
            Access::new(&token, &auth_url, &cache).auth(),
            Auth::StaticToken
        );
        assert!(
            cache.slots.lock().unwrap().len() == 1,
            "no slot for a static token"
        );
    }

    /// The reply's token and lifetime, in the forms seen and tolerated.
    #[test]
    fn token_replies_are_read_with_their_lifetime() {
        let reply = TokenReply::parse(
            br#"{"access_token": "abc", "expires_in": 1800, "token_type": "Bearer"}"#,
        )
        .unwrap();
        assert_eq!(reply.access_token.expose(), "abc");
        assert_eq!(reply.lifetime, Duration::from_secs(1800));
        let as_text = TokenReply::parse(br#"{"access_token": "abc", "expires_in": "60"}"#).unwrap();
        assert_eq!(as_text.lifetime, Duration::from_secs(60));
        let unstated = TokenReply::parse(br#"{"access_token": "abc"}"#).unwrap();
        assert_eq!(unstated.lifetime, DEFAULT_LIFETIME);
    }

    /// A reply without a usable token is an error that names no content.
    #[test]
    fn unusable_token_replies_say_why() {
        let cases: [(&[u8], &str); 4] = [
            (b"<html>", "not valid JSON"),
            (br#"{"expires_in": 3600}"#, "no `access_token` in the reply"),
            (br#"{"access_token": ""}"#, "no `access_token` in the reply"),
            (br#"{"access_token": 42}"#, "no `access_token` in the reply"),
        ];
        for (body, reason) in cases {
            assert_eq!(TokenReply::parse(body).unwrap_err(), reason);
        }
    }

    /// Tokens are refreshed a tenth of their lifetime early, at most a minute.
    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let secs = Duration::from_secs;
        assert_eq!(refresh_after(secs(3600)), secs(3540));
        assert_eq!(refresh_after(secs(300)), secs(270));
        assert_eq!(refresh_after(secs(0)), secs(0));
    }
}
