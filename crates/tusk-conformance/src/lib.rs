//! Checks a tus 1.0 server against the protocol.
