//! Delivery guarantees with real processes: an `api` process, `worker`
//! processes, and a real redis-server, each test with its own.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod procs;

mod cli;
mod faults;
mod scaling;
mod upkeep;
