//! The `kindred` binary: parses the command line and runs it.

use clap::Parser;

// glibc malloc spent ~45% of an import's CPU (sled copies leaf nodes on every insert, tantivy
// allocates per token); mimalloc cuts that sharply.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = kindred::cli::Cli::parse();
    if matches!(cli.command, kindred::cli::Command::Import { .. }) {
        keep_freed_memory();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kindred: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    match runtime.block_on(kindred::cli::run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("kindred: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Stops mimalloc from handing freed memory back to the kernel (it does so after 1 s by
/// default). An import frees and reallocates large buffers (tantivy's segment arenas, store
/// batches) all along; once given back, each page faults and is zeroed again on reuse: at
/// 320k objects, 45,000-60,000 page faults against 1,200 when kept, and 4-7% more wall time
/// (six alternating pairs, BENCHMARKS.md). The import is a short batch process that exits at
/// the end, so keeping its high-water mark costs nothing afterwards (+60 MB peak RSS). The
/// service keeps the default, so its memory shrinks back after a spike.
fn keep_freed_memory() {
    /// `mi_option_purge_delay` (same value in mimalloc v2 and v3; not exported by the crate).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: mimalloc reads options at every purge; setting one is not synchronised, so it is
    // done here, before the runtime or any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}
