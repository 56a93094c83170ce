//! gene-api: the HGNC gene data set over HTTP, with Redis as the database and
//! a Redis Streams job pipeline for everything that changes state.
//!
//! A map of the crate (every arrow between modules points down this list):
//! - [`app`]: builds the process for a [`app::Mode`] (HTTP ingress, workers or
//!   both) and runs it until one cancellation token says stop.
//! - [`routes`]: the warp tree, one file per resource (`data`, `genes`,
//!   `jobs`, `image`, `events`, `metrics`, `schedules`, the dashboard and
//!   the OpenAPI document with its UI in `docs`); [`error`]: the one error
//!   type of the HTTP edge and its JSON shape.
//! - [`pipeline`]: the stream and its consumer group, one actor a file:
//!   submission (`mod.rs`), running one entry (`delivery`), the consumer
//!   (`worker`), taking over dead consumers' entries (`reclaimer`), retries
//!   due (`scheduler`), the loads of the refresh schedule (`refresh`).
//! - [`events`]: one reader per process of the job events stream, fanned out
//!   to SSE clients and `Prefer: wait`.
//! - [`jobs`]: the job kinds ([`jobs::Command`]), each kind's work in its own
//!   file (`load`, `plot`), and the job records clients read.
//! - [`genes`]: HGNC ids, fetching and parsing the source, and the data set's
//!   Redis layout with its atomic swap (db 0); [`images`]: PNGs in db 1;
//!   [`plot`]: chart statistics and rendering.
//! - [`store`]: connections, the key layout, which Redis errors are transient;
//!   [`lua`]: every Lua script, built once.
//! - [`config`]: typed settings; [`schedule`]: cron expressions and their
//!   ticks; [`telemetry`]: logging; [`monitoring`]: Prometheus metrics
//!   (names, recorder, gauges read when scraped).
//!
//! A plot job, followed down: `routes/image.rs` parses `POST /image` into a
//! [`jobs::Command::Plot`] and calls [`pipeline::Pipeline::submit`];
//! a [`pipeline::Worker`] reads the entry (with up to `workers.batch` others,
//! run side by side), `pipeline/delivery.rs` runs it through
//! [`jobs::Command::run`], `jobs/plot.rs` renders it with [`plot`] (or copies
//! the same chart from the process's [`plot::RenderCache`]) and stores the
//! PNG with [`images::store`].

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod events;
pub mod genes;
pub mod images;
pub mod jobs;
pub mod limits;
pub mod lua;
pub mod monitoring;
pub mod pipeline;
pub mod plot;
pub mod routes;
pub mod schedule;
pub mod search;
pub mod server;
pub mod store;
pub mod telemetry;
