//! The `redrec-ingest partitions` subcommand: flags to [`redrec_ingest::partitions`].

use std::time::Duration;

use anyhow::{Context, Result, bail};
use redis::aio::MultiplexedConnection;
use redrec_core::{filter::Filter, keys::Namespace};
use redrec_ingest::partitions::{self, PartitionSpec};

#[derive(clap::Subcommand, Clone, Debug)]
pub enum PartitionsCmd {
    /// Create partitions of the serving index: one from --name and --filter, equal-share bands
    /// of a NUMERIC field (--bands price:5), or one per large value of a TAG field
    /// (--tag-values category)
    Create {
        /// Name of a single partition (a-z, 0-9, `_`, `-`)
        #[arg(long, requires = "filter")]
        name: Option<String>,
        /// Its filter as filter JSON (an `and` of `tag` and `range` conditions)
        #[arg(long, requires = "name")]
        filter: Option<String>,
        /// FIELD:N: N bands of a SORTABLE NUMERIC field holding equal shares of the items, plus
        /// N-1 bands centred on their boundaries (any range up to half a band fits one)
        #[arg(long, conflicts_with_all = ["name", "tag_values"])]
        bands: Option<String>,
        /// With --bands: no boundary-centred bands (each item in exactly one band)
        #[arg(long, requires = "bands")]
        no_overlap: bool,
        /// A TAG field: one partition per value at least --min-items items carry that keeps
        /// less than --max-share of the catalog
        #[arg(long, conflicts_with = "name")]
        tag_values: Option<String>,
        #[arg(long, default_value_t = 10_000)]
        min_items: u64,
        #[arg(long, default_value_t = 0.05)]
        max_share: f64,
        /// Most partitions --tag-values creates (largest values first)
        #[arg(long, default_value_t = 16)]
        max: usize,
        /// Seconds to wait for the server to index the new partitions
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
        /// Print the partitions that would be created and create nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// List the serving index's partitions, their items and build progress
    List,
    /// Drop partitions (--name, repeatable) or every one (--all); the items stay
    Drop {
        #[arg(long, conflicts_with = "all")]
        name: Vec<String>,
        #[arg(long)]
        all: bool,
    },
}

pub async fn run(con: &MultiplexedConnection, ns: &Namespace, cmd: PartitionsCmd) -> Result<()> {
    let mut c = con.clone();
    match cmd {
        PartitionsCmd::Create {
            name,
            filter,
            bands,
            no_overlap,
            tag_values,
            min_items,
            max_share,
            max,
            timeout_secs,
            dry_run,
        } => {
            let specs = if let (Some(name), Some(filter)) = (name, filter) {
                let filter = Filter::from_json_str(&filter).context("--filter")?;
                vec![PartitionSpec { name, filter }]
            } else if let Some(b) = bands {
                let Some((field, n)) = b.split_once(':') else {
                    bail!("--bands: expected FIELD:N, e.g. price:5 (got {b:?})");
                };
                let n: usize = n
                    .parse()
                    .with_context(|| format!("--bands: N must be a number (got {n:?})"))?;
                partitions::numeric_bands(&mut c, ns, field, n, !no_overlap).await?
            } else if let Some(field) = tag_values {
                if !(max_share > 0.0 && max_share <= 1.0) {
                    bail!("--max-share: expected a share within (0, 1] (got {max_share})");
                }
                let specs =
                    partitions::tag_values(&mut c, ns, &field, min_items, max_share, max).await?;
                if specs.is_empty() {
                    bail!(
                        "no value of `{field}` is carried by at least {min_items} items while \
                         keeping less than {max_share} of the catalog: nothing to partition"
                    );
                }
                specs
            } else {
                bail!("give --name and --filter, --bands FIELD:N or --tag-values FIELD");
            };
            for s in &specs {
                println!("{:<24} {}", s.name, s.filter.to_json());
            }
            if dry_run {
                println!("(dry run: nothing created)");
                return Ok(());
            }
            let started = std::time::Instant::now();
            let set =
                partitions::create(&mut c, ns, &specs, Duration::from_secs(timeout_secs)).await?;
            println!(
                "{} partition(s) of {} checked and recorded in {:.1} s; {} items in partitions for {} in the index",
                set.partitions.len(),
                set.index,
                started.elapsed().as_secs_f64(),
                set.partitions.iter().map(|p| p.docs).sum::<u64>(),
                set.items
            );
        }
        PartitionsCmd::List => {
            let (index, parts) = partitions::list(&mut c, ns).await?;
            if parts.is_empty() {
                println!("{index}: no partitions");
            }
            for (p, live) in parts {
                match live {
                    Some(i) => println!(
                        "{:<24} {:>9} items, {:>5.1}% indexed  {}  {}",
                        p.name,
                        i.num_docs,
                        i.percent_indexed * 100.0,
                        p.index,
                        p.filter.to_json()
                    ),
                    None => println!("{:<24} missing index {}", p.name, p.index),
                }
            }
        }
        PartitionsCmd::Drop { name, all } => {
            if name.is_empty() && !all {
                bail!("give --name NAME (repeatable) or --all");
            }
            let gone = partitions::drop(&mut c, ns, &name).await?;
            println!("dropped {} partition(s)", gone.len());
        }
    }
    Ok(())
}
