//! A part's body streamed to S3 as its bytes arrive, with its exact size known up front (S3
//! needs `Content-Length`, and the SDK's checksum needs it to frame the body).

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tusk_core::{ByteStream, Error, ErrorKind};

/// Exactly `size` bytes from a stream; a stream that ends early or runs long fails the body,
/// so the request is cut off and S3 stores nothing.
pub(crate) struct PartBody {
    /// Behind a lock only because the SDK wants a `Sync` body; polled through `get_mut`.
    stream: Mutex<ByteStream>,
    remaining: u64,
}

impl PartBody {
    pub(crate) fn new(stream: ByteStream, size: u64) -> Self {
        Self {
            stream: Mutex::new(stream),
            remaining: size,
        }
    }
}

impl Body for PartBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let stream = this
            .stream
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = match stream.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(next) => next,
        };
        let frame = match next {
            Some(Ok(bytes)) if bytes.len() as u64 <= this.remaining => {
                this.remaining -= bytes.len() as u64;
                Ok(Frame::data(bytes))
            }
            Some(Ok(_)) => Err(Error::new(
                ErrorKind::Backend,
                "a streamed part got more bytes than its size (a bug)",
            )),
            Some(Err(err)) => Err(err),
            None => Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "a streamed part's bytes ended {} bytes short; nothing was stored",
                    this.remaining
                ),
            )),
        };
        Poll::Ready(Some(frame))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn body(chunks: Vec<tusk_core::Result<Bytes>>, size: u64) -> PartBody {
        PartBody::new(Box::pin(futures_util::stream::iter(chunks)), size)
    }

    async fn frames(mut body: PartBody) -> Vec<Result<Bytes, ErrorKind>> {
        let mut out = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let failed = frame.is_err();
            out.push(frame.map(|f| f.into_data().unwrap()).map_err(|e| e.kind()));
            // A body's reader stops at its first error.
            if failed {
                break;
            }
        }
        out
    }

    #[tokio::test]
    async fn yields_exactly_its_size_and_refuses_short_or_long_streams() {
        let exact = body(
            vec![Ok(Bytes::from_static(b"ab")), Ok(Bytes::from_static(b"c"))],
            3,
        );
        assert_eq!(exact.size_hint().exact(), Some(3));
        let got = frames(exact).await;
        assert_eq!(
            got,
            vec![Ok(Bytes::from_static(b"ab")), Ok(Bytes::from_static(b"c"))]
        );

        let short = frames(body(vec![Ok(Bytes::from_static(b"ab"))], 3)).await;
        assert_eq!(short.last(), Some(&Err(ErrorKind::Unavailable)));

        let long = frames(body(vec![Ok(Bytes::from_static(b"abcd"))], 3)).await;
        assert_eq!(long, vec![Err(ErrorKind::Backend)]);

        let failed = frames(body(vec![Err(Error::new(ErrorKind::LockLost, "gone"))], 3)).await;
        assert_eq!(failed, vec![Err(ErrorKind::LockLost)]);
    }
}
