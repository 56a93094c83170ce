//! PNG images in db 1: `<p>:image:<job id>` holds the bytes, `<p>:images`
//! orders the ids by creation time (for "the most recent image").

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::{AsyncCommands, RedisResult};
use uuid::Uuid;

use crate::lua;
use crate::store::{Conn, Keys};

/// Stores a plot job's image. Idempotent: a rerun overwrites the same key.
pub async fn store(conn: &mut Conn, keys: &Keys, job_id: &Uuid, png: Vec<u8>) -> RedisResult<()> {
    let score = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    redis::pipe()
        .atomic()
        .set(keys.image(job_id), png)
        .ignore()
        .zadd(keys.images_index(), job_id.to_string(), score)
        .ignore()
        .query_async(conn)
        .await
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
    let (removed, _): (u64, u64) = redis::pipe()
        .atomic()
        .del(keys.image(job_id))
        .zrem(keys.images_index(), job_id.to_string())
        .query_async(conn)
        .await?;
    Ok(removed > 0)
}

/// Removes every image; returns how many there were.
pub async fn delete_all(conn: &mut Conn, keys: &Keys) -> RedisResult<u64> {
    lua::DELETE_IMAGES
        .key(keys.images_index())
        .arg(keys.image_prefix())
        .invoke_async(conn)
        .await
}
