//! The wss on the warp stack: a `warp::ws()` route served by warp/hyper.

use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::wss::Running;

/// Binds the warp wss and its snapshot endpoint and starts serving until `shutdown`.
pub async fn start(_config: &Config, _shutdown: &Shutdown) -> std::io::Result<Running> {
    Err(std::io::Error::other(
        "wss: the warp stack is not built yet",
    ))
}
