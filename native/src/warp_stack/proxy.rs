//! The proxy on the warp stack: warp/hyper over tokio-rustls, upgrades forwarded
//! with `hyper::upgrade` and `tokio::io::copy_bidirectional`.

use crate::config::Config;
use crate::proxy::StartError;
use crate::shutdown::Shutdown;
use crate::wss::Running;

/// Binds the warp proxy and its snapshot endpoint and starts serving until `shutdown`.
pub async fn start(_config: &Config, _shutdown: &Shutdown) -> Result<Running, StartError> {
    Err(StartError::Io(std::io::Error::other(
        "proxy: the warp stack is not built yet",
    )))
}
