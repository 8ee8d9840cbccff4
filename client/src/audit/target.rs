//! The server under audit: its URL (`ws://` or `wss://`, a [`TargetUrl`]) and how
//! its certificate is trusted. Its websockets are opened by the client's one
//! dialer ([`dial`](crate::connect::dial)).
//!
//! A `wss://` target is checked against the system's roots
//! (`/etc/ssl/certs/ca-certificates.crt`) and any `--ca` file; `--insecure` accepts
//! any certificate (a self-signed one), still checking the handshake's signatures.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

pub use crate::fleet::TargetUrl;

/// Where the system's certificate authorities are (Debian's bundle).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How a `wss://` target's certificate is trusted.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Accept any certificate.
    pub insecure: bool,
    /// More certificates (PEM) to trust beside the system's.
    pub ca: Option<PathBuf>,
}

/// Why the certificates of a `wss://` target cannot be trusted as asked.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The TLS library refused its own defaults.
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
    /// The `--ca` file could not be read.
    #[error("--ca: {0}")]
    ReadCa(#[source] runtime::tls::TlsError),
    /// A certificate of the `--ca` file cannot be a root of trust.
    #[error("--ca {}: cannot trust it: {source}", path.display())]
    Untrustable {
        path: PathBuf,
        source: rustls::Error,
    },
}

/// The TLS configuration for `trust`.
pub fn tls_config(trust: &Trust) -> Result<Arc<ClientConfig>, TrustError> {
    let provider = runtime::tls::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TrustError::Config)?;
    let config = if trust.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        if Path::new(SYSTEM_ROOTS).exists() {
            if let Ok(certs) = runtime::tls::read_certs(Path::new(SYSTEM_ROOTS)) {
                roots.add_parsable_certificates(certs);
            }
        }
        if let Some(ca) = &trust.ca {
            for c in runtime::tls::read_certs(ca).map_err(TrustError::ReadCa)? {
                roots.add(c).map_err(|source| TrustError::Untrustable {
                    path: ca.clone(),
                    source,
                })?;
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
