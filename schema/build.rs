//! Rebuilds the crate when a migration is added or removed: `embed_migrations!` tracks the
//! files it read, not the folders, so a new migration's folder would otherwise be missed by an
//! incremental build.

fn main() {
    println!("cargo:rerun-if-changed=migrations/postgres");
    println!("cargo:rerun-if-changed=migrations/sqlite");
}
