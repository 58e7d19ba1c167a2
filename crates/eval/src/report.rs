//! The run's report: `report.json` (everything), `report.md` (the table and the protocol in
//! brief) and `quality.png` (bars with their 95% intervals).

use std::{fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::Serialize;

use crate::{
    baselines::TifuParams,
    catalog::CatalogStats,
    cf::CfStats,
    data::ReadStats,
    import::{ImportStats, ImportVia},
    metrics::{Estimate, Summary},
    split::{SplitKind, SplitStats},
};

/// One evaluated method: a baseline computed here, or the gateway with a profile.
#[derive(Debug, Clone, Serialize)]
pub struct Arm {
    pub name: String,
    /// `baseline` or `gateway`
    pub kind: String,
    pub summary: Summary,
    /// Gateway arms: client-side latency p50 / p95 / p99 in ms, and the first errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<(f64, f64, f64)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    pub secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub interactions: String,
    pub split: SplitKind,
    pub k: usize,
    pub min_baskets: usize,
    pub max_users: Option<usize>,
    pub resamples: usize,
    pub seed: u64,
    pub tifu: TifuParams,
    pub decay_half_life_days: f64,
    pub read: ReadStats,
    pub split_stats: SplitStats,
    pub catalog: CatalogStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportStats>,
    /// The collaborative vectors the gateway served (`cf_vector`), when this run managed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cf: Option<CfStats>,
    pub arms: Vec<Arm>,
    /// Phase -> seconds.
    pub timings: Vec<(String, f64)>,
    pub notes: Vec<String>,
}

fn fmt_est(e: &Estimate) -> String {
    format!("{:.3} [{:.3}, {:.3}]", e.mean, e.lo, e.hi)
}

/// The results table in Markdown.
pub fn table(report: &Report) -> String {
    let k = report.k;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| method | R@{k} | NDCG@{k} | PHR@{k} | repeat R@{k} | explore R@{k} | coverage | non-merch share | failed |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for a in &report.arms {
        let m = &a.summary;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.4} | {:.4} | {} |",
            a.name,
            fmt_est(&m.recall),
            fmt_est(&m.ndcg),
            fmt_est(&m.phr),
            fmt_est(&m.repeat_recall),
            fmt_est(&m.explore_recall),
            m.coverage,
            m.non_merch_share,
            m.failed
        );
    }
    s
}

fn markdown(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# redrec quality evaluation\n");
    let split = match report.split {
        SplitKind::Cutoff { at } => format!(
            "train before {} (UTC), predict each user's first basket after it",
            redrec_ingest::events::time::civil_date(at)
        ),
        SplitKind::LastBasket => "each user's last basket held out".into(),
    };
    let st = &report.split_stats;
    let _ = writeln!(
        s,
        "Interactions `{}`: {} rows ({} skipped for quantity <= 0), {} users, {} items, {} baskets.\n",
        report.interactions,
        report.read.rows,
        report.read.skipped_quantity,
        report.read.users,
        report.read.items,
        report.read.baskets
    );
    let _ = writeln!(
        s,
        "Split: {split}. Users with >= {} baskets: {} eligible, {} evaluated{}. Training: {} baskets, \
         {} lines. Targets: {:.1} items on average, {:.1}% of them bought before by the same user. \
         {} basket lines removed (non-merchandise or not in the catalog).\n",
        report.min_baskets,
        st.eligible_users,
        st.evaluated_users,
        report
            .max_users
            .map(|m| format!(" (sample of at most {m})"))
            .unwrap_or_default(),
        st.train_baskets,
        st.train_lines,
        st.target_items_mean,
        st.repeat_share * 100.0,
        st.removed_lines
    );
    let _ = writeln!(
        s,
        "Catalog: {} items, {} non-merchandise (departments {:?}, categories {:?}, or price <= 0).\n",
        report.catalog.items,
        report.catalog.non_merch,
        report.catalog.non_merch_departments,
        report.catalog.non_merch_categories
    );
    if let Some(i) = &report.import {
        let via = match i.via {
            ImportVia::Events => {
                "the interaction import (`redrec_ingest::events`, event time = basket time)"
            }
            ImportVia::Http => "`POST /v1/events` (event time = the gateway's clock)",
        };
        let _ = writeln!(
            s,
            "Import through {via}: {} purchase events of {} users in {} batches, prepare {:.1} s, apply {:.1} s ({:.0} events/s).\n",
            i.events, i.users, i.batches, i.prepare_secs, i.secs, i.events_per_sec
        );
    }
    if let Some(c) = &report.cf {
        let what = if c.trained {
            format!(
                "trained on this split's training baskets{} in {:.1} s ({} items with a vector) and published in {:.1} s ({} written, {} old vectors removed{})",
                if c.prepared {
                    " (by the preparation step, before the gateways started)"
                } else {
                    ""
                },
                c.train_secs,
                c.items_with_vector,
                c.publish_secs,
                c.written,
                c.cleared,
                if c.added_field {
                    ", field added with FT.ALTER"
                } else {
                    ""
                }
            )
        } else {
            "already trained on exactly this split's training baskets: kept".to_owned()
        };
        let _ = writeln!(
            s,
            "Collaborative vectors (`cf_vector`): {what}. Record: `{}`.\n",
            c.trained_on
        );
    }
    let _ = writeln!(
        s,
        "Means over users with bootstrap 95% intervals ({} resamples of users). Repeat / explore \
         recall average over the users whose target has such items.\n",
        report.resamples
    );
    s.push_str(&table(report));
    let gw: Vec<&Arm> = report
        .arms
        .iter()
        .filter(|a| a.latency_ms.is_some())
        .collect();
    if !gw.is_empty() {
        let _ = writeln!(s, "\nGateway requests (client side, concurrent):\n");
        let _ = writeln!(s, "| arm | requests/s | p50 ms | p95 ms | p99 ms |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for a in gw {
            let (p50, p95, p99) = a.latency_ms.unwrap_or_default();
            let n = a.summary.recall.n;
            let _ = writeln!(
                s,
                "| {} | {:.0} | {p50:.1} | {p95:.1} | {p99:.1} |",
                a.name,
                n as f64 / a.secs.max(1e-9)
            );
        }
        for a in &report.arms {
            for e in &a.errors {
                let _ = writeln!(s, "\n- {}: {e}", a.name);
            }
        }
    }
    let _ = writeln!(s, "\nTimings:\n");
    for (phase, secs) in &report.timings {
        let _ = writeln!(s, "- {phase}: {secs:.1} s");
    }
    if !report.notes.is_empty() {
        let _ = writeln!(s, "\nNotes:\n");
        for n in &report.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

/// Writes report.json, report.md and quality.png into `dir`; returns whether the chart was drawn.
pub fn write(report: &Report, dir: &Path) -> Result<bool> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(report)? + "\n",
    )?;
    std::fs::write(dir.join("report.md"), markdown(report))?;
    chart(report, &dir.join("quality.png"))
}

const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// Grouped bars: one group per method, one bar per metric, 95% interval whiskers.
pub fn chart(report: &Report, path: &Path) -> Result<bool> {
    if !redrec_bench::plot::ensure_font() || report.arms.is_empty() {
        return Ok(false);
    }
    type Figure = fn(&Summary) -> Estimate;
    let metrics: [(&str, Figure); 5] = [
        ("R@k", |s| s.recall),
        ("NDCG@k", |s| s.ndcg),
        ("PHR@k", |s| s.phr),
        ("repeat R@k", |s| s.repeat_recall),
        ("explore R@k x10", |s| Estimate {
            mean: s.explore_recall.mean * 10.0,
            lo: s.explore_recall.lo * 10.0,
            hi: s.explore_recall.hi * 10.0,
            n: s.explore_recall.n,
        }),
    ];
    let n = report.arms.len();
    let y_max = report
        .arms
        .iter()
        .flat_map(|a| metrics.iter().map(|(_, f)| f(&a.summary).hi))
        .fold(0.1f64, f64::max)
        * 1.1;
    let root = BitMapBackend::new(path, (1200, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Next-basket quality at k = {} ({} users, 95% bootstrap intervals)",
                report.k, report.split_stats.evaluated_users
            ),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(60)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n as f64, 0.0..y_max)?;
    let names: Vec<String> = report.arms.iter().map(|a| a.name.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc("mean")
        .draw()?;
    let width = 0.8 / metrics.len() as f64;
    for (m, (label, f)) in metrics.iter().enumerate() {
        let colour = COLOURS[m % COLOURS.len()];
        let bars: Vec<(f64, Estimate)> = report
            .arms
            .iter()
            .enumerate()
            .map(|(i, a)| (i as f64 + 0.1 + m as f64 * width, f(&a.summary)))
            .collect();
        chart
            .draw_series(bars.iter().map(|(x, e)| {
                Rectangle::new([(*x, 0.0), (*x + width * 0.9, e.mean)], colour.filled())
            }))?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        chart.draw_series(bars.iter().map(|(x, e)| {
            let c = *x + width * 0.45;
            PathElement::new(vec![(c, e.lo), (c, e.hi)], BLACK.stroke_width(1))
        }))?;
    }
    redrec_bench::plot::legend_and_write(&mut chart, &root, SeriesLabelPosition::UpperRight, path)?;
    Ok(true)
}
