//! REST API under `/api/v1`: handlers extract and authorise, convert the request into an
//! engine command, call the engine and map the result to a view. Nothing else.

pub mod auth;
pub mod extract;
pub mod messages;
pub mod notifications;
pub mod rooms;
pub mod users;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::state::AppState;

/// Every `/api/v1` route (paths relative to `/api/v1`).
///
/// Path parameters at one position share a name (`{id}`) because the router requires it;
/// the OpenAPI document names them after what they identify.
pub fn routes() -> Router<AppState> {
    Router::new()
        // auth
        .route("/auth/signup", post(auth::signup))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/refresh-token", post(auth::refresh_alias))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        // users
        .route("/users", post(auth::signup_alias))
        .route("/users/me", get(users::get_me).put(users::update_me))
        .route("/users/status", put(users::set_status))
        .route("/users/search", get(users::search))
        .route("/users/find-by-code", get(users::find_by_code))
        .route("/users/recommendations", get(users::recommendations))
        .route("/users/{id}", get(users::get_user))
        // friends
        .route("/users/friends", get(users::friends))
        .route(
            "/users/friends/requests",
            get(users::friend_requests).post(users::send_friend_request),
        )
        .route(
            "/users/friends/requests/{id}",
            delete(users::cancel_friend_request),
        )
        .route(
            "/users/friends/requests/{id}/accept",
            post(users::accept_friend_request),
        )
        .route(
            "/users/friends/requests/{id}/reject",
            post(users::reject_friend_request),
        )
        .route("/users/friends/{id}", delete(users::remove_friend))
        .route(
            "/users/friends/groups",
            get(users::friend_groups).post(users::create_friend_group),
        )
        .route(
            "/users/friends/groups/{id}",
            put(users::update_friend_group).delete(users::delete_friend_group),
        )
        .route(
            "/users/friends/groups/{id}/members/{friend}",
            post(users::add_group_member).delete(users::remove_group_member),
        )
        // blocking
        .route("/users/block", post(users::block))
        .route("/users/block/{id}", delete(users::unblock))
        .route("/users/blocked", get(users::blocked))
        // chat rooms
        .route("/chatrooms", get(rooms::list).post(rooms::create))
        .route("/chatrooms/favorites", get(rooms::favorites))
        .route("/chatrooms/search", get(rooms::search))
        .route("/chatrooms/multiple", post(rooms::create_multiple))
        .route(
            "/chatrooms/{id}",
            get(rooms::get).put(rooms::update).delete(rooms::leave),
        )
        .route(
            "/chatrooms/{id}/participants",
            get(rooms::participants).post(rooms::add_participants),
        )
        .route(
            "/chatrooms/{id}/participants/{user}",
            delete(rooms::remove_participant),
        )
        .route(
            "/chatrooms/{id}/notice",
            get(rooms::get_notice).post(rooms::set_notice),
        )
        .route(
            "/chatrooms/{id}/favorite",
            post(rooms::add_favorite).delete(rooms::remove_favorite),
        )
        // messages
        .route(
            "/messages/{id}",
            get(messages::history)
                .put(messages::edit)
                .delete(messages::delete),
        )
        .route("/messages/detail/{id}", get(messages::detail))
        .route("/messages/mark-read", post(messages::mark_read))
        .route("/messages/forward", post(messages::forward))
        .route("/messages/pin", post(messages::pin))
        .route("/messages/pin/{id}", delete(messages::unpin))
        .route("/messages/pins/{id}", get(messages::pins))
        .route(
            "/messages/reaction",
            post(messages::add_reaction).delete(messages::remove_reaction),
        )
        .route("/messages/reactions/types", get(messages::reaction_types))
        .route(
            "/messages/thread",
            get(messages::thread).post(messages::reply),
        )
        .route("/messages/threads", get(messages::threads))
        .route(
            "/messages/schedule",
            get(messages::schedules).post(messages::schedule),
        )
        .route(
            "/messages/schedule/{id}",
            put(messages::update_schedule).delete(messages::cancel_schedule),
        )
        .route("/messages/bookmark", post(messages::bookmark))
        .route("/messages/bookmark/{id}", delete(messages::remove_bookmark))
        .route("/messages/bookmarks", get(messages::bookmarks))
        .route("/messages/search", get(messages::search))
        // notifications
        .route("/notifications", get(notifications::list))
        .route(
            "/notifications/unread/count",
            get(notifications::unread_count),
        )
        .route("/notifications/read/all", put(notifications::mark_all_read))
        .route("/notifications/{id}", delete(notifications::delete))
        .route("/notifications/{id}/read", put(notifications::mark_read))
        // server-sent events
        .route("/sse/subscribe", get(crate::sse::subscribe))
}
