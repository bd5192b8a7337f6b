//! Classification of driver errors at the adapter boundary.

use std::future::IntoFuture;

use futures::TryStreamExt;
use mongodb::Cursor;
use mongodb::bson::Document;
use mongodb::error::{Error, ErrorKind, WriteFailure};
use shoot_core::{PortError, PortResult};

use crate::codec::duplicate_key_name;

/// The server's duplicate-key error code (E11000).
pub(crate) const DUPLICATE_KEY: i32 = 11000;

/// The message of the duplicate-key error `e` is, if it is one (a single write, a command
/// such as `findAndModify`, or an `insertMany` whose write errors are all duplicate keys).
pub(crate) fn duplicate_key_message(e: &Error) -> Option<&str> {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY => {
            Some(&w.message)
        }
        ErrorKind::Command(c) if c.code == DUPLICATE_KEY => Some(&c.message),
        ErrorKind::InsertMany(im) if im.write_concern_error.is_none() => {
            let errors = im.write_errors.as_deref()?;
            if errors.iter().all(|w| w.code == DUPLICATE_KEY) {
                errors.first().map(|w| w.message.as_str())
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Maps a driver error to a [`PortError`]: a duplicate key becomes
/// [`PortError::AlreadyExists`] naming the key, anything else [`PortError::Backend`].
pub(crate) fn classify(e: Error) -> PortError {
    if let Some(message) = duplicate_key_message(&e) {
        return PortError::AlreadyExists {
            what: duplicate_key_name(message),
        };
    }
    PortError::backend("mongodb", e)
}

/// The indices (into the inserted slice) that an unordered `insert_many` skipped because
/// of a duplicate key, or the error itself if anything else went wrong (then some documents
/// may have been inserted: callers are idempotent and a retry completes the work).
pub(crate) fn skipped_duplicates(e: Error) -> Result<Vec<(usize, String)>, PortError> {
    if let ErrorKind::InsertMany(im) = e.kind.as_ref() {
        if im.write_concern_error.is_none() {
            if let Some(errors) = &im.write_errors {
                if errors.iter().all(|w| w.code == DUPLICATE_KEY) {
                    return Ok(errors
                        .iter()
                        .map(|w| (w.index, w.message.clone()))
                        .collect());
                }
            }
        }
    }
    Err(PortError::backend("mongodb", e))
}

/// Runs a `find` or `aggregate` and reads its whole cursor.
pub(crate) async fn all_docs<Q>(query: Q) -> PortResult<Vec<Document>>
where
    Q: IntoFuture<Output = Result<Cursor<Document>, Error>>,
{
    query
        .await
        .map_err(classify)?
        .try_collect()
        .await
        .map_err(classify)
}
