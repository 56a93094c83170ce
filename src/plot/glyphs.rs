//! A process-wide cache of rasterised glyphs.
//!
//! Charts print the same few dozen characters at a handful of sizes over and
//! over, and outlining a glyph (parsing its TrueType contours) and
//! rasterising it cost far more than drawing it. So each (style, size,
//! character) is outlined and rasterised once per process; layout reads its
//! metrics and drawing blends its coverage bitmap from here.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, PoisonError, RwLock};

use ab_glyph::{Font, FontRef, GlyphId, ScaleFont};

/// Blend weight meaning "fully covered": the pixel takes the text colour.
pub(super) const OPAQUE: u8 = u8::MAX;

/// Above this many cached glyphs the cache is emptied before the next insert.
/// Sizes scale with the image, so a long-running process could otherwise
/// collect every size of every character; a chart uses well under a hundred.
const MAX_GLYPHS: usize = 4096;
/// Above this many bytes of coverage bitmaps the cache is emptied too: big
/// images have big glyphs (a 104 px title glyph is ~8 KB).
const MAX_BYTES: usize = 16 << 20;

/// One character in one style at one pixel size: its metrics and, if it has
/// an outline, its anti-aliased bitmap.
pub(super) struct Glyph {
    /// The font's glyph for the character, for kerning.
    pub id: GlyphId,
    /// Horizontal advance in pixels.
    pub advance: f32,
    /// Whether the glyph has an outline (a space has none and is not drawn).
    pub inked: bool,
    /// Left edge of the bitmap relative to the pen position, in whole pixels.
    pub left: i32,
    /// Top edge of the bitmap relative to the baseline (negative above it).
    pub top: i32,
    /// Bitmap width in pixels.
    pub width: usize,
    /// Row-major blend weights, `width` per row: `w` in 0..=254
    /// mixes `w/256` of the text colour into the pixel, [`OPAQUE`] replaces
    /// it.
    pub coverage: Box<[u8]>,
}

impl Glyph {
    /// Outlines and rasterises `c` of `font` at `px` pixels (ab_glyph's
    /// pixel height), at pen position 0.
    fn rasterise(font: &FontRef<'static>, px: f32, c: char) -> Self {
        let scaled = font.as_scaled(px);
        let id = scaled.glyph_id(c);
        let advance = scaled.h_advance(id);
        let Some(outline) = scaled.outline_glyph(id.with_scale(scaled.scale())) else {
            return Self {
                id,
                advance,
                inked: false,
                left: 0,
                top: 0,
                width: 0,
                coverage: Box::new([]),
            };
        };
        let bounds = outline.px_bounds();
        let (width, height) = (bounds.width() as usize, bounds.height() as usize);
        let mut coverage = vec![0u8; width * height];
        outline.draw(|x, y, c| {
            if let Some(w) = coverage.get_mut(y as usize * width + x as usize) {
                *w = weight(c);
            }
        });
        Self {
            id,
            advance,
            inked: true,
            left: bounds.min.x as i32,
            top: bounds.min.y as i32,
            width,
            coverage: coverage.into_boxed_slice(),
        }
    }
}

/// The blend weight of a coverage value, quantised exactly as plotters'
/// bitmap backend quantises a pixel's alpha (the canvas hands it back to
/// plotters as alpha `w / 256`): nearly full is opaque, else `floor(256 a)`.
fn weight(coverage: f32) -> u8 {
    let alpha = f64::from(coverage);
    if alpha >= 1.0 - 1.0 / 256.0 {
        OPAQUE
    } else if alpha <= 0.0 {
        0
    } else {
        // Below 255/256, so at most 254: never mistaken for OPAQUE.
        (alpha * 256.0).floor() as u8
    }
}

/// (bold, pixel size as f32 bits, character).
type Key = (bool, u32, char);

/// FxHash-style hashing: the keys are tiny and not attacker-chosen in any
/// useful way (the cache is bounded anyway), so SipHash's cost buys nothing.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

struct Cache {
    glyphs: HashMap<Key, Arc<Glyph>, BuildHasherDefault<KeyHasher>>,
    /// Total length of the cached coverage bitmaps.
    bytes: usize,
}

static CACHE: RwLock<Cache> = RwLock::new(Cache {
    glyphs: HashMap::with_hasher(BuildHasherDefault::new()),
    bytes: 0,
});

/// The glyphs of `text`'s characters, in order, in `font` (`bold` says which
/// of the two it is) at `px` pixels; from the cache, rasterising and caching
/// the ones not seen before.
pub(super) fn line(font: &FontRef<'static>, bold: bool, px: f32, text: &str) -> Vec<Arc<Glyph>> {
    let key = |c| (bold, px.to_bits(), c);
    let mut found: Vec<Option<Arc<Glyph>>> = Vec::with_capacity(text.len());
    {
        // A panic while the lock was held cannot leave the map inconsistent
        // (inserts are single calls), so a poisoned lock is still usable.
        let cache = CACHE.read().unwrap_or_else(PoisonError::into_inner);
        found.extend(text.chars().map(|c| cache.glyphs.get(&key(c)).cloned()));
    }
    if found.iter().all(Option::is_some) {
        return found.into_iter().flatten().collect();
    }
    // Rasterise outside the lock, so other renders are not held up.
    let new: Vec<(char, Arc<Glyph>)> = text
        .chars()
        .zip(&found)
        .filter(|(_, g)| g.is_none())
        .map(|(c, _)| (c, Arc::new(Glyph::rasterise(font, px, c))))
        .collect();
    {
        let mut cache = CACHE.write().unwrap_or_else(PoisonError::into_inner);
        for (c, glyph) in &new {
            if cache.glyphs.len() >= MAX_GLYPHS || cache.bytes >= MAX_BYTES {
                cache.glyphs.clear();
                cache.bytes = 0;
            }
            let bytes = glyph.coverage.len();
            if let Some(old) = cache.glyphs.insert(key(*c), Arc::clone(glyph)) {
                cache.bytes -= old.coverage.len();
            }
            cache.bytes += bytes;
        }
    }
    let mut new = new.into_iter().map(|(_, g)| g);
    found
        .into_iter()
        .filter_map(|g| g.or_else(|| new.next()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_match_plotters_alpha_quantisation() {
        assert_eq!(weight(0.0), 0);
        assert_eq!(weight(-0.5), 0);
        assert_eq!(weight(0.5), 128);
        assert_eq!(weight(254.99 / 256.0), 254);
        assert_eq!(weight(255.0 / 256.0), OPAQUE);
        assert_eq!(weight(1.5), OPAQUE);
    }
}
