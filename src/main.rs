//! The sealwatch binary: parse the command line, start the engines (and discovery) and the HTTP
//! server, and run until SIGTERM or SIGINT. The only place that uses `anyhow`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use sealwatch::build_info;
use sealwatch::config::{Cli, Command, Config, Environment, LogFormat, LogLevel};
use sealwatch::discovery::{Discovery, Fleet};
use sealwatch::{Engines, Feed, Metrics, USER_RUNTIME_ROOT};

// Allocator experiments for the soak (`--features mimalloc` or `jemalloc`); the default build
// keeps glibc's malloc, tuned in `allocator.rs`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    sealwatch::allocator::tune();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line that says what to fix, not clap's usage block.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid command line");
            let first = first.trim_start_matches("error: ");
            let valid = match e.get(clap::error::ContextKind::ValidValue) {
                Some(clap::error::ContextValue::Strings(v)) => {
                    format!("; expected one of: {}", v.join(", "))
                }
                _ => String::new(),
            };
            eprintln!("sealwatch: {first}{valid} (see sealwatch --help)");
            return ExitCode::from(2);
        }
    };
    let config = match cli.validate(&Environment::current()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sealwatch: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Healthcheck) = cli.command {
        return healthcheck(&config.listen_address, config.has_web_config);
    }
    init_logging(config.log_level, config.log_format);
    let open_files = sealwatch::fdlimit::raise_open_files_limit();
    let max_connections = match config.max_connections {
        0 => sealwatch::fdlimit::connection_cap(open_files),
        n => n,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sealwatch: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(config, max_connections, open_files));
    // Blocking tasks (a render, a bcrypt check) are not waited for: shutdown stays bounded.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sealwatch: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(level: LogLevel, format: LogFormat) {
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let level = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    // Our own crate at the chosen level; dependencies one notch quieter unless tracing. A fixed
    // list of targets, not an `EnvFilter`: that one compiles its directives with a regex engine,
    // whose code (a tenth of a megabyte resident, README "Memory") would serve nothing else.
    let mut filter = tracing_subscriber::filter::Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("sealwatch", level);
    if level == LevelFilter::TRACE {
        filter = filter.with_target("hyper", LevelFilter::DEBUG);
    }
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(layer).init(),
        LogFormat::Json => registry.with(layer.json()).init(),
    }
}

async fn run(
    config: Config,
    max_connections: usize,
    open_files: Option<u64>,
) -> anyhow::Result<()> {
    let listener = bind(&config.listen_address).await?;
    let shutdown = CancellationToken::new();
    let (mut registry, families) = sealwatch::register_instrument_families();
    for warning in &config.web.warnings {
        tracing::warn!("--web.config.file: {warning}");
    }
    registry.register(
        "sealwatch_web_auth_verifications",
        "bcrypt verifications of basic-auth credentials (cache misses; at most one runs at a time)",
        config
            .web
            .auth
            .as_ref()
            .map(|a| a.verifications())
            .unwrap_or_default(),
    );
    let engines = Engines::default();
    let feed = Feed::new(
        config.events_buffer,
        config.events_max_feeds,
        shutdown.clone(),
    )
    .with_keep_alive(config.events_keepalive);
    let mut fleet = Fleet::new(
        &config,
        engines.clone(),
        families,
        feed.clone(),
        shutdown.clone(),
    );
    for engine in &config.engines {
        fleet.start(engine).map_err(anyhow::Error::msg)?;
    }
    let fleet = if config.discover.rootless {
        let discovery = Discovery::new(USER_RUNTIME_ROOT.into(), config.removed_retention);
        tokio::spawn(discovery.run(fleet, shutdown.clone()))
    } else {
        tokio::spawn(async move { fleet })
    };
    let metrics = Metrics::new(engines.clone(), registry).with_scrape_cache(config.scrape_cache);
    let app = sealwatch::router(
        engines,
        metrics,
        &config.telemetry_path,
        config.web.auth.clone(),
        config.max_requests,
        feed,
    );
    tracing::info!(
        version = build_info::VERSION,
        engines = %config.engines.iter().map(|e| format!("{} ({})", e.name, e.endpoint)).collect::<Vec<_>>().join(", "),
        discover = if config.discover.rootless { USER_RUNTIME_ROOT } else { "off" },
        max_connections,
        max_requests = config.max_requests,
        open_files = open_files.map(|n| n.to_string()).unwrap_or_else(|| "unknown".into()),
        "listening on http://{}",
        listener.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    sealwatch::serve(
        listener,
        app,
        config.web.tls.clone(),
        shutdown.clone(),
        sealwatch::ServeLimits { max_connections },
    )
    .await;
    shutdown.cancel();
    // The watchers get one second together, not each: shutdown stays under 5 s.
    if let Ok(fleet) = fleet.await {
        fleet.join(Duration::from_secs(1)).await;
    }
    Ok(())
}

async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--web.listen-address)"))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still ends on the default action.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// `sealwatch healthcheck`: GET /-/ready on the configured address, exit 0 on 200. With a web
/// config (TLS or basic auth) it only checks that the port accepts connections.
fn healthcheck(listen: &str, port_only: bool) -> ExitCode {
    use std::io::{Read, Write};
    let target = listen
        .replacen("0.0.0.0:", "127.0.0.1:", 1)
        .replacen("[::]:", "[::1]:", 1);
    let attempt = || -> std::io::Result<bool> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&target)?
            .next()
            .ok_or_else(|| std::io::Error::other("address did not resolve"))?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        if port_only {
            return Ok(true);
        }
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        write!(
            s,
            "GET /-/ready HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200"))
    };
    match attempt() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("sealwatch healthcheck: {target} is not ready");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sealwatch healthcheck: cannot reach {target}: {e}");
            ExitCode::FAILURE
        }
    }
}
