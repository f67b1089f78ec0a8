//! `shopgrowth import`: streams a file into the store. Parsing runs on one thread while the
//! store writes the previous chunk on another; memory stays bounded by the chunk size.

use crate::config::{self, FileConfig, StoreArgs};
use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use shopgrowth_core::model::Channel;
use shopgrowth_core::time::Timestamp;
use shopgrowth_ingest::formats::Options;
use shopgrowth_ingest::mapping::Mapping;
use shopgrowth_ingest::reader::{Chunk, Format, Reader};
use shopgrowth_ingest::summary::{BatchShape, Summary};
use shopgrowth_store::records::Written;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatName {
    /// UCI Online Retail (InvoiceNo, StockCode, …); C-invoices are returns.
    OnlineRetail,
    /// Taobao UserBehavior (user_id,item_id,category_id,behavior_type,timestamp).
    Taobao,
    /// MovieLens ratings (ratings.dat, u.data, or CSV with a header).
    Movielens,
    /// Any CSV with --mapping FILE.
    Csv,
    /// One JSON event per line, as the HTTP API takes it.
    Jsonl,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file to import (plain or gzip).
    pub file: PathBuf,
    #[arg(long, value_enum)]
    pub format: FormatName,
    /// Column mapping (TOML) for --format csv.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Time zone of wall-clock times in the file (default: Europe/London for online-retail,
    /// else the shop's time zone).
    #[arg(long)]
    pub tz: Option<String>,
    /// Channel for rows that do not say.
    #[arg(long, default_value = "web")]
    pub channel: String,
    /// Time for rows that have none (MovieLens files without timestamps), RFC 3339.
    #[arg(long)]
    pub default_time: Option<String>,
    /// Where to write rejected rows as file:line:field:reason (default: <file name>.rejects.txt).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Rows per chunk written in one transaction.
    #[arg(long, default_value_t = 20_000)]
    pub chunk_rows: usize,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub async fn run(
    store_args: &StoreArgs,
    file: &FileConfig,
    args: ImportArgs,
    json: bool,
) -> anyhow::Result<()> {
    let summary = import(store_args, file, &args, json).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.render());
    }
    anyhow::ensure!(
        summary.balances(),
        "internal error: the import does not account for every row"
    );
    Ok(())
}

/// The reader's format and options from the command line.
pub fn format_and_options(
    file: &FileConfig,
    args: &ImportArgs,
) -> anyhow::Result<(Format, Options)> {
    let format = match args.format {
        FormatName::OnlineRetail => Format::OnlineRetail,
        FormatName::Taobao => Format::Taobao,
        FormatName::Movielens => Format::MovieLens,
        FormatName::Jsonl => Format::JsonLines,
        FormatName::Csv => {
            let path = args
                .mapping
                .as_ref()
                .context("--format csv needs --mapping FILE (see docs/import.md)")?;
            Format::Csv(Mapping::load(path)?)
        }
    };
    if args.mapping.is_some() && !matches!(args.format, FormatName::Csv) {
        anyhow::bail!("--mapping is only for --format csv");
    }
    let tz = match (&args.tz, args.format) {
        (Some(tz), _) => config::timezone(Some(tz), file)?,
        (None, FormatName::OnlineRetail) => chrono_tz::Europe::London,
        (None, _) => config::timezone(None, file)?,
    };
    let channel = Channel::parse(&args.channel).with_context(|| {
        format!(
            "--channel: {:?} is not web, app, mini_program or store",
            args.channel
        )
    })?;
    let default_time = args
        .default_time
        .as_deref()
        .map(Timestamp::parse_rfc3339)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--default-time: {e}"))?;
    let opts = Options {
        tz,
        channel,
        default_time,
        now: Timestamp::now(),
        with_products: true,
    };
    Ok((format, opts))
}

pub async fn import(
    store_args: &StoreArgs,
    file: &FileConfig,
    args: &ImportArgs,
    json: bool,
) -> anyhow::Result<Summary> {
    let (format, opts) = format_and_options(file, args)?;
    let store = config::open_store(store_args, file).await?;
    let started = Instant::now();
    let mut reader = Reader::open(&args.file, &format, opts, args.chunk_rows)?;
    let mut summary = Summary::new(reader.file(), format.name());
    let rejects_path = args.rejects.clone().unwrap_or_else(|| {
        let name = args
            .file
            .file_name()
            .map_or_else(|| "import".into(), |n| n.to_string_lossy().into_owned());
        PathBuf::from(format!("{name}.rejects.txt"))
    });
    let mut rejects = std::io::BufWriter::new(
        std::fs::File::create(&rejects_path)
            .with_context(|| format!("creating {}", rejects_path.display()))?,
    );

    let bytes_read = std::sync::Arc::clone(&reader.bytes_read);
    let show_progress = !json && !args.quiet && std::io::stderr().is_terminal();
    let bar = if show_progress {
        ProgressBar::new(reader.total_bytes)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} [{bar:30}] {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));

    let (tx, mut rx) = tokio::sync::mpsc::channel::<shopgrowth_ingest::Result<Chunk>>(2);
    let parser = tokio::task::spawn_blocking(move || {
        loop {
            match reader.next_chunk() {
                Ok(Some(chunk)) => {
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
        reader.customers_seen()
    });

    let now = Timestamp::now().0;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk?;
        summary.add_rejected(&chunk.rejected);
        for row in &chunk.rejected {
            for problem in &row.problems {
                writeln!(rejects, "{problem}")?;
            }
        }
        let shape = BatchShape::of(&chunk.batch);
        let written = store
            .import_batch(chunk.batch, now)
            .await
            .context("writing to the store")?;
        let inserted = |w: &Vec<Written>| {
            w.iter()
                .map(|w| *w == Written::Inserted)
                .collect::<Vec<_>>()
        };
        summary.add_written(
            &shape,
            &inserted(&written.lines),
            &inserted(&written.events),
        );
        bar.set_position(bytes_read.load(Ordering::Relaxed));
        bar.set_message(format!("{} rows", summary.rows));
    }
    let customers = parser.await.context("the parser stopped")?;
    rejects.flush()?;
    bar.finish_and_clear();
    summary.finish(customers, started.elapsed());
    if summary.rejected > 0 && !json {
        eprintln!("rejected rows are listed in {}", rejects_path.display());
    }
    Ok(summary)
}
