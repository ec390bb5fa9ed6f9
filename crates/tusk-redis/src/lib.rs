//! Upload state and tail for distributed tusk, in Redis.
//!
//! Every key of an upload shares the Redis Cluster hash tag `{<id>}`, so the Lua script behind
//! each operation touches one slot and runs atomically:
//!
//! - `<prefix>{<id>}:state`: hash with `v` (schema version, 1), `length` (empty while
//!   deferred), `metadata` (JSON), `part_size`, `multipart` (empty until set), `finished` (0/1)
//!   and `fence` (the newest fencing token seen);
//! - `<prefix>{<id>}:parts`: list of the committed parts' ETags, part 1 first;
//! - `<prefix>{<id>}:tail`: string with the bytes after the last committed part (absent when
//!   empty).
//! - `<prefix>{<id>}:finals`: set of the final uploads made from this partial upload
//!   (concatenation), deleted with the upload;
//! - `<prefix>expiry` (not per upload): sorted set of upload ids by expiry time.
//!
//! Every state-changing call, and `load`, refuses a fencing token older than the stored one and
//! stores the newest, so a paused or partitioned old lock holder can never overwrite newer state.

mod connection;
mod error;
mod limits;
mod reply;
mod scripts;
mod store;

pub use connection::RedisState;
pub use error::RedisError;
pub use limits::RedisLimits;
