//! Rendered charts, kept per process by what determines them.
//!
//! A chart is a pure function of the stored statistics' bytes, its kind and
//! its size: two plot jobs that agree on all three draw the same PNG, byte for
//! byte. So the key is the SHA-256 of the statistics as stored (not the data
//! set's version name: a load that is run again under the same job id may
//! store other statistics) with the kind and the size. A new load changes the
//! statistics, so its charts are new keys; the old ones age out.
//!
//! Bounded by bytes, oldest inserted first out. Two workers that miss the
//! same key at once both render it; the second insert is a no-op.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{ImageSize, PlotKind};

/// What a rendered chart depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RenderKey {
    stats: [u8; 32],
    kind: PlotKind,
    size: (u32, u32),
}

impl RenderKey {
    /// The key of `kind` at `size` drawn from the statistics stored as `stats`.
    pub fn new(stats: &[u8], kind: PlotKind, size: ImageSize) -> Self {
        Self {
            stats: Sha256::digest(stats).into(),
            kind,
            size: (size.width(), size.height()),
        }
    }
}

/// Rendered PNGs by [`RenderKey`], at most `max_bytes` of them.
pub struct RenderCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    pngs: HashMap<RenderKey, Bytes>,
    /// Insertion order, for eviction.
    order: VecDeque<RenderKey>,
    usage: CacheUsage,
}

/// What a [`RenderCache`] holds and how often it was asked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheUsage {
    pub charts: usize,
    pub bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

impl RenderCache {
    /// A cache of at most `max_bytes` of PNGs; 0 keeps nothing.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::default(),
        }
    }

    pub fn get(&self, key: &RenderKey) -> Option<Bytes> {
        let mut inner = self.lock();
        let png = inner.pngs.get(key).cloned();
        match png {
            Some(_) => inner.usage.hits += 1,
            None => inner.usage.misses += 1,
        }
        png
    }

    /// Keeps `png` under `key`. A PNG larger than a quarter of the bound is
    /// not kept: one huge chart must not push out every small one.
    pub fn insert(&self, key: RenderKey, png: Bytes) {
        if png.len() > self.max_bytes / 4 {
            return;
        }
        let mut inner = self.lock();
        if inner.pngs.contains_key(&key) {
            return;
        }
        inner.usage.bytes += png.len();
        inner.pngs.insert(key, png);
        inner.order.push_back(key);
        while inner.usage.bytes > self.max_bytes {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.pngs.remove(&old) {
                inner.usage.bytes -= gone.len();
            }
        }
        inner.usage.charts = inner.pngs.len();
    }

    /// What is kept, and the hits and misses so far.
    pub fn usage(&self) -> CacheUsage {
        self.lock().usage
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is consistent after every statement that can panic, so a
        // poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(w: u32, h: u32) -> ImageSize {
        ImageSize::new(w, h).unwrap()
    }

    fn kept(cache: &RenderCache) -> (usize, usize) {
        let u = cache.usage();
        (u.charts, u.bytes)
    }

    #[test]
    fn keys_differ_by_stats_kind_and_size() {
        let k = RenderKey::new(b"stats", PlotKind::Chromosome, size(200, 200));
        assert_eq!(
            k,
            RenderKey::new(b"stats", PlotKind::Chromosome, size(200, 200))
        );
        assert_ne!(
            k,
            RenderKey::new(b"stats2", PlotKind::Chromosome, size(200, 200))
        );
        assert_ne!(
            k,
            RenderKey::new(b"stats", PlotKind::LocusGroup, size(200, 200))
        );
        assert_ne!(
            k,
            RenderKey::new(b"stats", PlotKind::Chromosome, size(200, 201))
        );
    }

    #[test]
    fn keeps_within_its_bytes_oldest_out_first() {
        let cache = RenderCache::new(100);
        let key = |i: u32| RenderKey::new(&i.to_le_bytes(), PlotKind::Chromosome, size(200, 200));
        for i in 0..4 {
            cache.insert(key(i), Bytes::from(vec![i as u8; 25]));
        }
        assert_eq!(kept(&cache), (4, 100));
        assert_eq!(cache.get(&key(2)).unwrap(), Bytes::from(vec![2u8; 25]));
        // The fifth pushes out the first.
        cache.insert(key(4), Bytes::from(vec![4u8; 25]));
        assert_eq!(kept(&cache), (4, 100));
        assert!(cache.get(&key(0)).is_none());
        assert!(cache.get(&key(1)).is_some());
        let u = cache.usage();
        assert_eq!((u.hits, u.misses), (2, 1));
        // The same key again changes nothing.
        cache.insert(key(4), Bytes::from(vec![9u8; 25]));
        assert_eq!(cache.get(&key(4)).unwrap()[0], 4);
        assert_eq!(kept(&cache), (4, 100));
        // Over a quarter of the bound: not kept, nothing pushed out.
        cache.insert(key(5), Bytes::from(vec![5u8; 26]));
        assert!(cache.get(&key(5)).is_none());
        assert_eq!(kept(&cache), (4, 100));
        // A bound of 0 keeps nothing.
        let none = RenderCache::new(0);
        none.insert(key(0), Bytes::from_static(b"png"));
        assert_eq!(kept(&none), (0, 0));
    }
}
