use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tusk_core::UploadId;

/// Partial upload → the final uploads made from it, for the in-memory stores.
#[derive(Debug, Clone, Default)]
pub(crate) struct FinalLinks(Arc<Mutex<HashMap<UploadId, Vec<UploadId>>>>);

impl FinalLinks {
    fn map(&self) -> MutexGuard<'_, HashMap<UploadId, Vec<UploadId>>> {
        // A poisoned map only means another test thread panicked; the data is still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn link(&self, partial: &UploadId, final_id: &UploadId) {
        let mut map = self.map();
        let list = map.entry(partial.clone()).or_default();
        if !list.contains(final_id) {
            list.push(final_id.clone());
        }
    }

    pub(crate) fn of(&self, partial: &UploadId) -> Vec<UploadId> {
        self.map().get(partial).cloned().unwrap_or_default()
    }

    pub(crate) fn forget(&self, partial: &UploadId) {
        self.map().remove(partial);
    }
}
