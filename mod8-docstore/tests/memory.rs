//! The conformance suite on the in-memory backend (always runs).

use std::sync::Arc;

use mod8_docstore::testing::{Capabilities, Fixture};
use mod8_docstore::MemoryDocStore;

async fn memory() -> Option<Fixture> {
    Some(Fixture::new(
        Arc::new(MemoryDocStore::new()),
        Capabilities::all(),
    ))
}

mod8_docstore::conformance_tests!(memory());

#[tokio::test]
async fn connect_picks_the_backend_by_scheme() {
    assert_eq!(
        mod8_docstore::connect("memory://").await.unwrap().backend(),
        "memory"
    );
    match mod8_docstore::connect("postgres://x").await {
        Err(err) => assert_eq!(err.field(), Some("url")),
        Ok(store) => panic!("postgres:// picked {}", store.backend()),
    }
}

/// The suite through the forwarding impls: `Box<Arc<dyn DocStore>>` is a store too.
mod forwarded {
    use std::sync::Arc;

    use mod8_docstore::testing::{Capabilities, Fixture};
    use mod8_docstore::{DocStore, MemoryDocStore};

    async fn boxed_arc() -> Option<Fixture> {
        let inner: Arc<dyn DocStore> = Arc::new(MemoryDocStore::new());
        Some(Fixture::new(Arc::new(Box::new(inner)), Capabilities::all()))
    }

    mod8_docstore::conformance_tests!(boxed_arc());
}
