//! Object storage for tusk on S3 multipart uploads (AWS S3 or a compatible service), through
//! aws-sdk-s3. Implements [`tusk_core::ObjectStore`]; the distributed store above it decides
//! part sizes and keeps the state, this crate only moves bytes and maps S3's errors.

mod config;
mod error;
mod objects;
mod part_body;

pub use config::{ChecksumMode, PayloadSigning, S3Config, StaticCredentials};
pub use error::S3Error;
pub use objects::{S3Objects, check_placement, sdk_http_client};
