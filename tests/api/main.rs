//! Integration tests: the real application against a real redis-server.
mod cors;
mod data;
mod errors;
mod finding;
mod helpers;
mod hgnc;
mod image;
mod jobs;
mod memory;
mod operate;
mod redis_security;
mod releases;
mod resilience;
mod security;
#[allow(dead_code)]
mod sse;
