use std::sync::Arc;

use bytes::Bytes;
use memmap2::MmapMut;
use tusk_core::{Error, ErrorKind, Result};

/// Writes at least this long prefault their pages in one call (below it, a page fault or two
/// costs less than the call).
#[cfg(target_os = "linux")]
const POPULATE_AT_LEAST: usize = 64 * 1024;

/// The bytes of one part while a PATCH fills it, in their own anonymous memory mapping.
///
/// Part buffers are large (5 MiB and up) and short-lived. From the general allocator, glibc
/// keeps freed ones for reuse (it raises its mmap threshold after the first free), so a node's
/// RSS stays well above what it holds; a mapping of its own goes back to the system when the
/// last reference drops, so RSS follows the buffer budget. Pages are only resident once written.
///
/// A buffer may start with a prefix left free for bytes that arrive later (the stored tail of a
/// resumed part, read only once the part is full): appended bytes go after it, and the part is
/// assembled in place, never copied into a second buffer.
/// The default is empty, with no room: a placeholder while no part is being filled.
#[derive(Default)]
pub(crate) struct PartBuffer {
    /// Shared only with views of written bytes ([`Self::view_appended`]); written only while
    /// no view is left.
    map: Option<Arc<MmapMut>>,
    capacity: usize,
    prefix: usize,
    len: usize,
}

impl PartBuffer {
    /// An empty buffer with room for `capacity` bytes (mapped on first write).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self::after_prefix(0, capacity)
    }

    /// An empty buffer of `capacity` bytes whose first `prefix` bytes are written later, with
    /// [`Self::write_prefix`].
    pub(crate) fn after_prefix(prefix: usize, capacity: usize) -> Self {
        Self {
            map: None,
            capacity,
            prefix: prefix.min(capacity),
            len: 0,
        }
    }

    /// Bytes appended after the prefix.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The prefix and the bytes appended after it: the bytes the buffer holds once its prefix
    /// is written.
    pub(crate) fn written(&self) -> usize {
        self.prefix + self.len
    }

    /// The bytes appended after the prefix, without copying; the buffer takes more bytes only
    /// once the view and its clones are dropped.
    pub(crate) fn view_appended(&self) -> Bytes {
        match &self.map {
            Some(map) if self.len > 0 => {
                Bytes::from_owner(SharedMap(map.clone())).slice(self.prefix..self.prefix + self.len)
            }
            _ => Bytes::new(),
        }
    }

    /// No view of the buffer is left: it takes more bytes.
    pub(crate) fn is_unshared(&mut self) -> bool {
        self.map
            .as_mut()
            .is_none_or(|map| Arc::get_mut(map).is_some())
    }

    /// A copy of the prefix and the bytes after it (the caller has written the whole prefix).
    pub(crate) fn copy_written(&self) -> Bytes {
        match &self.map {
            Some(map) => Bytes::copy_from_slice(&map[..self.prefix + self.len]),
            None => Bytes::new(),
        }
    }

    /// The byte at `at` of the prefix and the bytes after it, if written.
    pub(crate) fn byte_at(&self, at: usize) -> Option<u8> {
        let map = self.map.as_ref()?;
        (at < self.prefix + self.len).then(|| map[at])
    }

    /// The same buffer with everything in it (a written prefix and the bytes after it) as the
    /// prefix: the start of a part that later bytes go after.
    pub(crate) fn into_written(self) -> Self {
        Self {
            prefix: self.prefix + self.len,
            len: 0,
            ..self
        }
    }

    /// Append `data` after the prefix; the caller never writes past the capacity it asked for.
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) -> Result<()> {
        let at = self.prefix + self.len;
        self.write_at(at, data, self.capacity)?;
        self.len += data.len();
        Ok(())
    }

    /// Write `data` into the prefix at `at`.
    pub(crate) fn write_prefix(&mut self, at: usize, data: &[u8]) -> Result<()> {
        self.write_at(at, data, self.prefix)
    }

    fn write_at(&mut self, at: usize, data: &[u8], limit: usize) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = at.saturating_add(data.len());
        if end > limit {
            return Err(Error::new(
                ErrorKind::Backend,
                "part buffer overflow (a bug: more bytes than the part holds)",
            ));
        }
        let map = match &mut self.map {
            Some(map) => map,
            None => self
                .map
                .insert(Arc::new(MmapMut::map_anon(self.capacity).map_err(|e| {
                    Error::new(ErrorKind::Unavailable, "cannot allocate a part buffer")
                        .with_source(e)
                })?)),
        };
        let Some(map) = Arc::get_mut(map) else {
            return Err(Error::new(
                ErrorKind::Backend,
                "part buffer written while a view of it is alive (a bug)",
            ));
        };
        #[cfg(target_os = "linux")]
        if data.len() >= POPULATE_AT_LEAST {
            // One call makes the range's pages resident, where the copy would take a page fault
            // per 4 KiB (the fault entries were 6.5 % of the node's CPU on the S3 path). Only
            // the range about to be written, so memory still follows the bytes that arrived.
            // Without the advice (a kernel before 5.14), the copy faults the pages in as before.
            let _ = map.advise_range(memmap2::Advice::PopulateWrite, at, data.len());
        }
        map[at..end].copy_from_slice(data);
        Ok(())
    }

    /// The prefix and the bytes after it, without copying; the mapping lives as long as the
    /// returned `Bytes`. The caller has written the whole prefix.
    pub(crate) fn freeze(self) -> Bytes {
        let end = self.prefix + self.len;
        self.freeze_range(0, end)
    }

    /// Only the bytes appended after the prefix, without copying.
    pub(crate) fn freeze_appended(self) -> Bytes {
        let (start, end) = (self.prefix, self.prefix + self.len);
        self.freeze_range(start, end)
    }

    fn freeze_range(self, start: usize, end: usize) -> Bytes {
        match self.map {
            Some(map) if start < end => Bytes::from_owner(SharedMap(map)).slice(start..end),
            _ => Bytes::new(),
        }
    }
}

/// A part buffer's mapping as the owner of `Bytes` views.
struct SharedMap(Arc<MmapMut>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0[..]
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

    #[test]
    fn a_prefix_written_last_comes_first() {
        let mut buf = PartBuffer::after_prefix(4, 10);
        buf.extend_from_slice(b"efgh").unwrap();
        assert!(buf.extend_from_slice(b"ijk").is_err(), "past the capacity");
        assert_eq!(buf.len(), 4);
        buf.write_prefix(2, b"cd").unwrap();
        buf.write_prefix(0, b"ab").unwrap();
        assert!(buf.write_prefix(3, b"xy").is_err(), "past the prefix");
        buf.extend_from_slice(b"ij").unwrap();
        assert_eq!(&buf.freeze()[..], b"abcdefghij");

        let mut tail_only = PartBuffer::after_prefix(3, 10);
        tail_only.extend_from_slice(b"xyz").unwrap();
        assert_eq!(&tail_only.freeze_appended()[..], b"xyz");
        assert!(PartBuffer::after_prefix(3, 10).freeze_appended().is_empty());
    }

    #[test]
    fn a_buffer_kept_whole_becomes_the_written_prefix_of_the_next_bytes() {
        let mut buf = PartBuffer::with_capacity(10);
        buf.extend_from_slice(b"abc").unwrap();
        let view = buf.view_appended();
        assert_eq!(&view[..], b"abc");
        assert!(!buf.is_unshared());
        assert!(buf.extend_from_slice(b"x").is_err(), "written under a view");
        drop(view);
        assert!(buf.is_unshared());
        let mut next = buf.into_written();
        assert_eq!((next.written(), next.len()), (3, 0));
        assert!(next.view_appended().is_empty());
        next.extend_from_slice(b"de").unwrap();
        assert_eq!((next.written(), &next.view_appended()[..]), (5, &b"de"[..]));
        assert!(
            next.write_prefix(2, b"x").is_ok(),
            "the prefix is the kept bytes"
        );
        assert_eq!((next.byte_at(4), next.byte_at(5)), (Some(b'e'), None));
        assert_eq!(&next.freeze()[..], b"abxde");
        assert!(PartBuffer::default().view_appended().is_empty());
    }
}
