//! The experiment's websockets in the browser, run as the native client runs them
//! (client/src/load/): one data connection opened first, sending
//! `client_dataSize` bytes every `client_dataDelay` ms and reopened after a doubling
//! pause when it drops; then pinning connections opened at the configured rate while
//! fewer than the maximum are open or opening, each held until it closes or Stop.
//! With pin traffic set, each pinning connection sends its own once the wss has
//! greeted it: the first message, then its data bytes, handed to the websocket as
//! its buffer drains ([`PIN_BUFFER`]), and counted done once none is left buffered.
//!
//! When the URL's path is socket.io's (`/socket.io/`, the wss runs the socketio
//! stack), every websocket speaks socket.io over it (`socketio_wire`): it connects
//! the default namespace once engine.io has opened, answers the server's pings (so
//! idle sockets stay open for hours), counts the `hello` event as the greeting, and
//! sends its data as `message` events.
//!
//! The counts live in [`Counts`] and are handed to the page at most every
//! [`PUBLISH_MS`]. Websocket handlers hold only a weak reference to the run, and a
//! socket's handlers are dropped outside of their own invocation.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use gloo::timers::callback::{Interval, Timeout};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};
use yew::Callback;

use crate::logic::experiment::{
    close_reason, Counts, DataState, Experiment, DATA_HEALTHY_MS, DATA_RETRY_MS,
};
use crate::logic::pin::PinProgress;

/// How often the counts are handed to the page while they change.
pub const PUBLISH_MS: u32 = 250;
/// Time allowed for the certificate test websocket to open.
pub const TEST_TIMEOUT_MS: u32 = 10_000;
/// Pin traffic is handed to a websocket while less than this is buffered in it.
pub const PIN_BUFFER: u32 = 256 << 10;
/// How often websockets with pin traffic left are offered more.
pub const PIN_PUMP_MS: u32 = 10;

/// One websocket and its event handlers, which must live as long as it may fire.
struct Socket {
    ws: WebSocket,
    open: bool,
    /// Where a pinning connection is in its own traffic.
    pin: PinProgress,
    _onopen: Closure<dyn FnMut()>,
    _onclose: Closure<dyn FnMut(CloseEvent)>,
    _onmessage: Closure<dyn FnMut(MessageEvent)>,
}

impl Socket {
    /// Opens a websocket whose events go to the three handlers.
    fn open(
        url: &str,
        onopen: impl FnMut() + 'static,
        onclose: impl FnMut(CloseEvent) + 'static,
        onmessage: impl FnMut(MessageEvent) + 'static,
    ) -> Result<Socket, String> {
        let ws = WebSocket::new(url).map_err(|e| js_error(&e))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let onopen = Closure::<dyn FnMut()>::new(onopen);
        let onclose = Closure::<dyn FnMut(CloseEvent)>::new(onclose);
        let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(onmessage);
        ws.set_onopen(Some(onopen.as_ref().unchecked_ref()));
        ws.set_onclose(Some(onclose.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        Ok(Socket {
            ws,
            open: false,
            pin: PinProgress::default(),
            _onopen: onopen,
            _onclose: onclose,
            _onmessage: onmessage,
        })
    }

    /// Detaches the handlers and closes the socket (normal closure) if it is not closed.
    fn close(&self) {
        self.ws.set_onopen(None);
        self.ws.set_onclose(None);
        self.ws.set_onmessage(None);
        let state = self.ws.ready_state();
        if state == WebSocket::CONNECTING || state == WebSocket::OPEN {
            let _ = self.ws.close_with_code_and_reason(1000, "client stopping");
        }
    }
}

/// Drops sockets or timers (and so their handlers) once the current handler returned.
fn drop_later<T: 'static>(value: T) {
    wasm_bindgen_futures::spawn_local(async move { drop(value) });
}

/// A JS exception as text.
fn js_error(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

struct Inner {
    experiment: Experiment,
    url: String,
    /// Whether the websockets speak socket.io (the URL is socket.io's).
    socketio: bool,
    counts: Counts,
    changed: bool,
    on_change: Callback<Counts>,
    next_id: u64,
    pinning: HashMap<u64, Socket>,
    data: Option<Socket>,
    payload: Rc<Vec<u8>>,
    /// Payloads of the pin traffic: the first message, and the longest data message.
    pin_first: Vec<u8>,
    pin_chunk: Vec<u8>,
    pin_pump: Option<Interval>,
    data_tick: Option<Interval>,
    data_retry: Option<Timeout>,
    data_pause_ms: u32,
    data_since_ms: f64,
    ramp_started: bool,
    ramp: Option<Interval>,
    publish: Option<Interval>,
}

/// A running experiment; [`Runner::stop`] (or dropping it) closes every websocket.
pub struct Runner {
    inner: Rc<RefCell<Inner>>,
}

impl Runner {
    /// Starts a run against `url` (the proxy's websocket URL); `on_change` gets the counts.
    pub fn start(experiment: Experiment, url: String, on_change: Callback<Counts>) -> Runner {
        let payload = Rc::new(vec![b'x'; experiment.data_size as usize]);
        let pin_first = vec![b'p'; experiment.pin.first as usize];
        let pin_chunk = vec![b'd'; experiment.pin.chunk_payload() as usize];
        let pins = experiment.pin.is_some();
        let socketio = is_socketio(&url);
        let inner = Rc::new(RefCell::new(Inner {
            experiment,
            socketio,
            url,
            counts: Counts {
                running: true,
                ..Counts::default()
            },
            changed: true,
            on_change,
            next_id: 0,
            pinning: HashMap::new(),
            data: None,
            payload,
            pin_first,
            pin_chunk,
            pin_pump: None,
            data_tick: None,
            data_retry: None,
            data_pause_ms: DATA_RETRY_MS.0,
            data_since_ms: 0.0,
            ramp_started: false,
            ramp: None,
            publish: None,
        }));
        let weak = Rc::downgrade(&inner);
        let timer = Interval::new(PUBLISH_MS, move || publish(&weak));
        inner.borrow_mut().publish = Some(timer);
        if pins {
            let weak = Rc::downgrade(&inner);
            let pump = Interval::new(PIN_PUMP_MS, move || {
                if let Some(inner) = weak.upgrade() {
                    pump_pins(&inner);
                }
            });
            inner.borrow_mut().pin_pump = Some(pump);
        }
        // The data connection first; the ramp starts once its first attempt is over.
        let has_data = inner.borrow().experiment.data_size > 0;
        if has_data {
            open_data(&inner);
        } else {
            start_ramp(&inner);
        }
        publish(&Rc::downgrade(&inner));
        Runner { inner }
    }

    /// Closes every websocket and stops opening new ones; the final counts are published.
    pub fn stop(&self) {
        let (sockets, counts, on_change) = {
            let mut inner = self.inner.borrow_mut();
            inner.counts.stopped();
            inner.ramp = None;
            inner.pin_pump = None;
            inner.data_tick = None;
            inner.data_retry = None;
            inner.publish = None;
            let mut sockets: Vec<Socket> = inner.pinning.drain().map(|(_, s)| s).collect();
            sockets.extend(inner.data.take());
            (sockets, inner.counts.clone(), inner.on_change.clone())
        };
        for s in &sockets {
            s.close();
        }
        drop_later(sockets);
        on_change.emit(counts);
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if self.inner.borrow().counts.running {
            self.stop();
        }
    }
}

/// Hands the counts to the page if they changed since the last time.
fn publish(weak: &Weak<RefCell<Inner>>) {
    let Some(inner) = weak.upgrade() else { return };
    let update = {
        let mut inner = inner.borrow_mut();
        if !inner.changed {
            return;
        }
        inner.changed = false;
        (inner.counts.clone(), inner.on_change.clone())
    };
    update.1.emit(update.0);
}

/// Opens a websocket of the run (data or pinning): its open, close and message
/// events go to the handlers while the run lives, and every message it receives
/// is counted.
fn open_socket(
    inner: &Rc<RefCell<Inner>>,
    url: &str,
    mut on_open: impl FnMut(&Rc<RefCell<Inner>>) + 'static,
    mut on_close: impl FnMut(&Rc<RefCell<Inner>>, CloseEvent) + 'static,
    mut on_message: impl FnMut(&Rc<RefCell<Inner>>) + 'static,
) -> Result<Socket, String> {
    let (w_open, w_close, w_msg) = (
        Rc::downgrade(inner),
        Rc::downgrade(inner),
        Rc::downgrade(inner),
    );
    Socket::open(
        url,
        move || {
            if let Some(inner) = w_open.upgrade() {
                on_open(&inner);
            }
        },
        move |event: CloseEvent| {
            if let Some(inner) = w_close.upgrade() {
                on_close(&inner, event);
            }
        },
        move |event: MessageEvent| {
            if let Some(inner) = w_msg.upgrade() {
                let socketio = inner.borrow().socketio;
                if socketio && !socketio_event(&event) {
                    return;
                }
                {
                    let mut i = inner.borrow_mut();
                    i.counts.received += 1;
                    i.changed = true;
                }
                on_message(&inner);
            }
        },
    )
}

/// Whether `url` is a socket.io server's: its websockets then speak socket.io.
pub fn is_socketio(url: &str) -> bool {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .is_some_and(|(_, path)| path.starts_with("socket.io/"))
}

/// Answers a socket.io packet that is engine.io's or socket.io's business (open,
/// ping, namespace connect) on the socket it came on; true for an event, which the
/// run counts as a message (the first, `hello`, is the wss's greeting).
fn socketio_event(event: &MessageEvent) -> bool {
    let Some(text) = event.data().as_string() else {
        return false;
    };
    let ws = event.target().and_then(|t| t.dyn_into::<WebSocket>().ok());
    let answer = match socketio_wire::parse(&text) {
        Ok(socketio_wire::Packet::Event { .. }) => return true,
        Ok(socketio_wire::Packet::Open { .. }) => socketio_wire::CONNECT,
        Ok(socketio_wire::Packet::Ping) => socketio_wire::PONG,
        _ => return false,
    };
    if let Some(ws) = ws {
        let _ = ws.send_with_str(answer);
    }
    false
}

/// Sends `payload` as the run's websockets speak: as it is, or as a socket.io
/// `message` event (its bytes as text).
fn send(ws: &WebSocket, socketio: bool, payload: &[u8]) -> Result<(), JsValue> {
    if socketio {
        let text = String::from_utf8_lossy(payload);
        ws.send_with_str(&socketio_wire::text_event("message", &text))
    } else {
        ws.send_with_u8_array(payload)
    }
}

/// A pinning connection got a message: the first one (the wss's greeting) starts
/// its own traffic.
fn pin_greeted(inner: &Rc<RefCell<Inner>>, id: u64) {
    {
        let mut i = inner.borrow_mut();
        if !i.experiment.pin.is_some() {
            return;
        }
        match i.pinning.get_mut(&id) {
            Some(s) if s.open && !s.pin.started => s.pin.started = true,
            _ => return,
        }
    }
    pump_pins(inner);
}

/// Hands every started pinning connection its next messages while its buffer has
/// room, and counts those that have sent all theirs.
fn pump_pins(inner: &Rc<RefCell<Inner>>) {
    let mut guard = inner.borrow_mut();
    let i = &mut *guard;
    let plan = i.experiment.pin;
    let mut changed = false;
    for socket in i.pinning.values_mut() {
        if !socket.open || !socket.pin.started || socket.pin.done {
            continue;
        }
        while let Some(size) = socket.pin.next_size(&plan) {
            if socket.ws.buffered_amount() >= PIN_BUFFER {
                break;
            }
            let payload = if plan.is_first(socket.pin.next) {
                &i.pin_first[..]
            } else {
                &i.pin_chunk[..size as usize]
            };
            if let Err(e) = send(&socket.ws, i.socketio, payload) {
                i.counts.last_problem = Some(format!("pin traffic: {}", js_error(&e)));
                changed = true;
                break;
            }
            socket.pin.next += 1;
            i.counts.pin_sent(size);
            changed = true;
        }
        if socket.pin.all_handed(&plan) && socket.ws.buffered_amount() == 0 {
            socket.pin.done = true;
            i.counts.pin_finished();
            changed = true;
        }
    }
    i.changed |= changed;
}

/// Opens (or reopens) the data connection.
fn open_data(inner: &Rc<RefCell<Inner>>) {
    let url = {
        let mut i = inner.borrow_mut();
        if !i.counts.running {
            return;
        }
        i.counts.data = DataState::Connecting;
        i.changed = true;
        i.url.clone()
    };
    let socket = open_socket(
        inner,
        &url,
        data_opened,
        |inner, event| {
            let (code, reason) = (event.code(), event.reason());
            data_ended(inner, |was_open| close_reason(code, &reason, was_open));
        },
        |_| {},
    );
    match socket {
        Ok(socket) => inner.borrow_mut().data = Some(socket),
        Err(why) => data_ended(inner, |_| format!("cannot open {url}: {why}")),
    }
}

fn data_opened(inner: &Rc<RefCell<Inner>>) {
    let first = {
        let mut i = inner.borrow_mut();
        i.counts.data = DataState::Up;
        i.changed = true;
        i.data_since_ms = js_sys::Date::now();
        if let Some(s) = i.data.as_mut() {
            s.open = true;
        }
        let weak = Rc::downgrade(inner);
        let every = i.experiment.data_delay_ms.clamp(1, u64::from(u32::MAX)) as u32;
        i.data_tick = Some(Interval::new(every, move || {
            if let Some(inner) = weak.upgrade() {
                send_data(&inner);
            }
        }));
        !i.ramp_started
    };
    if first {
        start_ramp(inner);
    }
}

/// One send of the data connection; skipped while the last one is still buffered.
fn send_data(inner: &Rc<RefCell<Inner>>) {
    let mut guard = inner.borrow_mut();
    let i = &mut *guard;
    let payload = i.payload.clone();
    let Some(socket) = i.data.as_ref().filter(|s| s.open) else {
        return;
    };
    if socket.ws.buffered_amount() as usize >= payload.len() {
        return;
    }
    match send(&socket.ws, i.socketio, &payload) {
        Ok(()) => {
            i.counts.data_messages += 1;
            i.counts.bytes_sent += payload.len() as u64;
        }
        Err(e) => i.counts.last_problem = Some(format!("data connection: {}", js_error(&e))),
    }
    i.changed = true;
}

/// The data connection closed or failed: counted, then reopened after a pause.
fn data_ended(inner: &Rc<RefCell<Inner>>, why: impl FnOnce(bool) -> String) {
    let (dead, first) = {
        let mut i = inner.borrow_mut();
        let dead = i.data.take();
        let was_open = dead.as_ref().is_some_and(|s| s.open);
        i.data_tick = None;
        if !i.counts.running {
            drop_later(dead);
            return;
        }
        if was_open {
            if js_sys::Date::now() - i.data_since_ms >= DATA_HEALTHY_MS {
                i.data_pause_ms = DATA_RETRY_MS.0;
            }
        } else {
            i.counts.data_failed += 1;
        }
        let pause = i.data_pause_ms;
        i.counts.data = DataState::Down;
        i.counts.last_problem = Some(format!(
            "data connection {}; reopening in {pause} ms",
            why(was_open)
        ));
        i.changed = true;
        i.data_pause_ms = (pause * 2).min(DATA_RETRY_MS.1);
        let weak = Rc::downgrade(inner);
        let retry = Timeout::new(pause, move || {
            if let Some(inner) = weak.upgrade() {
                open_data(&inner);
            }
        });
        // The old one may be the very timeout running now (a reopen that failed at once).
        if let Some(old) = i.data_retry.replace(retry) {
            drop_later(old);
        }
        (dead, !i.ramp_started)
    };
    drop_later(dead);
    if first {
        start_ramp(inner);
    }
}

/// Starts opening pinning connections: one now, then one every period while room.
fn start_ramp(inner: &Rc<RefCell<Inner>>) {
    let period = {
        let mut i = inner.borrow_mut();
        if i.ramp_started || !i.counts.running {
            return;
        }
        i.ramp_started = true;
        i.experiment.period_ms()
    };
    ramp_tick(inner);
    let weak = Rc::downgrade(inner);
    let ramp = Interval::new(period, move || {
        if let Some(inner) = weak.upgrade() {
            ramp_tick(&inner);
        }
    });
    inner.borrow_mut().ramp = Some(ramp);
}

fn ramp_tick(inner: &Rc<RefCell<Inner>>) {
    let (id, url) = {
        let mut i = inner.borrow_mut();
        let max = i.experiment.max_connections;
        if !i.counts.wants_more(max) {
            return;
        }
        i.counts.attempt();
        i.changed = true;
        i.next_id += 1;
        (i.next_id, i.url.clone())
    };
    let socket = open_socket(
        inner,
        &url,
        move |inner| {
            let mut guard = inner.borrow_mut();
            let i = &mut *guard;
            if let Some(s) = i.pinning.get_mut(&id) {
                s.open = true;
                i.counts.opened();
                i.changed = true;
            }
        },
        move |inner, event| {
            let dead = {
                let mut i = inner.borrow_mut();
                let dead = i.pinning.remove(&id);
                if let Some(s) = &dead {
                    let why = close_reason(event.code(), &event.reason(), s.open);
                    if s.open {
                        i.counts.closed_after_open(why);
                    } else {
                        i.counts.failed_before_open(why);
                    }
                    i.changed = true;
                }
                dead
            };
            drop_later(dead);
        },
        move |inner| pin_greeted(inner, id),
    );
    let mut i = inner.borrow_mut();
    match socket {
        Ok(socket) => {
            i.pinning.insert(id, socket);
        }
        Err(why) => i
            .counts
            .failed_before_open(format!("cannot open {url}: {why}")),
    }
}

/// What [`test_websocket`] calls once with its result.
type Done = Box<dyn FnOnce(Result<(), String>)>;

/// Opens a test websocket to `url` and reports whether it opened (then closes it),
/// or why it did not, within [`TEST_TIMEOUT_MS`].
pub fn test_websocket(url: &str, done: impl FnOnce(Result<(), String>) + 'static) {
    type Slot = Rc<RefCell<Option<(Socket, Timeout)>>>;
    let slot: Slot = Rc::new(RefCell::new(None));
    let done: Rc<RefCell<Option<Done>>> = Rc::new(RefCell::new(Some(Box::new(done))));
    let finish = {
        let (slot, done) = (slot.clone(), done.clone());
        move |result: Result<(), String>| {
            if let Some((socket, timer)) = slot.borrow_mut().take() {
                socket.close();
                drop_later((socket, timer));
            }
            if let Some(done) = done.borrow_mut().take() {
                done(result);
            }
        }
    };
    let (f_open, f_close, f_time) = (finish.clone(), finish.clone(), finish.clone());
    let socket = Socket::open(
        url,
        move || f_open(Ok(())),
        move |event: CloseEvent| f_close(Err(close_reason(event.code(), &event.reason(), false))),
        |_| {},
    );
    match socket {
        Ok(socket) => {
            let timer = Timeout::new(TEST_TIMEOUT_MS, move || {
                f_time(Err(format!("did not open within {TEST_TIMEOUT_MS} ms")))
            });
            *slot.borrow_mut() = Some((socket, timer));
        }
        Err(why) => finish(Err(why)),
    }
}
