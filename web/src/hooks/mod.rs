//! The page's own hooks: polling a server's snapshot (and the client's, for a running
//! `client audit`), and checking that the browser can open a websocket through the
//! proxy (its certificate is trusted).

pub mod use_audit;
pub mod use_cert_check;
pub mod use_server;

pub use use_audit::{use_audit, AuditState};
pub use use_cert_check::{use_cert_check, CertState};
pub use use_server::{use_server, ServerAction, ServerView};
