//! Charts of the HGNC data set, rendered as PNG.
//!
//! [`StatsBuilder`] condenses the records into a small [`PlotStats`] once, when
//! a data set is loaded; [`render_png`] draws one [`PlotKind`] of chart from
//! those stats at an [`ImageSize`].
//!
//! Text is drawn with DejaVu Sans (regular and bold), embedded in the binary
//! and rasterised with `ab_glyph`, so rendering needs no fontconfig and no
//! system fonts; each glyph is rasterised once per process and cached. Charts
//! are drawn with plotters' bitmap backend into an in-memory RGB buffer (bars,
//! axes and the cached glyphs' pixels alike), which the `png` crate encodes
//! (fast deflate, no `image` crate).

mod cache;
mod draw;
mod glyphs;
mod stats;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use ab_glyph::FontRef;
use serde::{Deserialize, Serialize};

pub use cache::{CacheUsage, RenderCache, RenderKey};
pub use stats::{chromosome_of, PlotStats, StatsBuilder};

/// Which chart to draw. Serialized, parsed and displayed in snake_case:
/// `"locus_group"`, `"chromosome"`, `"approval_year"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlotKind {
    /// Bar chart of genes per locus group, with the count and share on each bar.
    LocusGroup,
    /// Bar chart of genes per chromosome (1..22, X, Y, MT), saying how many
    /// genes have no usable location.
    Chromosome,
    /// Bar chart of genes approved per year, saying how many have no date.
    ApprovalYear,
}

impl PlotKind {
    /// Every kind, in the order the charts are usually listed.
    pub const ALL: [PlotKind; 3] = [
        PlotKind::LocusGroup,
        PlotKind::Chromosome,
        PlotKind::ApprovalYear,
    ];

    /// The snake_case name, the same as serde's and `Display`'s.
    pub fn as_str(self) -> &'static str {
        match self {
            PlotKind::LocusGroup => "locus_group",
            PlotKind::Chromosome => "chromosome",
            PlotKind::ApprovalYear => "approval_year",
        }
    }
}

impl Default for PlotKind {
    /// `LocusGroup`.
    fn default() -> Self {
        PlotKind::LocusGroup
    }
}

impl FromStr for PlotKind {
    type Err = PlotParamError;

    /// Parses the exact snake_case name; the error lists the allowed names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PlotKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| {
                let allowed: Vec<&str> = PlotKind::ALL.iter().map(|k| k.as_str()).collect();
                PlotParamError(format!(
                    "unknown plot kind {s:?}; expected one of: {}",
                    allowed.join(", ")
                ))
            })
    }
}

impl fmt::Display for PlotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Image size in pixels, each side in `MIN..=MAX` (200..=4000); the default
/// is 1000 x 600, a 5:3 landscape that suits bar charts of up to ~40 bars.
///
/// Serialized as `{"width": W, "height": H}`. Deserializing validates the
/// range like [`ImageSize::new`]; a missing side takes its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "ImageSizeFields")]
pub struct ImageSize {
    /// Pixels, 200 to 4000.
    #[schema(minimum = 200, maximum = 4000)]
    width: u32,
    /// Pixels, 200 to 4000.
    #[schema(minimum = 200, maximum = 4000)]
    height: u32,
}

impl ImageSize {
    /// Smallest allowed width or height.
    pub const MIN: u32 = 200;
    /// Largest allowed width or height.
    pub const MAX: u32 = 4000;
    const DEFAULT_WIDTH: u32 = 1000;
    const DEFAULT_HEIGHT: u32 = 600;

    /// A size of `width` x `height` pixels, or an error saying the allowed
    /// range when either side is outside `MIN..=MAX`.
    pub fn new(width: u32, height: u32) -> Result<Self, PlotParamError> {
        let range = Self::MIN..=Self::MAX;
        if range.contains(&width) && range.contains(&height) {
            Ok(Self { width, height })
        } else {
            Err(PlotParamError(format!(
                "image size {width}x{height} is out of range: width and height must each be \
                 between {} and {} pixels",
                Self::MIN,
                Self::MAX
            )))
        }
    }

    /// Width in pixels.
    pub fn width(self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(self) -> u32 {
        self.height
    }
}

impl Default for ImageSize {
    /// 1000 x 600 pixels.
    fn default() -> Self {
        Self {
            width: Self::DEFAULT_WIDTH,
            height: Self::DEFAULT_HEIGHT,
        }
    }
}

/// The unvalidated serde form of [`ImageSize`].
#[derive(Deserialize)]
struct ImageSizeFields {
    #[serde(default = "default_width")]
    width: u32,
    #[serde(default = "default_height")]
    height: u32,
}

fn default_width() -> u32 {
    ImageSize::DEFAULT_WIDTH
}

fn default_height() -> u32 {
    ImageSize::DEFAULT_HEIGHT
}

impl TryFrom<ImageSizeFields> for ImageSize {
    type Error = PlotParamError;

    fn try_from(fields: ImageSizeFields) -> Result<Self, Self::Error> {
        ImageSize::new(fields.width, fields.height)
    }
}

/// A user-facing explanation of a bad plot parameter; the HTTP layer answers
/// 400 with its `to_string()`, which is exactly the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlotParamError(pub String);

/// Failure to render a chart. Not expected in practice: it means the embedded
/// font did not load, drawing failed, or PNG encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The embedded DejaVu Sans font could not be parsed.
    #[error("the embedded chart font could not be loaded")]
    Font,
    /// Drawing the chart failed (an image buffer of the wrong size).
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    /// The bitmap could not be encoded as PNG.
    #[error("encoding the chart as PNG failed: {0}")]
    Encode(String),
}

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static DEJAVU_SANS_BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// The embedded fonts, parsed for the glyph metrics `draw` lays text out with.
struct EmbeddedFonts {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

/// Parses the embedded fonts once per process; later calls return the first
/// outcome.
fn embedded_fonts() -> Result<&'static EmbeddedFonts, PlotError> {
    static FONTS: OnceLock<Option<EmbeddedFonts>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let fonts = EmbeddedFonts {
                regular: FontRef::try_from_slice(DEJAVU_SANS).ok()?,
                bold: FontRef::try_from_slice(DEJAVU_SANS_BOLD).ok()?,
            };
            Some(fonts)
        })
        .as_ref()
        .ok_or(PlotError::Font)
}

/// Renders one chart of `stats` as a `size` PNG (8-bit RGB).
///
/// Every chart has a title giving the total number of genes, labelled axes
/// and text scaled to the image; stats with no genes give a chart saying there
/// is no data. CPU-bound and blocking (a few milliseconds at the default
/// size): async callers should run it in `spawn_blocking`.
pub fn render_png(
    kind: PlotKind,
    stats: &PlotStats,
    size: ImageSize,
) -> Result<Vec<u8>, PlotError> {
    let fonts = embedded_fonts()?;
    let (w, h) = (size.width(), size.height());
    // Starts white, the chart background. Both sides are at most 4000, so
    // the size cannot overflow.
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    draw::draw_chart(kind, stats, fonts, &mut rgb, w, h)?;
    encode_png(&rgb, w, h)
}

/// Encodes an RGB buffer as PNG with the `png` crate's fast (fdeflate)
/// compression, which suits flat-coloured charts.
fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, PlotError> {
    let encode_err = |e: png::EncodingError| PlotError::Encode(e.to_string());
    let mut out = Vec::with_capacity(rgb.len() / 16);
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    // Paeth on every row: files as small as the adaptive choice (within 5%)
    // for these flat charts, in ~10% less time (measured at 1000x600).
    encoder.set_filter(png::Filter::Paeth);
    let mut writer = encoder.write_header().map_err(encode_err)?;
    writer.write_image_data(rgb).map_err(encode_err)?;
    writer.finish().map_err(encode_err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_displays_and_serializes_by_name() {
        for kind in PlotKind::ALL {
            assert_eq!(kind.as_str().parse::<PlotKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            let json = serde_json::to_string(&kind).expect("serialize kind");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<PlotKind>(&json).expect("kind"), kind);
        }
        assert_eq!(PlotKind::default(), PlotKind::LocusGroup);
    }

    #[test]
    fn unknown_kind_error_lists_allowed_kinds() {
        for bad in ["", "pie", "Chromosome", "locus-group"] {
            let err = bad.parse::<PlotKind>().expect_err("must not parse");
            let msg = err.to_string();
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            for kind in PlotKind::ALL {
                assert!(msg.contains(kind.as_str()), "{msg}");
            }
        }
    }

    #[test]
    fn image_size_range_is_enforced() {
        for (w, h) in [
            (199, 600),
            (1000, 199),
            (4001, 600),
            (1000, 4001),
            (0, 0),
            (0, 600),
        ] {
            let err = ImageSize::new(w, h).expect_err("out of range");
            let msg = err.to_string();
            assert!(msg.contains("200") && msg.contains("4000"), "{msg}");
        }
        for (w, h) in [(200, 200), (4000, 4000), (200, 4000), (1000, 600)] {
            let size = ImageSize::new(w, h).expect("in range");
            assert_eq!((size.width(), size.height()), (w, h));
        }
        let default = ImageSize::default();
        assert_eq!((default.width(), default.height()), (1000, 600));
    }

    #[test]
    fn image_size_serde_round_trip_and_validation() {
        let size = ImageSize::new(640, 480).expect("valid");
        let json = serde_json::to_string(&size).expect("serialize");
        assert_eq!(json, r#"{"width":640,"height":480}"#);
        assert_eq!(
            serde_json::from_str::<ImageSize>(&json).expect("valid"),
            size
        );

        for bad in [
            r#"{"width":199,"height":480}"#,
            r#"{"width":640,"height":4001}"#,
            r#"{"width":0,"height":0}"#,
        ] {
            let err = serde_json::from_str::<ImageSize>(bad).expect_err("out of range");
            assert!(err.to_string().contains("between 200 and 4000"), "{err}");
        }
        assert_eq!(
            serde_json::from_str::<ImageSize>(r#"{"width":800}"#).expect("valid"),
            ImageSize::new(800, 600).expect("valid")
        );
        assert_eq!(
            serde_json::from_str::<ImageSize>("{}").expect("valid"),
            ImageSize::default()
        );
    }

    #[test]
    fn plot_param_error_message_is_the_text() {
        assert_eq!(PlotParamError("bad".into()).to_string(), "bad");
    }

    fn sample_stats() -> PlotStats {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/hgnc_sample.json"
        ))
        .expect("read sample");
        let json: serde_json::Value = serde_json::from_str(&text).expect("parse sample");
        let mut b = StatsBuilder::new();
        for doc in json["response"]["docs"].as_array().expect("docs") {
            b.add(
                doc["locus_group"].as_str(),
                doc["location"].as_str(),
                doc["date_approved_reserved"].as_str(),
            );
        }
        b.finish()
    }

    /// Decodes a PNG, checking it is 8-bit RGB; returns (width, height, pixels).
    fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().expect("PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
        let info = reader.next_frame(&mut buf).expect("PNG frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    /// Distinct colours in the whole image (antialiased text gives many), and
    /// the share of non-white pixels in its middle 60% x 60% (the plot area).
    fn ink(w: u32, h: u32, rgb: &[u8]) -> (usize, f64) {
        let mut seen = vec![false; 1 << 24];
        let mut colours = 0;
        for px in rgb.chunks_exact(3) {
            let key = usize::from(px[0]) << 16 | usize::from(px[1]) << 8 | usize::from(px[2]);
            if !seen[key] {
                seen[key] = true;
                colours += 1;
            }
        }
        let (mut inked, mut all) = (0usize, 0usize);
        for y in h / 5..h * 4 / 5 {
            for x in w / 5..w * 4 / 5 {
                let i = (y as usize * w as usize + x as usize) * 3;
                all += 1;
                if rgb[i..i + 3] != [255, 255, 255] {
                    inked += 1;
                }
            }
        }
        (colours, inked as f64 / all as f64)
    }

    /// Renders `kind` from the sample at the default, minimum, maximum and
    /// two lopsided sizes, checking each PNG's size and that it has content.
    fn check_renders(kind: PlotKind) {
        let stats = sample_stats();
        let sizes = [
            ImageSize::default(),
            ImageSize::new(ImageSize::MIN, ImageSize::MIN).expect("min"),
            ImageSize::new(ImageSize::MAX, ImageSize::MAX).expect("max"),
            ImageSize::new(ImageSize::MAX, ImageSize::MIN).expect("wide"),
            ImageSize::new(ImageSize::MIN, ImageSize::MAX).expect("tall"),
        ];
        for size in sizes {
            let png_bytes = render_png(kind, &stats, size).expect("render");
            let (w, h, rgb) = decode(&png_bytes);
            assert_eq!((w, h), (size.width(), size.height()), "{kind} {size:?}");
            let (colours, inked) = ink(w, h, &rgb);
            assert!(colours >= 16, "{kind} {size:?}: only {colours} colours");
            assert!(inked > 0.05, "{kind} {size:?}: only {inked:.3} inked");
        }
    }

    // One test per kind, so that the (slow in debug builds) 4000 x 4000
    // renders run in parallel.
    #[test]
    fn render_png_locus_group_at_default_min_and_max_size() {
        check_renders(PlotKind::LocusGroup);
    }

    #[test]
    fn render_png_chromosome_at_default_min_and_max_size() {
        check_renders(PlotKind::Chromosome);
    }

    #[test]
    fn render_png_approval_year_at_default_min_and_max_size() {
        check_renders(PlotKind::ApprovalYear);
    }

    #[test]
    fn render_png_of_empty_stats_says_no_data() {
        let empty = PlotStats::default();
        for kind in PlotKind::ALL {
            for size in [ImageSize::default(), ImageSize::new(200, 200).expect("min")] {
                let png_bytes = render_png(kind, &empty, size).expect("render empty");
                let (w, h, rgb) = decode(&png_bytes);
                assert_eq!((w, h), (size.width(), size.height()));
                // Title and message are drawn: some dark pixels exist.
                assert!(rgb.chunks(3).any(|p| p.iter().all(|&c| c < 100)), "{kind}");
            }
        }
    }

    #[test]
    fn render_png_copes_with_odd_stats() {
        // Placed and dated counts of zero with a non-zero total, an unknown
        // chromosome name, a single year and a huge count.
        let odd = PlotStats {
            total: u64::MAX,
            locus_group: vec![("a very long locus group name indeed".into(), u64::MAX)],
            chromosome: vec![("7".into(), 3), ("chrUn".into(), 2)],
            chromosome_unplaced: 5,
            approval_year: vec![(1, 1), (9999, 2)],
            approval_year_missing: 0,
        };
        let no_places = PlotStats {
            total: 10,
            locus_group: vec![("other".into(), 10)],
            chromosome_unplaced: 10,
            approval_year_missing: 10,
            ..PlotStats::default()
        };
        for stats in [odd, no_places] {
            for kind in PlotKind::ALL {
                for size in [ImageSize::default(), ImageSize::new(200, 200).expect("min")] {
                    let png_bytes = render_png(kind, &stats, size).expect("render odd");
                    assert_eq!(decode(&png_bytes).0, size.width());
                }
            }
        }
    }

    #[test]
    fn render_png_is_deterministic() {
        let stats = sample_stats();
        let a = render_png(PlotKind::Chromosome, &stats, ImageSize::default()).expect("a");
        let b = render_png(PlotKind::Chromosome, &stats, ImageSize::default()).expect("b");
        assert_eq!(a, b);
    }
}
