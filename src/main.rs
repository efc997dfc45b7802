//! The `kindred` binary: parses the command line and runs it.

use clap::Parser;

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
