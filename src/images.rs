//! PNG images in db 1: `<p>:image:<job id>` holds the bytes, `<p>:images`
//! orders the ids by creation time (for "the most recent image" and for
//! eviction), `<p>:images:sizes` and `<p>:images:bytes` count the bytes kept.
//! The images stay within `images.max_count` and `images.max_bytes`: storing
//! one past a bound removes the oldest (see `src/lua/store_image.lua`).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::{AsyncCommands, RedisResult};
use uuid::Uuid;

use crate::config::ImageSettings;
use crate::lua;
use crate::store::{Conn, Keys};

/// Stores a plot job's image (a rerun overwrites the same key) and returns
/// the ids of the images evicted to stay within the bounds.
///
/// One MULTI: a plain SET of the bytes, then the script that books them and
/// evicts. The PNG stays out of Lua (see `src/lua/store_image.lua`), and the
/// MULTI keeps image and bookkeeping together.
pub async fn store(
    conn: &mut Conn,
    keys: &Keys,
    job_id: &Uuid,
    png: &Bytes,
    bounds: &ImageSettings,
) -> RedisResult<Vec<String>> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut book = lua::STORE_IMAGE.prepare_invoke();
    book.key(keys.image(job_id))
        .key(keys.images_index())
        .key(keys.image_sizes())
        .key(keys.image_bytes())
        .arg(job_id.to_string())
        .arg(png.len())
        .arg(now_ms)
        .arg(bounds.max_count)
        .arg(bounds.max_bytes)
        .arg(keys.image_prefix());
    let mut set = redis::cmd("SET");
    set.arg(keys.image(job_id)).arg(png.as_ref());
    if !bounds.ttl.is_zero() {
        set.arg("EX").arg(bounds.ttl.as_secs());
    }
    let mut tx = redis::pipe();
    tx.atomic().add_command(set).ignore().invoke_script(&book);
    match tx.query_async::<(Vec<String>,)>(conn).await {
        Ok((evicted,)) => Ok(evicted),
        // Redis restarted (or its scripts were flushed) since the script was
        // last loaded: the SET went through, the booking did not. Load it and
        // run both again; the SET overwrites the same bytes.
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            lua::STORE_IMAGE.load_async(conn).await?;
            let (evicted,): (Vec<String>,) = tx.query_async(conn).await?;
            Ok(evicted)
        }
        Err(e) => Err(e),
    }
}

/// How many images are kept and their bytes.
pub async fn usage(conn: &mut Conn, keys: &Keys) -> RedisResult<(u64, u64)> {
    let (count, bytes): (u64, Option<u64>) = redis::pipe()
        .zcard(keys.images_index())
        .get(keys.image_bytes())
        .query_async(conn)
        .await?;
    Ok((count, bytes.unwrap_or(0)))
}

/// One job's image.
pub async fn get(conn: &mut Conn, keys: &Keys, job_id: &Uuid) -> RedisResult<Option<Bytes>> {
    let v: Option<Vec<u8>> = conn.get(keys.image(job_id)).await?;
    Ok(v.map(Bytes::from))
}

/// The most recent image and its job id, in one round trip.
pub async fn latest(conn: &mut Conn, keys: &Keys) -> RedisResult<Option<(String, Bytes)>> {
    let reply: Option<(String, Vec<u8>)> = lua::LATEST_IMAGE
        .key(keys.images_index())
        .arg(keys.image_prefix())
        .invoke_async(conn)
        .await?;
    Ok(reply.map(|(id, png)| (id, Bytes::from(png))))
}

/// Removes one image; true when it existed.
pub async fn delete(conn: &mut Conn, keys: &Keys, job_id: &Uuid) -> RedisResult<bool> {
    let removed: u64 = lua::DELETE_IMAGE
        .key(keys.image(job_id))
        .key(keys.images_index())
        .key(keys.image_sizes())
        .key(keys.image_bytes())
        .arg(job_id.to_string())
        .invoke_async(conn)
        .await?;
    Ok(removed > 0)
}

/// Removes every image; returns how many there were.
pub async fn delete_all(conn: &mut Conn, keys: &Keys) -> RedisResult<u64> {
    lua::DELETE_IMAGES
        .key(keys.images_index())
        .key(keys.image_sizes())
        .key(keys.image_bytes())
        .arg(keys.image_prefix())
        .invoke_async(conn)
        .await
}
