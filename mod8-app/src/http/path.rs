//! Ids in request paths: every route parses its `{id}` segments here, so a segment that is
//! not a UUID is the same 422 everywhere, naming the segment and what it should identify.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// `raw` as the id of a `what` (user, product, ...), or a 422 naming `field`.
pub(crate) fn parse(field: &str, what: &str, raw: &str) -> AppResult<Uuid> {
    raw.parse().map_err(|_| {
        AppError::validation(
            field,
            format!("{} is not a {what} id (UUID)", mod8_rules::echo(raw)),
        )
    })
}

/// The one `{id}` of a path, the id of a `what`; a 422 naming `id` otherwise.
pub(crate) fn id(path: Result<Path<String>, PathRejection>, what: &str) -> AppResult<Uuid> {
    let Path(raw) = path.map_err(|rejection| {
        AppError::validation(
            "id",
            format!("not a {what} id (UUID): {}", rejection.body_text()),
        )
    })?;
    parse("id", what, &raw)
}

/// The two ids of a path `.../{id}/.../{second}`: the first a `first_what`'s, the second a
/// `second_what`'s named `second`; a 422 naming the segment otherwise.
pub(crate) fn two_ids(
    path: Result<Path<(String, String)>, PathRejection>,
    (first_what, second, second_what): (&str, &str, &str),
) -> AppResult<(Uuid, Uuid)> {
    let Path((a, b)) = path.map_err(|rejection| {
        AppError::validation("id", format!("not a UUID: {}", rejection.body_text()))
    })?;
    Ok((
        parse("id", first_what, &a)?,
        parse(second, second_what, &b)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_segment_is_a_validation_error_naming_it() {
        let id = Uuid::new_v4();
        assert_eq!(parse("id", "user", &id.to_string()).unwrap(), id);
        match parse("variant_id", "variant", "nope") {
            Err(AppError::Validation { field, message }) => {
                assert_eq!(field, "variant_id");
                assert_eq!(message, "\"nope\" is not a variant id (UUID)");
            }
            other => panic!("{other:?}"),
        }
    }
}
