//! Delivery guarantees with real processes: an `api` process, `worker`
//! processes, and a real redis-server, each test with its own.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod procs;
mod releases;
#[allow(dead_code)]
#[path = "../api/sse.rs"]
mod sse;

mod cli;
mod control;
mod failover;
mod faults;
mod ops;
mod scaling;
mod schedule;
mod upkeep;
