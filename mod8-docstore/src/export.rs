//! NDJSON export to any async writer.

use futures::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::{DataProcessing, Error, EventFilter, Result};

/// Batch size used by [`export_ndjson`].
const BATCH: usize = 1_000;

/// Writes the events passing `filter` to `writer` as NDJSON (one JSON object per line, oldest
/// first), one batch at a time, and returns how many were written. Ids are written in
/// MongoDB's extended JSON (`{"$oid": "..."}`), timestamps as RFC 3339.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use mod8_docstore::{export_ndjson, Event, EventFilter, EventStore, MemoryDocStore};
/// let store = MemoryDocStore::new();
/// store.log_event(Event::new("u1", "click")).await?;
/// let mut out = Vec::new();
/// let n = export_ndjson(&store, EventFilter::default(), &mut out).await?;
/// assert_eq!(n, 1);
/// assert!(String::from_utf8(out).unwrap().contains("\"event_type\":\"click\""));
/// # Ok::<(), mod8_docstore::Error>(()) }).unwrap();
/// ```
pub async fn export_ndjson<W>(
    store: &dyn DataProcessing,
    filter: EventFilter,
    writer: &mut W,
) -> Result<u64>
where
    W: AsyncWrite + Unpin + Send + ?Sized,
{
    let mut batches = store.export_events(filter, BATCH).await?;
    let mut written = 0u64;
    let mut line = Vec::with_capacity(512);
    while let Some(batch) = batches.next().await {
        for event in batch? {
            line.clear();
            serde_json::to_writer(&mut line, &event).map_err(|e| Error::backend("ndjson", e))?;
            line.push(b'\n');
            writer
                .write_all(&line)
                .await
                .map_err(|e| Error::backend("ndjson", e))?;
            written += 1;
        }
    }
    writer
        .flush()
        .await
        .map_err(|e| Error::backend("ndjson", e))?;
    Ok(written)
}
