//! One client connection: the socket wrapper that keeps every byte a broken connection
//! delivered, and the bookkeeping that lets a connection outlive its requests' commits.
//!
//! actix-http's HTTP/1 dispatcher loses bytes that reached the server in two ways when a
//! connection breaks:
//! - a read error (ECONNRESET: the client reset the link) with nothing read in the same poll
//!   ends the dispatcher with an error, which drops the request handler mid-commit;
//! - on a read error or end of stream it stops decoding its read buffer: the body bytes still in
//!   that buffer (up to 32 KiB while the handler applies backpressure) never reach the handler.
//!
//! [`WatchedIo`] turns every read error into an orderly end of stream, and holds that end back
//! while a request body is being read until the body reader has taken everything the
//! dispatcher holds (see [`ConnWatch::body_idle`]). Request handlers run their engine work in a
//! task of their own (see `routes`), which the connection waits for before it counts as closed,
//! so a graceful shutdown also waits for it.

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::interim::Interims;

/// Shared by a connection's socket wrapper, its request handlers and body pumps. All of them
/// live on one worker thread.
#[derive(Clone, Default)]
pub(crate) struct ConnWatch(Rc<WatchState>);

#[derive(Default)]
struct WatchState {
    /// The socket ended (end of stream or error); not yet reported to the dispatcher.
    ended: Cell<bool>,
    /// Body pumps reading a request body of this connection.
    pumps: Cell<usize>,
    /// The socket delivered bytes since a pump last found the request body empty.
    unread_since_idle: Cell<bool>,
    /// The dispatcher's waker, from a read that was held back.
    reader: RefCell<Option<Waker>>,
    /// Request tasks of this connection still running.
    tasks: Cell<usize>,
    tasks_done: Notify,
    /// Informational responses written between the dispatcher's (see `interim`).
    interims: Arc<Interims>,
}

impl ConnWatch {
    /// A pump starts reading a request body; it ends with the returned guard.
    pub(crate) fn pump_started(&self) -> PumpGuard {
        self.0.pumps.set(self.0.pumps.get() + 1);
        PumpGuard(self.clone())
    }

    /// The pump found the request body empty: everything the socket delivered so far has either
    /// reached the pump or sits in the dispatcher's read buffer, which the dispatcher decodes in
    /// full on its next poll (it decodes whenever the body is not full). So the next read may
    /// report the end.
    pub(crate) fn body_idle(&self) {
        self.0.unread_since_idle.set(false);
        self.wake_reader();
    }

    /// The connection's interim responses.
    pub(crate) fn interims(&self) -> &Arc<Interims> {
        &self.0.interims
    }

    /// A request task starts; the connection counts as open until the guard drops.
    pub(crate) fn task_started(&self) -> TaskGuard {
        self.0.tasks.set(self.0.tasks.get() + 1);
        TaskGuard(self.clone())
    }

    /// Wait until every request task of this connection has finished.
    pub(crate) async fn tasks_finished(&self) {
        loop {
            let notified = self.0.tasks_done.notified();
            if self.0.tasks.get() == 0 {
                return;
            }
            notified.await;
        }
    }

    fn wake_reader(&self) {
        if self.0.ended.get()
            && let Some(waker) = self.0.reader.borrow_mut().take()
        {
            waker.wake();
        }
    }

    /// Whether the end of the socket may be reported now without losing body bytes.
    fn may_report_end(&self) -> bool {
        self.0.pumps.get() == 0 || !self.0.unread_since_idle.get()
    }
}

pub(crate) struct PumpGuard(ConnWatch);

impl Drop for PumpGuard {
    fn drop(&mut self) {
        let state = &self.0.0;
        state.pumps.set(state.pumps.get().saturating_sub(1));
        self.0.wake_reader();
    }
}

pub(crate) struct TaskGuard(ConnWatch);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let state = &self.0.0;
        state.tasks.set(state.tasks.get().saturating_sub(1));
        if state.tasks.get() == 0 {
            state.tasks_done.notify_waiters();
        }
    }
}

/// A client connection: plain TCP, or TLS over TCP (the watch then sits on the decrypted side,
/// so what it keeps are whole TLS records' plaintext; a record cut in half cannot be decrypted,
/// let alone trusted).
pub(crate) enum Socket {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

macro_rules! on_socket {
    ($socket:expr, $io:ident => $body:expr) => {
        match $socket {
            Socket::Plain($io) => $body,
            Socket::Tls($io) => $body,
        }
    };
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        on_socket!(self.get_mut(), io => Pin::new(io).poll_read(cx, buf))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_socket!(self.get_mut(), io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_socket!(self.get_mut(), io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        on_socket!(self, io => io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_socket!(self.get_mut(), io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_socket!(self.get_mut(), io => Pin::new(io).poll_shutdown(cx))
    }
}

/// A client connection as the HTTP dispatcher sees it: reads that fail end the stream in order,
/// and the end waits until a body reader has what arrived (see the module docs).
pub(crate) struct WatchedIo {
    io: Socket,
    watch: ConnWatch,
}

impl WatchedIo {
    /// `http1`: the connection speaks HTTP/1.1, which can carry interim responses.
    pub(crate) fn new(io: Socket, http1: bool) -> Self {
        Self {
            io,
            watch: ConnWatch(Rc::new(WatchState {
                interims: Interims::new(http1),
                ..WatchState::default()
            })),
        }
    }

    pub(crate) fn watch(&self) -> ConnWatch {
        self.watch.clone()
    }

    /// Report the end of the stream if nothing can be lost by it, else wait for the pump.
    fn poll_end(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.watch.may_report_end() {
            return Poll::Ready(Ok(()));
        }
        *self.watch.0.reader.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.watch.0.ended.get() {
            return this.poll_end(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.watch.0.unread_since_idle.set(true);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) => {
                this.watch.0.ended.set(true);
                this.poll_end(cx)
            }
            Poll::Ready(Err(err))
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Poll::Ready(Err(err))
            }
            Poll::Ready(Err(err)) => {
                // Linux hands out the bytes queued before a reset first; the error comes after
                // the last of them, so nothing readable is left behind here.
                tracing::debug!(error = %err, "connection broke; ending its request body in order");
                this.watch.0.ended.set(true);
                this.poll_end(cx)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Writes pass interim responses in where they are due (see `interim`).
impl AsyncWrite for WatchedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let interims = this.watch.0.interims.clone();
        if !interims.enabled() {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        std::task::ready!(interims.poll_write_due(&mut this.io, cx))?;
        let allowed = interims.writable_len(buf);
        let written = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, &buf[..allowed]))?;
        interims.wrote(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.watch.0.interims.enabled() {
            // Followed byte by byte: one slice at a time (HTTP/1 writes plain buffers anyway).
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let interims = this.watch.0.interims.clone();
        if interims.enabled() {
            // The dispatcher flushes on every turn (so this is where its waker is kept, not on
            // every read): queued interim responses go out here while it has nothing else to
            // write.
            interims.note_waker(cx);
            std::task::ready!(interims.poll_write_due(&mut this.io, cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
