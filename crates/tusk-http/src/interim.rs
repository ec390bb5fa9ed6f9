//! Informational (1xx) responses on HTTP/1.1, such as the IETF draft's `104 Upload Resumption
//! Supported`, which tells a client the upload's URL before the body is read. actix-web has no
//! API for them: its HTTP/1 dispatcher writes only `100 Continue`.
//!
//! So the socket wrapper writes them itself, between the dispatcher's writes. That is safe only
//! at the right place in the response stream: after the final response of the previous request
//! on the connection (pipelined requests) and before the first byte of this request's. The
//! wrapper cannot see the dispatcher's buffer, so it follows the bytes the dispatcher writes:
//! [`Outgoing`] parses them as HTTP/1.1 responses (status line, headers, and a body framed by
//! `Content-Length` or chunked encoding; none for 1xx, 204, 304 and responses to HEAD) and
//! counts the final ones. Request handlers register each request in arrival order (actix
//! answers them in that order), so an interim response for the request numbered `n` is due
//! exactly when `n` final responses have been written and no response is half-written. Until it
//! is due, the dispatcher's writes are cut short at that boundary; once due, it goes out before
//! anything else.
//!
//! Where the stream cannot be followed (HTTP/2, a response without framing, anything
//! unexpected), the connection stops carrying interim responses: [`Interims::send`] answers
//! `false` and the request goes on without one. Nothing is ever written that could land inside
//! another message.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;

/// Interim responses queued on one connection at most; more are refused.
const MAX_PENDING: usize = 4;
/// The longest response head the parser follows; a longer one stops interim responses on the
/// connection (tusk's heads are far shorter).
const MAX_HEAD: usize = 64 << 10;

/// One connection's interim responses: shared by its socket wrapper (the dispatcher's task)
/// and its request handlers.
#[derive(Default)]
pub(crate) struct Interims(Mutex<State>);

#[derive(Default)]
struct State {
    /// Interim responses may be written on this connection.
    enabled: bool,
    /// Requests registered so far: the next one's number.
    registered: u64,
    /// Where the dispatcher's writes are in the response stream.
    outgoing: Outgoing,
    /// Queued interim responses, by the number of the request they belong to, oldest first.
    pending: VecDeque<(u64, Vec<u8>)>,
    /// An interim response being written: its bytes and how many went out.
    writing: Option<(Vec<u8>, usize)>,
    /// The dispatcher's waker, to have it write a newly queued interim response.
    waker: Option<Waker>,
}

impl Interims {
    /// Interim responses for a connection; `http1` is false for HTTP/2 (not supported).
    pub(crate) fn new(http1: bool) -> Arc<Self> {
        Arc::new(Self(Mutex::new(State {
            enabled: http1,
            ..State::default()
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding it leaves the counts behind the stream: stop sending.
        self.0.lock().unwrap_or_else(|poisoned| {
            let mut state = poisoned.into_inner();
            state.enabled = false;
            state
        })
    }

    /// A request arrived (every request of the connection, in order); `head` when its response
    /// has no body. Returns its number.
    pub(crate) fn register(&self, head: bool) -> u64 {
        let mut state = self.state();
        let number = state.registered;
        state.registered += 1;
        // Only followed responses pop these: a connection that stopped following (or never
        // did, HTTP/2) keeps none.
        if state.enabled {
            state.outgoing.heads.push_back(head);
        }
        number
    }

    /// Queue `status` with `headers` for request `number`; `false` if it cannot be sent.
    pub(crate) fn send(
        &self,
        number: u64,
        status: u16,
        headers: &[(&'static str, String)],
    ) -> bool {
        if !(100..200).contains(&status) || status == 101 {
            return false;
        }
        // Values come from the request (Location) and settings; a line break would end the
        // head early and inject whatever follows.
        if headers
            .iter()
            .any(|(_, value)| value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0))
        {
            return false;
        }
        let mut state = self.state();
        if !state.enabled || state.outgoing.finals > number || state.pending.len() >= MAX_PENDING {
            return false;
        }
        let mut bytes = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
        for (name, value) in headers {
            bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        state.pending.push_back((number, bytes));
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
        true
    }

    /// Remember the dispatcher's waker (every poll of the socket comes from its task).
    pub(crate) fn note_waker(&self, cx: &Context<'_>) {
        let mut state = self.state();
        if !state.enabled {
            return;
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
    }

    /// Write the interim responses that are due to `io`. Pending while one is half-written.
    pub(crate) fn poll_write_due<W: AsyncWrite + Unpin>(
        &self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = self.state();
        loop {
            if let Some((bytes, written)) = &mut state.writing {
                while *written < bytes.len() {
                    match Pin::new(&mut *io).poll_write(cx, &bytes[*written..]) {
                        Poll::Ready(Ok(0)) => {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        Poll::Ready(Ok(n)) => *written += n,
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                let status = bytes
                    .get(9..12)
                    .and_then(|code| std::str::from_utf8(code).ok())
                    .unwrap_or("1xx")
                    .to_owned();
                tusk_metrics::metrics()
                    .interim_responses
                    .with_label_values(&[&status])
                    .inc();
                state.writing = None;
            }
            let finals = state.outgoing.finals;
            // Requests already answered in full no longer want theirs.
            while state.pending.front().is_some_and(|(n, _)| *n < finals) {
                state.pending.pop_front();
            }
            let due = state.enabled
                && state.outgoing.at_message_start()
                && state.pending.front().is_some_and(|(n, _)| *n == finals);
            if !due {
                return Poll::Ready(Ok(()));
            }
            if let Some((_, bytes)) = state.pending.pop_front() {
                state.writing = Some((bytes, 0));
            }
        }
    }

    /// How much of `buf` (the dispatcher's next bytes) may go out before a queued interim
    /// response is due: all of it unless one is queued for a later request.
    pub(crate) fn writable_len(&self, buf: &[u8]) -> usize {
        let state = self.state();
        if !state.enabled {
            return buf.len();
        }
        match state.pending.front() {
            Some((number, _)) if *number > state.outgoing.finals => {
                let mut ahead = state.outgoing.clone();
                match ahead.feed(buf, Some(*number)) {
                    0 => buf.len(),
                    n => n,
                }
            }
            _ => buf.len(),
        }
    }

    /// The dispatcher wrote `bytes`: follow them.
    pub(crate) fn wrote(&self, bytes: &[u8]) {
        let mut state = self.state();
        if !state.enabled {
            return;
        }
        state.outgoing.feed(bytes, None);
        if state.outgoing.lost {
            state.enabled = false;
            state.pending.clear();
            state.outgoing.heads.clear();
        }
    }

    /// Whether interim responses are still possible here.
    pub(crate) fn enabled(&self) -> bool {
        self.state().enabled
    }
}

/// An interim sender for one request, as the engine gets it.
pub(crate) struct RequestInterims {
    pub(crate) interims: Arc<Interims>,
    pub(crate) number: u64,
}

impl tusk_protocol::Interim for RequestInterims {
    fn send(&self, status: u16, headers: &[(&'static str, String)]) -> bool {
        self.interims.send(self.number, status, headers)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        103 => "Early Hints",
        104 => "Upload Resumption Supported",
        _ => "Informational",
    }
}

/// Where a stream of HTTP/1.1 responses is: in a head, in a body, or between messages.
#[derive(Clone, Default)]
pub(crate) struct Outgoing {
    part: Part,
    /// Final (non-1xx) responses written in full.
    finals: u64,
    /// For each request not yet answered in full, oldest first: whether it was a HEAD.
    heads: VecDeque<bool>,
    /// The stream stopped making sense; nothing more is followed.
    lost: bool,
}

#[derive(Clone)]
enum Part {
    /// A response head so far (empty: between messages).
    Head(Vec<u8>),
    /// Body bytes left of a response with `Content-Length`.
    Body(u64),
    /// A chunked body: the size line so far.
    ChunkSize(Vec<u8>),
    /// Data bytes left of the current chunk, then its CRLF.
    ChunkData(u64),
    /// The CRLF after a chunk's data: bytes left of it.
    ChunkEnd(u8),
    /// The trailer section after the last chunk: the current line so far.
    Trailers(Vec<u8>),
}

impl Default for Part {
    fn default() -> Self {
        Part::Head(Vec::new())
    }
}

impl Outgoing {
    fn at_message_start(&self) -> bool {
        !self.lost && matches!(&self.part, Part::Head(head) if head.is_empty())
    }

    /// Follow `bytes`; returns how many were taken. With `stop_at`, stops right after the
    /// final response that makes `finals` reach it.
    fn feed(&mut self, bytes: &[u8], stop_at: Option<u64>) -> usize {
        let mut i = 0;
        while i < bytes.len() && !self.lost {
            if stop_at.is_some_and(|n| self.finals >= n) && self.at_message_start() {
                return i;
            }
            match &mut self.part {
                Part::Head(head) => {
                    head.push(bytes[i]);
                    i += 1;
                    if head.ends_with(b"\r\n\r\n") {
                        let head = std::mem::take(head);
                        self.head_done(&head);
                    } else if head.len() > MAX_HEAD {
                        self.lost = true;
                    }
                }
                Part::Body(left) => {
                    let take = (*left).min((bytes.len() - i) as u64);
                    *left -= take;
                    i += take as usize;
                    if *left == 0 {
                        self.message_done();
                    }
                }
                Part::ChunkSize(line) => {
                    line.push(bytes[i]);
                    i += 1;
                    if line.ends_with(b"\r\n") {
                        let size = std::str::from_utf8(&line[..line.len() - 2])
                            .ok()
                            .and_then(|l| l.split(';').next())
                            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
                        self.part = match size {
                            Some(0) => Part::Trailers(Vec::new()),
                            Some(size) => Part::ChunkData(size),
                            None => {
                                self.lost = true;
                                continue;
                            }
                        };
                    } else if line.len() > 1024 {
                        self.lost = true;
                    }
                }
                Part::ChunkData(left) => {
                    let take = (*left).min((bytes.len() - i) as u64);
                    *left -= take;
                    i += take as usize;
                    if *left == 0 {
                        self.part = Part::ChunkEnd(2);
                    }
                }
                Part::ChunkEnd(left) => {
                    i += 1;
                    *left -= 1;
                    if *left == 0 {
                        self.part = Part::ChunkSize(Vec::new());
                    }
                }
                Part::Trailers(line) => {
                    line.push(bytes[i]);
                    i += 1;
                    if line.ends_with(b"\r\n") {
                        if line.len() == 2 {
                            self.message_done();
                        } else {
                            line.clear();
                        }
                    } else if line.len() > MAX_HEAD {
                        self.lost = true;
                    }
                }
            }
        }
        i
    }

    /// A whole response head: decide how its body is framed.
    fn head_done(&mut self, head: &[u8]) {
        let Ok(text) = std::str::from_utf8(head) else {
            self.lost = true;
            return;
        };
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.strip_prefix("HTTP/1.1 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok());
        let Some(status) = status else {
            self.lost = true;
            return;
        };
        if status == 101 {
            // The connection becomes something else.
            self.lost = true;
            return;
        }
        if status < 200 {
            self.part = Part::Head(Vec::new());
            return;
        }
        let Some(head_request) = self.heads.front().copied() else {
            // A response to no request tusk saw (the dispatcher's own error): the count of
            // requests and responses no longer lines up.
            self.lost = true;
            return;
        };
        let mut length = None;
        let mut chunked = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<u64>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
        if head_request || status == 204 || status == 304 {
            self.message_done();
        } else if chunked {
            self.part = Part::ChunkSize(Vec::new());
        } else {
            match length {
                Some(0) => self.message_done(),
                Some(n) => self.part = Part::Body(n),
                // Delimited by closing the connection: nothing may follow it.
                None => self.lost = true,
            }
        }
    }

    /// A final response was written in full.
    fn message_done(&mut self) {
        self.heads.pop_front();
        self.finals += 1;
        self.part = Part::Head(Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(heads: &[bool]) -> Outgoing {
        Outgoing {
            heads: heads.iter().copied().collect(),
            ..Outgoing::default()
        }
    }

    #[test]
    fn responses_are_counted_however_they_are_framed() {
        let stream: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 204 No Content\r\nUpload-Offset: 5\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n\
            HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nabcd\
            HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n\
            HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\n\r\n";
        // The 200 with Content-Length 5 answers a HEAD: no body follows.
        let heads = [false, true, false, false, false];
        // Fed whole, and fed a byte at a time.
        let mut whole = outgoing(&heads);
        assert_eq!(whole.feed(stream, None), stream.len());
        assert_eq!(whole.finals, 5);
        assert!(whole.at_message_start());
        let mut bytewise = outgoing(&heads);
        for b in stream {
            bytewise.feed(std::slice::from_ref(b), None);
        }
        assert_eq!(bytewise.finals, 5);
        assert!(bytewise.at_message_start() && !bytewise.lost);
    }

    #[test]
    fn feeding_stops_right_after_the_response_asked_for() {
        let first: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let second: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        let both = [first, second].concat();
        let mut out = outgoing(&[false, false]);
        assert_eq!(out.feed(&both, Some(1)), first.len());
        assert_eq!(out.finals, 1);
        // Already there: nothing is taken.
        assert_eq!(out.feed(second, Some(1)), 0);
    }

    #[test]
    fn a_stream_that_cannot_be_followed_stops_interims() {
        // A body delimited by the end of the connection.
        let mut out = outgoing(&[false]);
        out.feed(b"HTTP/1.1 200 OK\r\n\r\nbody", None);
        assert!(out.lost);
        // A response to a request nobody registered.
        let mut out = outgoing(&[]);
        out.feed(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            None,
        );
        assert!(out.lost);
    }

    /// A writer that accepts at most `max` bytes per write and records everything.
    struct Sink {
        written: Vec<u8>,
        max: usize,
    }

    impl AsyncWrite for Sink {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.written.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// What the socket wrapper does with one dispatcher write.
    fn dispatcher_write(interims: &Interims, sink: &mut Sink, mut buf: &[u8]) {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        while !buf.is_empty() {
            assert!(interims.poll_write_due(sink, &mut cx).is_ready());
            let allowed = interims.writable_len(buf);
            let n = allowed.min(sink.max);
            sink.written.extend_from_slice(&buf[..n]);
            interims.wrote(&buf[..n]);
            buf = &buf[n..];
        }
    }

    #[test]
    fn an_interim_goes_between_pipelined_responses_never_inside_one() {
        let interims = Interims::new(true);
        let first = interims.register(false);
        let second = interims.register(false);
        assert_eq!((first, second), (0, 1));
        // Request 1's handler queues its 104 while response 0 is still in the dispatcher's
        // buffer, written in small pieces.
        let location = ("Location", "http://127.0.0.1/files/x".to_owned());
        assert!(interims.send(second, 104, std::slice::from_ref(&location)));
        let response0: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
        let response1: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        let mut sink = Sink {
            written: Vec::new(),
            max: 7,
        };
        dispatcher_write(&interims, &mut sink, &[response0, response1].concat());
        let interim: &[u8] =
            b"HTTP/1.1 104 Upload Resumption Supported\r\nLocation: http://127.0.0.1/files/x\r\n\r\n";
        assert_eq!(sink.written, [response0, interim, response1].concat());
        // Request 1 is answered: a late 104 for it is refused.
        assert!(!interims.send(second, 104, &[]));
    }

    #[test]
    fn values_that_would_break_the_head_are_refused() {
        let interims = Interims::new(true);
        let n = interims.register(false);
        assert!(!interims.send(n, 104, &[("Location", "a\r\nX: y".to_owned())]));
        assert!(!interims.send(n, 200, &[]));
        let h2 = Interims::new(false);
        let n = h2.register(false);
        assert!(!h2.send(n, 104, &[]));
        // A long-lived HTTP/2 connection keeps nothing per request.
        for _ in 0..1000 {
            h2.register(false);
        }
        assert!(h2.state().outgoing.heads.is_empty());
    }
}
