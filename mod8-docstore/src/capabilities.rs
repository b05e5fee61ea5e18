//! What a store's server can do beyond single-document writes, detected at connect.

/// Server features that not every MongoDB-wire server has: multi-document transactions and
/// change streams exist only on a replica set (or a sharded cluster), not on a standalone
/// server nor on FerretDB 1.x.
///
/// [`DocStore::capabilities`](crate::DocStore::capabilities) reports them. Where
/// `transactions` is true the MongoDB backend writes an event and its activity counts in one
/// transaction; elsewhere it writes them one after the other (see
/// [`EventStore::log_event_once`](crate::EventStore::log_event_once)). Where
/// `change_streams` is false [`DocStore::watch_events`](crate::DocStore::watch_events)
/// answers [`Error::Unsupported`](crate::Error::Unsupported) and callers poll with
/// [`DataProcessing::export_events`](crate::DataProcessing::export_events) instead.
///
/// ```
/// use mod8_docstore::Capabilities;
/// let none = Capabilities::none();
/// assert!(!none.transactions && !none.change_streams);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Multi-document transactions on the server.
    pub transactions: bool,
    /// Change streams (`watch`) on the server.
    pub change_streams: bool,
}

impl Capabilities {
    /// Neither feature (a standalone server, FerretDB 1.x, the in-memory backend).
    pub fn none() -> Self {
        Capabilities::default()
    }

    /// The given features (for backends outside this crate).
    pub fn new(transactions: bool, change_streams: bool) -> Self {
        Capabilities {
            transactions,
            change_streams,
        }
    }

    /// What a server can do, read from its reply to the `hello` command: a replica set
    /// member (`setName`) or a `mongos` router (`msg: "isdbgrid"`) has change streams from
    /// wire version 6 (MongoDB 3.6) and transactions from 7 (4.0) on a replica set, 8 (4.2)
    /// through `mongos`; a standalone server (no `setName`), such as FerretDB 1.x, has
    /// neither. Transactions also need a writable primary on a replica set
    /// (`isWritablePrimary`, `ismaster` before MongoDB 5.0).
    #[cfg(feature = "mongodb")]
    pub fn from_hello(hello: &bson::Document) -> Self {
        let wire = hello
            .get("maxWireVersion")
            .and_then(|v| match v {
                bson::Bson::Int32(n) => Some(i64::from(*n)),
                bson::Bson::Int64(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(0);
        let replica_set = hello.get_str("setName").is_ok_and(|name| !name.is_empty());
        let router = hello.get_str("msg") == Ok("isdbgrid");
        let primary = hello
            .get_bool("isWritablePrimary")
            .or_else(|_| hello.get_bool("ismaster"))
            .unwrap_or(false);
        Capabilities {
            transactions: (replica_set && primary && wire >= 7) || (router && wire >= 8),
            change_streams: (replica_set || router) && wire >= 6,
        }
    }
}

#[cfg(all(test, feature = "mongodb"))]
mod tests {
    use super::Capabilities;
    use bson::doc;

    #[test]
    fn a_standalone_server_has_neither() {
        // FerretDB 1.24's reply: no setName.
        let hello = doc! { "isWritablePrimary": true, "maxWireVersion": 21, "ok": 1.0 };
        assert_eq!(Capabilities::from_hello(&hello), Capabilities::none());
    }

    #[test]
    fn a_replica_set_primary_has_both() {
        let hello = doc! { "setName": "rs0", "isWritablePrimary": true, "maxWireVersion": 21 };
        assert_eq!(
            Capabilities::from_hello(&hello),
            Capabilities::new(true, true)
        );
        let old = doc! { "setName": "rs0", "ismaster": true, "maxWireVersion": 7_i64 };
        assert_eq!(
            Capabilities::from_hello(&old),
            Capabilities::new(true, true)
        );
    }

    #[test]
    fn a_secondary_or_an_old_server_lacks_transactions() {
        let secondary = doc! { "setName": "rs0", "isWritablePrimary": false, "maxWireVersion": 21 };
        assert_eq!(
            Capabilities::from_hello(&secondary),
            Capabilities::new(false, true)
        );
        let v36 = doc! { "setName": "rs0", "isWritablePrimary": true, "maxWireVersion": 6 };
        assert_eq!(
            Capabilities::from_hello(&v36),
            Capabilities::new(false, true)
        );
    }

    #[test]
    fn a_mongos_has_both_from_4_2() {
        let mongos = doc! { "msg": "isdbgrid", "isWritablePrimary": true, "maxWireVersion": 8 };
        assert_eq!(
            Capabilities::from_hello(&mongos),
            Capabilities::new(true, true)
        );
        let v40 = doc! { "msg": "isdbgrid", "isWritablePrimary": true, "maxWireVersion": 7 };
        assert_eq!(
            Capabilities::from_hello(&v40),
            Capabilities::new(false, true)
        );
    }
}
