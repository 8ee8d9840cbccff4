//! The pinning connections' own traffic, as the native client sends it
//! (client/src/pin_traffic.rs): once open and greeted by the wss, one first
//! message of `client_pinMessageSize` bytes, then `client_pinDataBytes` bytes in
//! messages of `client_pinDataMessageSize` (the last one shorter), then nothing.

/// What each pinning connection sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PinPlan {
    /// Bytes of the first message; 0: none.
    pub first: u64,
    /// Bytes sent after it; 0: none.
    pub data: u64,
    /// Size of the messages that carry `data` (at least 1 when `data` > 0).
    pub chunk: u64,
}

impl PinPlan {
    /// Whether a connection sends anything at all.
    pub fn is_some(&self) -> bool {
        self.first > 0 || self.data > 0
    }

    /// The size of message `n` (0 for the first one sent), `None` past the last.
    pub fn size(&self, n: u64) -> Option<u64> {
        let n = match (self.first > 0, n) {
            (true, 0) => return Some(self.first),
            (true, n) => n - 1,
            (false, n) => n,
        };
        let chunk = self.chunk.max(1);
        let sent = n.checked_mul(chunk)?;
        (sent < self.data).then(|| chunk.min(self.data - sent))
    }

    /// Whether message `n` is the first message (else a data message).
    pub fn is_first(&self, n: u64) -> bool {
        n == 0 && self.first > 0
    }

    /// Messages one connection sends in all.
    pub fn messages(&self) -> u64 {
        u64::from(self.first > 0) + self.data.div_ceil(self.chunk.max(1))
    }

    /// Bytes one connection sends in all.
    pub fn bytes(&self) -> u64 {
        self.first + self.data
    }

    /// Size of the one data payload every data message is a prefix of.
    pub fn chunk_payload(&self) -> u64 {
        if self.data > 0 {
            self.chunk.min(self.data)
        } else {
            0
        }
    }
}

/// Where one connection is in its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PinProgress {
    /// Greeted by the wss: sending may start.
    pub started: bool,
    /// Messages handed to the websocket so far.
    pub next: u64,
    /// Every message handed over and none left in the browser's buffer.
    pub done: bool,
}

impl PinProgress {
    /// The next message to hand over, when sending has started and one is left.
    pub fn next_size(&self, plan: &PinPlan) -> Option<u64> {
        self.started.then(|| plan.size(self.next)).flatten()
    }

    /// Whether every message has been handed over.
    pub fn all_handed(&self, plan: &PinPlan) -> bool {
        self.started && plan.size(self.next).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(p: &PinPlan) -> Vec<u64> {
        (0..).map_while(|n| p.size(n)).collect()
    }

    #[test]
    fn the_first_message_then_data_with_a_shorter_last_one() {
        let p = PinPlan {
            first: 100,
            data: 40_000,
            chunk: 16384,
        };
        assert_eq!(sizes(&p), [100, 16384, 16384, 7232]);
        assert_eq!((p.messages(), p.bytes()), (4, 40_100));
        assert!(p.is_first(0) && !p.is_first(1));
        assert_eq!(p.chunk_payload(), 16384);
        let p = PinPlan {
            first: 0,
            data: 10,
            chunk: 16384,
        };
        assert_eq!(sizes(&p), [10]);
        assert!(!p.is_first(0));
        assert_eq!(p.chunk_payload(), 10);
    }

    #[test]
    fn nothing_configured_sends_nothing() {
        let p = PinPlan {
            first: 0,
            data: 0,
            chunk: 16384,
        };
        assert!(!p.is_some());
        assert_eq!(sizes(&p), Vec::<u64>::new());
        assert_eq!(p.messages(), 0);
    }

    #[test]
    fn progress_waits_for_the_greeting_then_walks_the_plan() {
        let p = PinPlan {
            first: 5,
            data: 6,
            chunk: 4,
        };
        let mut g = PinProgress::default();
        assert_eq!(g.next_size(&p), None, "not greeted yet");
        assert!(!g.all_handed(&p));
        g.started = true;
        let mut sent = Vec::new();
        while let Some(n) = g.next_size(&p) {
            sent.push(n);
            g.next += 1;
        }
        assert_eq!(sent, [5, 4, 2]);
        assert!(g.all_handed(&p));
    }
}
