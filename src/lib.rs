//! gene-api: the HGNC gene data set over HTTP, with Redis as the database and
//! a Redis Streams job pipeline for everything that changes state.
//!
//! A map of the crate:
//! - [`config`]: typed settings from `config/`, `GENE_API__*` and `REDIS_IP`.
//! - [`app`]: builds the process for a [`app::Mode`] (HTTP ingress, workers or
//!   both) and runs it until one cancellation token says stop.
//! - [`routes`]: the warp filters and handlers; [`error`]: the one error type
//!   of the HTTP edge and its JSON shape.
//! - [`pipeline`]: job submission, consumer-group workers, reclaiming dead
//!   consumers' entries, dead-lettering and stream trimming; [`jobs`]: job
//!   records and commands.
//! - [`genes`]: HGNC ids, fetching and parsing the source, and the atomic
//!   swap of a new data set (db 0); [`images`]: PNGs in db 1; [`plot`]: the
//!   charts; [`store`]: connections and the key layout.
//! - [`telemetry`] sets up logging.

pub mod app;
pub mod config;
pub mod error;
pub mod genes;
pub mod images;
pub mod jobs;
pub mod pipeline;
pub mod plot;
pub mod routes;
pub mod store;
pub mod telemetry;
