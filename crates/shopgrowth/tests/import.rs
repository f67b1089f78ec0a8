//! `shopgrowth import` through the real binary: every row accounted for, specific reasons,
//! gzip, idempotent re-import; and the check against the shared Online Retail file.

mod common;

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn shopgrowth(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shopgrowth"));
    c.arg("--data-dir").arg(data).env("SHOPGROWTH_LOG", "warn");
    c
}

fn import(data: &Path, file: &Path, rejects: &Path) -> Value {
    let out = shopgrowth(data)
        .args(["import", "--format", "online-retail", "--json", "--rejects"])
        .arg(rejects)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

const SAMPLE: &str =
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850,United Kingdom
C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527,United Kingdom
536414,22139,,56,2010-12-01 11:52:00,0.0,,United Kingdom
536544,21773,DECORATIVE ROSE BATHROOM BOTTLE,1,2010-12-01 14:32:00,2.51,,United Kingdom
A563186,B,Adjust bad debt,1,2011-08-12 14:51:00,-11062.06,,United Kingdom
537000,PADS,PADS TO MATCH ALL CUSHIONS,1,2011-01-01 10:00:00,0.001,13952,United Kingdom
537001,X,BROKEN DATE,1,01/12/2010 8:26,1.00,13952,United Kingdom
537002,21777,,-10,2010-12-01 16:50:00,0.0,,United Kingdom
";

#[test]
fn every_row_is_accepted_a_duplicate_or_rejected_with_its_reason() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let csv = dir.path().join("retail.csv");
    std::fs::write(&csv, SAMPLE).unwrap_or_else(|e| panic!("{e}"));
    let rejects = dir.path().join("rejects.txt");
    let s = import(&dir.path().join("a"), &csv, &rejects);
    assert_eq!(
        (
            s["rows"].as_u64(),
            s["accepted"].as_u64(),
            s["duplicates"].as_u64(),
            s["rejected"].as_u64()
        ),
        (Some(10), Some(4), Some(1), Some(5)),
        "{s}"
    );
    assert_eq!(
        s["rejected_by_reason"],
        serde_json::json!({"price_zero": 1, "price_negative": 1, "price_sub_minor_unit": 1, "date_invalid": 1, "quantity_negative_on_sale": 1})
    );
    assert_eq!(
        s["returns"],
        serde_json::json!({"rows": 1, "accepted": 1, "duplicates": 0, "rejected": 0})
    );
    assert_eq!(s["anonymous"]["rows"], 4);
    assert_eq!(s["customers"], 3);
    // The rejects file says file:line:field:reason, one line per problem.
    let listed = std::fs::read_to_string(&rejects).unwrap_or_default();
    let name = csv.display().to_string();
    assert!(
        listed.contains(&format!("{name}:6:UnitPrice:0.0 is zero")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "{name}:10:InvoiceDate:\"01/12/2010 8:26\" is not YYYY-MM-DD HH:MM[:SS]"
        )),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("{name}:11:Quantity:"))
            && listed.contains(&format!("{name}:11:UnitPrice:")),
        "{listed}"
    );
    // Importing the same file again changes nothing: every good row is now a duplicate.
    let again = import(&dir.path().join("a"), &csv, &rejects);
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(5))
    );
    // Gzip is read the same way.
    let gz = dir.path().join("retail.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap_or_else(|e| panic!("{e}")),
        flate2::Compression::default(),
    );
    enc.write_all(SAMPLE.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    enc.finish().unwrap_or_else(|e| panic!("{e}"));
    let zipped = import(&dir.path().join("b"), &gz, &rejects);
    assert_eq!(
        (zipped["accepted"].as_u64(), zipped["rejected"].as_u64()),
        (Some(4), Some(5))
    );
}

#[test]
fn bad_invocations_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = shopgrowth(dir.path())
        .args(["import", "--format", "csv", "nofile.csv"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format csv needs --mapping FILE"));
    let out = shopgrowth(dir.path())
        .args(["import", "--format", "taobao", "missing.csv"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.csv"));
    let out = shopgrowth(dir.path())
        .args(["serve"])
        .env_remove("SHOPGROWTH_PII_KEY")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHOPGROWTH_PII_KEY"));
}

/// Dataset check on ../shared/data/online_retail (the real 541,909-row file).
#[test]
fn shared_online_retail_is_fully_accounted_for() {
    let Some(file) = common::shared_online_retail() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = import(dir.path(), &file, &dir.path().join("rejects.txt"));
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    assert_eq!(n("rows"), 541_909);
    assert_eq!(n("accepted") + n("duplicates") + n("rejected"), 541_909);
    assert_eq!(n("customers"), 4_372);
    assert_eq!(s["returns"]["rows"], 9_288);
    assert_eq!(s["returns"]["rejected"], 0, "every return line is kept");
    assert_eq!(s["anonymous"]["rows"], 135_080);
    assert_eq!(
        s["rejected_by_reason"],
        serde_json::json!({"price_negative": 2, "price_sub_minor_unit": 4, "price_zero": 1179, "quantity_negative_on_sale": 1336})
    );
    assert_eq!(
        n("duplicates"),
        5_263,
        "exact duplicate lines (5,268 in the file, 5 of them also rejected)"
    );
}
