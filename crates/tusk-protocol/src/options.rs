use crate::message::TusResponse;
use crate::{Engine, TUS_VERSION};

impl Engine {
    /// OPTIONS: what this server supports.
    pub(crate) fn options(&self) -> TusResponse {
        TusResponse::status(204)
            .header("Tus-Version", TUS_VERSION)
            .header("Tus-Extension", self.extensions().join(","))
            .header("Tus-Max-Size", self.config().max_size.to_string())
            .header("Tus-Checksum-Algorithm", crate::checksum::ALGORITHMS)
    }
}
