//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes, served at
//! `/api-docs/openapi.json` with Swagger UI (vendored assets, no network) at `/swagger-ui`.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema};

use crate::error::ErrorEnvelope;

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Shoot", description = "Shoot chat server REST API. Every response is the envelope {success, data, message, errorCode}."),
    paths(
        crate::rest::auth::signup,
        crate::rest::auth::signup_alias,
        crate::rest::auth::login,
        crate::rest::auth::refresh,
        crate::rest::auth::refresh_alias,
        crate::rest::auth::logout,
        crate::rest::auth::me,
        crate::rest::users::get_me,
        crate::rest::users::update_me,
        crate::rest::users::set_status,
        crate::rest::users::search,
        crate::rest::users::find_by_code,
        crate::rest::users::get_user,
        crate::rest::users::friends,
        crate::rest::users::friend_requests,
        crate::rest::users::send_friend_request,
        crate::rest::users::accept_friend_request,
        crate::rest::users::reject_friend_request,
        crate::rest::users::cancel_friend_request,
        crate::rest::users::remove_friend,
        crate::rest::users::recommendations,
        crate::rest::users::block,
        crate::rest::users::unblock,
        crate::rest::users::blocked,
        crate::rest::users::friend_groups,
        crate::rest::users::create_friend_group,
        crate::rest::users::update_friend_group,
        crate::rest::users::delete_friend_group,
        crate::rest::users::add_group_member,
        crate::rest::users::remove_group_member,
        crate::rest::rooms::list,
        crate::rest::rooms::favorites,
        crate::rest::rooms::create,
        crate::rest::rooms::create_multiple,
        crate::rest::rooms::get,
        crate::rest::rooms::update,
        crate::rest::rooms::leave,
        crate::rest::rooms::search,
        crate::rest::rooms::participants,
        crate::rest::rooms::add_participants,
        crate::rest::rooms::remove_participant,
        crate::rest::rooms::get_notice,
        crate::rest::rooms::set_notice,
        crate::rest::rooms::add_favorite,
        crate::rest::rooms::remove_favorite,
        crate::rest::messages::history,
        crate::rest::messages::detail,
        crate::rest::messages::edit,
        crate::rest::messages::delete,
        crate::rest::messages::mark_read,
        crate::rest::messages::forward,
        crate::rest::messages::pin,
        crate::rest::messages::unpin,
        crate::rest::messages::pins,
        crate::rest::messages::add_reaction,
        crate::rest::messages::remove_reaction,
        crate::rest::messages::reaction_types,
        crate::rest::messages::thread,
        crate::rest::messages::reply,
        crate::rest::messages::threads,
        crate::rest::messages::schedule,
        crate::rest::messages::schedules,
        crate::rest::messages::update_schedule,
        crate::rest::messages::cancel_schedule,
        crate::rest::messages::bookmark,
        crate::rest::messages::remove_bookmark,
        crate::rest::messages::bookmarks,
        crate::rest::messages::search,
        crate::rest::notifications::list,
        crate::rest::notifications::unread_count,
        crate::rest::notifications::mark_read,
        crate::rest::notifications::mark_all_read,
        crate::rest::notifications::delete,
        crate::sse::subscribe,
        crate::ops::health,
        crate::ops::ready,
        crate::ops::metrics
    ),
    modifiers(&BearerAuth, &CommonErrors),
    tags(
        (name = "auth"), (name = "users"), (name = "friends"), (name = "blocking"), (name = "chatrooms"),
        (name = "messages"), (name = "threads"), (name = "schedules"), (name = "bookmarks"),
        (name = "notifications"), (name = "sse"), (name = "ops")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Documents the error statuses that follow from an operation's shape rather than from its
/// business rules, so that each `#[utoipa::path]` lists only the latter (and a client or a
/// contract test such as Schemathesis sees every status the server can send):
/// 400 `VALIDATION_FAILED` when it takes parameters or a body (unparsable or invalid input),
/// 413 `PAYLOAD_TOO_LARGE` when it takes a body, 401 when it requires a bearer token, and
/// 404 when it addresses a resource by path.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                add_common_errors(op);
            }
        }
    }
}

fn add_common_errors(op: &mut Operation) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let in_path = params
        .iter()
        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Path));
    let has_body = op.request_body.is_some();
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let responses = &mut op.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(error_response(description)));
    };
    if !params.is_empty() || has_body {
        add(
            "400",
            "invalid input (VALIDATION_FAILED or a field-specific code)",
        );
    }
    if has_body {
        add("413", "request body over the limit (PAYLOAD_TOO_LARGE)");
    }
    if secured {
        add("401", "missing, invalid or expired access token");
    }
    if in_path {
        add("404", "no such resource");
    }
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(ErrorEnvelope::schema()))
                .build(),
        )
        .build()
}

/// Swagger UI and the JSON document.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    utoipa_swagger_ui::SwaggerUi::new("/swagger-ui")
        .url("/api-docs/openapi.json", ApiDoc::openapi())
        .into()
}
