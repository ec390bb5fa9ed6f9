use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tusk_core::{
    ByteStream, ChunkSource, Concatenation, Error, ErrorKind, Expiration, LengthDeclaration,
    NewUpload, Result, Termination, UploadId, UploadInfo, UploadStore,
};

use crate::LocalError;

/// Bytes gathered before one write(2): big enough to amortise the hop to the blocking pool,
/// small enough to keep memory per PATCH bounded.
const WRITE_BUFFER: usize = 1 << 20;

/// Uploads on the local disk: `<dir>/<id>` holds the bytes, `<dir>/<id>.info` the state (JSON).
///
/// Durability: bytes are written and fsynced before the info file that counts them is replaced
/// (write to a temporary file, fsync, rename, fsync the directory). Bytes past the recorded
/// offset (from a crash mid-PATCH) are never counted and are truncated by the next PATCH.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

/// The info file's contents.
#[derive(Debug, Serialize, Deserialize)]
struct InfoFile {
    version: u32,
    #[serde(flatten)]
    info: UploadInfo,
}

/// A write of a filled buffer in progress on the blocking pool.
type AppendTask = tokio::task::JoinHandle<Result<(File, Vec<u8>), LocalError>>;

/// The data file and a spare buffer, or the write that holds them.
enum Writer {
    Idle(File, Vec<u8>),
    Writing(AppendTask),
}

impl Writer {
    /// Wait for the write in progress, if any; the file and the buffer it freed.
    async fn idle(self) -> Result<(File, Vec<u8>), LocalError> {
        match self {
            Writer::Idle(file, spare) => Ok((file, spare)),
            Writer::Writing(task) => task.await?,
        }
    }
}

impl LocalStore {
    /// Use (and create if needed) `dir`. Fails if it cannot be created or written.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, LocalError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(LocalError::io("create directory", &dir))?;
        let probe = dir.join(".tusk-write-probe");
        std::fs::write(&probe, b"ok").map_err(LocalError::io("write to", &dir))?;
        std::fs::remove_file(&probe).map_err(LocalError::io("remove", &probe))?;
        Ok(Self { dir })
    }

    /// The file holding the bytes of `id`.
    pub fn data_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    fn info_path(&self, id: &UploadId) -> PathBuf {
        self.dir.join(format!("{id}.info"))
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, LocalError> + Send + 'static,
    ) -> Result<T, LocalError> {
        tokio::task::spawn_blocking(f).await?
    }

    async fn read_info(&self, id: &UploadId) -> Result<UploadInfo, LocalError> {
        let path = self.info_path(id);
        Self::blocking(move || {
            let bytes = std::fs::read(&path).map_err(LocalError::io("read", &path))?;
            let file: InfoFile = serde_json::from_slice(&bytes)
                .map_err(|source| LocalError::CorruptInfo { path, source })?;
            Ok(file.info)
        })
        .await
    }

    /// Replace the info file atomically and durably.
    async fn write_info(&self, info: &UploadInfo) -> Result<(), LocalError> {
        let path = self.info_path(&info.id);
        let dir = self.dir.clone();
        let json = serde_json::to_vec_pretty(&InfoFile {
            version: 1,
            info: info.clone(),
        })
        .map_err(|source| LocalError::CorruptInfo {
            path: path.clone(),
            source,
        })?;
        Self::blocking(move || {
            let tmp = path.with_extension("info.tmp");
            let mut f = File::create(&tmp).map_err(LocalError::io("create", &tmp))?;
            f.write_all(&json).map_err(LocalError::io("write", &tmp))?;
            f.sync_all().map_err(LocalError::io("fsync", &tmp))?;
            std::fs::rename(&tmp, &path).map_err(LocalError::io("rename", &path))?;
            sync_dir(&dir)
        })
        .await
    }

    /// Open the data file positioned at `offset`, cutting off any uncounted bytes past it.
    async fn open_at(&self, id: &UploadId, offset: u64) -> Result<File, LocalError> {
        let path = self.data_path(id);
        Self::blocking(move || {
            let mut f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(LocalError::io("open", &path))?;
            f.set_len(offset)
                .map_err(LocalError::io("truncate", &path))?;
            f.seek(SeekFrom::Start(offset))
                .map_err(LocalError::io("seek", &path))?;
            Ok(f)
        })
        .await
    }

    /// Write `buf` at the end of `file` on the blocking pool; the task gives both back (the
    /// buffer emptied, for reuse).
    fn spawn_append(&self, id: &UploadId, mut file: File, buf: Vec<u8>, at: u64) -> AppendTask {
        let path = self.data_path(id);
        tokio::task::spawn_blocking(move || {
            file.write_all(&buf)
                .map_err(LocalError::io("write", &path))?;
            start_writeback(&file, at, buf.len());
            let mut buf = buf;
            buf.clear();
            Ok((file, buf))
        })
    }
}

/// Have the kernel start writing `len` bytes at `at` to disk now, without waiting for it: the
/// disk then works while the rest of the body arrives, and the fsync before the offset is
/// acknowledged finds little left to write (`dd conv=fsync` leaves it all to its end). Dirty
/// pages are written back, not dropped; a failure only loses the head start.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, at: u64, len: usize) {
    let len = std::num::NonZeroU64::new(len as u64);
    let _ = rustix::fs::fadvise(file, at, len, rustix::fs::Advice::DontNeed);
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _at: u64, _len: usize) {}

fn sync_dir(dir: &Path) -> Result<(), LocalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LocalError::io("fsync directory", dir))
}

#[async_trait]
impl UploadStore for LocalStore {
    fn location(&self, upload: &UploadInfo) -> Vec<(&'static str, String)> {
        vec![
            ("Type", "filestore".to_owned()),
            ("Path", self.data_path(&upload.id).display().to_string()),
        ]
    }

    async fn create(&self, upload: NewUpload) -> Result<UploadInfo> {
        // The engine refuses such a hook answer first; a store never trusts that.
        self.check_placement(&upload.placement)
            .map_err(|why| Error::new(ErrorKind::Invalid, why))?;
        let path = self.data_path(&upload.id);
        Self::blocking(move || {
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(LocalError::io("create", &path))?;
            f.sync_all().map_err(LocalError::io("fsync", &path))
        })
        .await?;
        let info = UploadInfo {
            id: upload.id,
            offset: 0,
            length: upload.length,
            metadata: upload.metadata,
            expires_at: upload.expires_at,
            created_at: upload.created_at,
            concat: upload.concat,
            placement: upload.placement,
            loaded: Default::default(),
        };
        self.write_info(&info).await?;
        Ok(info)
    }

    async fn info(&self, id: &UploadId) -> Result<UploadInfo> {
        Ok(self.read_info(id).await?)
    }

    async fn write(
        &self,
        upload: &UploadInfo,
        body: &mut dyn ChunkSource,
        _fence: u64,
    ) -> Result<UploadInfo> {
        // The info file as read under the lock: nothing else writes it while the lock is held.
        let mut info = upload.clone();
        let (id, offset) = (&upload.id, upload.offset);
        // Defence in depth: the engine limits the body, but a store never stores past the length.
        let room = info.length.map_or(u64::MAX, |l| l.saturating_sub(offset));
        let file = self.open_at(id, offset).await?;
        // Double-buffered: one buffer fills from the body while the other is being written, so
        // the disk and the socket work at the same time.
        let mut writer = Writer::Idle(file, Vec::with_capacity(WRITE_BUFFER));
        let mut buf = Vec::with_capacity(WRITE_BUFFER);
        let mut written = 0u64;
        while let Some(chunk) = body.next_chunk().await {
            written += chunk.len() as u64;
            if written > room {
                // The write in flight ends before the lock is given back: no byte of this
                // request lands after a later request's truncation.
                let _ = writer.idle().await;
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    "body exceeds the upload's length",
                ));
            }
            buf.extend_from_slice(&chunk);
            if buf.len() >= WRITE_BUFFER {
                let (file, spare) = writer.idle().await?;
                let full = std::mem::replace(&mut buf, spare);
                let at = offset + written - full.len() as u64;
                writer = Writer::Writing(self.spawn_append(id, file, full, at));
            }
        }
        let (file, _) = writer.idle().await?;
        if !body.may_commit() || written == 0 {
            return Ok(info);
        }
        let at = offset + written - buf.len() as u64;
        let (file, _) = Writer::Writing(self.spawn_append(id, file, buf, at))
            .idle()
            .await?;
        let path = self.data_path(id);
        Self::blocking(move || file.sync_data().map_err(LocalError::io("fsync", &path))).await?;
        info.offset += written;
        self.write_info(&info).await?;
        Ok(info)
    }

    async fn read(&self, id: &UploadId, start: u64, end: u64) -> Result<ByteStream> {
        let info = self.read_info(id).await?;
        if !info.is_complete() {
            return Err(Error::new(ErrorKind::Invalid, "upload is not finished"));
        }
        let path = self.data_path(id);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(LocalError::io("open", &path))?;
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(LocalError::io("seek", &path))?;
        // Streamed in 64 KiB reads; bytes past the length (never counted) are not served.
        let reader = file.take(end.saturating_sub(start));
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024).map(|read| {
            read.map_err(|e| {
                Error::new(ErrorKind::Unavailable, "cannot read the upload from disk")
                    .with_source(e)
            })
        });
        Ok(Box::pin(stream))
    }
}

#[async_trait]
impl LengthDeclaration for LocalStore {
    async fn declare_length(
        &self,
        upload: &UploadInfo,
        length: u64,
        _fence: u64,
    ) -> Result<UploadInfo> {
        let mut info = upload.clone();
        if info.length.is_some() {
            return Err(Error::new(
                ErrorKind::Invalid,
                "upload length is already set",
            ));
        }
        info.length = Some(length);
        self.write_info(&info).await?;
        Ok(info)
    }
}

#[async_trait]
impl Termination for LocalStore {
    async fn terminate(&self, id: &UploadId, _fence: u64) -> Result<()> {
        // The info file goes first: without it the upload no longer exists for any request.
        let info = self.info_path(id);
        let data = self.data_path(id);
        let finals = self.dir.join(format!("{id}.finals"));
        let dir = self.dir.clone();
        Self::blocking(move || {
            std::fs::remove_file(&info).map_err(LocalError::io("remove", &info))?;
            for path in [data, finals] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LocalError::io("remove", &path)(e)),
                }
            }
            sync_dir(&dir)
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Expiration for LocalStore {
    async fn set_expiry(&self, id: &UploadId, _fence: u64, expires_at: Option<u64>) -> Result<()> {
        let mut info = self.read_info(id).await?;
        if info.expires_at != expires_at {
            info.expires_at = expires_at;
            self.write_info(&info).await?;
        }
        Ok(())
    }

    async fn expired(&self, before: u64, limit: usize) -> Result<Vec<UploadId>> {
        let dir = self.dir.clone();
        // Local mode keeps no index: a pass reads every info file (one small file per upload).
        let due = Self::blocking(move || {
            let mut due = Vec::new();
            let entries = std::fs::read_dir(&dir).map_err(LocalError::io("list", &dir))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "info") {
                    continue;
                }
                // Unreadable or half-written files are skipped; the next pass sees them again.
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                let Ok(file) = serde_json::from_slice::<InfoFile>(&bytes) else {
                    continue;
                };
                if let Some(at) = file.info.expires_at.filter(|at| *at < before) {
                    due.push((at, file.info.id));
                }
            }
            due.sort();
            Ok(due)
        })
        .await?;
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}

#[async_trait]
impl Concatenation for LocalStore {
    async fn link_final(&self, partial: &UploadId, final_id: &UploadId) -> Result<()> {
        let path = self.dir.join(format!("{partial}.finals"));
        let line = format!("{final_id}\n");
        Self::blocking(move || {
            // One short append per link: atomic with O_APPEND, so concurrent links never mix.
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(LocalError::io("open", &path))?;
            f.write_all(line.as_bytes())
                .map_err(LocalError::io("append to", &path))?;
            f.sync_all().map_err(LocalError::io("fsync", &path))
        })
        .await?;
        Ok(())
    }

    async fn finals_of(&self, partial: &UploadId) -> Result<Vec<UploadId>> {
        let path = self.dir.join(format!("{partial}.finals"));
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LocalError::io("read", &path)(e).into()),
        };
        // A final upload may name a partial twice; each is linked (and listed) once.
        let mut ids: Vec<UploadId> = Vec::new();
        for id in text.lines().filter_map(|l| UploadId::parse(l).ok()) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    async fn concatenate(
        &self,
        id: &UploadId,
        partials: &[UploadInfo],
        _fence: u64,
    ) -> Result<UploadInfo> {
        let mut info = self.read_info(id).await?;
        if info.is_complete() {
            return Ok(info);
        }
        let target = self.data_path(id);
        let sources: Vec<(PathBuf, u64)> = partials
            .iter()
            .map(|p| (self.data_path(&p.id), p.offset))
            .collect();
        // Copied file to file on the blocking pool and fsynced before the offset counts it.
        let total = Self::blocking(move || {
            let mut out = OpenOptions::new()
                .write(true)
                .open(&target)
                .map_err(LocalError::io("open", &target))?;
            out.set_len(0)
                .map_err(LocalError::io("truncate", &target))?;
            let mut total = 0;
            for (path, len) in sources {
                let source = File::open(&path).map_err(LocalError::io("open", &path))?;
                let copied = std::io::copy(&mut std::io::Read::take(source, len), &mut out)
                    .map_err(LocalError::io("copy into", &target))?;
                if copied != len {
                    return Err(LocalError::Truncated {
                        path,
                        expected: len,
                        found: copied,
                    });
                }
                total += copied;
            }
            out.sync_all().map_err(LocalError::io("fsync", &target))?;
            Ok(total)
        })
        .await?;
        info.offset = total;
        self.write_info(&info).await?;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tusk_testkit::store_suite::{self, ReadBack};

    #[async_trait]
    impl ReadBack for LocalStore {
        async fn read_back(&self, id: &UploadId) -> Vec<u8> {
            let info = self.read_info(id).await.unwrap();
            let mut data = std::fs::read(self.data_path(id)).unwrap();
            // Only the counted bytes are the upload's.
            data.truncate(info.offset as usize);
            data
        }
    }

    #[tokio::test]
    async fn passes_the_store_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store_suite::run(&store, &store).await;
    }

    #[tokio::test]
    async fn uncounted_bytes_from_a_crash_are_cut_off_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let id = UploadId::generate();
        store
            .create(NewUpload {
                id: id.clone(),
                length: Some(6),
                metadata: Default::default(),
                expires_at: None,
                created_at: None,
                concat: None,
                placement: Default::default(),
            })
            .await
            .unwrap();
        let mut src = tusk_testkit::ChunkList::split(b"abc", 2);
        let info = store.info_locked(&id, 1).await.unwrap();
        store.write(&info, &mut src, 1).await.unwrap();
        // A crash after write(2) but before the info update leaves garbage past the offset.
        std::fs::OpenOptions::new()
            .append(true)
            .open(store.data_path(&id))
            .unwrap()
            .write_all(b"GARBAGE")
            .unwrap();
        assert_eq!(store.info(&id).await.unwrap().offset, 3);
        let mut src = tusk_testkit::ChunkList::split(b"def", 2);
        let info = store.info_locked(&id, 1).await.unwrap();
        store.write(&info, &mut src, 1).await.unwrap();
        assert_eq!(std::fs::read(store.data_path(&id)).unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn corrupt_info_is_a_backend_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let id = UploadId::generate();
        std::fs::write(store.info_path(&id), b"{not json").unwrap();
        assert_eq!(
            store.info(&id).await.unwrap_err().kind(),
            ErrorKind::Backend
        );
    }
}
