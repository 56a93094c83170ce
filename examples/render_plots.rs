//! Renders every chart of an HGNC JSON file at the default size and times it.
//!
//! ```sh
//! cargo run --release --example render_plots -- [HGNC_JSON] [OUT_DIR]
//! ```
//!
//! `HGNC_JSON` defaults to `data/hgnc_sample.json` (HGNC's
//! `{"response":{"docs":[...]}}` format), `OUT_DIR` to `docs/`. Writes
//! `plot-<kind>.png` for each kind and prints the time to build the stats and
//! the median of 20 renders of each chart.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use gene_api::plot::{render_png, ImageSize, PlotKind, StatsBuilder};
use serde::Deserialize;

const RUNS: usize = 20;

#[derive(Deserialize)]
struct File {
    response: Response,
}

#[derive(Deserialize)]
struct Response {
    docs: Vec<Doc>,
}

#[derive(Deserialize)]
struct Doc {
    locus_group: Option<String>,
    location: Option<String>,
    date_approved_reserved: Option<String>,
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let input = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data/hgnc_sample.json"));
    let out_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docs"));

    let text =
        std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?;
    let file: File =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", input.display()))?;

    let started = Instant::now();
    let mut builder = StatsBuilder::new();
    for doc in &file.response.docs {
        builder.add(
            doc.locus_group.as_deref(),
            doc.location.as_deref(),
            doc.date_approved_reserved.as_deref(),
        );
    }
    let stats = builder.finish();
    let build_time = started.elapsed();
    println!(
        "{}: {} records; stats built in {:.2?} (after JSON parsing)",
        input.display(),
        stats.total,
        build_time
    );

    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let size = ImageSize::default();
    for kind in PlotKind::ALL {
        let mut times = Vec::with_capacity(RUNS);
        let mut png = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            png = render_png(kind, &stats, size)?;
            times.push(started.elapsed());
        }
        let path = out_dir.join(format!("plot-{kind}.png"));
        std::fs::write(&path, &png).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{kind:>13}: {}x{} in {:.2?} (median of {RUNS}), {} bytes -> {}",
            size.width(),
            size.height(),
            median(times),
            png.len(),
            path.display()
        );
    }
    Ok(())
}
