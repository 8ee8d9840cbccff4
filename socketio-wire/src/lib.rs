//! The engine.io v4 / socket.io v5 text packets the playground's clients speak to a
//! socket.io server over a websocket, native and in the browser.
//!
//! One websocket text message is one engine.io packet: a digit for its type, then
//! its data. A socket.io packet rides in an engine.io `message` (`4`): a digit for
//! its own type, then (for the default namespace) its JSON data. The clients need
//! few of them: the server's `open` (`0{"sid":..,"pingInterval":..}`), the
//! namespace `connect` (`40`, answered `40{"sid":..}`), events (`42["name",data]`),
//! and the server's `ping` (`2`), answered `pong` (`3`) so an idle socket stays
//! open for hours. Binary attachments are not used: the clients send text events.
//!
//! Hand-written on purpose: the Rust socket.io clients bring their own websocket
//! and TLS stacks (they cannot dial through the playground's dialer or run in the
//! page), and these few packets are the whole of what the clients say.

use serde_json::Value;

/// The path and query a socket.io client opens its websocket on (engine.io v4).
pub const WEBSOCKET_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// The client's namespace connect for the default namespace (`/`).
pub const CONNECT: &str = "40";
/// The client's answer to the server's ping.
pub const PONG: &str = "3";

/// One packet the server sent, as the clients read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// engine.io `open`: the session id and how often the server pings (ms).
    Open { sid: String, ping_interval_ms: u64 },
    /// engine.io `ping`: answer [`PONG`].
    Ping,
    /// socket.io `connect` to the default namespace: the socket's id.
    Connected { sid: String },
    /// socket.io `connect_error`: why the namespace refused.
    ConnectError(String),
    /// socket.io `event`: its name and first argument.
    Event { name: String, data: Value },
    /// engine.io `close` or socket.io `disconnect`.
    Close,
    /// Anything else (noop, upgrade, acks, other namespaces): nothing to do.
    Other,
}

/// A text message that is no engine.io packet the clients understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a socket.io packet: {0}")]
pub struct WireError(pub String);

/// An event packet: `42["name",data]`.
pub fn event(name: &str, data: &Value) -> String {
    format!("42{}", Value::Array(vec![Value::from(name), data.clone()]))
}

/// An event packet whose data is a string, written without building a JSON value
/// (the data connection's large payloads).
pub fn text_event(name: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + name.len() + 12);
    out.push_str("42[");
    out.push_str(&Value::from(name).to_string());
    out.push(',');
    out.push_str(&Value::from(text).to_string());
    out.push(']');
    out
}

/// Reads one text message from the server.
pub fn parse(text: &str) -> Result<Packet, WireError> {
    let bad = || WireError(text.chars().take(80).collect());
    let mut chars = text.chars();
    let kind = chars.next().ok_or_else(bad)?;
    let rest = chars.as_str();
    match kind {
        '0' => {
            let open: Value = serde_json::from_str(rest).map_err(|_| bad())?;
            let sid = open["sid"].as_str().ok_or_else(bad)?.to_string();
            let ping_interval_ms = open["pingInterval"].as_u64().unwrap_or(25_000);
            Ok(Packet::Open {
                sid,
                ping_interval_ms,
            })
        }
        '1' => Ok(Packet::Close),
        '2' => Ok(Packet::Ping),
        '4' => message(rest).ok_or_else(bad),
        '3' | '5' | '6' => Ok(Packet::Other),
        _ => Err(bad()),
    }
}

/// A socket.io packet of the default namespace, from an engine.io message's data.
fn message(data: &str) -> Option<Packet> {
    let mut chars = data.chars();
    let kind = chars.next()?;
    let rest = chars.as_str();
    if rest.starts_with('/') {
        return Some(Packet::Other);
    }
    match kind {
        '0' => {
            let connected: Value = serde_json::from_str(rest).ok()?;
            let sid = connected["sid"].as_str()?.to_string();
            Some(Packet::Connected { sid })
        }
        '1' => Some(Packet::Close),
        '2' => {
            // An ack id may come before the JSON: skip its digits.
            let json = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let Value::Array(mut args) = serde_json::from_str(json).ok()? else {
                return None;
            };
            if args.is_empty() {
                return None;
            }
            let data = if args.len() > 1 {
                args.swap_remove(1)
            } else {
                Value::Null
            };
            let name = args.swap_remove(0).as_str()?.to_string();
            Some(Packet::Event { name, data })
        }
        '4' => {
            let why: Value = serde_json::from_str(rest).unwrap_or(Value::Null);
            let message = why["message"].as_str().unwrap_or(rest).to_string();
            Some(Packet::ConnectError(message))
        }
        // Acks and binary packets: the clients neither ask for nor send them.
        '3' | '5' | '6' => Some(Packet::Other),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_packets_a_session_brings() {
        let open = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(
            parse(open),
            Ok(Packet::Open {
                sid: "lv_VI97HAXpY6yYWAAAC".into(),
                ping_interval_ms: 25_000
            })
        );
        assert_eq!(
            parse(r#"40{"sid":"wZX3oN0bSVIhsaknAAAI"}"#),
            Ok(Packet::Connected {
                sid: "wZX3oN0bSVIhsaknAAAI".into()
            })
        );
        assert_eq!(parse("2"), Ok(Packet::Ping));
        assert_eq!(
            parse(r#"42["hello","hello from wss, connection 3 (head mode retain)"]"#),
            Ok(Packet::Event {
                name: "hello".into(),
                data: json!("hello from wss, connection 3 (head mode retain)")
            })
        );
        assert_eq!(
            parse(r#"4212["message",{"a":1}]"#),
            Ok(Packet::Event {
                name: "message".into(),
                data: json!({"a": 1})
            })
        );
        assert_eq!(
            parse(r#"44{"message":"Not authorized"}"#),
            Ok(Packet::ConnectError("Not authorized".into()))
        );
        assert_eq!(parse("41"), Ok(Packet::Close));
        assert_eq!(parse("1"), Ok(Packet::Close));
        assert_eq!(parse(r#"42/admin,["x"]"#), Ok(Packet::Other));
    }

    #[test]
    fn garbage_is_an_error_naming_what_came() {
        for bad in ["", "9", "0{", "0{}", "42[", "42{}", "42[]", "42[1]", "4x"] {
            let err = parse(bad);
            assert!(
                matches!(err, Err(WireError(ref s)) if s == &bad.chars().take(80).collect::<String>()),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn writes_events_the_server_reads_back() {
        let data = json!({"n": 1, "s": "é\"\n"});
        let packet = event("message", &data);
        assert_eq!(
            parse(&packet),
            Ok(Packet::Event {
                name: "message".into(),
                data
            })
        );
        let text = "x\"y\\z".repeat(3);
        assert_eq!(
            parse(&text_event("message", &text)),
            Ok(Packet::Event {
                name: "message".into(),
                data: json!(text)
            })
        );
    }
}
