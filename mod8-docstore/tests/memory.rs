//! The conformance suite on the in-memory backend (always runs).

use std::sync::Arc;

use mod8_docstore::testing::{DocStoreCapabilities, DocStoreFixture};
use mod8_docstore::MemoryDocStore;

async fn memory() -> Option<DocStoreFixture> {
    Some(DocStoreFixture::new(
        Arc::new(MemoryDocStore::new()),
        DocStoreCapabilities::all(),
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

/// The suite through the forwarding impls: `Box<DynDocStore>` (`Box<Arc<dyn DocStore>>`) is a
/// store too.
mod forwarded {
    use std::sync::Arc;

    use mod8_docstore::testing::{DocStoreCapabilities, DocStoreFixture};
    use mod8_docstore::{DynDocStore, MemoryDocStore};

    async fn boxed_arc() -> Option<DocStoreFixture> {
        let inner: DynDocStore = Arc::new(MemoryDocStore::new());
        Some(DocStoreFixture::new(
            Arc::new(Box::new(inner)),
            DocStoreCapabilities::all(),
        ))
    }

    mod8_docstore::conformance_tests!(boxed_arc());
}
