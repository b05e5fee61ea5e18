//! The executor every repository statement runs on: a connection that times each statement
//! into the store's [`StatementLog`] (see `slow`).

use std::sync::Arc;
use std::time::Instant;

use crate::slow::StatementLog;

/// A connection lent for one statement, timed.
pub(crate) struct Timed<'c, DB: sqlx::Database> {
    conn: &'c mut DB::Connection,
    log: &'c Arc<StatementLog>,
}

impl<'c, DB: sqlx::Database> Timed<'c, DB> {
    /// `conn`, timing its statement into `log`.
    pub(crate) fn new(conn: &'c mut DB::Connection, log: &'c Arc<StatementLog>) -> Self {
        Timed { conn, log }
    }
}

impl<DB: sqlx::Database> std::fmt::Debug for Timed<'_, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timed").finish_non_exhaustive()
    }
}

/// One statement's run: recorded when dropped (its future resolved, its stream ended, or
/// either dropped early).
pub(crate) struct Observation<'a> {
    log: &'a Arc<StatementLog>,
    sql: &'a str,
    started: Instant,
}

impl<'a> Observation<'a> {
    pub(crate) fn start(log: &'a Arc<StatementLog>, sql: &'a str) -> Self {
        Observation {
            log,
            sql,
            started: Instant::now(),
        }
    }
}

impl Drop for Observation<'_> {
    fn drop(&mut self) {
        self.log.observe(self.sql, self.started.elapsed());
    }
}

/// `sqlx::Executor` for `Timed<'c, $db>`: forwards to the connection's executor, timing
/// `fetch_many` (which `fetch`, `fetch_all` and `execute` go through) and `fetch_optional`
/// (which `fetch_one` goes through).
macro_rules! impl_timed_executor {
    ($db:ty) => {
        impl<'c> ::sqlx::Executor<'c> for $crate::timed::Timed<'c, $db> {
            type Database = $db;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> ::futures::stream::BoxStream<
                'e,
                Result<
                    ::sqlx::Either<
                        <$db as ::sqlx::Database>::QueryResult,
                        <$db as ::sqlx::Database>::Row,
                    >,
                    ::sqlx::Error,
                >,
            >
            where
                'c: 'e,
                E: 'q + ::sqlx::Execute<'q, $db>,
            {
                use ::futures::StreamExt;
                let (conn, observation) = self.start(&query);
                Box::pin(conn.fetch_many(query).map(move |item| {
                    let _recorded_when_the_stream_drops = &observation;
                    item
                }))
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> ::futures::future::BoxFuture<
                'e,
                Result<Option<<$db as ::sqlx::Database>::Row>, ::sqlx::Error>,
            >
            where
                'c: 'e,
                E: 'q + ::sqlx::Execute<'q, $db>,
            {
                let (conn, observation) = self.start(&query);
                let run = conn.fetch_optional(query);
                Box::pin(async move {
                    let result = run.await;
                    drop(observation);
                    result
                })
            }

            fn prepare_with<'e, 'q: 'e>(
                self,
                sql: &'q str,
                parameters: &'e [<$db as ::sqlx::Database>::TypeInfo],
            ) -> ::futures::future::BoxFuture<
                'e,
                Result<<$db as ::sqlx::Database>::Statement<'q>, ::sqlx::Error>,
            >
            where
                'c: 'e,
            {
                self.into_conn().prepare_with(sql, parameters)
            }

            fn describe<'e, 'q: 'e>(
                self,
                sql: &'q str,
            ) -> ::futures::future::BoxFuture<'e, Result<::sqlx::Describe<$db>, ::sqlx::Error>>
            where
                'c: 'e,
            {
                self.into_conn().describe(sql)
            }
        }

        impl<'c> $crate::timed::Timed<'c, $db> {
            /// The connection and the observation of `query`, started now.
            fn start<'e, 'q: 'e, E: ::sqlx::Execute<'q, $db>>(
                self,
                query: &E,
            ) -> (
                &'c mut <$db as ::sqlx::Database>::Connection,
                $crate::timed::Observation<'e>,
            )
            where
                'c: 'e,
            {
                let (conn, log) = self.into_parts();
                (conn, $crate::timed::Observation::start(log, query.sql()))
            }
        }
    };
}

pub(crate) use impl_timed_executor;

impl<'c, DB: sqlx::Database> Timed<'c, DB> {
    /// The connection, untimed.
    pub(crate) fn into_conn(self) -> &'c mut DB::Connection {
        self.conn
    }

    /// The connection and the log.
    pub(crate) fn into_parts(self) -> (&'c mut DB::Connection, &'c Arc<StatementLog>) {
        (self.conn, self.log)
    }
}
