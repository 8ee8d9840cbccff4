//! What every task of a run shares: its counters, the outage being detected, and the
//! line that explains a loss of every connection.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::throttled::Throttled;
use super::tls_cache::TlsCache;
use crate::connect::{proxy_addr, Dial};
use crate::pin_traffic::PinPlan;
use crate::Backoff;
use runtime::config::Config;
use runtime::server::State;

/// Time allowed to check whether the proxy still accepts connections.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Counters of one run.
#[derive(Default)]
pub(super) struct Counters {
    /// Pinning slots taken: connecting, open, reconnecting, or lost for good.
    pub(super) slots: AtomicU64,
    pub(super) pinning_open: AtomicU64,
    pub(super) pinning_connecting: AtomicU64,
    pub(super) pinning_opened: AtomicU64,
    pub(super) pinning_failed: AtomicU64,
    pub(super) pinning_closed: AtomicU64,
    pub(super) data_up: AtomicBool,
    pub(super) data_messages: AtomicU64,
    pub(super) data_bytes: AtomicU64,
    pub(super) data_failed: AtomicU64,
    pub(super) data_lost: AtomicU64,
    /// Bytes of binary messages received on the data connection (the wss's echoes).
    pub(super) data_received: AtomicU64,
    /// Lost connections waiting to be reopened.
    pub(super) reconnecting: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) reconnect_failed: AtomicU64,
    pub(super) received: AtomicU64,
    /// socket.io pings answered (its pongs sent), on every connection.
    pub(super) pings_answered: AtomicU64,
}

pub(super) fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Connections lost since one last opened: an outage in the making.
#[derive(Default)]
pub(super) struct Losses {
    pub(super) pinning: u64,
    pub(super) data: u64,
    pub(super) first: Option<Instant>,
    pub(super) last: Option<Instant>,
    /// Every open connection was lost (reported once per outage).
    pub(super) all: bool,
}

/// What every task of a run shares.
pub(super) struct Ctx {
    pub(super) config: Config,
    pub(super) state: Arc<State>,
    /// What the pinning connections sent (the client snapshot's `client` section).
    pub(super) pin_traffic: Arc<crate::pin_traffic::PinCounters>,
    pub(super) counters: Counters,
    pub(super) reconnect: Option<Backoff>,
    /// Closes every websocket; triggered after the report.
    pub(super) stop: CancellationToken,
    /// Triggered when every open connection was lost and the run does not reconnect.
    pub(super) lost_all: CancellationToken,
    /// The connection tasks, waited for (bounded) at the end.
    pub(super) tracker: TaskTracker,
    /// How each of the run's websockets is opened: to the proxy of `config`.
    pub(super) dial: Dial,
    pub(super) tls: TlsCache,
    /// Set once any connection has opened.
    pub(super) ever_open: AtomicBool,
    /// Set while the proxy is known to be unreachable (reported once per outage).
    pub(super) proxy_down: AtomicBool,
    /// Set once a certificate problem has been explained.
    pub(super) cert_reported: AtomicBool,
    /// Set once every pinning connection was open.
    pub(super) target_reached: AtomicBool,
    /// A pinning slot became free (an attempt failed).
    pub(super) slot_freed: Notify,
    pub(super) losses: Mutex<Losses>,
    pub(super) pinning_failures: Throttled,
    pub(super) pinning_closes: Throttled,
    pub(super) reconnect_failures: Throttled,
    /// What each pinning connection sends once greeted; `None`: nothing.
    pub(super) pin_plan: Option<PinPlan>,
    /// The payloads of that traffic, shared by every connection.
    pub(super) pin_payloads: (Bytes, Bytes),
}

impl Ctx {
    /// Connections open now: pinning and data.
    pub(super) fn open_now(&self) -> u64 {
        get(&self.counters.pinning_open) + u64::from(self.counters.data_up.load(Ordering::Relaxed))
    }

    /// A connection that was open has ended: no longer counted open, and counted
    /// lost when `lost` (the other side closed it or it broke). Both under the
    /// losses' lock, so that the last connection to go sees every earlier loss (a
    /// data connection counted down but not yet counted lost made the outage line
    /// leave it out).
    pub(super) fn ended(&self, data: bool, lost: bool) {
        let mut l = self.losses.lock().unwrap_or_else(|e| e.into_inner());
        if data {
            self.counters.data_up.store(false, Ordering::Relaxed);
        } else {
            self.counters.pinning_open.fetch_sub(1, Ordering::Relaxed);
        }
        if !lost {
            return;
        }
        let now = Instant::now();
        l.first.get_or_insert(now);
        l.last = Some(now);
        if data {
            l.data += 1;
        } else {
            l.pinning += 1;
        }
        if self.open_now() > 0 || l.all || self.stop.is_cancelled() {
            return;
        }
        l.all = true;
        let what = lost_what(l.pinning, l.data);
        match self.reconnect {
            None => self.lost_all.cancel(),
            Some(_) => tracing::warn!(
                "lost every connection to the proxy at {} ({what}); reconnecting with backoff",
                proxy_addr(&self.config)
            ),
        }
    }

    /// A connection has opened (first time or reopened).
    pub(super) fn opened(&self) {
        self.ever_open.store(true, Ordering::Relaxed);
        let mut l = self.losses.lock().unwrap_or_else(|e| e.into_inner());
        if l.all && self.reconnect.is_some() && get(&self.counters.reconnecting) == 0 {
            let after = l.first.map(|t| t.elapsed()).unwrap_or_default();
            tracing::info!(
                "reconnected: {} connections open again, {:.1} s after the loss",
                self.open_now(),
                after.as_secs_f64()
            );
        } else if l.all {
            return;
        }
        *l = Losses::default();
    }
}

/// "200 pinning connections and the data connection".
pub(super) fn lost_what(pinning: u64, data: u64) -> String {
    let pinning = match pinning {
        0 => None,
        1 => Some("1 pinning connection".to_string()),
        n => Some(format!("{n} pinning connections")),
    };
    let data = match data {
        0 => None,
        1 => Some("the data connection".to_string()),
        n => Some(format!("the data connection ({n} times)")),
    };
    match (pinning, data) {
        (Some(p), Some(d)) => format!("{p} and {d}"),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => "no connection".to_string(),
    }
}

/// The one line that says every connection was lost: how many, how fast, and
/// whether the proxy still accepts connections (a TCP probe).
pub(super) async fn lost_message(ctx: &Ctx) -> String {
    let (what, within) = {
        let l = ctx.losses.lock().unwrap_or_else(|e| e.into_inner());
        let within = match (l.first, l.last) {
            (Some(a), Some(b)) => b.duration_since(a),
            _ => Duration::ZERO,
        };
        (lost_what(l.pinning, l.data), within)
    };
    let addr = proxy_addr(&ctx.config);
    let probe = tokio::time::timeout(
        PROBE_WAIT,
        TcpStream::connect((
            crate::connect::bare_host(&ctx.config.client_proxy_host),
            ctx.config.proxy_port,
        )),
    )
    .await;
    let proxy = match probe {
        Ok(Ok(_)) => {
            "the proxy still accepts connections: is the wss behind it running?".to_string()
        }
        Ok(Err(e)) => format!("the proxy no longer accepts connections ({e})"),
        Err(_) => format!("the proxy does not answer within {PROBE_WAIT:?}"),
    };
    format!(
        "lost the proxy at {addr}: all open connections ({what}) ended within {:.2} s, and {proxy}; \
         run with --reconnect to reopen them with backoff",
        within.as_secs_f64()
    )
}
