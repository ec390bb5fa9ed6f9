//! The one error type of the client, and the one place it becomes an exit code.

use std::path::PathBuf;

/// Why an upload stopped. Each variant maps to one exit code in [`ClientError::exit_code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The command line or options make no sense (bad URL, metadata key, header, sizes).
    #[error("{0}")]
    Usage(String),
    /// The file to upload cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    File {
        /// The file named on the command line.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file's size or modification time changed while it was being uploaded.
    #[error(
        "{} changed while it was being uploaded (size or modification time); run the command again to upload the new version",
        path.display()
    )]
    FileChanged {
        /// The file named on the command line.
        path: PathBuf,
    },
    /// The state file cannot be read or written.
    #[error("state file {}: {source}", path.display())]
    State {
        /// Where the state is kept.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The server refused a request in a way no retry can fix (a 4xx other than 409/423/429).
    #[error("the server refused {method} with {status}{}", detail(message))]
    Refused {
        /// The request's method.
        method: &'static str,
        /// The HTTP status.
        status: u16,
        /// The start of the server's explanation, if it gave one.
        message: String,
    },
    /// Every allowed retry failed without the upload moving on.
    #[error("gave up after {attempts} failed attempts in a row; last: {last}")]
    GaveUp {
        /// Failed attempts in a row.
        attempts: u32,
        /// Why the last one failed.
        last: String,
    },
    /// The server answered something the protocol (tus or the IETF draft) does not allow.
    #[error("the server's answer breaks the upload protocol: {0}")]
    Protocol(String),
    /// The HTTP client could not be set up (TLS initialisation).
    #[error("cannot set up the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// Exit code: the upload finished.
pub const EXIT_OK: u8 = 0;
/// Exit code: the upload failed (the server refused it, or retries ran out).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad command line or options.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a local file (the one to upload, or the state file) could not be used.
pub const EXIT_FILE: u8 = 3;

impl ClientError {
    /// The process exit code for this error (documented in docs/cli.md).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Usage(_) => EXIT_USAGE,
            ClientError::File { .. }
            | ClientError::FileChanged { .. }
            | ClientError::State { .. } => EXIT_FILE,
            ClientError::Refused { .. }
            | ClientError::GaveUp { .. }
            | ClientError::Protocol(_)
            | ClientError::Http(_) => EXIT_FAILED,
        }
    }
}

/// An error and its causes on one line, skipping causes an outer message already quotes
/// (reqwest's errors wrap hyper's, which wrap the OS's).
pub(crate) fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(err);
    while let Some(cause) = next {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_exit_code() {
        let io = || std::io::Error::other("x");
        let cases = [
            (ClientError::Usage("u".into()), EXIT_USAGE),
            (
                ClientError::File {
                    path: "f".into(),
                    source: io(),
                },
                EXIT_FILE,
            ),
            (ClientError::FileChanged { path: "f".into() }, EXIT_FILE),
            (
                ClientError::State {
                    path: "s".into(),
                    source: io(),
                },
                EXIT_FILE,
            ),
            (
                ClientError::Refused {
                    method: "POST",
                    status: 413,
                    message: String::new(),
                },
                EXIT_FAILED,
            ),
            (
                ClientError::GaveUp {
                    attempts: 2,
                    last: "reset".into(),
                },
                EXIT_FAILED,
            ),
            (ClientError::Protocol("p".into()), EXIT_FAILED),
        ];
        for (err, code) in cases {
            assert_eq!(err.exit_code(), code, "{err}");
        }
    }
}
