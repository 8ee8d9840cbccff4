//! The proxy's certificate and the TLS configurations built on it.
//!
//! With `tls_cert`/`tls_key` unset, the proxy makes a self-signed certificate for
//! `localhost` (and 127.0.0.1, ::1) on first run, stores it in `cert_dir`, and reuses it
//! afterwards. The client trusts exactly that certificate, for those names only.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::Config;

/// Names the self-signed certificate is valid for.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A certificate or key that cannot be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Paths of the certificate chain and private key the proxy uses.
pub fn cert_paths(config: &Config) -> (PathBuf, PathBuf) {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => (
            config.cert_dir.join("localhost.pem"),
            config.cert_dir.join("localhost.key.pem"),
        ),
    }
}

/// Makes the self-signed certificate when it is configured and missing.
///
/// Both files are written to temporary names first and renamed into place, so an
/// interrupted run never leaves half a certificate behind.
pub fn ensure_certificate(config: &Config) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = cert_paths(config);
    if config.tls_cert.is_some() || (cert.exists() && key.exists()) {
        return Ok((cert, key));
    }
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| s.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names)?;
    std::fs::create_dir_all(&config.cert_dir).map_err(|source| TlsError::Io {
        path: config.cert_dir.clone(),
        what: "cannot create the certificate folder",
        source,
    })?;
    write_atomically(&key, made.signing_key.serialize_pem().as_bytes())?;
    write_atomically(&cert, made.cert.pem().as_bytes())?;
    tracing::info!(cert = %cert.display(), "made a self-signed certificate for localhost");
    Ok((cert, key))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let io_err = |what| {
        move |source| TlsError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    std::fs::write(&tmp, bytes).map_err(io_err("cannot write"))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err("cannot move into place")(e)
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Invalid {
            path: path.into(),
            what: format!("cannot read a PEM certificate: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            path: path.into(),
            what: "holds no certificate".into(),
        });
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The proxy's server configuration (HTTP/1.1 only), making the certificate if needed.
pub fn server_config(config: &Config) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert, key) = ensure_certificate(config)?;
    let chain = read_certs(&cert)?;
    let key_der = PrivateKeyDer::from_pem_file(&key).map_err(|e| TlsError::Invalid {
        path: key.clone(),
        what: format!("cannot read a PEM private key: {e}"),
    })?;
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// A client configuration that trusts the proxy's certificate and nothing else.
pub fn client_config(config: &Config) -> Result<Arc<ClientConfig>, TlsError> {
    let (cert, _) = cert_paths(config);
    let mut roots = RootCertStore::empty();
    for c in read_certs(&cert)? {
        roots.add(c).map_err(|e| TlsError::Invalid {
            path: cert.clone(),
            what: format!("cannot trust this certificate: {e}"),
        })?;
    }
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(client))
}
