//! Chart layout and drawing on an RGB bitmap.
//!
//! The layout is computed here in pixels, so that every piece of text is
//! measured before it is placed:
//! label areas fit their labels exactly, category labels are thinned out or
//! wrapped when they would collide, and counts are printed on bars only where
//! they fit. Font sizes scale with the image and never drop below a legible
//! minimum.

use std::cell::RefCell;
use std::sync::Arc;

use ab_glyph::{Font, ScaleFont};
use plotters::coord::Shift;
use plotters::prelude::{BitMapBackend, Color, DrawingArea, IntoDrawingArea, Rectangle};
use plotters::style::RGBColor as PlottersColor;

use super::glyphs::{self, Glyph};
use super::stats::CHROMOSOMES;
use super::{EmbeddedFonts, PlotError, PlotKind, PlotStats};

/// An opaque RGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RGBColor(u8, u8, u8);

impl RGBColor {
    fn plotters(self) -> PlottersColor {
        PlottersColor(self.0, self.1, self.2)
    }
}

/// Where a line of text is anchored horizontally.
#[derive(Clone, Copy, Debug)]
enum HPos {
    Left,
    Center,
    Right,
}

const TITLE: RGBColor = RGBColor(33, 37, 41);
const SUBTITLE: RGBColor = RGBColor(88, 94, 102);
const LABEL: RGBColor = RGBColor(60, 64, 70);
const AXIS: RGBColor = RGBColor(110, 114, 120);
const GRID: RGBColor = RGBColor(228, 230, 234);
const BAR: RGBColor = RGBColor(78, 121, 167);
const EMPTY_FRAME: RGBColor = RGBColor(200, 203, 208);
/// Tableau 10, for one colour per locus group.
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(89, 161, 79),
    RGBColor(176, 122, 161),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(237, 201, 72),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];

/// Ink extents of DejaVu Sans above and below the baseline for the ASCII text
/// drawn here (letters, digits, parentheses), as a share of the font size.
/// The size is ab_glyph's pixel height (ascender to descender, 1.164 em).
const ASCENT: f64 = 0.66;
const DESCENT: f64 = 0.21;
/// Distance between the baselines of wrapped lines, as a share of font size.
const LINE_SPACING: f64 = 1.1;
/// Most steps on a count axis, however much room there is.
const MAX_TICKS: usize = 10;
/// Above this many years the year axis lists only the years present, instead
/// of one slot per calendar year (guards against absurd stored stats).
const MAX_YEAR_SPAN: i64 = 2000;

/// Draws the `kind` chart of `stats` into `buf`, a `w` x `h` RGB buffer that
/// is already white (the background). Fails only if `buf` is not exactly
/// `w * h * 3` bytes.
pub(super) fn draw_chart(
    kind: PlotKind,
    stats: &PlotStats,
    fonts: &'static EmbeddedFonts,
    buf: &mut [u8],
    w: u32,
    h: u32,
) -> Result<(), PlotError> {
    let (width, height) = (w as usize, h as usize);
    if width.checked_mul(height).and_then(|n| n.checked_mul(3)) != Some(buf.len()) {
        return Err(PlotError::Draw(format!(
            "a {w}x{h} RGB image needs {} bytes, not {}",
            u64::from(w) * u64::from(h) * 3,
            buf.len()
        )));
    }
    let area = BitMapBackend::with_buffer(buf, (w, h)).into_drawing_area();
    let canvas = Canvas::new(area, fonts, w, h);
    match kind {
        PlotKind::LocusGroup => locus_group_chart(&canvas, stats),
        PlotKind::Chromosome => chromosome_chart(&canvas, stats),
        PlotKind::ApprovalYear => approval_year_chart(&canvas, stats),
    }
    canvas.finish()
}

fn locus_group_chart(c: &Canvas<'_>, stats: &PlotStats) {
    let groups = stats.locus_group.len();
    let (title, subtitle) = if stats.total == 0 {
        (
            "HGNC genes by locus group".to_owned(),
            "The data set holds no genes".to_owned(),
        )
    } else {
        (
            format!("{} HGNC genes by locus group", thousands(stats.total)),
            if groups == 1 {
                "All genes are in one locus group".to_owned()
            } else {
                format!("Genes in each of the {groups} locus groups")
            },
        )
    };
    let top = c.header(&title, &subtitle);
    if groups == 0 {
        return c.empty_box(top, "No data to plot");
    }
    let bars: Vec<Bar> = stats
        .locus_group
        .iter()
        .zip(PALETTE.iter().cycle())
        .map(|((name, n), colour)| Bar {
            label: name.clone(),
            value: *n,
            colour: *colour,
        })
        .collect();
    c.horizontal_bars(top, &bars, stats.total, "Number of genes", "Locus group")
}

/// The words of a chart that covers only the genes with a usable value.
struct Coverage {
    /// "by chromosome"
    by: &'static str,
    /// "placed on a chromosome": said of all genes when none lacks the value.
    all_have: &'static str,
    /// "placed": said of the covered ones otherwise.
    some_have: &'static str,
    /// "without a location"
    lacking: &'static str,
    /// "has a usable location"
    none_has: &'static str,
}

/// Draws the title and a subtitle saying how many genes the chart covers.
/// Returns where the plot area starts, or None when there is nothing to plot
/// (the "no data" box is drawn instead).
fn coverage_header(
    c: &Canvas<'_>,
    total: u64,
    covered: u64,
    missing: u64,
    words: &Coverage,
) -> Option<i32> {
    let title = if total == 0 {
        format!("HGNC genes {}", words.by)
    } else {
        format!("{} HGNC genes {}", thousands(total), words.by)
    };
    let subtitle = if total == 0 {
        "The data set holds no genes".to_owned()
    } else if missing == 0 {
        format!("All {} genes {}", thousands(covered), words.all_have)
    } else {
        format!(
            "{} of {} genes {}; {} {}",
            thousands(covered),
            thousands(total),
            words.some_have,
            thousands(missing),
            words.lacking
        )
    };
    let top = c.header(&title, &subtitle);
    if covered > 0 {
        return Some(top);
    }
    let msg = if total == 0 {
        "No data to plot".to_owned()
    } else {
        format!("None of the {} genes {}", thousands(total), words.none_has)
    };
    c.empty_box(top, &msg);
    None
}

fn chromosome_chart(c: &Canvas<'_>, stats: &PlotStats) {
    let words = Coverage {
        by: "by chromosome",
        all_have: "placed on a chromosome",
        some_have: "placed",
        lacking: "without a location",
        none_has: "has a usable location",
    };
    let Some(top) = coverage_header(
        c,
        stats.total,
        stats.placed(),
        stats.chromosome_unplaced,
        &words,
    ) else {
        return;
    };
    // Every chromosome gets a slot, so the axis is the same for every data
    // set; names outside the standard set (only possible in hand-made
    // stats) follow at the end.
    let count_of = |name: &str| {
        stats
            .chromosome
            .iter()
            .filter(|(c, _)| c == name)
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let mut bars: Vec<(i64, Bar)> = CHROMOSOMES
        .iter()
        .map(|name| Bar {
            label: (*name).to_owned(),
            value: count_of(name),
            colour: BAR,
        })
        .chain(
            stats
                .chromosome
                .iter()
                .filter(|(name, _)| !CHROMOSOMES.contains(&name.as_str()))
                .map(|(name, n)| Bar {
                    label: name.clone(),
                    value: *n,
                    colour: BAR,
                }),
        )
        .enumerate()
        .map(|(i, bar)| (i as i64, bar))
        .collect();
    // Label keys are indexes: with a step of 2 the labels read 1, 3, 5, ...
    bars.shrink_to_fit();
    c.vertical_bars(
        top,
        &bars,
        &[1, 2, 3, 4, 5, 6, 8, 12, 25],
        true,
        "Chromosome",
        "Number of genes",
    )
}

fn approval_year_chart(c: &Canvas<'_>, stats: &PlotStats) {
    let words = Coverage {
        by: "by year of approval",
        all_have: "have an approval date",
        some_have: "dated",
        lacking: "without an approval date",
        none_has: "has a usable approval date",
    };
    let Some(top) = coverage_header(
        c,
        stats.total,
        stats.dated(),
        stats.approval_year_missing,
        &words,
    ) else {
        return;
    };
    let mut years: Vec<(i32, u64)> = stats.approval_year.clone();
    years.sort_unstable();
    let (first, last) = match (years.first(), years.last()) {
        (Some(f), Some(l)) => (i64::from(f.0), i64::from(l.0)),
        _ => return c.empty_box(top, "No data to plot"),
    };
    let bar = |year: i64, value: u64| {
        (
            year,
            Bar {
                label: year.to_string(),
                value,
                colour: BAR,
            },
        )
    };
    let bars: Vec<(i64, Bar)> = if last - first < MAX_YEAR_SPAN {
        // One slot per calendar year, so gaps show as empty slots.
        let mut counts = years.iter().peekable();
        (first..=last)
            .map(|year| {
                let mut n = 0;
                while let Some(&&(y, count)) = counts.peek() {
                    if i64::from(y) != year {
                        break;
                    }
                    n += count;
                    counts.next();
                }
                bar(year, n)
            })
            .collect()
    } else {
        years.iter().map(|&(y, n)| bar(i64::from(y), n)).collect()
    };
    c.vertical_bars(
        top,
        &bars,
        &[
            1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000,
        ],
        false,
        "Year approved",
        "Number of genes",
    )
}

/// One bar: its category label, its count and its colour.
struct Bar {
    label: String,
    value: u64,
    colour: RGBColor,
}

/// One line of text laid out: each inked glyph with the offset of its
/// bitmap's left edge from the start of the line, and the line's advance
/// width, kerning included.
struct Line {
    glyphs: Vec<(Arc<Glyph>, i32)>,
    width: f32,
}

/// Font sizes, spacing and drawing helpers for one image.
struct Canvas<'a> {
    /// plotters draws every pixel: rectangles as shapes, text as the cached
    /// glyph coverage, each pixel blended with plotters' own alpha blending.
    area: DrawingArea<BitMapBackend<'a>, Shift>,
    /// The first drawing error, reported once the chart is done (drawing on
    /// a bitmap in memory does not fail in practice).
    failure: RefCell<Option<String>>,
    fonts: &'static EmbeddedFonts,
    w: i32,
    h: i32,
    title_px: f64,
    subtitle_px: f64,
    tick_px: f64,
    axis_px: f64,
    value_px: f64,
    margin: i32,
    gap: i32,
    stroke: i32,
    tick_len: i32,
}

impl<'a> Canvas<'a> {
    fn new(
        area: DrawingArea<BitMapBackend<'a>, Shift>,
        fonts: &'static EmbeddedFonts,
        w: u32,
        h: u32,
    ) -> Self {
        // 1.0 at the default 1000 x 600; text never gets smaller than what
        // stays readable at 200 x 200.
        let s = (f64::from(w) / 1000.0).min(f64::from(h) / 600.0);
        let px = |base: f64, min: f64| (base * s).max(min).round();
        // Font sizes are even: when plotters drew the text its baseline
        // offset of half the size had to be a whole number of pixels, and
        // keeping them so keeps the charts exactly as they were.
        let font_px = |base: f64, min: f64| (base * s / 2.0).round().max(min / 2.0) * 2.0;
        Self {
            area,
            failure: RefCell::new(None),
            fonts,
            w: w as i32,
            h: h as i32,
            title_px: font_px(26.0, 12.0),
            subtitle_px: font_px(18.0, 10.0),
            tick_px: font_px(16.0, 10.0),
            axis_px: font_px(18.0, 10.0),
            value_px: font_px(16.0, 10.0),
            margin: px(18.0, 5.0) as i32,
            gap: px(7.0, 3.0) as i32,
            stroke: px(1.0, 1.0) as i32,
            tick_len: px(5.0, 2.0) as i32,
        }
    }

    /// Lays out one line of text at `px` pixels, from cached glyph metrics.
    /// Pen positions accumulate advances and kerning as floats; each glyph
    /// starts at the rounded pen position plus its bitmap's left bearing.
    fn layout(&self, text: &str, px: f64, bold: bool) -> Line {
        let font = if bold {
            &self.fonts.bold
        } else {
            &self.fonts.regular
        };
        let scaled = font.as_scaled(px as f32);
        let mut glyphs = Vec::with_capacity(text.len());
        let mut pen = 0f32;
        let mut prev = None;
        for glyph in glyphs::line(font, bold, px as f32, text) {
            if let Some(prev) = prev {
                pen += scaled.kern(prev, glyph.id);
            }
            prev = Some(glyph.id);
            let advance = glyph.advance;
            if glyph.inked {
                let offset = pen.round() as i32 + glyph.left;
                glyphs.push((glyph, offset));
            }
            pen += advance;
        }
        Line { glyphs, width: pen }
    }

    fn text_width(&self, text: &str, px: f64, bold: bool) -> i32 {
        self.layout(text, px, bold).width.ceil() as i32
    }

    /// Draws one line of text with its baseline at `baseline`, anchored
    /// horizontally at `x` by `h`.
    ///
    /// Each glyph is placed at its own laid-out position (plotters' text
    /// renderer dropped side bearings and truncated pen positions, which
    /// spaced letters unevenly: "1 16"), and its cached coverage is blended
    /// into the pixels, over whatever was drawn before.
    #[allow(clippy::too_many_arguments)]
    fn text(
        &self,
        text: &str,
        x: i32,
        baseline: i32,
        px: f64,
        bold: bool,
        colour: &RGBColor,
        h: HPos,
    ) {
        let line = self.layout(text, px, bold);
        let start = match h {
            HPos::Left => x as f32,
            HPos::Center => x as f32 - line.width / 2.0,
            HPos::Right => x as f32 - line.width,
        }
        .round() as i32;
        for (glyph, offset) in &line.glyphs {
            let (left, top) = (start + offset, baseline + glyph.top);
            self.ink(glyph, *colour, |gx, gy| (left + gx, top + gy));
        }
    }

    /// Blends a glyph's coverage in `colour` into the image through plotters;
    /// `place` maps a bitmap position (column, row) to image pixels.
    fn ink(&self, glyph: &Glyph, colour: RGBColor, place: impl Fn(i32, i32) -> (i32, i32)) {
        if glyph.width == 0 {
            return;
        }
        let solid = colour.plotters();
        for (gy, row) in glyph.coverage.chunks_exact(glyph.width).enumerate() {
            for (gx, &weight) in row.iter().enumerate() {
                if weight == 0 {
                    continue;
                }
                let at = place(gx as i32, gy as i32);
                let r = if weight == glyphs::OPAQUE {
                    self.area.draw_pixel(at, &solid)
                } else {
                    // plotters turns alpha back into floor(256 a) = weight.
                    self.area
                        .draw_pixel(at, &solid.mix(f64::from(weight) / 256.0))
                };
                self.note(r);
            }
        }
    }

    fn note<E: std::fmt::Display>(&self, r: Result<(), E>) {
        if let Err(e) = r {
            self.failure
                .borrow_mut()
                .get_or_insert_with(|| e.to_string());
        }
    }

    /// Ends drawing: the first error, if any drawing call failed.
    fn finish(self) -> Result<(), PlotError> {
        if let Some(e) = self.failure.into_inner() {
            return Err(PlotError::Draw(e));
        }
        self.area
            .present()
            .map_err(|e| PlotError::Draw(e.to_string()))
    }

    /// Draws an axis description at the left margin, rotated to read bottom
    /// to top and centred on `centre_y`, kept between `top` and the bottom
    /// margin (shrunk if it is longer than that).
    fn vertical_text(&self, text: &str, centre_y: i32, top: i32) {
        let bottom = self.h - self.margin;
        let room = (bottom - top).max(1) as f32;
        let mut px = self.axis_px;
        let mut line = self.layout(text, px, false);
        if line.width > room {
            px = (px * f64::from(room / line.width) / 2.0).floor().max(3.0) * 2.0;
            line = self.layout(text, px, false);
        }
        let half = (line.width / 2.0).ceil() as i32;
        let centre_y = centre_y.clamp(top + half, (bottom - half).max(top + half));
        let start = (centre_y as f32 + line.width / 2.0).round() as i32;
        // The baseline is a vertical line; glyphs are drawn turned a quarter
        // turn anticlockwise: bitmap column gx goes up from the glyph's
        // position, bitmap row gy goes right from the baseline plus `top`.
        let baseline = self.margin + (px * ASCENT).round() as i32;
        for (glyph, offset) in &line.glyphs {
            let (left, bottom) = (baseline + glyph.top, start - offset);
            self.ink(glyph, LABEL, |gx, gy| (left + gy, bottom - gx));
        }
    }

    /// Fills the half-open pixel rectangle [x0, x1) x [y0, y1).
    fn rect(&self, x0: i32, y0: i32, x1: i32, y1: i32, colour: &RGBColor) {
        if x1 <= x0 || y1 <= y0 {
            return;
        }
        let r = self.area.draw(&Rectangle::new(
            [(x0, y0), (x1, y1)],
            colour.plotters().filled(),
        ));
        self.note(r);
    }

    /// Splits `text` into lines no wider than `max_w`, breaking after spaces
    /// and hyphens; a piece wider than `max_w` gets a line of its own.
    fn wrap(&self, text: &str, px: f64, bold: bool, max_w: i32) -> Vec<String> {
        let mut pieces: Vec<&str> = Vec::new();
        let mut start = 0;
        for (i, ch) in text.char_indices() {
            if ch == ' ' || ch == '-' {
                pieces.push(&text[start..i + 1]);
                start = i + 1;
            }
        }
        if start < text.len() {
            pieces.push(&text[start..]);
        }
        let mut lines: Vec<String> = Vec::new();
        let mut line = String::new();
        for piece in pieces {
            let candidate = format!("{line}{piece}");
            if line.is_empty() || self.text_width(candidate.trim_end(), px, bold) <= max_w {
                line = candidate;
            } else {
                lines.push(line.trim_end().to_owned());
                line = piece.to_owned();
            }
        }
        if !line.trim().is_empty() {
            lines.push(line.trim_end().to_owned());
        }
        lines
    }

    /// Draws wrapped lines centred on `x`, the first glyph tops at `top`;
    /// returns the y just below the last line's descenders.
    fn centred_lines(
        &self,
        lines: &[String],
        x: i32,
        top: i32,
        px: f64,
        bold: bool,
        colour: &RGBColor,
    ) -> i32 {
        let mut baseline = top + (px * ASCENT).round() as i32;
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                baseline += (px * LINE_SPACING).round() as i32;
            }
            self.text(line, x, baseline, px, bold, colour, HPos::Center);
        }
        baseline + (px * DESCENT).round() as i32
    }

    /// Draws the centred title and subtitle; returns the y below them.
    fn header(&self, title: &str, subtitle: &str) -> i32 {
        let max_w = self.w - 2 * self.margin;
        let title_lines = self.wrap(title, self.title_px, true, max_w);
        let bottom = self.centred_lines(
            &title_lines,
            self.w / 2,
            self.margin,
            self.title_px,
            true,
            &TITLE,
        );
        let subtitle_lines = self.wrap(subtitle, self.subtitle_px, false, max_w);
        let top = bottom + (self.subtitle_px * 0.45).round() as i32;
        self.centred_lines(
            &subtitle_lines,
            self.w / 2,
            top,
            self.subtitle_px,
            false,
            &SUBTITLE,
        )
    }

    /// Fills the space below the header with a framed, centred message.
    fn empty_box(&self, top: i32, message: &str) {
        let (x0, y0) = (self.margin, top + 2 * self.gap);
        let (x1, y1) = (self.w - self.margin, self.h - self.margin);
        let s = self.stroke;
        self.rect(x0, y0, x1, y0 + s, &EMPTY_FRAME);
        self.rect(x0, y1 - s, x1, y1, &EMPTY_FRAME);
        self.rect(x0, y0, x0 + s, y1, &EMPTY_FRAME);
        self.rect(x1 - s, y0, x1, y1, &EMPTY_FRAME);
        let px = self.axis_px;
        let lines = self.wrap(message, px, false, x1 - x0 - 2 * self.gap);
        let block =
            (px * (ASCENT + DESCENT + LINE_SPACING * (lines.len() as f64 - 1.0))).round() as i32;
        let top = (y0 + y1 - block) / 2;
        self.centred_lines(&lines, (x0 + x1) / 2, top, px, false, &LABEL);
    }

    /// Rows below a plot whose x axis has one row of tick labels and a
    /// description under it: (y of the axis line, tick label baseline,
    /// description baseline).
    fn x_axis_rows(&self) -> (i32, i32, i32) {
        let desc_baseline = self.h - self.margin - (self.axis_px * DESCENT).round() as i32;
        let desc_top = desc_baseline - (self.axis_px * ASCENT).round() as i32;
        let label_baseline = desc_top - self.gap - (self.tick_px * DESCENT).round() as i32;
        let label_top = label_baseline - (self.tick_px * ASCENT).round() as i32;
        let axis_y = label_top - self.gap - self.tick_len;
        (axis_y, label_baseline, desc_baseline)
    }

    /// A vertical bar chart below `top`: one slot per bar, x labels shown for
    /// keys that are multiples of the first `label_steps` entry that leaves
    /// room between labels, counts above the bars where they fit.
    fn vertical_bars(
        &self,
        top: i32,
        bars: &[(i64, Bar)],
        label_steps: &[i64],
        count_zero: bool,
        x_desc: &str,
        y_desc: &str,
    ) {
        let (gap, stroke, tick_len) = (self.gap, self.stroke, self.tick_len);
        // Vertical layout: the top y tick label is centred on the top gridline.
        let y0 = top + 2 * gap + (self.tick_px * ASCENT / 2.0).round() as i32;
        let (y1, label_baseline, desc_baseline) = self.x_axis_rows();
        let y1 = y1.max(y0 + 1);
        let plot_h = f64::from(y1 - y0);

        // The y tick labels' width decides where the plot starts, so how wide
        // the slots are, so whether the counts fit above the bars, which then
        // need headroom on the y axis: lay out without headroom first, and
        // again with it if the counts fit.
        let max_ticks = ((plot_h / (self.tick_px * 2.6)) as usize).clamp(2, MAX_TICKS);
        let n = bars.len().max(1) as f64;
        let layout = |needed: f64| {
            let axis = NiceAxis::new(needed, max_ticks);
            let tick_labels: Vec<(f64, String)> = axis
                .ticks()
                .map(|v| (v, thousands(v.round() as u64)))
                .collect();
            let label_w = tick_labels
                .iter()
                .map(|(_, label)| self.text_width(label, self.tick_px, false))
                .max()
                .unwrap_or(0);
            let x0 = self.margin
                + (self.axis_px * (ASCENT + DESCENT)).round() as i32
                + gap
                + label_w
                + gap
                + tick_len;
            let x1 = (self.w - self.margin).max(x0 + 1);
            (axis, tick_labels, x0, x1, f64::from(x1 - x0) / n)
        };
        let value_h = f64::from(gap) + self.value_px * (ASCENT + DESCENT);
        let widest_value = bars
            .iter()
            .map(|(_, bar)| self.text_width(&thousands(bar.value), self.value_px, false))
            .max()
            .unwrap_or(0);
        let values_fit =
            |slot: f64| plot_h > 3.0 * value_h && f64::from(widest_value) <= slot * 0.96;
        let max_value = bars.iter().map(|(_, b)| b.value).max().unwrap_or(0) as f64;
        let mut chosen = layout(max_value);
        let mut show_values = false;
        if values_fit(chosen.4) {
            chosen = layout(max_value * plot_h / (plot_h - value_h));
            show_values = values_fit(chosen.4);
        }
        let (axis, tick_labels, x0, x1, slot) = chosen;
        let y_of = |v: f64| y1 - (v / axis.top * plot_h).round() as i32;

        // Gridlines and y tick labels.
        for (v, label) in &tick_labels {
            let y = y_of(*v);
            self.rect(x0, y, x1, y + stroke, &GRID);
            self.rect(x0 - tick_len, y, x0, y + stroke, &AXIS);
            let baseline = y + (self.tick_px * ASCENT / 2.0).round() as i32;
            self.text(
                label,
                x0 - tick_len - gap,
                baseline,
                self.tick_px,
                false,
                &LABEL,
                HPos::Right,
            );
        }

        // Bars.
        let centre = |i: usize| x0 + ((i as f64 + 0.5) * slot).round() as i32;
        let bar_w = ((slot * 0.72).round() as i32).max(1);
        for (i, (_, bar)) in bars.iter().enumerate() {
            let left = centre(i) - bar_w / 2;
            self.rect(left, y_of(bar.value as f64), left + bar_w, y1, &bar.colour);
        }

        // Counts above the bars.
        if show_values {
            for (i, (_, bar)) in bars.iter().enumerate() {
                if bar.value == 0 && !count_zero {
                    continue;
                }
                let baseline =
                    y_of(bar.value as f64) - gap - (self.value_px * DESCENT).round() as i32;
                self.text(
                    &thousands(bar.value),
                    centre(i),
                    baseline,
                    self.value_px,
                    false,
                    &LABEL,
                    HPos::Center,
                );
            }
        }

        // Axis lines and category labels.
        self.rect(x0, y1, x1, y1 + stroke, &AXIS);
        self.rect(x0 - stroke, y0, x0, y1 + stroke, &AXIS);
        let mut widest = 0;
        for (_, bar) in bars {
            widest = widest.max(self.text_width(&bar.label, self.tick_px, false));
        }
        let room = f64::from(widest + 2 * gap);
        let step = label_steps
            .iter()
            .copied()
            .find(|&s| s as f64 * slot >= room)
            .or_else(|| label_steps.last().copied())
            .unwrap_or(1)
            .max(1);
        for (i, (key, bar)) in bars.iter().enumerate() {
            if key.rem_euclid(step) != 0 {
                continue;
            }
            let x = centre(i);
            self.rect(
                x - stroke / 2,
                y1,
                x - stroke / 2 + stroke,
                y1 + tick_len,
                &AXIS,
            );
            let half = self.text_width(&bar.label, self.tick_px, false) / 2;
            let x = x.clamp(half + 1, (self.w - half - 1).max(half + 1));
            self.text(
                &bar.label,
                x,
                label_baseline,
                self.tick_px,
                false,
                &LABEL,
                HPos::Center,
            );
        }

        // Axis descriptions.
        self.text(
            x_desc,
            (x0 + x1) / 2,
            desc_baseline,
            self.axis_px,
            false,
            &LABEL,
            HPos::Center,
        );
        self.vertical_text(y_desc, (y0 + y1) / 2, top)
    }

    /// A horizontal bar chart below `top`, largest bar first, each bar's count
    /// and share of `total` printed after it where there is room.
    fn horizontal_bars(&self, top: i32, bars: &[Bar], total: u64, x_desc: &str, y_desc: &str) {
        let (gap, stroke, tick_len) = (self.gap, self.stroke, self.tick_len);
        let y0 = top + 2 * gap;
        let (y1, label_baseline, desc_baseline) = self.x_axis_rows();
        let y1 = y1.max(y0 + 1);
        let plot_h = f64::from(y1 - y0);

        // Category labels, wrapped to at most 30% of the width.
        let max_label_w = (f64::from(self.w) * 0.3) as i32;
        let mut labels = Vec::with_capacity(bars.len());
        let mut label_w = 0;
        for bar in bars {
            let lines = self.wrap(&bar.label, self.tick_px, false, max_label_w);
            for line in &lines {
                label_w = label_w.max(self.text_width(line, self.tick_px, false));
            }
            labels.push(lines);
        }
        let x0 = self.margin
            + (self.axis_px * (ASCENT + DESCENT)).round() as i32
            + gap
            + label_w
            + gap
            + tick_len;
        let x1 = (self.w - self.margin).max(x0 + 1);
        let plot_w = f64::from(x1 - x0);

        // Counts after the bars: with the share if that leaves the bars most
        // of the width, else the count alone, else nothing.
        let with_share = |v: u64| format!("{} ({})", thousands(v), percent(v, total));
        let mut value_labels: Option<Vec<String>> = None;
        let mut value_w = 0;
        for format in [&with_share as &dyn Fn(u64) -> String, &|v| thousands(v)] {
            let texts: Vec<String> = bars.iter().map(|b| format(b.value)).collect();
            let mut widest = 0;
            for t in &texts {
                widest = widest.max(self.text_width(t, self.value_px, false));
            }
            if f64::from(widest + gap) <= plot_w * 0.45 {
                value_labels = Some(texts);
                value_w = widest + gap;
                break;
            }
        }
        let max_value = bars.iter().map(|b| b.value).max().unwrap_or(0) as f64;
        let needed = max_value * plot_w / (plot_w - f64::from(value_w));
        let probe_w = self.text_width(&thousands(needed.round() as u64), self.tick_px, false);
        let max_ticks =
            ((plot_w / (f64::from(probe_w) + 2.5 * self.tick_px)) as usize).clamp(2, MAX_TICKS);
        let axis = NiceAxis::new(needed, max_ticks);
        let x_of = |v: f64| x0 + (v / axis.top * plot_w).round() as i32;

        // Gridlines and x tick labels.
        for v in axis.ticks() {
            let x = x_of(v);
            self.rect(x, y0, x + stroke, y1, &GRID);
            self.rect(x, y1, x + stroke, y1 + tick_len, &AXIS);
            let label = thousands(v.round() as u64);
            let half = self.text_width(&label, self.tick_px, false) / 2;
            let x = x.clamp(half + 1, (self.w - half - 1).max(half + 1));
            self.text(
                &label,
                x,
                label_baseline,
                self.tick_px,
                false,
                &LABEL,
                HPos::Center,
            );
        }

        // Bars, category labels and counts.
        let slot = plot_h / bars.len().max(1) as f64;
        let thickness = ((slot * 0.62).round() as i32).max(1);
        let line_step = (self.tick_px * LINE_SPACING).round() as i32;
        for (i, (bar, lines)) in bars.iter().zip(&labels).enumerate() {
            let centre = y0 + ((i as f64 + 0.5) * slot).round() as i32;
            let top = centre - thickness / 2;
            self.rect(
                x0,
                top,
                x_of(bar.value as f64),
                top + thickness,
                &bar.colour,
            );
            self.rect(x0 - tick_len, centre, x0, centre + stroke, &AXIS);
            let digits_half = (self.tick_px * ASCENT / 2.0).round() as i32;
            let first = centre + digits_half - line_step * (lines.len() as i32 - 1) / 2;
            for (j, line) in lines.iter().enumerate() {
                self.text(
                    line,
                    x0 - tick_len - gap,
                    first + line_step * j as i32,
                    self.tick_px,
                    false,
                    &LABEL,
                    HPos::Right,
                );
            }
            if let Some(texts) = &value_labels {
                let baseline = centre + (self.value_px * ASCENT / 2.0).round() as i32;
                self.text(
                    &texts[i],
                    x_of(bar.value as f64) + gap,
                    baseline,
                    self.value_px,
                    false,
                    &LABEL,
                    HPos::Left,
                );
            }
        }

        // Axis lines and descriptions.
        self.rect(x0, y1, x1, y1 + stroke, &AXIS);
        self.rect(x0 - stroke, y0, x0, y1 + stroke, &AXIS);
        self.text(
            x_desc,
            (x0 + x1) / 2,
            desc_baseline,
            self.axis_px,
            false,
            &LABEL,
            HPos::Center,
        );
        self.vertical_text(y_desc, (y0 + y1) / 2, top)
    }
}

/// A count axis from 0 to `top` with ticks every `step`, both "nice"
/// numbers (1, 2 or 5 times a power of ten, at least 1).
struct NiceAxis {
    step: f64,
    top: f64,
}

impl NiceAxis {
    /// The smallest nice axis reaching `needed` with at most `max_ticks`
    /// steps.
    fn new(needed: f64, max_ticks: usize) -> Self {
        let needed = if needed.is_finite() && needed > 0.0 {
            needed
        } else {
            1.0
        };
        let max_ticks = max_ticks.max(1) as f64;
        let magnitude = 10f64.powf((needed / max_ticks).log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| (m * magnitude).max(1.0))
            .find(|step| (needed / step).ceil() <= max_ticks)
            .unwrap_or(10.0 * magnitude)
            .max(1.0);
        let top = ((needed / step).ceil() * step).max(step);
        Self { step, top }
    }

    /// 0, step, 2 step, ..., top.
    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = (self.top / self.step).round() as u64;
        (0..=n).map(move |i| i as f64 * self.step)
    }
}

/// `43837` → `"43,837"`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `part` as a percentage of `whole`, one decimal: `"44.0%"`, `"<0.1%"`.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".to_owned();
    }
    let p = part as f64 * 100.0 / whole as f64;
    if p > 0.0 && p < 0.05 {
        "<0.1%".to_owned()
    } else {
        format!("{p:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(43837), "43,837");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn percent_formatting() {
        assert_eq!(percent(756, 1659), "45.6%");
        assert_eq!(percent(1, 100_000), "<0.1%");
        assert_eq!(percent(0, 10), "0.0%");
        assert_eq!(percent(3, 0), "0%");
    }

    #[test]
    fn nice_axis_steps() {
        let a = NiceAxis::new(127.0, 6);
        assert_eq!((a.step, a.top), (50.0, 150.0));
        let a = NiceAxis::new(19283.0, 8);
        assert_eq!((a.step, a.top), (5000.0, 20000.0));
        let a = NiceAxis::new(3.0, 10);
        assert_eq!((a.step, a.top), (1.0, 3.0));
        let a = NiceAxis::new(0.0, 5);
        assert_eq!((a.step, a.top), (1.0, 1.0));
        assert_eq!(a.ticks().collect::<Vec<_>>(), [0.0, 1.0]);
        let a = NiceAxis::new(f64::NAN, 5);
        assert_eq!(a.top, 1.0);
        let a = NiceAxis::new(u64::MAX as f64, 3);
        assert!(a.top >= u64::MAX as f64 && a.ticks().count() <= 4);
    }
}
