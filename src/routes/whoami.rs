//! `GET /whoami`: whether this server wants keys, and what the presented key
//! may do. The dashboard asks it before it offers write buttons; a client
//! can check its key with it.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::{json_with, with};
use crate::auth::{KeyRing, Scope, Verdict};

/// What `GET /whoami` answers.
#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    /// Writes need a key (the server has keys configured).
    auth_required: bool,
    /// Reads need a key too.
    protect_reads: bool,
    /// The presented key, when it is valid; null for none or an unknown one.
    key: Option<KeyInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyInfo {
    name: String,
    /// `read`, `write` or `admin`.
    scope: String,
}

/// `GET /whoami`.
pub fn routes(keys: Arc<KeyRing>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("whoami")
        .and(warp::get())
        .and(with(keys))
        .and(warp::header::optional::<String>("authorization"))
        .then(whoami)
}

/// Whether keys are needed, and the presented key's name and scope.
#[utoipa::path(
    get, path = "/whoami", tag = "operations",
    params(("Authorization" = Option<String>, Header, description = "`Bearer <key>`, to learn its name and scope")),
    responses((status = 200, description = "Whether this server wants keys, and what the presented key may do", body = WhoAmI))
)]
pub(super) async fn whoami(keys: Arc<KeyRing>, authorization: Option<String>) -> Response {
    let key = match keys.check(None, authorization.as_deref()) {
        Verdict::Allowed(Some(name)) => {
            let scope = keys
                .scope_of(&name)
                .map(Scope::as_str)
                .unwrap_or("read")
                .to_string();
            Some(KeyInfo { name, scope })
        }
        _ => None,
    };
    json_with(
        StatusCode::OK,
        &WhoAmI {
            auth_required: keys.is_enabled(),
            protect_reads: keys.is_enabled() && keys.protect_reads(),
            key,
        },
    )
}
