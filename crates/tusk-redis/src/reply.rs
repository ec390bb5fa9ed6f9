//! Decoding Redis replies: the marker every script answers with first, and the values of an
//! upload's state.

use std::collections::HashMap;

use redis::Value;
use tusk_core::{Metadata, Placement, UploadId, UploadState};

use crate::RedisError;

/// The schema version written to every state hash; a reader refuses any other.
const SCHEMA_VERSION: &[u8] = b"1";

/// Split a script reply into its marker and the rest; any marker but `ok` is an error.
pub(crate) fn split_marker(reply: Value) -> Result<Vec<Value>, RedisError> {
    let Value::Array(mut items) = reply else {
        return Err(RedisError::Corrupt(format!(
            "script replied {reply:?}, not an array"
        )));
    };
    if items.is_empty() {
        return Err(RedisError::Corrupt("script replied an empty array".into()));
    }
    let marker = bytes_of(items.remove(0), "reply marker")?;
    match marker.as_slice() {
        b"ok" => Ok(items),
        b"notfound" => Err(RedisError::NotFound),
        b"fenced" => Err(RedisError::Fenced),
        b"mismatch" => Err(RedisError::Mismatch),
        b"staging" => Err(RedisError::StagingLost),
        b"exists" => Err(RedisError::Exists),
        // The caller knows which value was already set and says so.
        b"set" => Err(RedisError::AlreadySet("value")),
        other => Err(RedisError::Corrupt(format!(
            "script replied unknown marker {:?}",
            String::from_utf8_lossy(other)
        ))),
    }
}

pub(crate) fn bytes_of(value: Value, what: &str) -> Result<Vec<u8>, RedisError> {
    match value {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Okay => Ok(b"OK".to_vec()),
        Value::Int(n) => Ok(n.to_string().into_bytes()),
        other => Err(RedisError::Corrupt(format!("{what} is {other:?}"))),
    }
}

pub(crate) fn text_of(value: Vec<u8>, what: &str) -> Result<String, RedisError> {
    String::from_utf8(value).map_err(|_| RedisError::Corrupt(format!("{what} is not UTF-8")))
}

fn number_of(value: &[u8], what: &str) -> Result<u64, RedisError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            RedisError::Corrupt(format!(
                "{what} is {:?}, not a number",
                String::from_utf8_lossy(value)
            ))
        })
}

/// Build the state of `id` from a `read()` reply: hash fields, number of parts, tail length.
pub(crate) fn parse_state(id: &UploadId, items: Vec<Value>) -> Result<UploadState, RedisError> {
    let [hash, parts, tail_len]: [Value; 3] = items
        .try_into()
        .map_err(|_| RedisError::Corrupt("state reply does not have 3 elements".into()))?;
    let Value::Array(flat) = hash else {
        return Err(RedisError::Corrupt("state hash is not an array".into()));
    };
    let mut fields = HashMap::new();
    let mut flat = flat.into_iter();
    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
        fields.insert(bytes_of(k, "state field")?, bytes_of(v, "state value")?);
    }
    let mut field = |name: &str| {
        fields
            .remove(name.as_bytes())
            .ok_or_else(|| RedisError::Corrupt(format!("state hash has no {name:?}")))
    };
    let version = field("v")?;
    if version != SCHEMA_VERSION {
        return Err(RedisError::Corrupt(format!(
            "state schema version {:?} is not {:?}",
            String::from_utf8_lossy(&version),
            String::from_utf8_lossy(SCHEMA_VERSION)
        )));
    }
    let length = match field("length")? {
        l if l.is_empty() => None,
        l => Some(number_of(&l, "length")?),
    };
    let metadata: Metadata = serde_json::from_slice(&field("metadata")?)
        .map_err(|e| RedisError::Corrupt(format!("metadata is not valid JSON: {e}")))?;
    let part_size = number_of(&field("part_size")?, "part_size")?;
    let multipart_id = match field("multipart")? {
        m if m.is_empty() => None,
        m => Some(text_of(m, "multipart id")?),
    };
    let finished = match field("finished")?.as_slice() {
        b"0" => false,
        b"1" => true,
        other => {
            return Err(RedisError::Corrupt(format!(
                "finished is {:?}, not 0 or 1",
                String::from_utf8_lossy(other)
            )));
        }
    };
    // Optional: absent in hashes written before expiration (or creation times) existed.
    let mut optional_number = |field: &'static str| match fields.remove(field.as_bytes()) {
        None => Ok(None),
        Some(e) if e.is_empty() => Ok(None),
        Some(e) => number_of(&e, field).map(Some),
    };
    let expires_at = optional_number("expires")?;
    let created_at = optional_number("created")?;
    let concat = match fields.remove(b"concat".as_slice()) {
        None => None,
        Some(c) if c.is_empty() => None,
        Some(c) => Some(
            serde_json::from_slice(&c)
                .map_err(|e| RedisError::Corrupt(format!("concat is not valid JSON: {e}")))?,
        ),
    };
    let placement = match fields.remove(b"placement".as_slice()) {
        None => Placement::default(),
        Some(p) if p.is_empty() => Placement::default(),
        Some(p) => serde_json::from_slice(&p)
            .map_err(|e| RedisError::Corrupt(format!("placement is not valid JSON: {e}")))?,
    };
    let part_count = match parts {
        Value::Int(n) => u32::try_from(n)
            .map_err(|_| RedisError::Corrupt(format!("number of parts {n} is out of range")))?,
        other => return Err(RedisError::Corrupt(format!("number of parts is {other:?}"))),
    };
    let tail_len = match tail_len {
        Value::Int(n) => u64::try_from(n)
            .map_err(|_| RedisError::Corrupt(format!("tail length {n} is negative")))?,
        other => return Err(RedisError::Corrupt(format!("tail length is {other:?}"))),
    };
    Ok(UploadState {
        id: id.clone(),
        length,
        metadata,
        part_size,
        multipart_id,
        part_count,
        tail_len,
        finished,
        expires_at,
        created_at,
        concat,
        placement,
    })
}

/// The upload ids among `members` of a set: anything else cannot be an upload, and is skipped
/// rather than failing the caller.
pub(crate) fn upload_ids(members: Vec<String>) -> Vec<UploadId> {
    members
        .iter()
        .filter_map(|id| UploadId::parse(id).ok())
        .collect()
}

/// Replace the generic "value already set" with the name of the value.
pub(crate) fn already_set(what: &'static str) -> impl FnOnce(RedisError) -> RedisError {
    move |e| match e {
        RedisError::AlreadySet(_) => RedisError::AlreadySet(what),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_map_to_errors() {
        let reply = |m: &str| Value::Array(vec![Value::BulkString(m.as_bytes().to_vec())]);
        assert!(matches!(split_marker(reply("ok")), Ok(v) if v.is_empty()));
        assert!(matches!(
            split_marker(reply("notfound")),
            Err(RedisError::NotFound)
        ));
        assert!(matches!(
            split_marker(reply("fenced")),
            Err(RedisError::Fenced)
        ));
        assert!(matches!(
            split_marker(reply("mismatch")),
            Err(RedisError::Mismatch)
        ));
        assert!(matches!(
            split_marker(reply("exists")),
            Err(RedisError::Exists)
        ));
        assert!(matches!(
            split_marker(reply("set")),
            Err(RedisError::AlreadySet(_))
        ));
        assert!(matches!(
            split_marker(reply("what")),
            Err(RedisError::Corrupt(_))
        ));
        assert!(matches!(
            split_marker(Value::Nil),
            Err(RedisError::Corrupt(_))
        ));
    }
}
