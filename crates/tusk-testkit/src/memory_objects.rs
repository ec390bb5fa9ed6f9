use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use tusk_core::{Error, ErrorKind, ObjectAttributes, ObjectStore, Result, UploadId};

use crate::object_suite::ReadObject;

/// S3's minimum size for every part but the last.
const MIN_PART: usize = 5 * 1024 * 1024;
/// S3's highest part number.
const MAX_PART_NUMBER: u32 = 10_000;

/// An in-memory [`ObjectStore`] with S3's multipart semantics, for engine tests.
///
/// Random multipart ids; a re-uploaded part replaces the old one; `complete_multipart` refuses
/// non-last parts under 5 MiB (`EntityTooSmall`) and unknown ETags, and removes the multipart
/// upload, so a second complete gets `NotFound`. Clones share one store. Not for production.
#[derive(Debug, Clone, Default)]
pub struct MemoryObjects {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    unavailable: AtomicBool,
    /// Parts may be streamed ([`MemoryObjects::set_streams_parts`]).
    streams_parts: AtomicBool,
    /// Streamed parts fail once all their bytes arrived, storing nothing.
    streamed_parts_fail: AtomicBool,
    /// Parts stored from a stream.
    streamed_parts: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    objects: HashMap<String, Object>,
    multiparts: HashMap<String, Multipart>,
}

#[derive(Debug)]
struct Object {
    data: Bytes,
    /// Sizes of the parts it was assembled from; `None` for a whole-object put.
    parts: Option<Vec<u64>>,
    attributes: ObjectAttributes,
}

#[derive(Debug)]
struct Multipart {
    key: String,
    attributes: ObjectAttributes,
    parts: HashMap<u32, (String, Bytes)>,
}

impl MemoryObjects {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The attributes the object under `key` was created with, if there is one.
    pub fn attributes(&self, key: &str) -> Option<ObjectAttributes> {
        self.state().objects.get(key).map(|o| o.attributes.clone())
    }

    /// The bytes stored under `key`, if any.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.state().objects.get(key).map(|o| o.data.to_vec())
    }

    /// The sizes of the parts the object under `key` was assembled from by its last
    /// `complete_multipart`; `None` if there is no object or it was stored whole.
    pub fn part_sizes_of_last_complete(&self, key: &str) -> Option<Vec<u64>> {
        self.state().objects.get(key).and_then(|o| o.parts.clone())
    }

    /// How many multipart uploads are neither completed nor aborted.
    pub fn pending_multiparts(&self) -> usize {
        self.state().multiparts.len()
    }

    /// Fault switch: while `true`, every call fails with [`ErrorKind::Unavailable`].
    pub fn set_unavailable(&self, unavailable: bool) {
        self.inner.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Whether parts may be streamed ([`ObjectStore::streams_parts`]); off by default.
    pub fn set_streams_parts(&self, on: bool) {
        self.inner.streams_parts.store(on, Ordering::SeqCst);
    }

    /// Fault switch: while `true`, a streamed part fails after its last byte arrived, storing
    /// nothing (as a store that refuses how the part was framed).
    pub fn set_streamed_parts_fail(&self, fail: bool) {
        self.inner.streamed_parts_fail.store(fail, Ordering::SeqCst);
    }

    /// How many parts were stored from a stream.
    pub fn streamed_parts(&self) -> usize {
        self.inner.streamed_parts.load(Ordering::SeqCst)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned map only means another test thread panicked; the data is still usable.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, unless the fault switch is on.
    fn available(&self) -> Result<MutexGuard<'_, State>> {
        if self.inner.unavailable.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "object storage (memory) is unavailable; retry later",
            ));
        }
        Ok(self.state())
    }
}

impl State {
    fn multipart(&mut self, key: &str, multipart_id: &str) -> Result<&mut Multipart> {
        match self.multiparts.get_mut(multipart_id) {
            Some(m) if m.key == key => Ok(m),
            _ => Err(Error::new(
                ErrorKind::NotFound,
                "multipart upload not found (NoSuchUpload)",
            )),
        }
    }
}

/// Like S3, the ETag is a quoted digest of the content: the same bytes give the same ETag.
fn etag(body: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}{:08x}\"", hasher.finish(), body.len())
}

#[async_trait]
impl ObjectStore for MemoryObjects {
    async fn create_multipart(&self, key: &str, attributes: &ObjectAttributes) -> Result<String> {
        let mut state = self.available()?;
        let id = UploadId::generate().to_string();
        state.multiparts.insert(
            id.clone(),
            Multipart {
                key: key.to_owned(),
                attributes: attributes.clone(),
                parts: HashMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &str,
        multipart_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<String> {
        let mut state = self.available()?;
        let multipart = state.multipart(key, multipart_id)?;
        if !(1..=MAX_PART_NUMBER).contains(&part_number) {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!("part number {part_number} is outside 1..={MAX_PART_NUMBER}"),
            ));
        }
        let tag = etag(&body);
        multipart.parts.insert(part_number, (tag.clone(), body));
        Ok(tag)
    }

    fn streams_parts(&self) -> bool {
        self.inner.streams_parts.load(Ordering::SeqCst)
    }

    async fn upload_part_streamed(
        &self,
        key: &str,
        multipart_id: &str,
        part_number: u32,
        size: u64,
        mut body: tusk_core::ByteStream,
    ) -> Result<String> {
        use futures_util::StreamExt;
        if !self.streams_parts() {
            return Err(Error::new(ErrorKind::Backend, "parts are not streamed"));
        }
        self.available()?.multipart(key, multipart_id)?;
        let mut bytes = Vec::new();
        while (bytes.len() as u64) < size {
            match body.next().await {
                Some(chunk) => bytes.extend_from_slice(&chunk?),
                None => {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "a streamed part ended short; nothing stored",
                    ));
                }
            }
        }
        if bytes.len() as u64 != size {
            return Err(Error::new(
                ErrorKind::Backend,
                "a streamed part got more bytes than its size",
            ));
        }
        if self.inner.streamed_parts_fail.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::Backend,
                "streamed parts are refused (fault switch)",
            ));
        }
        let tag = self
            .upload_part(key, multipart_id, part_number, Bytes::from(bytes))
            .await?;
        self.inner.streamed_parts.fetch_add(1, Ordering::SeqCst);
        Ok(tag)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        multipart_id: &str,
        etags: &[String],
    ) -> Result<()> {
        let mut state = self.available()?;
        let multipart = state.multipart(key, multipart_id)?;
        if etags.is_empty() {
            return Err(Error::new(
                ErrorKind::Invalid,
                "a multipart upload needs at least one part (MalformedXML)",
            ));
        }
        let mut bodies = Vec::with_capacity(etags.len());
        for (i, expected) in etags.iter().enumerate() {
            let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
            match multipart.parts.get(&number) {
                Some((tag, body)) if tag == expected => bodies.push(body.clone()),
                _ => {
                    return Err(Error::new(
                        ErrorKind::Invalid,
                        format!(
                            "part {number} was not uploaded with ETag {expected} (InvalidPart)"
                        ),
                    ));
                }
            }
        }
        let last = bodies.len() - 1;
        if let Some(i) = bodies[..last].iter().position(|b| b.len() < MIN_PART) {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!(
                    "part {} is {} bytes, under the 5 MiB minimum for all parts but the last \
                     (EntityTooSmall)",
                    i + 1,
                    bodies[i].len()
                ),
            ));
        }
        let mut data = Vec::with_capacity(bodies.iter().map(Bytes::len).sum());
        for body in &bodies {
            data.extend_from_slice(body);
        }
        let sizes = bodies.iter().map(|b| b.len() as u64).collect();
        let attributes = multipart.attributes.clone();
        state.multiparts.remove(multipart_id);
        state.objects.insert(
            key.to_owned(),
            Object {
                data: Bytes::from(data),
                parts: Some(sizes),
                attributes,
            },
        );
        Ok(())
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        multipart_id: &str,
        part_number: u32,
        source: &str,
        start: u64,
        end: u64,
    ) -> Result<String> {
        let data = {
            let state = self.available()?;
            let object = state
                .objects
                .get(source)
                .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such source object"))?;
            // S3 refuses a range outside the source (InvalidRange) rather than shortening it.
            let range = usize::try_from(start).unwrap_or(usize::MAX)
                ..usize::try_from(end).unwrap_or(usize::MAX);
            if range.start > range.end || range.end > object.data.len() {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    "copy range outside the source object",
                ));
            }
            object.data.slice(range)
        };
        self.upload_part(key, multipart_id, part_number, data).await
    }

    async fn abort_multipart(&self, key: &str, multipart_id: &str) -> Result<()> {
        let mut state = self.available()?;
        if state.multipart(key, multipart_id).is_ok() {
            state.multiparts.remove(multipart_id);
        }
        Ok(())
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        attributes: &ObjectAttributes,
    ) -> Result<()> {
        let mut state = self.available()?;
        state.objects.insert(
            key.to_owned(),
            Object {
                data: body,
                parts: None,
                attributes: attributes.clone(),
            },
        );
        Ok(())
    }

    async fn object_size(&self, key: &str) -> Result<Option<u64>> {
        let state = self.available()?;
        Ok(state.objects.get(key).map(|o| o.data.len() as u64))
    }

    async fn get_object(&self, key: &str, start: u64, end: u64) -> Result<tusk_core::ByteStream> {
        let state = self.available()?;
        let object = state
            .objects
            .get(key)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such object (NoSuchKey)"))?;
        let (start, end) = (start as usize, (end as usize).min(object.data.len()));
        let data = object.data.slice(start.min(end)..end);
        // Several chunks, as a real download arrives.
        let chunks: Vec<Result<Bytes>> = (0..data.len())
            .step_by(64 * 1024)
            .map(|at| Ok(data.slice(at..(at + 64 * 1024).min(data.len()))))
            .collect();
        Ok(Box::pin(futures_util::stream::iter(chunks)))
    }

    async fn delete_object(&self, key: &str) -> Result<()> {
        let mut state = self.available()?;
        state.objects.remove(key);
        Ok(())
    }
}

#[async_trait]
impl ReadObject for MemoryObjects {
    async fn read(&self, key: &str) -> Vec<u8> {
        match self.object(key) {
            Some(data) => data,
            None => panic!("no object under {key:?}"),
        }
    }
}
