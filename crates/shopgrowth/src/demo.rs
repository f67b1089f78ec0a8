//! `shopgrowth demo` (being written).
use crate::config::{FileConfig, StoreArgs};
use clap::Args;
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {}
pub async fn run(_s: &StoreArgs, _f: &FileConfig, _a: DemoArgs, _json: bool) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
