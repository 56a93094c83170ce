//! The `gene-api` binary: parse the command line, read settings, run.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gene_api::app::{cancel_on_signals, healthcheck, Application, Mode};
use gene_api::config::Settings;
use tokio_util::sync::CancellationToken;

/// The HGNC gene data set over HTTP, with Redis and a Redis Streams job pipeline.
///
/// Settings come from config/default.toml, config/$APP_ENV.toml and the
/// environment: REDIS_IP (required), REDIS_PORT, REDIS_USERNAME, REDIS_PASSWORD,
/// REDIS_TLS, REDIS_CA_FILE, REDIS_CLIENT_CERT_FILE, REDIS_CLIENT_KEY_FILE and
/// GENE_API__<SECTION>__<KEY> (e.g. GENE_API__HTTP__PORT=5000). See docs/operating.md (Configuration).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// HTTP API and stream workers in one process (the default).
    Serve,
    /// HTTP API only: publishes jobs to the stream and serves reads. Scale it for traffic.
    Api,
    /// Stream workers only, with /health and /ready on a probe port. Scale it for
    /// job throughput: any number of workers may run on one host.
    ///
    /// The probe port is GENE_API__WORKERS__HEALTH_PORT when set (a busy port is
    /// then an error; the compose file and k8s/ set 5001). When it is unset, the
    /// worker tries 5001 and, if another process holds it, listens on a free
    /// port and logs which ("the default probe port is taken ... addr=...").
    Worker,
    /// Exit 0 if a gene-api on this host answers GET /health (for container HEALTHCHECKs).
    Healthcheck,
    /// Make a new API key. Prints two lines: the key (give it to the client;
    /// it is not stored anywhere) and the line to add to the keys file
    /// (GENE_API__AUTH__KEYS_FILE), which holds only its SHA-256:
    ///   gene-api keygen --name ci --scope write > ci.keygen
    ///   head -1 ci.keygen   # the key;   tail -1 ci.keygen >> keys
    #[command(verbatim_doc_comment)]
    Keygen {
        /// A name for the key's holder (shown in logs and used for its rate limits).
        #[arg(long)]
        name: String,
        /// `write` (submit, cancel, retry jobs, make plots) or `admin` (also
        /// DELETE /data, delete images, dead letters); `read` for protect_reads.
        #[arg(long, default_value = "write")]
        scope: String,
    },
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let mode = match cli.mode.unwrap_or(Cmd::Serve) {
        Cmd::Serve => Mode::Serve,
        Cmd::Api => Mode::Api,
        Cmd::Worker => Mode::Worker,
        Cmd::Healthcheck => return run_healthcheck(),
        Cmd::Keygen { name, scope } => return keygen(&name, &scope),
    };
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gene-api: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gene-api: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = gene_api::telemetry::init_service(
        "info",
        settings.log.format,
        runtime.handle(),
        mode.as_str(),
    ) {
        eprintln!("gene-api: {e}");
        return ExitCode::from(2);
    }
    let code = runtime.block_on(async move {
        let app = match Application::build(settings, mode).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("gene-api: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let shutdown = CancellationToken::new();
        if let Err(e) = cancel_on_signals(shutdown.clone()) {
            eprintln!("gene-api: cannot listen for SIGTERM/Ctrl-C: {e}");
            return ExitCode::FAILURE;
        }
        match app.run(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gene-api: {e:#}");
                ExitCode::FAILURE
            }
        }
    });
    // The exporter's last batch goes out on the runtime: before it is dropped.
    gene_api::telemetry::otel::shutdown();
    code
}

fn keygen(name: &str, scope: &str) -> ExitCode {
    let made = scope
        .parse::<gene_api::auth::Scope>()
        .and_then(|scope| gene_api::auth::generate(name, scope));
    match made {
        Ok((key, line)) => {
            // stdout: exactly the key, then the line, for scripts
            // (`head -1` / `tail -1`); the explanation goes to stderr.
            eprintln!(
                "gene-api keygen: line 1 is the key (give it to the client; it is shown only \
                 now), line 2 the line for the keys file (GENE_API__AUTH__KEYS_FILE)"
            );
            println!("{key}\n{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gene-api keygen: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_healthcheck() -> ExitCode {
    let port = |var: &str, default: u16| {
        std::env::var(var)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(default)
    };
    let ports = [
        port("GENE_API__HTTP__PORT", 5000),
        port("GENE_API__WORKERS__HEALTH_PORT", 5001),
    ];
    if healthcheck(&ports) {
        ExitCode::SUCCESS
    } else {
        eprintln!("gene-api healthcheck: nothing answered /health on ports {ports:?}");
        ExitCode::FAILURE
    }
}

/// A load allocates a few 14 MB buffers. glibc raises its mmap threshold after
/// freeing such a block, so later ones land in per-thread arenas and are never
/// returned: RSS climbed ~15 MB per load. A fixed threshold keeps big buffers
/// in mmap, which goes back to the OS on free.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
