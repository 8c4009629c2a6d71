//! The write half of a TLS session, which ends the stream with `close_notify` when the
//! session closes.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncWrite, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// actix's `FramedWrite` closes by flushing, never by shutting its stream down, so a TLS
/// session would end without `close_notify` and its peer's TLS library would report a
/// truncated stream. This wrapper turns the last flush into a shutdown once the session has
/// armed it ([`TlsWrite::closer`]): the queued replies go out, then `close_notify`, then the
/// TCP FIN. Plaintext sessions do not use it (a TCP FIN is their clean end).
pub struct TlsWrite {
    inner: WriteHalf<TlsStream<TcpStream>>,
    closing: Rc<Cell<bool>>,
    shut: bool,
}

impl TlsWrite {
    /// Wraps `inner`.
    pub fn new(inner: WriteHalf<TlsStream<TcpStream>>) -> Self {
        Self {
            inner,
            closing: Rc::new(Cell::new(false)),
            shut: false,
        }
    }

    /// The switch the session sets when it closes (it lives on the session's thread, as does
    /// this writer).
    pub fn closer(&self) -> Rc<Cell<bool>> {
        self.closing.clone()
    }
}

impl AsyncWrite for TlsWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        if self.closing.get() && !self.shut {
            ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
            self.shut = true;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
