//! Reading response bodies, always under a size cap: [`RowStream`] hands the
//! rows of a large body on piece by piece as it streams in, and
//! [`read_capped`] reads a small body (a token reply, an error) whole.

use bytes::Bytes;
use reqwest::Response;

use super::{
    ApiError, Target,
    rows::{RowConsumer, RowSplitter},
};

/// The rows of one response, read as the body streams in.
#[derive(Debug)]
pub struct RowStream {
    response: Response,
    splitter: RowSplitter,
    target: Target,
    limit: u64,
    read: u64,
    /// The rest of the last network read, not yet split.
    pending: Bytes,
    finished: bool,
}

/// The most body handed to the splitter at once. A network read can be
/// hundreds of KiB; feeding it in pieces bounds the batches a consumer sets
/// aside per call (and so the memory between sends) to those of 32 KiB of
/// rows: a few.
const FEED_PIECE_BYTES: usize = 32 * 1024;

impl RowStream {
    /// Streams the rows of `response`, refusing more than `limit` bytes of body.
    pub(super) fn new(response: Response, target: Target, limit: u64) -> Self {
        Self {
            response,
            splitter: RowSplitter::new(),
            target,
            limit,
            read: 0,
            pending: Bytes::new(),
            finished: false,
        }
    }

    /// Reads the next piece of the body (at most 32 KiB) and
    /// hands the rows that start or complete in it to `consumer`. Returns `false` once the body is
    /// complete and well formed.
    ///
    /// # Errors
    /// [`ApiError::InvalidResponse`] for a body that is not a list of rows or
    /// is too large; [`ApiError::BodyInterrupted`] when the connection breaks.
    pub async fn next_rows(&mut self, consumer: &mut impl RowConsumer) -> Result<bool, ApiError> {
        if self.pending.is_empty() {
            if self.finished {
                return Ok(false);
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => {
                    self.read += chunk.len() as u64;
                    if self.read > self.limit {
                        return Err(ApiError::too_large(&self.target, self.limit));
                    }
                    self.pending = chunk;
                }
                Ok(None) => {
                    self.finished = true;
                    self.splitter
                        .finish()
                        .map_err(|error| self.invalid(error.to_string()))?;
                    return Ok(false);
                }
                Err(_) => {
                    return Err(ApiError::BodyInterrupted {
                        target: self.target.clone(),
                    });
                }
            }
        }
        let piece = self
            .pending
            .split_to(self.pending.len().min(FEED_PIECE_BYTES));
        self.splitter
            .feed(&piece, consumer)
            .map_err(|error| self.invalid(error.to_string()))?;
        Ok(true)
    }

    /// Reads the rest of the body, checking its structure, and counts the rows.
    ///
    /// # Errors
    /// As [`RowStream::next_rows`].
    pub async fn count_to_end(mut self) -> Result<usize, ApiError> {
        struct Count(usize);
        impl RowConsumer for Count {
            fn take_row(&mut self, _: &[u8]) {
                self.0 += 1;
            }
        }
        let mut count = Count(0);
        while self.next_rows(&mut count).await? {}
        Ok(count.0)
    }

    /// Bytes of body read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    fn invalid(&self, reason: String) -> ApiError {
        ApiError::InvalidResponse {
            target: self.target.clone(),
            reason,
        }
    }
}

/// Why a small body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The body is (or says it is) longer than the cap.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The connection broke or the body could not be decoded.
    #[error("the body could not be read")]
    Broken(#[source] reqwest::Error),
}

/// Reads a whole small body, refusing more than `limit` bytes. A body that
/// declares a larger length is refused before any of it is read; one that
/// does not is read only up to the cap, so an endless body costs no more.
pub(super) async fn read_capped(
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    let too_large = || ReadError::TooLarge { limit };
    // `usize` is at most 64 bits wide, so the cast is exact.
    if response
        .content_length()
        .is_some_and(|declared| declared > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Broken)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response with `body`, as `reqwest` would hand it over.
    fn response(body: &'static str) -> Response {
        Response::from(axum::http::Response::new(body))
    }

    #[tokio::test]
    async fn small_bodies_are_read_whole() {
        assert_eq!(read_capped(response("{}"), 2).await.unwrap(), b"{}");
        assert_eq!(read_capped(response(""), 0).await.unwrap(), b"");
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused() {
        let error = read_capped(response("{\"a\":1}"), 6).await.unwrap_err();
        assert!(
            matches!(error, ReadError::TooLarge { limit: 6 }),
            "{error:?}"
        );
        assert_eq!(error.to_string(), "the body is larger than 6 bytes");
    }
}
