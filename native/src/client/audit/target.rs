//! The server under audit: its URL (`ws://` or `wss://`), how its certificate is
//! trusted, and opening one websocket to it (TCP, TLS for `wss://`, the websocket
//! handshake) within one deadline.
//!
//! A `wss://` target is checked against the system's roots
//! (`/etc/ssl/certs/ca-certificates.crt`) and any `--ca` file; `--insecure` accepts
//! any certificate (a self-signed one), still checking the handshake's signatures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::client::connect::{ProxyStream, WsStream, READ_BUFFER};

/// Time allowed for TCP, TLS and the websocket handshake of one connection.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the system's certificate authorities are (Debian's bundle).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The websocket URL under audit, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// The URL as given.
    pub url: String,
    pub tls: bool,
    /// The host, without brackets.
    pub host: String,
    pub port: u16,
}

impl TargetUrl {
    /// Parses a `ws://` or `wss://` URL.
    pub fn parse(url: &str) -> Result<TargetUrl, String> {
        let uri: tungstenite::http::Uri = url
            .parse()
            .map_err(|e| format!("--target {url:?} is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            other => {
                return Err(format!(
                    "--target {url:?}: the scheme must be ws:// or wss://, not {}",
                    other.map(|s| format!("{s}://")).unwrap_or("none".into())
                ))
            }
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("--target {url:?} has no host"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(TargetUrl {
            url: url.to_string(),
            tls,
            host,
            port,
        })
    }
}

/// How a `wss://` target's certificate is trusted.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Accept any certificate.
    pub insecure: bool,
    /// More certificates (PEM) to trust beside the system's.
    pub ca: Option<PathBuf>,
}

/// The TLS configuration for `trust`.
pub fn tls_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let provider = crate::tls::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let config = if trust.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        if Path::new(SYSTEM_ROOTS).exists() {
            if let Ok(certs) = crate::tls::read_certs(Path::new(SYSTEM_ROOTS)) {
                roots.add_parsable_certificates(certs);
            }
        }
        if let Some(ca) = &trust.ca {
            for c in crate::tls::read_certs(ca).map_err(|e| format!("--ca: {e}"))? {
                roots
                    .add(c)
                    .map_err(|e| format!("--ca {}: cannot trust it: {e}", ca.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate (`--insecure`); the handshake's signatures are
/// still checked with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens one websocket to `target` (a 4 KiB read buffer: the audit holds thousands).
pub async fn open(
    target: &TargetUrl,
    tls: Option<&Arc<ClientConfig>>,
    max_message: usize,
) -> Result<WsStream, String> {
    let open = async {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", target.host, target.port))?;
        let _ = tcp.set_nodelay(true);
        let stream = match (target.tls, tls) {
            (true, Some(tls)) => {
                let name = ServerName::try_from(target.host.clone())
                    .map_err(|e| format!("{:?} is not a TLS server name: {e}", target.host))?;
                let tls = TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        format!(
                            "TLS handshake with {}:{} failed: {e}{}",
                            target.host,
                            target.port,
                            if e.to_string().contains("certificate") {
                                " (a self-signed certificate: --insecure, or --ca FILE)"
                            } else {
                                ""
                            }
                        )
                    })?;
                ProxyStream::Tls(Box::new(tls))
            }
            _ => ProxyStream::Plain(tcp),
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(max_message.max(1 << 20)))
            .max_frame_size(Some(max_message.max(1 << 20)));
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(target.url.as_str(), stream, Some(config))
                .await
                .map_err(|e| format!("websocket handshake with {} failed: {e}", target.url))?;
        Ok(ws)
    };
    tokio::time::timeout(OPEN_TIMEOUT, open)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "opening a websocket to {} took more than {OPEN_TIMEOUT:?}",
                target.url
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = TargetUrl::parse("ws://127.0.0.1:8800/").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "127.0.0.1", 8800));
        let t = TargetUrl::parse("wss://localhost/chat").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (true, "localhost", 443));
        let t = TargetUrl::parse("ws://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        assert!(TargetUrl::parse("http://localhost:80/")
            .unwrap_err()
            .contains("ws:// or wss://"));
        assert!(TargetUrl::parse("localhost:80").is_err());
        assert!(TargetUrl::parse("not a url").is_err());
    }
}
