//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes, served at
//! `/api-docs/openapi.json` with Swagger UI (vendored assets, no network) at `/swagger-ui`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
    modifiers(&BearerAuth),
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

/// Swagger UI and the JSON document.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    utoipa_swagger_ui::SwaggerUi::new("/swagger-ui")
        .url("/api-docs/openapi.json", ApiDoc::openapi())
        .into()
}
