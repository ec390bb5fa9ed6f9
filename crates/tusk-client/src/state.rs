//! The state file: what a later run needs to resume the same upload (its URLs, the protocol
//! they speak and the identity of the file they hold), kept in the user's state directory
//! under a name derived from the file, the endpoint and the protocol, and written atomically.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::ClientError;
use crate::protocol::Protocol;

/// Version of the state file's layout; a file of another version is ignored (start over).
const VERSION: u32 = 1;

/// What makes "the same file": where it is, how big it is and when it last changed. A file
/// that changed in place gets a new identity, so a new upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    /// The canonical path (symbolic links and `..` resolved).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, in nanoseconds since the Unix epoch.
    pub mtime_ns: u64,
}

impl FileIdentity {
    /// The identity of `file` now; it must be a regular file.
    pub fn of(file: &Path) -> Result<FileIdentity, ClientError> {
        let err = |source| ClientError::File {
            path: file.to_owned(),
            source,
        };
        let canonical = std::fs::canonicalize(file).map_err(err)?;
        let meta = std::fs::metadata(&canonical).map_err(err)?;
        if !meta.is_file() {
            return Err(err(std::io::Error::other("not a regular file")));
        }
        Ok(FileIdentity {
            path: canonical.to_string_lossy().into_owned(),
            size: meta.len(),
            mtime_ns: mtime_ns(meta.modified().ok()),
        })
    }
}

fn mtime_ns(modified: Option<SystemTime>) -> u64 {
    modified
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The name of the state file of `identity` uploaded to `endpoint` with `protocol`: a hash
/// of them, so one file per (file, size, mtime, endpoint, protocol) and nothing about any of
/// them in the name. A tus upload and a draft upload of the same file are two uploads.
pub fn state_key(endpoint: &str, identity: &FileIdentity, protocol: Protocol) -> String {
    let mut hash = sha2::Sha256::new();
    let size = identity.size.to_string();
    let mtime = identity.mtime_ns.to_string();
    let mut parts = vec![endpoint, &identity.path, &size, &mtime];
    // tus keys hash what they hashed before the draft existed, so saved tus uploads resume.
    if protocol != Protocol::Tus {
        parts.push(protocol.key());
    }
    // Length-prefixed, so no two different keys hash the same bytes.
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

/// The directory of state files: `$XDG_STATE_HOME/tusk/uploads`, else
/// `$HOME/.local/state/tusk/uploads`; `None` if neither variable is set (or is relative, which
/// the XDG spec says to ignore).
pub fn default_dir(xdg_state_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    let base = absolute(xdg_state_home)
        .or_else(|| absolute(home).map(|h| h.join(".local").join("state")))?;
    Some(base.join("tusk").join("uploads"))
}

/// One upload the file is sent in: the whole file, or one range of a parallel upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPart {
    /// Offset in the file where this part starts.
    pub start: u64,
    /// Bytes in this part.
    pub length: u64,
    /// The upload's URL once created.
    pub url: Option<String>,
}

/// Everything saved about one upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Layout version ([`VERSION`]).
    pub version: u32,
    /// The collection URL the upload was created at.
    pub endpoint: String,
    /// The protocol the upload was created with, and must be resumed with (state files from
    /// before the draft are tus's).
    #[serde(default)]
    pub protocol: Protocol,
    /// The file the upload holds.
    pub file: FileIdentity,
    /// One part (a plain upload) or several (partial uploads, concatenated at the end).
    pub parts: Vec<SavedPart>,
    /// The final upload of a parallel upload, once created.
    pub final_url: Option<String>,
}

impl Saved {
    /// A fresh state for `file` at `endpoint` with `protocol`, split into `parts` ranges (1: a
    /// plain upload).
    pub fn new(endpoint: &str, protocol: Protocol, file: FileIdentity, parts: usize) -> Saved {
        let n = parts.clamp(1, usize::try_from(file.size.max(1)).unwrap_or(usize::MAX)) as u128;
        let size = u128::from(file.size);
        // Range i is [size*i/n, size*(i+1)/n): lengths differ by at most one byte.
        let bound = |i: u128| u64::try_from(size * i / n).unwrap_or(u64::MAX);
        let parts = (0..n)
            .map(|i| SavedPart {
                start: bound(i),
                length: bound(i + 1) - bound(i),
                url: None,
            })
            .collect();
        Saved {
            version: VERSION,
            endpoint: endpoint.to_owned(),
            protocol,
            file,
            parts,
            final_url: None,
        }
    }

    /// True when this state can resume an upload of `file` to `endpoint` (whatever its
    /// protocol: see [`load`]).
    pub fn matches(&self, endpoint: &str, file: &FileIdentity) -> bool {
        let covered = self.parts.iter().try_fold(0u64, |at, p| {
            (p.start == at).then(|| at.checked_add(p.length))?
        });
        self.version == VERSION
            && self.endpoint == endpoint
            && self.file == *file
            && covered == Some(file.size)
    }
}

/// What was found at the state file's path.
#[derive(Debug)]
pub enum Loaded {
    /// Nothing: a new upload.
    Absent,
    /// A state for this file, endpoint and protocol.
    Found(Saved),
    /// A state that cannot be used (unreadable, another file, version or protocol); the
    /// reason.
    Unusable(String),
}

/// Read the state at `path` for `file` uploaded to `endpoint` with `protocol`.
pub fn load(
    path: &Path,
    endpoint: &str,
    file: &FileIdentity,
    protocol: Protocol,
) -> Result<Loaded, ClientError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Absent),
        Err(source) => {
            return Err(ClientError::State {
                path: path.to_owned(),
                source,
            });
        }
    };
    Ok(match serde_json::from_slice::<Saved>(&bytes) {
        // An upload continues in the protocol it was created with: the other one's requests
        // would be refused, or worse, misread.
        Ok(saved) if saved.matches(endpoint, file) && saved.protocol != protocol => {
            Loaded::Unusable(format!(
                "it is an upload with {}, not {}",
                saved.protocol.name(),
                protocol.name()
            ))
        }
        Ok(saved) if saved.matches(endpoint, file) => Loaded::Found(saved),
        Ok(_) => {
            Loaded::Unusable("it is for another file, endpoint, or version of the file".to_owned())
        }
        Err(err) => Loaded::Unusable(format!("it cannot be read ({err})")),
    })
}

/// Write `saved` to `path` atomically: a temporary file beside it, flushed to disk, renamed
/// over it; a crash leaves the old state or the new one, never half of one. Readable by the
/// user only, since upload URLs let anyone who has them write to the upload.
pub fn save(path: &Path, saved: &Saved) -> Result<(), ClientError> {
    let err = |source| ClientError::State {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(name);
    let json = serde_json::to_vec_pretty(saved).map_err(|e| err(std::io::Error::other(e)))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)
}

/// Remove the state at `path` (the upload finished); a missing file is fine.
pub fn remove(path: &Path) -> Result<(), ClientError> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(ClientError::State {
            path: path.to_owned(),
            source: err,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(size: u64, mtime_ns: u64) -> FileIdentity {
        FileIdentity {
            path: "/data/a.bin".into(),
            size,
            mtime_ns,
        }
    }

    #[test]
    fn the_key_changes_with_each_part_of_the_identity_and_the_protocol() {
        let endpoint = "http://h/files/";
        let key = |endpoint, identity: &FileIdentity| state_key(endpoint, identity, Protocol::Tus);
        let base = key(endpoint, &identity(10, 5));
        // The key of a tus upload from before the draft: saved uploads still resume.
        assert_eq!(base, "3086b83a366a93e45558e22f05125b0c");
        assert_eq!(base, key(endpoint, &identity(10, 5)));
        assert_eq!(base.len(), 32);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
        let mut other_path = identity(10, 5);
        other_path.path = "/data/b.bin".into();
        let draft = state_key(endpoint, &identity(10, 5), Protocol::IetfDraft);
        assert_eq!(draft.len(), 32);
        for key in [
            key("http://other/files/", &identity(10, 5)),
            key(endpoint, &other_path),
            key(endpoint, &identity(11, 5)),
            key(endpoint, &identity(10, 6)),
            draft,
        ] {
            assert_ne!(key, base);
        }
    }

    #[test]
    fn identity_reads_the_canonical_path_size_and_mtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f.bin");
        std::fs::write(&file, b"hello").expect("write");
        let roundabout = dir.path().join(".").join("f.bin");
        let id = FileIdentity::of(&roundabout).expect("identity");
        assert_eq!(id.size, 5);
        assert!(id.mtime_ns > 0);
        assert!(!id.path.contains("/./"), "{}", id.path);
        assert_eq!(id, FileIdentity::of(&file).expect("identity"));
        assert!(matches!(
            FileIdentity::of(dir.path()),
            Err(ClientError::File { .. })
        ));
        assert!(matches!(
            FileIdentity::of(&dir.path().join("missing")),
            Err(ClientError::File { .. })
        ));
    }

    #[test]
    fn the_default_directory_follows_xdg_then_home() {
        let xdg = Some(OsString::from("/xdg"));
        let home = Some(OsString::from("/home/u"));
        assert_eq!(
            default_dir(xdg, home.clone()),
            Some(PathBuf::from("/xdg/tusk/uploads"))
        );
        assert_eq!(
            default_dir(Some("relative".into()), home.clone()),
            Some(PathBuf::from("/home/u/.local/state/tusk/uploads"))
        );
        assert_eq!(default_dir(None, None), None);
    }

    #[test]
    fn ranges_cover_the_file_exactly() {
        for (size, n) in [(0u64, 4usize), (1, 4), (10, 3), (16 << 20, 4), (7, 1)] {
            let saved = Saved::new("e", Protocol::Tus, identity(size, 1), n);
            assert_eq!(saved.parts.len(), n.min(size.max(1) as usize));
            assert!(saved.matches("e", &identity(size, 1)));
            let lengths: Vec<u64> = saved.parts.iter().map(|p| p.length).collect();
            assert_eq!(lengths.iter().sum::<u64>(), size);
            let (min, max) = (lengths.iter().min(), lengths.iter().max());
            assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{lengths:?}");
        }
    }

    #[test]
    fn saved_state_round_trips_and_is_checked_against_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("state.json");
        let id = identity(100, 7);
        let tus = Protocol::Tus;
        assert!(matches!(load(&path, "e", &id, tus), Ok(Loaded::Absent)));
        let mut saved = Saved::new("e", tus, id.clone(), 2);
        saved.parts[0].url = Some("http://h/files/abc".into());
        save(&path, &saved).expect("save");
        match load(&path, "e", &id, tus).expect("load") {
            Loaded::Found(found) => assert_eq!(found, saved),
            other => panic!("{other:?}"),
        }
        for (endpoint, other) in [("other", id.clone()), ("e", identity(100, 8))] {
            assert!(matches!(
                load(&path, endpoint, &other, tus),
                Ok(Loaded::Unusable(_))
            ));
        }
        std::fs::write(&path, b"{not json").expect("write");
        assert!(matches!(
            load(&path, "e", &id, tus),
            Ok(Loaded::Unusable(_))
        ));
        remove(&path).expect("remove");
        remove(&path).expect("removing twice is fine");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn an_upload_resumes_only_with_its_own_protocol() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let id = identity(100, 7);
        let mut saved = Saved::new("e", Protocol::IetfDraft, id.clone(), 1);
        saved.parts[0].url = Some("http://h/files/abc".into());
        save(&path, &saved).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("\"protocol\": \"ietf-draft-8\""), "{text}");
        assert!(matches!(
            load(&path, "e", &id, Protocol::IetfDraft),
            Ok(Loaded::Found(found)) if found == saved
        ));
        match load(&path, "e", &id, Protocol::Tus) {
            Ok(Loaded::Unusable(why)) => assert!(why.contains("IETF"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A state file written before the draft existed has no protocol: it is tus's.
        let mut old: serde_json::Value = serde_json::from_str(&text).expect("json");
        old.as_object_mut().expect("object").remove("protocol");
        std::fs::write(&path, old.to_string()).expect("write");
        assert!(matches!(
            load(&path, "e", &id, Protocol::Tus),
            Ok(Loaded::Found(found)) if found.protocol == Protocol::Tus
        ));
        assert!(matches!(
            load(&path, "e", &id, Protocol::IetfDraft),
            Ok(Loaded::Unusable(_))
        ));
    }
}
