use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tusk_core::{
    ChunkSource, Concatenation, Error, ErrorKind, Expiration, LengthDeclaration, NewUpload, Result,
    Termination, UploadId, UploadInfo, UploadStore,
};

/// An in-memory [`UploadStore`] for engine tests. Not for production: nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    uploads: Mutex<HashMap<UploadId, (UploadInfo, Vec<u8>)>>,
    finals: crate::links::FinalLinks,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The committed bytes of `id`.
    pub fn data(&self, id: &UploadId) -> Option<Vec<u8>> {
        self.map().get(id).map(|(_, d)| d.clone())
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<UploadId, (UploadInfo, Vec<u8>)>> {
        // A poisoned map only means another test thread panicked; the data is still usable.
        self.uploads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl UploadStore for MemoryStore {
    async fn create(&self, upload: NewUpload) -> Result<UploadInfo> {
        let info = UploadInfo {
            id: upload.id.clone(),
            offset: 0,
            length: upload.length,
            metadata: upload.metadata,
            expires_at: upload.expires_at,
            created_at: upload.created_at,
            concat: upload.concat,
            placement: upload.placement,
            loaded: Default::default(),
        };
        self.map().insert(upload.id, (info.clone(), Vec::new()));
        Ok(info)
    }

    async fn info(&self, id: &UploadId) -> Result<UploadInfo> {
        self.map()
            .get(id)
            .map(|(i, _)| i.clone())
            .ok_or_else(Error::not_found)
    }

    async fn write(
        &self,
        upload: &UploadInfo,
        body: &mut dyn ChunkSource,
        _fence: u64,
    ) -> Result<UploadInfo> {
        let id = &upload.id;
        // A fake checks what a real store may take on trust from the engine.
        if self.info(id).await?.offset != upload.offset {
            return Err(Error::new(ErrorKind::OffsetMismatch, "offset mismatch"));
        }
        let mut staged = Vec::new();
        while let Some(chunk) = body.next_chunk().await {
            staged.extend_from_slice(&chunk);
        }
        let mut map = self.map();
        let (info, data) = map.get_mut(id).ok_or_else(Error::not_found)?;
        if body.may_commit() {
            data.extend_from_slice(&staged);
            info.offset += staged.len() as u64;
        }
        Ok(info.clone())
    }

    async fn read(&self, id: &UploadId, start: u64, end: u64) -> Result<tusk_core::ByteStream> {
        let map = self.map();
        let (info, data) = map.get(id).ok_or_else(Error::not_found)?;
        if !info.is_complete() {
            return Err(Error::new(
                tusk_core::ErrorKind::Invalid,
                "upload is not finished",
            ));
        }
        let end = (end as usize).min(data.len());
        let bytes = bytes::Bytes::copy_from_slice(&data[(start as usize).min(end)..end]);
        let items: Vec<Result<bytes::Bytes>> = vec![Ok(bytes)];
        Ok(Box::pin(futures_util::stream::iter(items)))
    }
}

#[async_trait]
impl LengthDeclaration for MemoryStore {
    async fn declare_length(
        &self,
        upload: &UploadInfo,
        length: u64,
        _fence: u64,
    ) -> Result<UploadInfo> {
        let mut map = self.map();
        let (info, _) = map.get_mut(&upload.id).ok_or_else(Error::not_found)?;
        if info.length.is_some() {
            return Err(Error::new(
                ErrorKind::Invalid,
                "upload length is already set",
            ));
        }
        info.length = Some(length);
        Ok(info.clone())
    }
}

#[async_trait]
impl Termination for MemoryStore {
    async fn terminate(&self, id: &UploadId, _fence: u64) -> Result<()> {
        self.finals.forget(id);
        self.map()
            .remove(id)
            .map(|_| ())
            .ok_or_else(Error::not_found)
    }
}

#[async_trait]
impl Expiration for MemoryStore {
    async fn set_expiry(&self, id: &UploadId, _fence: u64, expires_at: Option<u64>) -> Result<()> {
        let mut map = self.map();
        let (info, _) = map.get_mut(id).ok_or_else(Error::not_found)?;
        info.expires_at = expires_at;
        Ok(())
    }

    async fn expired(&self, before: u64, limit: usize) -> Result<Vec<UploadId>> {
        let map = self.map();
        let mut due: Vec<(u64, UploadId)> = map
            .values()
            .filter_map(|(i, _)| i.expires_at.map(|at| (at, i.id.clone())))
            .filter(|(at, _)| *at < before)
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}

#[async_trait]
impl Concatenation for MemoryStore {
    async fn link_final(&self, partial: &UploadId, final_id: &UploadId) -> Result<()> {
        self.finals.link(partial, final_id);
        Ok(())
    }

    async fn finals_of(&self, partial: &UploadId) -> Result<Vec<UploadId>> {
        Ok(self.finals.of(partial))
    }

    async fn concatenate(
        &self,
        id: &UploadId,
        partials: &[UploadInfo],
        _fence: u64,
    ) -> Result<UploadInfo> {
        let mut map = self.map();
        let mut joined = Vec::new();
        for partial in partials {
            let (_, data) = map.get(&partial.id).ok_or_else(Error::not_found)?;
            joined.extend_from_slice(data);
        }
        let (info, data) = map.get_mut(id).ok_or_else(Error::not_found)?;
        info.offset = joined.len() as u64;
        *data = joined;
        Ok(info.clone())
    }
}
