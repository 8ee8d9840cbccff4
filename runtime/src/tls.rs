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
/// Both files are written to temporary names first and renamed into place
/// ([`write_atomically`]); the key is written first and removed again when the
/// certificate cannot be written, so a full disk, an unwritable folder or an
/// interrupted run never leaves half a certificate, or a key without its
/// certificate, behind.
pub fn ensure_certificate(config: &Config) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = cert_paths(config);
    if config.tls_cert.is_some() || (cert.exists() && key.exists()) {
        return Ok((cert, key));
    }
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| s.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names)?;
    std::fs::create_dir_all(&config.cert_dir).map_err(|source| TlsError::Io {
        path: config.cert_dir.clone(),
        what: "cannot create the certificate folder (set cert_dir to a writable folder)",
        source,
    })?;
    let written = |path: &Path, bytes: &[u8], mode| {
        write_atomically(path, bytes, mode).map_err(|source| TlsError::Io {
            path: path.to_path_buf(),
            what: "cannot write the self-signed certificate (is the disk full? \
                   set cert_dir to a writable folder)",
            source,
        })
    };
    written(&key, made.signing_key.serialize_pem().as_bytes(), 0o600)?;
    if let Err(e) = written(&cert, made.cert.pem().as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&key);
        return Err(e);
    }
    tracing::info!(cert = %cert.display(), "made a self-signed certificate for localhost");
    Ok((cert, key))
}

/// Writes `bytes` to `path` so that `path` is either untouched or complete:
/// to a temporary file beside it (`.NAME.tmp-PID`, created with `mode`), flushed
/// to disk, then renamed over `path`. On any failure the temporary file is removed
/// and the error returned. Used for the certificate and the client's saved snapshots.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    match written {
        Ok(()) => {
            // The rename itself reaches the disk with the folder (best effort).
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(dir) = std::fs::File::open(dir) {
                    let _ = dir.sync_all();
                }
            }
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The certificates of a PEM file, or why it holds none.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
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

/// The crypto provider every TLS configuration of the playground uses (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn write_atomically_replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new contents", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new contents");
        assert_eq!(names(dir.path()), ["a.json"]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        // Replaced by a new file: the mode asked for, not the old file's.
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    #[test]
    fn write_atomically_fails_cleanly_when_the_folder_is_not_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = write_atomically(&file.join("a.json"), b"x", 0o644).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(20), "ENOTDIR: {err}");
        assert_eq!(names(dir.path()), ["file"]);
    }

    #[test]
    fn the_self_signed_certificate_is_made_once_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            cert_dir: dir.path().join("certs"),
            ..Config::default()
        };
        let (cert, key) = ensure_certificate(&config).unwrap();
        assert_eq!(
            names(&config.cert_dir),
            ["localhost.key.pem", "localhost.pem"]
        );
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
        let before = std::fs::read(&cert).unwrap();
        ensure_certificate(&config).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), before, "reused, not remade");
        server_config(&config).unwrap();
        client_config(&config).unwrap();
    }

    #[test]
    fn an_unusable_certificate_folder_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let config = Config {
            cert_dir: dir.path().join("file").join("certs"),
            ..Config::default()
        };
        let err = ensure_certificate(&config).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: cannot create", config.cert_dir.display())),
            "{err}"
        );
        assert_eq!(names(dir.path()), ["file"]);
    }
}
