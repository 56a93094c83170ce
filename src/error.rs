//! The one error type of the HTTP edge and its mapping to JSON.
//!
//! Every error answer is `{"error": "<code>", "message": "<what to do>"}` with
//! the status below; warp's own rejections (unknown route, wrong method, body
//! too large, malformed JSON) are mapped here too, in [`recover`].

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; the message says what is allowed.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 404: nothing at that id, or no data loaded yet.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 404 `gene_not_found` for a symbol, naming the genes that carry it as
    /// a previous symbol or an alias.
    #[error("{message}")]
    GeneNotFound {
        message: String,
        candidates: Vec<crate::search::Candidate>,
    },
    /// 410: what was asked for existed once: a release no longer kept
    /// (`kept` names the kept ones), or a withdrawn gene (`withdrawn` says
    /// where it points now).
    #[error("{message}")]
    Gone {
        code: &'static str,
        message: String,
        kept: Option<Vec<String>>,
        withdrawn: Option<Box<crate::genes::WithdrawnGene>>,
        release: Option<String>,
    },
    /// 409: the request conflicts with the current state (e.g. no data to
    /// plot, cancelling a running job); `job` is shown when one is concerned.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        job: Option<Box<crate::jobs::Job>>,
    },
    /// 422: a job the client waited for (`Prefer: wait`) failed.
    #[error("{message}")]
    JobFailed {
        message: String,
        job: Box<crate::jobs::Job>,
    },
    /// 422: well-formed, but not one the server can take as it stands (an
    /// Idempotency-Key first sent with another request).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 401: the route needs a key and none (or an unknown one) came.
    #[error("this needs an API key: send Authorization: Bearer <key>")]
    Unauthorized,
    /// 403: a valid key whose scope is not enough.
    #[error("{0}")]
    Forbidden(String),
    /// 429: this client's budget is spent; `retry_after` seconds until it is not.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// 503: the job queue's backlog is over its limit; nothing was queued.
    #[error("{message}")]
    Busy { message: String, retry_after: u64 },
    /// 405: the route exists but not with that method.
    #[error("this route does not take that method; see the API table in the README")]
    MethodNotAllowed,
    /// 431: the request's head (request line and headers) is over
    /// `http.max_header_bytes`.
    #[error("the request head is {bytes} bytes, over the {limit}-byte limit (GENE_API__HTTP__MAX_HEADER_BYTES); send fewer or shorter headers")]
    HeaderTooLarge { bytes: usize, limit: usize },
    /// 413: the body is over the route's limit.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 415: a body that is not JSON where JSON is expected.
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// 503 `not_replicated`: the write is on the Redis primary, but fewer
    /// replicas than `redis.min_replicas` confirmed it in time. `job` is the
    /// job concerned (a submission): check it later instead of submitting again.
    #[error("{message}")]
    NotReplicated {
        message: String,
        job: Option<Box<crate::jobs::Job>>,
    },
    /// 503: Redis is unreachable; retrying later will help.
    #[error("Redis is unavailable: {0}")]
    Unavailable(redis::RedisError),
    /// 500: a bug or an unexpected Redis reply; logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Every error answer: a stable code to branch on, a message to show.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// A stable code, e.g. `no_data`, `bad_job_id`, `job_running`.
    error: &'a str,
    /// What went wrong and what to do, in words.
    message: &'a str,
    /// The job concerned, when there is one (409 on cancel or retry, 422).
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<&'a crate::jobs::Job>,
    /// For a symbol that is not an approved one: the genes that carry it as
    /// a previous symbol or an alias (empty when none does).
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates: Option<&'a [crate::search::Candidate]>,
    /// 410 `release_not_kept`: the releases that are kept, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    kept: Option<&'a [String]>,
    /// 410 `gene_withdrawn`: the withdrawn id, its status and the approved
    /// genes it points to now.
    #[serde(skip_serializing_if = "Option::is_none")]
    withdrawn: Option<&'a crate::genes::WithdrawnGene>,
    /// The release the answer is of (410 `gene_withdrawn`).
    #[serde(skip_serializing_if = "Option::is_none")]
    release: Option<&'a str>,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
            job: None,
        }
    }
    /// The queue is full: the gate's sampled backlog, or the submission
    /// script's exact count, is at `limits.max_backlog`.
    pub fn busy(backlog: u64, max: u64) -> Self {
        Self::Busy {
            message: format!(
                "the job queue is full ({backlog} jobs waiting, limit {max}); nothing was queued, retry later"
            ),
            retry_after: 5,
        }
    }
    pub fn no_data() -> Self {
        Self::not_found(
            "no_data",
            "no gene data is loaded: POST /data first, then poll the job it returns",
        )
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } | Self::GeneNotFound { .. } => StatusCode::NOT_FOUND,
            Self::Gone { .. } => StatusCode::GONE,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::JobFailed { .. } | Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeaderTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) | Self::NotReplicated { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<crate::genes::CatalogError> for ApiError {
    fn from(e: crate::genes::CatalogError) -> Self {
        match e {
            crate::genes::CatalogError::Redis(e) => e.into(),
            // Loads replacing the set faster than it can be read: passing.
            crate::genes::CatalogError::Changing => Self::Unavailable(redis::RedisError::from((
                redis::ErrorKind::Io,
                "the data set is being replaced",
            ))),
            crate::genes::CatalogError::NoData => Self::no_data(),
            crate::genes::CatalogError::Unknown { id, kept } => Self::not_found(
                "release_not_found",
                format!(
                    "there is no release {id}; the kept ones are {} (GET /releases)",
                    kept.join(", ")
                ),
            ),
            crate::genes::CatalogError::NotKept { id, kept } => Self::Gone {
                code: "release_not_kept",
                message: format!(
                    "release {id} is not kept (only the newest data.keep_releases are); \
                     the kept ones are {}",
                    kept.join(", ")
                ),
                kept: Some(kept),
                withdrawn: None,
                release: None,
            },
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<crate::pipeline::ControlError> for ApiError {
    /// The errors every control route answers alike; each route maps
    /// `NotFound`, `WrongState` and `PastPointOfNoReturn` itself, before this.
    fn from(e: crate::pipeline::ControlError) -> Self {
        use crate::pipeline::ControlError;
        match e {
            ControlError::Busy { backlog, max } => Self::busy(backlog, max),
            ControlError::NotReplicated { acked, wanted, job } => Self::NotReplicated {
                message: format!(
                    "done on the Redis primary, but only {acked} of {wanted} replicas confirmed \
                     it in time, so a failover now could undo it; look at the job again in a \
                     few seconds (doing it again is safe)"
                ),
                job,
            },
            ControlError::Redis(e) => e.into(),
            ControlError::NotFound
            | ControlError::WrongState(_)
            | ControlError::PastPointOfNoReturn { .. } => {
                Self::Internal(format!("unmapped control error: {e}"))
            }
        }
    }
}

impl From<crate::pipeline::SubmitError> for ApiError {
    fn from(e: crate::pipeline::SubmitError) -> Self {
        match e {
            crate::pipeline::SubmitError::NoData => Self::conflict(
                "no_data",
                "no gene data is loaded, so there is nothing to plot: POST /data first",
            ),
            crate::pipeline::SubmitError::Busy { backlog, max } => Self::busy(backlog, max),
            crate::pipeline::SubmitError::NotReplicated { job, acked, wanted } => {
                Self::NotReplicated {
                    message: format!(
                        "the job is queued on the Redis primary, but only {acked} of {wanted} \
                         replicas confirmed it in time, so a failover now could lose it; it \
                         will most likely run: check it at /jobs/{} before submitting again",
                        job.id
                    ),
                    job: Some(job),
                }
            }
            crate::pipeline::SubmitError::KeyReused { job_id } => Self::Unprocessable {
                code: "idempotency_key_reused",
                message: format!(
                    "this Idempotency-Key was first sent with another request, which made job \
                     {job_id}; use a new key for a new request"
                ),
            },
            crate::pipeline::SubmitError::KeyJobGone { job_id } => Self::conflict(
                "idempotency_job_gone",
                format!(
                    "the job this Idempotency-Key made ({job_id}) is no longer kept; use a new key"
                ),
            ),
            crate::pipeline::SubmitError::Redis(e) => e.into(),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        if crate::store::redis_is_transient(&e) {
            Self::Unavailable(e)
        } else if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) {
            // Not a bug of ours but a deployment's: say in the log what fixes it.
            Self::Internal(format!(
                "{e} (the Redis user lacks a right gene-api needs: give it the ACL line of docs/security.md)"
            ))
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let candidates = match &self {
            Self::GeneNotFound { candidates, .. } => Some(candidates.as_slice()),
            _ => None,
        };
        let (kept, withdrawn, release) = match &self {
            Self::Gone {
                kept,
                withdrawn,
                release,
                ..
            } => (kept.as_deref(), withdrawn.as_deref(), release.as_deref()),
            _ => (None, None, None),
        };
        let (code, message, job) = match &self {
            Self::Gone { code, message, .. } => (*code, message.clone(), None),
            Self::GeneNotFound { message, .. } => ("gene_not_found", message.clone(), None),
            Self::BadRequest { code, message }
            | Self::NotFound { code, message }
            | Self::Unprocessable { code, message } => (*code, message.clone(), None),
            Self::Conflict { code, message, job } => (*code, message.clone(), job.as_deref()),
            Self::NotReplicated { message, job } => {
                ("not_replicated", message.clone(), job.as_deref())
            }
            Self::JobFailed { message, job } => ("job_failed", message.clone(), Some(&**job)),
            Self::MethodNotAllowed => ("method_not_allowed", self.to_string(), None),
            Self::Unauthorized => ("unauthorized", self.to_string(), None),
            Self::Forbidden(m) => ("forbidden", m.clone(), None),
            Self::TooManyRequests { message, .. } => ("rate_limited", message.clone(), None),
            Self::Busy { message, .. } => ("busy", message.clone(), None),
            Self::PayloadTooLarge => ("payload_too_large", self.to_string(), None),
            Self::HeaderTooLarge { .. } => ("header_too_large", self.to_string(), None),
            Self::UnsupportedMediaType => ("unsupported_media_type", self.to_string(), None),
            Self::Unavailable(e) => {
                tracing::warn!(error = %crate::store::Explained(e), "Redis unavailable");
                (
                    "unavailable",
                    "the database is unavailable; retry in a few seconds".to_string(),
                    None,
                )
            }
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    "internal",
                    "something went wrong on our side; it has been logged".to_string(),
                    None,
                )
            }
        };
        let body = ErrorBody {
            error: code,
            message: &message,
            job,
            candidates,
            kept,
            withdrawn,
            release,
        };
        let mut resp = warp::reply::with_status(warp::reply::json(&body), status).into_response();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } | Self::Busy { retry_after, .. } => {
                Some(*retry_after)
            }
            Self::Unavailable(_) | Self::NotReplicated { .. } => Some(2),
            _ => None,
        };
        let h = resp.headers_mut();
        if let Some(secs) = retry_after {
            h.insert("retry-after", warp::http::HeaderValue::from(secs));
        }
        if let Self::NotReplicated { job: Some(job), .. } = &self {
            // Where to look, as a 202 would have said.
            if let Ok(v) = warp::http::HeaderValue::from_str(&format!("/jobs/{}", job.id)) {
                h.insert(warp::http::header::LOCATION, v);
            }
        }
        if matches!(self, Self::Unauthorized) {
            h.insert(
                "www-authenticate",
                warp::http::HeaderValue::from_static("Bearer realm=\"gene-api\""),
            );
        }
        resp
    }
}

/// Turns every rejection (warp's own included) into the JSON error shape.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    use warp::reject;
    let err = if rejection.is_not_found() {
        ApiError::not_found(
            "not_found",
            "no such route; the routes are /data, /genes, /genes/<hgnc_id>, \
             /genes/symbol/<symbol>, /genes/lookup, /search, /info, /releases, /jobs, /jobs/<id>, \
             /image, \
             /image/<job_id>, /events, /health, /ready and /metrics; GET /openapi.json lists \
             them all, GET /docs shows them",
        )
    } else if let Some(e) = rejection.find::<ApiError>() {
        // Filters that parse input reject with an ApiError; rebuild it (it isn't Clone).
        match e {
            ApiError::BadRequest { code, message } => ApiError::bad_request(code, message.clone()),
            ApiError::PayloadTooLarge => ApiError::PayloadTooLarge,
            ApiError::HeaderTooLarge { bytes, limit } => ApiError::HeaderTooLarge {
                bytes: *bytes,
                limit: *limit,
            },
            ApiError::Unauthorized => ApiError::Unauthorized,
            ApiError::Forbidden(m) => ApiError::Forbidden(m.clone()),
            ApiError::TooManyRequests {
                message,
                retry_after,
            } => ApiError::TooManyRequests {
                message: message.clone(),
                retry_after: *retry_after,
            },
            ApiError::Busy {
                message,
                retry_after,
            } => ApiError::Busy {
                message: message.clone(),
                retry_after: *retry_after,
            },
            ApiError::NotFound { code, message } => ApiError::not_found(code, message.clone()),
            other => ApiError::Internal(other.to_string()),
        }
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.find::<reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::bad_request("malformed_json", format!("the JSON body is malformed: {e}"))
    } else if let Some(e) = rejection.find::<reject::InvalidQuery>() {
        ApiError::bad_request("bad_query", format!("the query string is malformed: {e}"))
    } else if let Some(e) = rejection.find::<reject::InvalidHeader>() {
        ApiError::bad_request("bad_header", e.to_string())
    } else if rejection.find::<reject::UnsupportedMediaType>().is_some() {
        ApiError::UnsupportedMediaType
    } else {
        ApiError::Internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(err.into_response())
}

impl warp::reject::Reject for ApiError {}
