//! The experiment as the page runs it: its settings as typed in the form (checked
//! before anything opens), and its live counts, updated by the websockets' events
//! the way the native client counts (client/src/load/ctx.rs).

use super::config::PageConfig;
use super::pin::PinPlan;

/// Browsers cap the websockets one page may hold (Chrome: about 255). A websocket
/// that fails before opening while this many are open is taken as that cap.
pub const BROWSER_CAP_SUSPECT: u64 = 200;
/// What the page tells a user about that cap.
pub const BROWSER_CAP: u64 = 255;
/// The command that opens as many connections as wanted, outside the browser.
pub const NATIVE_CLIENT: &str = "cargo run -p native --bin client";
/// Pauses before the data connection is reopened: doubling from the first to the last.
pub const DATA_RETRY_MS: (u32, u32) = (500, 10_000);
/// A data connection that lived this long starts its retry pauses afresh.
pub const DATA_HEALTHY_MS: f64 = 30_000.0;

/// The settings of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// Pinning connections opened per second (may be below 1).
    pub connections_per_second: f64,
    /// Pinning connections to hold in all.
    pub max_connections: u64,
    /// Bytes the data connection sends each time; 0 for no data connection.
    pub data_size: u64,
    /// Ms between two sends.
    pub data_delay_ms: u64,
    /// What each pinning connection sends once greeted.
    pub pin: PinPlan,
}

/// The form's fields, as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentForm {
    pub rate: String,
    pub max: String,
    pub data_size: String,
    pub data_delay: String,
    /// `client_pinMessageSize`, `client_pinDataBytes`, `client_pinDataMessageSize`.
    pub pin_message: String,
    pub pin_data: String,
    pub pin_data_message: String,
}

/// One field of the form, named by its element id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Rate,
    Max,
    DataSize,
    DataDelay,
    PinMessage,
    PinData,
    PinDataMessage,
}

impl Field {
    /// The form's input for it: `#rate`, `#max`, `#data-size`, ...
    pub fn id(self) -> &'static str {
        match self {
            Field::Rate => "rate",
            Field::Max => "max",
            Field::DataSize => "data-size",
            Field::DataDelay => "data-delay",
            Field::PinMessage => "pin-message",
            Field::PinData => "pin-data",
            Field::PinDataMessage => "pin-data-message",
        }
    }
}

impl ExperimentForm {
    /// The text typed in one field.
    pub fn get(&self, field: Field) -> &str {
        match field {
            Field::Rate => &self.rate,
            Field::Max => &self.max,
            Field::DataSize => &self.data_size,
            Field::DataDelay => &self.data_delay,
            Field::PinMessage => &self.pin_message,
            Field::PinData => &self.pin_data,
            Field::PinDataMessage => &self.pin_data_message,
        }
    }

    /// Types `text` in one field, in place of what it held.
    pub fn set(&mut self, field: Field, text: String) {
        *match field {
            Field::Rate => &mut self.rate,
            Field::Max => &mut self.max,
            Field::DataSize => &mut self.data_size,
            Field::DataDelay => &mut self.data_delay,
            Field::PinMessage => &mut self.pin_message,
            Field::PinData => &mut self.pin_data,
            Field::PinDataMessage => &mut self.pin_data_message,
        } = text;
    }

    /// The form filled with config.json's values.
    pub fn from_config(c: &PageConfig) -> ExperimentForm {
        ExperimentForm {
            rate: super::format::number(c.connections_per_second),
            max: c.max_connections.to_string(),
            data_size: c.data_size.to_string(),
            data_delay: c.data_delay_ms.to_string(),
            pin_message: c.pin_message_size.to_string(),
            pin_data: c.pin_data_bytes.to_string(),
            pin_data_message: c.pin_data_message_size.to_string(),
        }
    }

    /// The run these fields ask for, or what is wrong with them.
    pub fn parse(&self, max_message_size: u64) -> Result<Experiment, String> {
        let rate: f64 = self.rate.trim().parse().map_err(|_| {
            format!(
                "connections per second: expected a number above 0 (0.5 = one every 2 s), got {:?}",
                self.rate
            )
        })?;
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(format!(
                "connections per second: expected a number above 0 (0.5 = one every 2 s), got {rate}"
            ));
        }
        let whole = |what: &str, text: &str| -> Result<u64, String> {
            text.trim()
                .parse::<u64>()
                .map_err(|_| format!("{what}: expected a whole number 0 or above, got {text:?}"))
        };
        let max_connections = whole("maximum connections", &self.max)?;
        let data_size = whole("data size", &self.data_size)?;
        let data_delay_ms = whole("data delay", &self.data_delay)?;
        if data_size > max_message_size {
            return Err(format!(
                "data size: {data_size} bytes is above the servers' max_message_size \
                 ({max_message_size}); they would close the data connection at every message"
            ));
        }
        if data_size > 0 && data_delay_ms == 0 {
            return Err("data delay: expected at least 1 ms".to_string());
        }
        let pin = PinPlan {
            first: whole("first message", &self.pin_message)?,
            data: whole("pin data", &self.pin_data)?,
            chunk: whole("pin data message size", &self.pin_data_message)?,
        };
        if pin.data > 0 && pin.chunk == 0 {
            return Err(
                "pin data message size: expected at least 1 byte when pin data is set".to_string(),
            );
        }
        for (what, size) in [
            ("first message", pin.first),
            ("pin data message size", pin.chunk),
        ] {
            if size > max_message_size {
                return Err(format!(
                    "{what}: {size} bytes is above the servers' max_message_size \
                     ({max_message_size}); they would close the connection"
                ));
            }
        }
        Ok(Experiment {
            connections_per_second: rate,
            max_connections,
            data_size,
            data_delay_ms,
            pin,
        })
    }
}

impl Experiment {
    /// Ms between two pinning connections, kept within 1 ms .. 1 day.
    pub fn period_ms(&self) -> u32 {
        let ms = (1000.0 / self.connections_per_second).round();
        ms.clamp(1.0, 86_400_000.0) as u32
    }

    /// Whether this run asks for more websockets than a browser page may hold.
    pub fn above_browser_cap(&self) -> bool {
        self.max_connections + u64::from(self.data_size > 0) > BROWSER_CAP
    }
}

/// The data connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataState {
    /// No run, or a run without a data connection.
    #[default]
    Off,
    Connecting,
    Up,
    /// Dropped or failed; reopened after a pause.
    Down,
}

impl DataState {
    pub fn as_str(self) -> &'static str {
        match self {
            DataState::Off => "off",
            DataState::Connecting => "connecting",
            DataState::Up => "up",
            DataState::Down => "down, retrying",
        }
    }
}

/// The live counts of a run: pinning connections by state, and the data connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub running: bool,
    /// Pinning connections being opened now.
    pub connecting: u64,
    /// Pinning connections open now.
    pub open: u64,
    /// Pinning connections that opened, since the start.
    pub opened: u64,
    /// Pinning connections that failed before opening.
    pub failed: u64,
    /// Pinning connections that closed after opening (by the server, or by Stop).
    pub closed: u64,
    pub data: DataState,
    pub data_messages: u64,
    /// Bytes handed to the data connection to send.
    pub bytes_sent: u64,
    pub data_failed: u64,
    /// Messages received on all websockets (the servers' greetings).
    pub received: u64,
    /// Set once a websocket failed to open while many were open: the browser's cap.
    pub cap_hit: bool,
    /// Websockets open or opening (the data connection included) when the cap was hit.
    pub cap_at: u64,
    /// The most open at once in this run.
    pub peak_open: u64,
    /// Why the last websocket failed or closed, for the page to show.
    pub last_problem: Option<String>,
    /// Pinning connections that sent all their own traffic, since the start.
    pub pin_done: u64,
    /// Messages and bytes of that traffic handed to the websockets.
    pub pin_messages: u64,
    pub pin_bytes: u64,
}

impl Counts {
    /// Whether the ramp may open another pinning connection.
    pub fn wants_more(&self, max: u64) -> bool {
        self.running && self.open + self.connecting < max
    }

    pub fn attempt(&mut self) {
        self.connecting += 1;
    }

    pub fn opened(&mut self) {
        self.connecting = self.connecting.saturating_sub(1);
        self.open += 1;
        self.opened += 1;
        self.peak_open = self.peak_open.max(self.open);
    }

    /// A pinning connection failed before it opened.
    pub fn failed_before_open(&mut self, why: String) {
        let in_use = self.open + self.connecting + u64::from(self.data == DataState::Up);
        self.connecting = self.connecting.saturating_sub(1);
        self.failed += 1;
        if !self.cap_hit && self.open >= BROWSER_CAP_SUSPECT {
            self.cap_hit = true;
            self.cap_at = in_use;
        }
        self.last_problem = Some(why);
    }

    /// One message of a pinning connection's own traffic was handed over.
    pub fn pin_sent(&mut self, bytes: u64) {
        self.pin_messages += 1;
        self.pin_bytes += bytes;
    }

    /// A pinning connection has sent all its own traffic.
    pub fn pin_finished(&mut self) {
        self.pin_done += 1;
    }

    /// A pinning connection closed after it opened.
    pub fn closed_after_open(&mut self, why: String) {
        self.open = self.open.saturating_sub(1);
        self.closed += 1;
        self.last_problem = Some(why);
    }

    /// Stop: every open connection is closed by the page, the ones opening abandoned.
    pub fn stopped(&mut self) {
        self.running = false;
        self.closed += self.open;
        self.open = 0;
        self.connecting = 0;
        if self.data != DataState::Off {
            self.data = DataState::Off;
        }
    }
}

/// Why a websocket closed, from its close event: `closed with 1006 (abnormal)`.
pub fn close_reason(code: u16, reason: &str, was_open: bool) -> String {
    let name = match code {
        1000 => "normal",
        1001 => "going away",
        1006 => "abnormal: no close frame",
        1009 => "message too big",
        1011 => "server error",
        1015 => "TLS handshake failed",
        _ => "",
    };
    let what = if was_open { "closed" } else { "failed to open" };
    let mut text = format!("{what}: code {code}");
    if !name.is_empty() {
        text.push_str(&format!(" ({name})"));
    }
    if !reason.is_empty() {
        text.push_str(&format!(", {reason}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(rate: &str, max: &str, size: &str, delay: &str) -> ExperimentForm {
        ExperimentForm {
            rate: rate.into(),
            max: max.into(),
            data_size: size.into(),
            data_delay: delay.into(),
            pin_message: "0".into(),
            pin_data: "0".into(),
            pin_data_message: "16384".into(),
        }
    }

    fn pin_form(first: &str, data: &str, chunk: &str) -> ExperimentForm {
        ExperimentForm {
            pin_message: first.into(),
            pin_data: data.into(),
            pin_data_message: chunk.into(),
            ..form("1", "1", "0", "0")
        }
    }

    #[test]
    fn pin_fields_start_from_config_json_and_are_checked() {
        let c = PageConfig::parse(
            r#"{"client_pinMessageSize": 100, "client_pinDataBytes": 5000, "client_pinDataMessageSize": 1000}"#,
        )
        .unwrap();
        let f = ExperimentForm::from_config(&c);
        assert_eq!(
            (
                f.pin_message.as_str(),
                f.pin_data.as_str(),
                f.pin_data_message.as_str()
            ),
            ("100", "5000", "1000")
        );
        let e = f.parse(16 << 20).expect("valid");
        assert_eq!(
            e.pin,
            PinPlan {
                first: 100,
                data: 5000,
                chunk: 1000
            }
        );
        let none = ExperimentForm::from_config(&PageConfig::default())
            .parse(16 << 20)
            .unwrap();
        assert!(!none.pin.is_some(), "the seed's scenario sends nothing");
        assert!(
            pin_form("0", "0", "0").parse(16 << 20).is_ok(),
            "size 0 unused"
        );
        let cases = [
            (pin_form("x", "0", "1"), "first message"),
            (pin_form("0", "-5", "1"), "pin data"),
            (pin_form("0", "10", "0"), "at least 1 byte"),
            (
                pin_form("2000", "0", "1"),
                "first message: 2000 bytes is above",
            ),
            (
                pin_form("0", "10", "2000"),
                "pin data message size: 2000 bytes is above",
            ),
        ];
        for (f, expected) in cases {
            let err = f.parse(1000).expect_err(expected);
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn the_form_starts_from_config_json() {
        let f = ExperimentForm::from_config(&PageConfig::default());
        assert_eq!(f, form("1", "100", "1000000", "1000"));
        assert!(!f.parse(16 << 20).unwrap().pin.is_some());
        let e = f.parse(16 << 20).expect("valid");
        assert_eq!(e.max_connections, 100);
        assert_eq!(e.period_ms(), 1000);
        assert!(!e.above_browser_cap());
    }

    #[test]
    fn rates_below_one_space_connections_out() {
        let e = form("0.25", "3", "0", "0").parse(16 << 20).expect("valid");
        assert_eq!(e.period_ms(), 4000);
        let e = form("1e9", "3", "0", "0").parse(16 << 20).expect("valid");
        assert_eq!(e.period_ms(), 1);
        let e = form("1e-300", "3", "0", "0")
            .parse(16 << 20)
            .expect("valid");
        assert_eq!(e.period_ms(), 86_400_000);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (form("0", "1", "1", "1"), "connections per second"),
            (form("x", "1", "1", "1"), "connections per second"),
            (form("1", "-1", "1", "1"), "maximum connections"),
            (form("1", "1", "1.5", "1"), "data size"),
            (form("1", "1", "100", "0"), "data delay"),
            (form("1", "1", "20000000", "1"), "max_message_size"),
        ];
        for (f, expected) in cases {
            let err = f.parse(16 << 20).expect_err(expected);
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn runs_above_the_browser_cap_are_flagged() {
        let e = form("10", "255", "1", "1").parse(16 << 20).expect("valid");
        assert!(e.above_browser_cap(), "255 pinning + 1 data");
        let e = form("10", "255", "0", "1").parse(16 << 20).expect("valid");
        assert!(!e.above_browser_cap());
    }

    #[test]
    fn counts_follow_the_connections() {
        let mut c = Counts {
            running: true,
            ..Counts::default()
        };
        assert!(c.wants_more(2));
        c.attempt();
        c.attempt();
        assert!(!c.wants_more(2), "two opening fill the maximum");
        c.opened();
        c.failed_before_open(close_reason(1006, "", false));
        assert_eq!((c.connecting, c.open, c.failed), (0, 1, 1));
        assert!(!c.cap_hit, "one open is no cap");
        assert!(c.wants_more(2));
        c.attempt();
        c.opened();
        c.closed_after_open(close_reason(1001, "bye", true));
        assert_eq!((c.open, c.closed, c.opened, c.peak_open), (1, 1, 2, 2));
        assert_eq!(
            c.last_problem.as_deref(),
            Some("closed: code 1001 (going away), bye")
        );
        c.stopped();
        assert_eq!((c.open, c.closed, c.connecting), (0, 2, 0));
        assert!(!c.running && !c.wants_more(10));
    }

    #[test]
    fn a_failure_with_many_open_is_the_browser_cap() {
        let mut c = Counts {
            running: true,
            open: BROWSER_CAP_SUSPECT,
            connecting: 1,
            ..Counts::default()
        };
        c.failed_before_open("failed to open: code 1006".into());
        assert!(c.cap_hit);
        assert_eq!(
            c.cap_at,
            BROWSER_CAP_SUSPECT + 1,
            "the open ones and the one that failed"
        );
    }
}
