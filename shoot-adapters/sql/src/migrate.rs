//! Embedded migrations, run through sqlx's migrator (checksums, a lock on PostgreSQL so that
//! several instances starting together apply them once).

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// Migrations compiled into the binary: `(version, description, sql)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Embedded(pub(crate) &'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator of `migrations`.
pub(crate) async fn migrator(
    migrations: Embedded,
) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(migrations).await
}
