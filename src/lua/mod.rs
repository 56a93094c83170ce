//! Every Lua script gene-api runs, in one place: the sources sit beside this
//! file as `*.lua`, compiled in, and each [`Script`] is built once (its SHA1
//! is computed once, and EVALSHA finds it cached in Redis after first use).
//! A fragment that several scripts share is written once and prepended.

use std::sync::LazyLock;

use redis::Script;

const OWNER_CHECK: &str = include_str!("owner_check.lua");
const DATA_PARTS: &str = include_str!("data_parts.lua");

fn after(head: &str, body: &str) -> Script {
    Script::new(&format!("{head}\n{body}"))
}

/// Stores a job record, and optionally XACKs, while the consumer owns the entry.
pub static STORE_IF_OWNER: LazyLock<Script> =
    LazyLock::new(|| after(OWNER_CHECK, include_str!("store_if_owner.lua")));
/// Refreshes the idle time of an entry its consumer is still running.
pub static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| after(OWNER_CHECK, include_str!("heartbeat.lua")));
/// Swaps a staged data-set version in.
pub static SWAP_DATA: LazyLock<Script> =
    LazyLock::new(|| after(DATA_PARTS, include_str!("swap_data.lua")));
/// Deletes the live data set.
pub static DELETE_DATA: LazyLock<Script> =
    LazyLock::new(|| after(DATA_PARTS, include_str!("delete_data.lua")));
/// One part of the live data-set version.
pub static CURRENT_PART: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("current_part.lua")));
/// The live data-set version and its blob's length.
pub static CURRENT_BLOB: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("current_blob.lua")));
/// The newest image with its job id.
pub static LATEST_IMAGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("latest_image.lua")));
/// Deletes every image.
pub static DELETE_IMAGES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("delete_images.lua")));
