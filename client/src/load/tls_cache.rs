//! The client's TLS configuration, read once and read again after a TLS failure.

use std::sync::{Arc, Mutex};

use rustls::ClientConfig;

use runtime::config::Config;
use runtime::tls::TlsError;

/// The TLS configuration, read once the proxy is reachable, and read again after a
/// TLS failure (the proxy may have made a new certificate).
#[derive(Default)]
pub(super) struct TlsCache(Mutex<Option<Arc<ClientConfig>>>);

impl TlsCache {
    pub(super) fn get(&self, config: &Config) -> Result<Arc<ClientConfig>, TlsError> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tls) = slot.as_ref() {
            return Ok(tls.clone());
        }
        let tls = runtime::tls::client_config(config)?;
        *slot = Some(tls.clone());
        Ok(tls)
    }

    pub(super) fn forget(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
