//! The `kindred` binary: parses the command line and runs it.

use clap::Parser;

// glibc malloc spent ~45% of an import's CPU (sled copies leaf nodes on every insert, tantivy
// allocates per token); mimalloc cuts that sharply.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = kindred::cli::Cli::parse();
    match kindred::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("kindred: {e:#}");
            std::process::exit(2);
        }
    }
}
