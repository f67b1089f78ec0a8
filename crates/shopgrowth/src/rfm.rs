//! `shopgrowth rfm`: RFM scores and classes for every customer of an order file, without a store.
//! The file is read with the same adapters and cleaning rules as `shopgrowth import`.

use crate::config::FileConfig;
use crate::import::{format_and_options, FormatName, ImportArgs};
use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use serde::Serialize;
use shopgrowth_core::model::OrderKind;
use shopgrowth_ingest::reader::Reader;
use shopgrowth_profile::rfm::{RfmBuilder, RfmConfig};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct RfmArgs {
    /// The order file (plain or gzip).
    pub file: PathBuf,
    #[arg(long, value_enum)]
    pub format: FormatName,
    /// Column mapping (TOML, entity = "order_lines") for --format csv.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Time zone of wall-clock times in the file and of the calendar days counted.
    #[arg(long)]
    pub tz: Option<String>,
    /// Reference date (YYYY-MM-DD); default the day after the last line.
    #[arg(long)]
    pub reference_date: Option<NaiveDate>,
    /// Four ascending recency thresholds in days, instead of quintiles.
    #[arg(long, value_delimiter = ',', num_args = 4)]
    pub recency_thresholds: Option<Vec<i64>>,
    /// Four ascending frequency thresholds (orders), instead of quintiles.
    #[arg(long, value_delimiter = ',', num_args = 4)]
    pub frequency_thresholds: Option<Vec<i64>>,
    /// Four ascending monetary thresholds in minor units, instead of quintiles.
    #[arg(long, value_delimiter = ',', num_args = 4)]
    pub monetary_thresholds: Option<Vec<i64>>,
    /// Where to write one row per customer (CSV).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Serialize)]
struct Report {
    file: String,
    out: String,
    customers: usize,
    only_returns: u64,
    duplicate_lines: u64,
    rejected_rows: u64,
    reference_date: NaiveDate,
    thresholds: shopgrowth_profile::rfm::Thresholds,
    classes: Vec<(String, String, usize)>,
    seconds: f64,
}

fn four(name: &str, v: &Option<Vec<i64>>) -> anyhow::Result<Option<[i64; 4]>> {
    match v {
        None => Ok(None),
        Some(v) => {
            let t: [i64; 4] = v
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("--{name} takes four numbers"))?;
            anyhow::ensure!(
                t.windows(2).all(|w| w[0] <= w[1]),
                "--{name} must be ascending"
            );
            Ok(Some(t))
        }
    }
}

pub fn run(file: &FileConfig, args: RfmArgs, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let import_args = ImportArgs {
        file: args.file.clone(),
        format: args.format,
        mapping: args.mapping.clone(),
        tz: args.tz.clone(),
        channel: "web".into(),
        default_time: None,
        rejects: None,
        chunk_rows: 50_000,
        quiet: true,
    };
    let (format, mut opts) = format_and_options(file, &import_args)?;
    opts.with_products = false;
    let tz = opts.tz;
    let config = RfmConfig {
        tz,
        reference: args.reference_date,
        recency_thresholds: four("recency-thresholds", &args.recency_thresholds)?,
        frequency_thresholds: four("frequency-thresholds", &args.frequency_thresholds)?,
        monetary_thresholds: four("monetary-thresholds", &args.monetary_thresholds)?,
    };
    let mut reader = Reader::open(&args.file, &format, opts, 50_000)?;
    // Parsing runs on its own thread while this one accumulates.
    let (tx, rx) = std::sync::mpsc::sync_channel(2);
    let parser = std::thread::spawn(move || -> shopgrowth_ingest::Result<()> {
        while let Some(chunk) = reader.next_chunk()? {
            if tx.send(chunk).is_err() {
                break;
            }
        }
        Ok(())
    });
    let mut builder = RfmBuilder::default();
    let mut rejected = 0u64;
    for chunk in rx {
        rejected += chunk.rejected.len() as u64;
        for imported in &chunk.batch.orders {
            let order = &imported.order;
            let Some(customer) = &order.user_id else {
                continue;
            };
            let is_return = order.kind == OrderKind::Return;
            for (line, key) in order.lines.iter().zip(&imported.line_nos) {
                let amount = line.amount().context("a line amount overflows")?;
                builder.add_line(
                    tz,
                    customer.as_str(),
                    order.id.as_str(),
                    *key,
                    is_return,
                    order.placed_at.0,
                    amount,
                );
            }
        }
    }
    parser
        .join()
        .map_err(|_| anyhow::anyhow!("the parser panicked"))??;
    let result = builder.finish(&config);

    let mut out = csv::Writer::from_path(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    out.write_record([
        "customer",
        "recency_days",
        "frequency",
        "monetary",
        "r",
        "f",
        "m",
        "rfm_class",
        "rfm_class_zh",
    ])?;
    for row in &result.rows {
        out.write_record([
            row.customer.clone(),
            row.recency_days.to_string(),
            row.frequency.to_string(),
            row.monetary.to_string(),
            row.r.to_string(),
            row.f.to_string(),
            row.m.to_string(),
            row.class.as_str().to_owned(),
            row.class.zh().to_owned(),
        ])?;
    }
    out.flush()?;
    let report = Report {
        file: args.file.display().to_string(),
        out: args.out.display().to_string(),
        customers: result.rows.len(),
        only_returns: result.only_returns,
        duplicate_lines: result.duplicate_lines,
        rejected_rows: rejected,
        reference_date: result.reference,
        thresholds: result.thresholds.clone(),
        classes: result
            .class_sizes()
            .into_iter()
            .map(|(c, n)| (c.as_str().to_owned(), c.zh().to_owned(), n))
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} customers scored (reference date {}), written to {} in {:.2}s",
            report.customers, report.reference_date, report.out, report.seconds
        );
        println!(
            "  {} customers with only returns not scored; {} duplicate lines counted once; {} rows rejected",
            report.only_returns, report.duplicate_lines, report.rejected_rows
        );
        for (_, zh, n) in &report.classes {
            println!("  {zh:<8}{n:>8}");
        }
    }
    Ok(())
}
