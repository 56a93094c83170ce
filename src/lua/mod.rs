//! Every Lua script gene-api runs, in one place: the sources sit beside this
//! file as `*.lua`, compiled in, and each [`Script`] is built once (its SHA1
//! is computed once, and EVALSHA finds it cached in Redis after first use).
//! A fragment that several scripts share is written once and prepended.

use std::sync::LazyLock;

use redis::Script;

const OWNER_CHECK: &str = include_str!("owner_check.lua");
const DATA_PARTS: &str = include_str!("data_parts.lua");
const ANNOUNCE: &str = include_str!("announce.lua");
const EMIT: &str = include_str!("emit.lua");
const RESET_JOB: &str = include_str!("reset_job.lua");
const BACKLOG: &str = include_str!("backlog.lua");
const STOP_STATE: &str = include_str!("stop_state.lua");
/// `submit_job(K, A)`, with the keys and arguments the scripts below pass it.
const SUBMIT: &str = include_str!("submit_job.lua");

/// A script made of shared fragments (in order) and its own body.
fn with(fragments: &[&str], body: &str) -> Script {
    let mut src = fragments.join("\n");
    src.push('\n');
    src.push_str(body);
    Script::new(&src)
}

fn after(head: &str, body: &str) -> Script {
    with(&[head], body)
}

/// Stores and announces a job record (optionally XACKs and schedules a
/// retry) while the consumer owns the entry.
pub static STORE_IF_OWNER: LazyLock<Script> = LazyLock::new(|| {
    with(
        &[EMIT, STOP_STATE, OWNER_CHECK],
        include_str!("store_if_owner.lua"),
    )
});
/// Records, indexes, queues and announces a new job, unless the queue is full.
pub static SUBMIT_JOB: LazyLock<Script> =
    LazyLock::new(|| with(&[EMIT, BACKLOG, SUBMIT], "return submit_job(KEYS, ARGV)"));
/// The same, once per Idempotency-Key: a repeat finds the first job.
pub static SUBMIT_ONCE: LazyLock<Script> =
    LazyLock::new(|| with(&[EMIT, BACKLOG, SUBMIT], include_str!("submit_once.lua")));
/// Claims a schedule's tick and queues its job (a submission as above), once
/// per tick however many replicas ask.
pub static SCHEDULE_TICK: LazyLock<Script> =
    LazyLock::new(|| with(&[EMIT, BACKLOG, SUBMIT], include_str!("schedule_tick.lua")));
/// Turns a job `running` for the consumer that owns its entry.
pub static START_JOB: LazyLock<Script> = LazyLock::new(|| {
    with(
        &[EMIT, STOP_STATE, OWNER_CHECK],
        include_str!("start_job.lua"),
    )
});
/// Cancels a `queued` or `retrying` job; asks a `running` one to stop.
pub static CANCEL_JOB: LazyLock<Script> =
    LazyLock::new(|| with(&[EMIT, STOP_STATE], include_str!("cancel_job.lua")));
/// A running job's safe point or point of no return.
pub static JOB_COMMIT: LazyLock<Script> =
    LazyLock::new(|| after(STOP_STATE, include_str!("job_commit.lua")));
/// Queues a `failed` or `cancelled` job again.
pub static RETRY_JOB: LazyLock<Script> =
    LazyLock::new(|| with(&[EMIT, RESET_JOB, BACKLOG], include_str!("retry_job.lua")));
/// Moves `retrying` jobs whose next run is due back onto the stream.
pub static PROMOTE_DUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("promote_due.lua")));
/// Puts a dead-lettered entry back on the stream.
pub static REQUEUE_DEAD: LazyLock<Script> = LazyLock::new(|| {
    with(
        &[EMIT, RESET_JOB, BACKLOG],
        include_str!("requeue_dead.lua"),
    )
});
/// Refreshes the idle time of an entry its consumer is still running.
pub static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| after(OWNER_CHECK, include_str!("heartbeat.lua")));
/// Swaps a staged release in, drops the oldest past the number kept, and
/// announces the change.
pub static SWAP_DATA: LazyLock<Script> =
    LazyLock::new(|| with(&[DATA_PARTS, ANNOUNCE], include_str!("swap_data.lua")));
/// Stores a PNG and evicts the oldest images past the bounds.
pub static STORE_IMAGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("store_image.lua")));
/// Removes one image and its bookkeeping.
pub static DELETE_IMAGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("delete_image.lua")));
/// Deletes every release and record, and announces it.
pub static DELETE_DATA: LazyLock<Script> =
    LazyLock::new(|| with(&[DATA_PARTS, ANNOUNCE], include_str!("delete_data.lua")));
/// One part of the live release.
pub static CURRENT_PART: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("current_part.lua")));
/// Takes, renews or gives back the lock one load at a time holds.
pub static DATA_LOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("data_lock.lua")));
/// The newest image with its job id.
pub static LATEST_IMAGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("latest_image.lua")));
/// Deletes every image.
pub static DELETE_IMAGES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("delete_images.lua")));
