// sqlx::migrate! embeds the PostgreSQL migrations; rebuild when one is added or edited.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
