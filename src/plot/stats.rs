//! Per-data-set counts behind the charts, and the parsing of HGNC `location`
//! and date values they are built from.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Chromosome names in their natural order; `chromosome_of` only ever returns
/// one of these, and `PlotStats::chromosome` follows this order.
pub(crate) const CHROMOSOMES: [&str; 25] = [
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17",
    "18", "19", "20", "21", "22", "X", "Y", "MT",
];

const X_INDEX: usize = 22;
const Y_INDEX: usize = 23;
const MT_INDEX: usize = 24;

/// The locus-group name counted for a record whose `locus_group` is missing
/// or blank, so that the locus-group counts always add up to `total`.
pub const UNKNOWN_LOCUS_GROUP: &str = "unknown";

/// Everything the charts need, computed once when the data set is loaded so
/// that drawing a chart never re-reads the records.
///
/// Serialized to JSON (tuples as two-element arrays) and stored in Redis next
/// to the data set. `StatsBuilder::finish` guarantees the orderings and sums
/// documented on each field; `render_png` copes with any value (it never
/// panics on hand-made or stale stats).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlotStats {
    /// Number of records seen.
    pub total: u64,
    /// Genes per locus group, sorted by count descending, then by name.
    /// A missing or blank locus group is counted as `"unknown"`; the counts
    /// add up to `total`.
    pub locus_group: Vec<(String, u64)>,
    /// Genes per chromosome in natural order 1..22, X, Y, MT, listing only
    /// chromosomes with at least one gene (see [`chromosome_of`] for how a
    /// `location` is read).
    pub chromosome: Vec<(String, u64)>,
    /// Records with no usable `location` (missing, or naming no chromosome);
    /// `chromosome` counts plus this add up to `total`.
    pub chromosome_unplaced: u64,
    /// Genes per year of `date_approved_reserved`, ascending, listing only
    /// years with at least one gene.
    pub approval_year: Vec<(i32, u64)>,
    /// Records with no usable `date_approved_reserved` (missing or not
    /// `YYYY-MM-DD`); `approval_year` counts plus this add up to `total`.
    pub approval_year_missing: u64,
}

impl PlotStats {
    /// Records placed on a chromosome.
    pub(crate) fn placed(&self) -> u64 {
        self.chromosome.iter().map(|(_, n)| n).sum()
    }

    /// Records with a usable approval date.
    pub(crate) fn dated(&self) -> u64 {
        self.approval_year.iter().map(|(_, n)| n).sum()
    }
}

/// Accumulates [`PlotStats`] one record at a time while a load streams
/// through the docs; memory use is independent of the number of records.
#[derive(Debug, Default)]
pub struct StatsBuilder {
    total: u64,
    locus_group: HashMap<String, u64>,
    chromosome: [u64; CHROMOSOMES.len()],
    chromosome_unplaced: u64,
    approval_year: BTreeMap<i32, u64>,
    approval_year_missing: u64,
}

impl StatsBuilder {
    /// An empty builder (`finish` on it gives `PlotStats::default()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one record, given its raw HGNC `locus_group`, `location` and
    /// `date_approved_reserved` fields (`None` when the field is absent).
    pub fn add(
        &mut self,
        locus_group: Option<&str>,
        location: Option<&str>,
        date_approved_reserved: Option<&str>,
    ) {
        self.total += 1;

        let group = locus_group
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .unwrap_or(UNKNOWN_LOCUS_GROUP);
        // Look up before inserting so the common case allocates nothing.
        match self.locus_group.get_mut(group) {
            Some(n) => *n += 1,
            None => {
                self.locus_group.insert(group.to_owned(), 1);
            }
        }

        match location.and_then(chromosome_index) {
            Some(i) => self.chromosome[i] += 1,
            None => self.chromosome_unplaced += 1,
        }

        match date_approved_reserved.and_then(year_of) {
            Some(year) => *self.approval_year.entry(year).or_insert(0) += 1,
            None => self.approval_year_missing += 1,
        }
    }

    /// The counts so far, ordered as documented on [`PlotStats`].
    pub fn finish(self) -> PlotStats {
        let mut locus_group: Vec<(String, u64)> = self.locus_group.into_iter().collect();
        locus_group.sort_by(|(a, na), (b, nb)| nb.cmp(na).then_with(|| a.cmp(b)));
        let chromosome = CHROMOSOMES
            .iter()
            .zip(self.chromosome)
            .filter(|&(_, n)| n > 0)
            .map(|(name, n)| ((*name).to_owned(), n))
            .collect();
        PlotStats {
            total: self.total,
            locus_group,
            chromosome,
            chromosome_unplaced: self.chromosome_unplaced,
            approval_year: self.approval_year.into_iter().collect(),
            approval_year_missing: self.approval_year_missing,
        }
    }
}

/// The chromosome an HGNC `location` names: one of `"1"`..`"22"`, `"X"`,
/// `"Y"`, `"MT"`, or `None` when it names none.
///
/// Rules (surrounding whitespace is ignored):
/// - a cytogenetic band is read from its leading chromosome:
///   `"19q13.43"` → `"19"`, `"2cen-q11"` → `"2"`, `"10p15.3-p15.2"` → `"10"`,
///   `"Yq11.221"` → `"Y"`; a bare chromosome (`"14"`) counts too. The
///   chromosome must be 1..=22, X or Y and be followed by `p`, `q`, `cen`, a
///   space, `-` or the end, so `"23q1"` and `"reserved"` name none;
/// - a location listing two chromosomes, such as the pseudo-autosomal
///   `"Xp22.33 and Yp11.2"`, counts under the first one listed (X for every
///   pseudo-autosomal gene in HGNC's data), so each gene is counted once;
/// - a chromosome whose sequence is "not on reference assembly" still belongs
///   to that chromosome: `"22 not on reference assembly"` → `"22"`;
/// - `"mitochondria"` (any case) → `"MT"`;
/// - `"unplaced"`, `"reserved"`, `"not on reference assembly"`, the empty
///   string and anything else → `None`.
pub fn chromosome_of(location: &str) -> Option<&'static str> {
    chromosome_index(location).map(|i| CHROMOSOMES[i])
}

/// Index into `CHROMOSOMES` of the chromosome a `location` names.
fn chromosome_index(location: &str) -> Option<usize> {
    let loc = location.trim();
    if loc.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("mito")) {
        return Some(MT_INDEX);
    }
    let digits = loc.bytes().take_while(u8::is_ascii_digit).count();
    let (index, rest) = if digits > 0 {
        let n: usize = loc[..digits].parse().ok()?;
        if !(1..=22).contains(&n) {
            return None;
        }
        (n - 1, &loc[digits..])
    } else {
        let index = match loc.as_bytes().first()? {
            b'X' | b'x' => X_INDEX,
            b'Y' | b'y' => Y_INDEX,
            _ => return None,
        };
        (index, &loc[1..])
    };
    let separated = match rest.as_bytes().first() {
        None => true,
        Some(b'p' | b'q' | b' ' | b'-') => true,
        Some(_) => rest.starts_with("cen"),
    };
    separated.then_some(index)
}

/// The year of an HGNC date: `"YYYY-MM-DD"` (month 01..=12, day 01..=31),
/// optionally followed by a time (`"1989-06-30T00:00:00Z"`).
fn year_of(date: &str) -> Option<i32> {
    let date = date.trim();
    let b = date.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' || (b.len() > 10 && b[10] != b'T') {
        return None;
    }
    let field = |range: std::ops::Range<usize>| -> Option<u32> {
        let s = &date[range];
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let year = field(0..4)?;
    let month = field(5..7)?;
    let day = field(8..10)?;
    if year == 0 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    i32::try_from(year).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromosome_of_real_hgnc_formats() {
        let cases = [
            ("19q13.43", Some("19")),
            ("1p36.33", Some("1")),
            ("2cen-q11", Some("2")),
            ("Xq28", Some("X")),
            ("Yq11.221", Some("Y")),
            ("Xp22.33 and Yp11.2", Some("X")),
            ("mitochondria", Some("MT")),
            ("22 not on reference assembly", Some("22")),
            ("10p15.3-p15.2", Some("10")),
            ("11q13-q22", Some("11")),
            ("14", Some("14")),
            ("reserved", None),
            ("unplaced", None),
            ("not on reference assembly", None),
            ("", None),
        ];
        for (location, expected) in cases {
            assert_eq!(chromosome_of(location), expected, "location {location:?}");
        }
    }

    #[test]
    fn chromosome_of_rejects_non_chromosomes() {
        for location in [
            "0p1", "23q11", "100", "Z", "Xylo", "q13", "19z", "-1p2", " ",
        ] {
            assert_eq!(chromosome_of(location), None, "location {location:?}");
        }
        assert_eq!(chromosome_of("  7q31.2 "), Some("7"));
        assert_eq!(chromosome_of("Ycen"), Some("Y"));
        assert_eq!(chromosome_of("Mitochondria"), Some("MT"));
    }

    #[test]
    fn year_of_accepts_only_real_dates() {
        assert_eq!(year_of("1989-06-30"), Some(1989));
        assert_eq!(year_of("2026-10-01"), Some(2026));
        assert_eq!(year_of("1989-06-30T00:00:00Z"), Some(1989));
        for bad in [
            "",
            "1989",
            "1989-06",
            "89-06-30",
            "1989/06/30",
            "1989-13-01",
            "1989-00-10",
        ] {
            assert_eq!(year_of(bad), None, "date {bad:?}");
        }
        assert_eq!(year_of("1989-06-3x"), None);
        assert_eq!(year_of("1989-06-30x"), None);
    }

    #[test]
    fn stats_builder_counts_known_inputs() {
        let mut b = StatsBuilder::new();
        b.add(
            Some("protein-coding gene"),
            Some("19q13.43"),
            Some("1989-06-30"),
        );
        b.add(
            Some("pseudogene"),
            Some("Xp22.33 and Yp11.2"),
            Some("2001-01-02"),
        );
        b.add(
            Some("protein-coding gene"),
            Some("1p36.33"),
            Some("1989-12-01"),
        );
        b.add(Some("non-coding RNA"), Some("mitochondria"), None);
        b.add(Some("pseudogene"), Some("unplaced"), Some("not a date"));
        b.add(None, None, Some("2001-05-05"));
        b.add(Some("  "), Some("19p13.3"), Some("1995-03-04"));
        let stats = b.finish();
        let pairs = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|&(s, n)| (s.to_owned(), n)).collect()
        };
        assert_eq!(
            stats,
            PlotStats {
                total: 7,
                locus_group: pairs(&[
                    ("protein-coding gene", 2),
                    ("pseudogene", 2),
                    ("unknown", 2),
                    ("non-coding RNA", 1),
                ]),
                chromosome: pairs(&[("1", 1), ("19", 2), ("X", 1), ("MT", 1)]),
                chromosome_unplaced: 2,
                approval_year: vec![(1989, 2), (1995, 1), (2001, 2)],
                approval_year_missing: 2,
            }
        );
        assert_eq!(stats.placed(), 5);
        assert_eq!(stats.dated(), 5);
    }

    #[test]
    fn empty_builder_gives_default_stats() {
        assert_eq!(StatsBuilder::new().finish(), PlotStats::default());
    }

    #[test]
    fn plot_stats_json_round_trip() {
        let mut b = StatsBuilder::new();
        b.add(Some("other"), Some("Yq11.221"), Some("2010-10-10"));
        let stats = b.finish();
        let json = serde_json::to_string(&stats).expect("serialize");
        assert!(json.contains(r#""chromosome":[["Y",1]]"#), "{json}");
        let back: PlotStats = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, stats);
    }

    /// Builds stats from an HGNC JSON file (`{"response":{"docs":[...]}}`).
    fn stats_of_file(path: &str) -> PlotStats {
        let text = std::fs::read_to_string(path).expect("read HGNC sample");
        let json: serde_json::Value = serde_json::from_str(&text).expect("parse HGNC sample");
        let docs = json["response"]["docs"].as_array().expect("docs array");
        let mut b = StatsBuilder::new();
        for doc in docs {
            b.add(
                doc["locus_group"].as_str(),
                doc["location"].as_str(),
                doc["date_approved_reserved"].as_str(),
            );
        }
        b.finish()
    }

    #[test]
    fn stats_builder_on_real_sample() {
        let stats = stats_of_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/hgnc_sample.json"
        ));
        assert_eq!(stats.total, 1659);
        let groups: Vec<(&str, u64)> = stats
            .locus_group
            .iter()
            .map(|(g, n)| (g.as_str(), *n))
            .collect();
        assert_eq!(
            groups,
            [
                ("protein-coding gene", 756),
                ("pseudogene", 433),
                ("non-coding RNA", 390),
                ("other", 80),
            ]
        );

        // Expected chromosome and year counts were computed independently, once,
        // with python3 over the same file:
        //   loc = doc.get('location') or ''
        //   re.match(r'(\d+|X|Y)(?=[pqc\s-]|$)', loc) (1..=22, X, Y), 'mitochondria' -> MT
        //   date = doc.get('date_approved_reserved'); re.fullmatch(r'\d{4}-\d\d-\d\d', date)
        // The sample has no unplaced gene (two locations are a bare "14" and "16")
        // and 9 pseudogenes without an approval date.
        let chromosome: Vec<(&str, u64)> = stats
            .chromosome
            .iter()
            .map(|(c, n)| (c.as_str(), *n))
            .collect();
        assert_eq!(
            chromosome,
            [
                ("1", 127),
                ("2", 116),
                ("3", 92),
                ("4", 63),
                ("5", 89),
                ("6", 80),
                ("7", 72),
                ("8", 91),
                ("9", 97),
                ("10", 71),
                ("11", 103),
                ("12", 80),
                ("13", 34),
                ("14", 55),
                ("15", 38),
                ("16", 65),
                ("17", 67),
                ("18", 25),
                ("19", 92),
                ("20", 43),
                ("21", 55),
                ("22", 20),
                ("X", 61),
                ("Y", 23),
            ]
        );
        assert_eq!(stats.chromosome_unplaced, 0);
        assert_eq!(
            stats.approval_year,
            [
                (1986, 15),
                (1988, 11),
                (1989, 14),
                (1990, 13),
                (1991, 21),
                (1992, 15),
                (1993, 21),
                (1994, 25),
                (1995, 20),
                (1996, 15),
                (1997, 28),
                (1998, 46),
                (1999, 39),
                (2000, 85),
                (2001, 93),
                (2002, 54),
                (2003, 93),
                (2004, 85),
                (2005, 89),
                (2006, 66),
                (2007, 33),
                (2008, 71),
                (2009, 79),
                (2010, 34),
                (2011, 116),
                (2012, 45),
                (2013, 107),
                (2014, 73),
                (2015, 27),
                (2016, 6),
                (2017, 25),
                (2018, 42),
                (2019, 13),
                (2020, 29),
                (2021, 16),
                (2022, 23),
                (2023, 10),
                (2024, 6),
                (2025, 26),
                (2026, 21),
            ]
        );
        assert_eq!(stats.approval_year_missing, 9);
        assert_eq!(stats.placed() + stats.chromosome_unplaced, stats.total);
        assert_eq!(stats.dated() + stats.approval_year_missing, stats.total);
    }
}
