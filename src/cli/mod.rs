//! The command line: `serve`, `import`, `export`, `reindex`, `verify`, `gen`, `bench`.
//!
//! Each command builds the same service the server runs, so an import or a reindex goes through
//! the same validation and mapping as the API.

pub mod bench;
pub mod gen;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::index::IndexSettings;
use crate::service::{App, AppOptions, StandardKlasses};
use crate::storage::StoreOptions;

/// Kindred: a self-hostable, search-centric customer data service.
#[derive(Debug, Parser)]
#[command(name = "kindred", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every data command takes.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Data directory.
    #[arg(long = "data")]
    pub data: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory overriding the embedded `index-config/`.
    #[arg(long = "index-config")]
    pub index_config: Option<PathBuf>,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the HTTP service.
    Serve {
        /// Data and configuration.
        #[command(flatten)]
        data: DataArgs,
        /// Listen address (default 127.0.0.1:7700).
        #[arg(long)]
        listen: Option<String>,
        /// SMTP listen address for email hooks (off by default).
        #[arg(long = "smtp-listen")]
        smtp_listen: Option<String>,
        /// Domain of email hook addresses.
        #[arg(long = "smtp-domain")]
        smtp_domain: Option<String>,
        /// Hosts `http.request` steps may reach (HOST[:PORT],...).
        #[arg(long = "http-allow", value_delimiter = ',')]
        http_allow: Vec<String>,
    },
    /// Loads bulk NDJSON (or Kustomer's export shape) into an org (service stopped).
    Import {
        /// Data and configuration.
        #[command(flatten)]
        data: DataArgs,
        /// Org id or name.
        #[arg(long, default_value = "default")]
        org: String,
        /// Files, or directories whose *.ndjson files import in name order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Writes an org as bulk NDJSON that `import` reads back (service stopped).
    Export {
        /// Data and configuration.
        #[command(flatten)]
        data: DataArgs,
        /// Org id or name.
        #[arg(long, default_value = "default")]
        org: String,
        /// Output file (stdout by default).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Rebuilds an org's index from the store (service stopped).
    Reindex {
        /// Data and configuration.
        #[command(flatten)]
        data: DataArgs,
        /// Org id or name.
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Makes a new key the platform key (the only one that may create orgs) and prints it; the way
    /// back after it was revoked or its user deleted (service stopped).
    PlatformKey {
        /// Data and configuration.
        #[command(flatten)]
        data: DataArgs,
        /// Org id or name of the key's user.
        #[arg(long, default_value = "default")]
        org: String,
        /// The key's user (created again, as an admin, when it no longer exists).
        #[arg(long, default_value = "admin")]
        user: String,
    },
    /// Compares an org's index with the store; exits 1 with a report when they differ.
    Verify {
        /// Data and configuration.
        #[command(flatten)]
        data: DataArgs,
        /// Org id or name.
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Loads the DATASET.md org if needed and measures Q1-Q7 and the write paths over HTTP.
    Bench {
        /// Data directory (generated and imported when it holds no store).
        #[arg(long)]
        data: PathBuf,
        /// Customers to generate when the data directory is empty (scale S: 100000).
        #[arg(long, default_value_t = 100_000)]
        customers: u64,
        /// Measured iterations per query.
        #[arg(long, default_value_t = 200)]
        iterations: usize,
        /// Skip the write benchmarks.
        #[arg(long)]
        skip_writes: bool,
    },
    /// Writes the DATASET.md benchmark org as NDJSON files.
    Gen {
        /// Number of customers (scale S: 100000).
        #[arg(long)]
        customers: u64,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Loads configuration: file and environment, then command-line overrides.
pub fn load_config(data: &DataArgs) -> anyhow::Result<Config> {
    let mut c = Config::load(data.config.as_deref())?;
    if let Some(d) = &data.data {
        c.data_dir = d.clone();
    }
    if let Some(d) = &data.index_config {
        c.index_config_dir = Some(d.clone());
    }
    Ok(c)
}

/// Service options from configuration.
pub fn app_options(c: &Config) -> anyhow::Result<AppOptions> {
    let dir = c.index_config_dir.as_deref();
    let index = match dir {
        Some(d) => {
            let p = d.join("index.json");
            IndexSettings::parse(&std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?)?
        }
        None => IndexSettings::default(),
    };
    let standard = StandardKlasses::load(dir).map_err(|e| anyhow::anyhow!(e))?;
    let mut o = AppOptions::new(c.data_dir.clone());
    o.admin_key = c.admin_key.clone();
    o.index = index;
    o.standard = standard;
    o.store = StoreOptions {
        cache_bytes: c.store_cache_mb << 20,
        ..StoreOptions::default()
    };
    o.http_allow = c.http_allow.clone();
    o.smtp_domain = c.smtp_domain.clone();
    Ok(o)
}

/// Runs a command.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve {
            data,
            listen,
            smtp_listen,
            smtp_domain,
            http_allow,
        } => {
            let mut c = load_config(&data)?;
            if let Some(l) = listen {
                c.listen = l;
            }
            if smtp_listen.is_some() {
                c.smtp_listen = smtp_listen;
            }
            if let Some(d) = smtp_domain {
                c.smtp_domain = d;
            }
            if !http_allow.is_empty() {
                c.http_allow = http_allow;
            }
            c.validate()?;
            crate::telemetry::init(c.log_format == "json");
            serve(c).await?;
            Ok(0)
        }
        Command::Import { data, org, files } => {
            crate::telemetry::init(false);
            let c = load_config(&data)?;
            // No live indexer: the import indexes directly and commits once the store is durable.
            let app = App::open(AppOptions {
                background: false,
                ..app_options(&c)?
            })?;
            let rt = app.runtime_by_name(&org)?;
            let files = crate::service::import::expand_inputs(&files)?;
            let bar = progress_bar("import");
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg} eta {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            let started = std::time::Instant::now();
            let (app2, org2, bar2) = (app.clone(), rt.org.clone(), bar.clone());
            let summary = tokio::task::spawn_blocking(move || {
                app2.import_files(&org2, &files, &mut |done, total, objects| {
                    bar2.set_length(total);
                    bar2.set_position(done);
                    let rate = objects as f64 / started.elapsed().as_secs_f64().max(0.001);
                    bar2.set_message(format!("{objects} objects, {rate:.0}/s"));
                })
            })
            .await??;
            bar.finish();
            for (file, line) in &summary.resumed {
                eprintln!("resumed {file} after line {line}");
            }
            eprintln!(
                "imported {} lines in {:.1}s: {} created, {} updated, {} deleted, {} definitions, {} failed ({:.0} objects/s)",
                summary.lines,
                summary.seconds,
                summary.created,
                summary.updated,
                summary.deleted,
                summary.definitions,
                summary.failed,
                summary.objects() as f64 / summary.seconds.max(0.001)
            );
            eprintln!(
                "time: parse {:.1}s, validate {:.1}s, store {:.1}s, index {:.1}s",
                summary.parse_seconds, summary.build_seconds, summary.store_seconds, summary.index_seconds
            );
            for (field, n) in &summary.skipped {
                eprintln!("skipped Kustomer field {field}: {n}");
            }
            for f in &summary.failures {
                eprintln!("failed {f}");
            }
            if summary.failed as usize > summary.failures.len() {
                eprintln!(
                    "... and {} more failures",
                    summary.failed as usize - summary.failures.len()
                );
            }
            app.shutdown().await;
            Ok(if summary.failed == 0 { 0 } else { 1 })
        }
        Command::Export { data, org, out } => {
            crate::telemetry::init(false);
            let c = load_config(&data)?;
            let app = App::open(app_options(&c)?)?;
            let rt = app.runtime_by_name(&org)?;
            let bar = progress_bar("export");
            let (app2, org2, bar2) = (app.clone(), rt.org.clone(), bar.clone());
            let summary = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let mut w: Box<dyn std::io::Write> = match &out {
                    Some(p) => Box::new(std::io::BufWriter::with_capacity(
                        1 << 20,
                        std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
                    )),
                    None => Box::new(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
                };
                Ok(app2.export_org(&org2, &mut w, &mut |done, total| {
                    bar2.set_length(total);
                    bar2.set_position(done);
                })?)
            })
            .await??;
            bar.finish();
            eprintln!(
                "exported {} definitions and {} objects ({} update lines set links to objects exported later)",
                summary.definitions, summary.objects, summary.link_updates
            );
            app.shutdown().await;
            Ok(0)
        }
        Command::Reindex { data, org } => {
            crate::telemetry::init(false);
            let c = load_config(&data)?;
            let app = App::open(app_options(&c)?)?;
            let rt = app.runtime_by_name(&org)?;
            let bar = progress_bar("reindex");
            let (app2, rt2, bar2) = (app.clone(), rt.clone(), bar.clone());
            let seq = tokio::task::spawn_blocking(move || {
                crate::service::indexing::rebuild(&app2, &rt2.org, &rt2.index, &mut |done, total| {
                    bar2.set_length(total.max(done));
                    bar2.set_position(done);
                })
            })
            .await??;
            bar.finish();
            eprintln!(
                "reindexed org `{}`: {} documents, index covers change {seq}",
                rt.org.id,
                rt.index.searcher().num_docs()
            );
            app.shutdown().await;
            Ok(0)
        }
        Command::PlatformKey { data, org, user } => {
            crate::telemetry::init(false);
            let c = load_config(&data)?;
            let opts = app_options(&c)?;
            // Opening an empty directory would make a new store (and a platform key for it).
            if !opts.data_dir.join("store").is_dir() {
                anyhow::bail!("{} holds no Kindred data (no store)", opts.data_dir.display());
            }
            let app = App::open(AppOptions {
                announce_admin_key: false,
                ..opts
            })?;
            let secret = app.reset_platform_key(&org, &user)?;
            println!("{secret}");
            eprintln!(
                "kindred: new platform key for user `{user}` of org `{org}` (also written to {})",
                app.options().data_dir.join("admin-key").display()
            );
            app.shutdown().await;
            Ok(0)
        }
        Command::Verify { data, org } => {
            crate::telemetry::init(false);
            let c = load_config(&data)?;
            let app = App::open(app_options(&c)?)?;
            let rt = app.runtime_by_name(&org)?;
            let report = app.verify(&rt).await?;
            println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            app.shutdown().await;
            Ok(if report.ok() { 0 } else { 1 })
        }
        Command::Bench {
            data,
            customers,
            iterations,
            skip_writes,
        } => {
            bench::run(bench::BenchOptions {
                data,
                customers,
                iterations,
                skip_writes,
            })
            .await?;
            Ok(0)
        }
        Command::Gen { customers, seed, out } => {
            let started = std::time::Instant::now();
            let summary =
                tokio::task::spawn_blocking(move || gen::generate(&gen::GenOptions { customers, seed, out })).await??;
            for (name, lines, bytes) in &summary.files {
                eprintln!("{name}: {lines} lines, {:.1} MiB", *bytes as f64 / (1 << 20) as f64);
            }
            eprintln!("{} objects in {:.1}s", summary.objects, started.elapsed().as_secs_f64());
            Ok(0)
        }
    }
}

/// A progress bar with rate and ETA on stderr.
pub fn progress_bar(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

async fn serve(c: Config) -> anyhow::Result<()> {
    let app = App::open(app_options(&c)?).context("opening the data directory")?;
    app.open_all()?;
    let listener = tokio::net::TcpListener::bind(&c.listen)
        .await
        .with_context(|| format!("binding {}", c.listen))?;
    if let Some(addr) = &c.smtp_listen {
        let smtp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding SMTP {addr}"))?;
        tracing::info!(smtp = %addr, domain = %c.smtp_domain, "accepting mail for email hooks");
        tokio::spawn(crate::service::automation::email::serve_smtp(smtp, app.clone()));
    }
    tracing::info!(listen = %c.listen, data = %c.data_dir.display(), "kindred is serving");
    let opts = crate::api::ApiOptions {
        body_limit: c.body_limit,
        bulk_line_limit: c.bulk_line_limit,
        hook_body_limit: c.hook_body_limit,
        timeout: Duration::from_secs(c.request_timeout_secs),
    };
    crate::api::serve(listener, app, opts, shutdown_signal()).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}
