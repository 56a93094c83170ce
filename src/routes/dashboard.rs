//! `GET /`: the dashboard, one HTML page compiled into the binary (its
//! styles and script inline, nothing fetched from elsewhere). It reads the
//! API like any client: `/data/info`, `/jobs`, `/jobs/stats`, `/events`.

use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Rejection};

const PAGE: &str = include_str!("../../assets/dashboard/index.html");

/// `GET /`.
pub fn routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::end().and(warp::get()).then(index)
}

/// The dashboard: the data set, jobs live, plots, dead letters.
#[utoipa::path(
    get, path = "/", tag = "operations",
    responses((status = 200, description = "The dashboard (HTML, no external assets)", content_type = "text/html", body = String))
)]
pub(super) async fn index() -> Response {
    let mut r = Response::new(PAGE.into());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page is small and changes with the binary: always ask again.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
