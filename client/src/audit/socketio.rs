//! Auditing a socket.io server: its fleet opens socket.io sockets (engine.io v4 over
//! a websocket: the namespace's connect, the server's pings answered), and the one
//! message and the traffic go as `message` events. The pacing keeps the plain
//! websocket audit's guarantee: after each event a websocket ping whose pong proves
//! the server read it; with `--echo` (a server that sends every `message` back) its
//! echo is awaited too, so the server has handled it, not only read it.
//!
//! It speaks socket.io with `--socketio` (the URL's path then defaults to
//! socket.io's, `/socket.io/?EIO=4&transport=websocket`), or when the URL's path is
//! already `/socket.io/...`.

use super::AuditOptions;
use crate::connect::{Dial, TargetUrl};
use crate::fleet::Fleet;

/// The URL the audit opens its websockets on: socket.io's path with `--socketio`
/// when the URL names none; as given otherwise. A dial to it speaks socket.io when
/// its path is socket.io's ([`crate::connect::Dial::new`]).
pub fn target(options: &AuditOptions, target: TargetUrl) -> TargetUrl {
    if options.socketio {
        target.to_socketio()
    } else {
        target
    }
}

/// The audit's dial: speaking socket.io with `--socketio` (else as the URL's path
/// says, [`Dial::new`]); the head probe's fleets are opened with it too.
pub fn dial(options: &AuditOptions, dial: Dial) -> Dial {
    if options.socketio {
        dial.socketio()
    } else {
        dial
    }
}

/// The audit's fleet on `dial`, awaiting each echo with `--echo`.
pub fn fleet(options: &AuditOptions, dial: Dial) -> Fleet {
    let mut fleet = Fleet::new(dial);
    fleet.await_echoes(options.echo);
    fleet
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::Speech;

    fn speech(url: &str, socketio: bool) -> (String, Speech) {
        let options = AuditOptions {
            socketio,
            ..AuditOptions::default()
        };
        let t = target(&options, TargetUrl::parse(url).unwrap());
        let d = dial(&options, Dial::new(t, None, 0));
        (d.target.url, d.speech)
    }

    #[test]
    fn the_flag_or_the_path_makes_a_socketio_audit() {
        assert_eq!(
            speech("ws://127.0.0.1:9000/", false),
            ("ws://127.0.0.1:9000/".into(), Speech::Websocket)
        );
        let sio = "ws://127.0.0.1:9000/socket.io/?EIO=4&transport=websocket";
        assert_eq!(
            speech("ws://127.0.0.1:9000/", true),
            (sio.into(), Speech::SocketIo)
        );
        assert_eq!(speech(sio, false), (sio.into(), Speech::SocketIo));
        let own = "wss://localhost:8443/chat/socket.io/?EIO=4&transport=websocket";
        assert_eq!(speech(own, true), (own.into(), Speech::SocketIo));
    }
}
