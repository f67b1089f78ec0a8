//! Shared by the binary's test files.

use std::path::PathBuf;

/// The shared Online Retail file beside the repository, or `None` (saying so) when it is missing:
/// dataset checks run only where `../shared` is present.
pub fn shared_online_retail() -> Option<PathBuf> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/online_retail/OnlineRetail.csv.gz");
    if std::fs::metadata(&file).is_ok() {
        Some(file)
    } else {
        eprintln!(
            "dataset check not run: {} is missing (it lives in ../shared beside the repository)",
            file.display()
        );
        None
    }
}
