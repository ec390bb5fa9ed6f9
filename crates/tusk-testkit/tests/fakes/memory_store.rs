//! The in-memory upload store, which the engine's tests run on, passes the store suite that
//! the local disk store passes.

use tusk_testkit::{MemoryStore, store_suite};

#[tokio::test]
async fn memory_store_passes_the_store_suite() {
    let store = MemoryStore::new();
    store_suite::run(&store, &store).await;
}
