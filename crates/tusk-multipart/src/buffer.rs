use bytes::Bytes;
use memmap2::MmapMut;
use tusk_core::{Error, ErrorKind, Result};

/// The bytes of one part while a PATCH fills it, in their own anonymous memory mapping.
///
/// Part buffers are large (5 MiB and up) and short-lived. From the general allocator, glibc
/// keeps freed ones for reuse (it raises its mmap threshold after the first free), so a node's
/// RSS stays well above what it holds; a mapping of its own goes back to the system when the
/// last reference drops, so RSS follows the buffer budget. Pages are only resident once written.
pub(crate) struct PartBuffer {
    map: Option<MmapMut>,
    capacity: usize,
    len: usize,
}

impl PartBuffer {
    /// An empty buffer with room for `capacity` bytes (mapped on first write).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            map: None,
            capacity,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Append `data`; the caller never writes past the capacity it asked for.
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = self.len + data.len();
        if end > self.capacity {
            return Err(Error::new(
                ErrorKind::Backend,
                "part buffer overflow (a bug: more bytes than the part holds)",
            ));
        }
        if self.map.is_none() {
            let map = MmapMut::map_anon(self.capacity).map_err(|e| {
                Error::new(ErrorKind::Unavailable, "cannot allocate a part buffer").with_source(e)
            })?;
            self.map = Some(map);
        }
        if let Some(map) = &mut self.map {
            map[self.len..end].copy_from_slice(data);
        }
        self.len = end;
        Ok(())
    }

    /// The bytes written, without copying; the mapping lives as long as the returned `Bytes`.
    pub(crate) fn freeze(self) -> Bytes {
        match self.map {
            Some(map) => Bytes::from_owner(map).slice(..self.len),
            None => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_freeze_to_exactly_the_written_bytes() {
        let mut buf = PartBuffer::with_capacity(10);
        assert_eq!(buf.len(), 0);
        buf.extend_from_slice(b"abc").unwrap();
        buf.extend_from_slice(b"").unwrap();
        buf.extend_from_slice(b"defg").unwrap();
        assert_eq!(buf.len(), 7);
        assert!(buf.extend_from_slice(b"hijk").is_err());
        assert_eq!(&buf.freeze()[..], b"abcdefg");
        assert!(PartBuffer::with_capacity(0).freeze().is_empty());
    }
}
