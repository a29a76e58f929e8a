//! Where the client's tokens come from: the configured static token, the last one given to
//! [`Client::refresh_token`](crate::Client::refresh_token), or a [`TokenProvider`] asked before
//! every connection and every refresh.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use gateway_core::BoxFuture;

/// A source of fresh tokens: an async function the client calls before each connection (for
/// HELLO) and when the current token is about to expire (for AUTH). It returns the token, or a
/// message saying why there is none (logged, and the connection attempt or the refresh fails).
///
/// Typically it asks an identity provider for a new JWT, or reads one a sidecar keeps fresh on
/// disk. Calls never overlap for one connection, but may for different connections (the old
/// one draining while the new one connects).
///
/// ```
/// use gateway_client::{ClientConfig, TokenProvider};
///
/// let mut config = ClientConfig::new(["127.0.0.1:7000"]);
/// config.token_provider = Some(TokenProvider::new(|| async {
///     std::fs::read("/run/secrets/gateway-token").map(Into::into).map_err(|e| e.to_string())
/// }));
/// ```
#[derive(Clone)]
pub struct TokenProvider(Arc<dyn Fn() -> BoxFuture<'static, Result<Bytes, String>> + Send + Sync>);

impl TokenProvider {
    /// A provider calling `fetch` for each token.
    pub fn new<F, Fut>(fetch: F) -> TokenProvider
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, String>> + Send + 'static,
    {
        TokenProvider(Arc::new(move || Box::pin(fetch())))
    }

    /// A fresh token.
    pub(crate) fn fetch(&self) -> BoxFuture<'static, Result<Bytes, String>> {
        (self.0)()
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProvider(..)")
    }
}

/// Two providers are equal when they are clones of one another.
impl PartialEq for TokenProvider {
    fn eq(&self, other: &TokenProvider) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TokenProvider {}

/// The client's credentials, shared by its connections.
#[derive(Debug)]
pub(crate) struct Credentials {
    provider: Option<TokenProvider>,
    /// The token for HELLO when there is no provider. A std mutex: held only to clone or
    /// replace the token.
    current: Mutex<Bytes>,
}

impl Credentials {
    pub(crate) fn new(provider: Option<TokenProvider>, token: Option<&[u8]>) -> Credentials {
        let current = token.map(Bytes::copy_from_slice).unwrap_or_default();
        Credentials { provider, current: Mutex::new(current) }
    }

    /// The token to present on a new connection: the provider's, or the current one (empty when
    /// the client has none).
    pub(crate) async fn for_hello(&self) -> Result<Bytes, String> {
        match &self.provider {
            Some(provider) => provider.fetch().await,
            None => Ok(self.current.lock().unwrap_or_else(PoisonError::into_inner).clone()),
        }
    }

    /// The provider, when tokens can be refreshed without the application.
    pub(crate) fn provider(&self) -> Option<&TokenProvider> {
        self.provider.as_ref()
    }

    /// Remembers a token the application refreshed explicitly, for later connections.
    pub(crate) fn replace(&self, token: Bytes) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = token;
    }
}
