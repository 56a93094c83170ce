//! Assembling and running the process: HTTP ingress, stream workers, or both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::auth::KeyRing;
use crate::config::Settings;
use crate::events::Hub;
use crate::limits::Limits;
use crate::pipeline::{consumer_name, Pipeline, Reclaimer, Refresh, Scheduler, Worker};
use crate::routes::{self, AppState};
use crate::store::Store;

/// Which half (or both) of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// HTTP ingress and workers in one process.
    Serve,
    /// HTTP ingress only: publishes jobs, serves reads.
    Api,
    /// Consumers only, plus a small health server for probes.
    Worker,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Serve => "serve",
            Mode::Api => "api",
            Mode::Worker => "worker",
        }
    }

    fn runs_workers(self) -> bool {
        matches!(self, Mode::Serve | Mode::Worker)
    }
}

/// A built process: listener bound, connections configured, nothing running yet.
pub struct Application {
    mode: Mode,
    pipeline: Pipeline,
    listener: TcpListener,
    addr: SocketAddr,
    keys: Arc<KeyRing>,
}

impl Application {
    /// Binds the HTTP listener (the API, or the probe server in worker mode).
    /// Port 0 picks a free port; [`Application::addr`] tells which.
    pub async fn build(settings: Settings, mode: Mode) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let store = Store::new(&settings.redis).context("invalid Redis settings")?;
        let pipeline = Pipeline::new(store, settings.clone());
        let keys = Arc::new(load_keys(&settings, mode)?);
        let listener = match mode {
            Mode::Worker => bind_probe_port(&settings).await?,
            _ => bind(settings.http_addr()).await?,
        };
        let addr = listener.local_addr()?;
        Ok(Self {
            mode,
            pipeline,
            listener,
            addr,
            keys,
        })
    }

    /// Where the HTTP server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pipeline this process uses (tests drive it directly).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Runs until `shutdown` is cancelled, then stops taking new connections and
    /// stream entries and gives the jobs in hand `shutdown.grace_secs` to finish.
    /// What cannot finish stays pending in Redis for another consumer.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application {
            mode,
            pipeline,
            listener,
            addr,
            keys,
        } = self;
        let settings = pipeline.settings.clone();
        if let Err(e) = pipeline.ensure_group().await {
            // Not fatal: Redis may come up later; workers recreate the group.
            tracing::warn!(error = %crate::store::Explained(&e), "could not create the consumer group yet");
        }

        let mut tasks = JoinSet::new();
        let hub = Hub::new(pipeline.store.clone(), shutdown.clone());
        let metrics = settings.metrics.enabled.then(|| {
            let handle = crate::monitoring::install(mode.as_str());
            tasks.spawn(crate::monitoring::upkeep(handle.clone(), shutdown.clone()));
            handle
        });
        let limits = Limits::new(&settings.limits);
        let kept = settings.data.keep_releases + 1;
        let pushed = (settings.cache.records && mode != Mode::Worker)
            .then(|| crate::genes::Pushed::new(settings.cache.verify));
        let catalog = match &pushed {
            Some(p) => crate::genes::Catalog::in_memory(kept, p.clone(), settings.cache.idle),
            None => crate::genes::Catalog::new(kept),
        };
        if let Some(p) = pushed {
            tasks.spawn(crate::genes::pushed::run(
                p,
                pipeline.store.clone(),
                catalog.clone(),
                settings.cache.verify,
                shutdown.clone(),
            ));
        }
        let state = AppState::new(routes::AppParts {
            pipeline: pipeline.clone(),
            hub: hub.clone(),
            metrics,
            keys: keys.clone(),
            limits: limits.clone(),
            catalog,
        });
        match mode {
            Mode::Worker => {
                tasks.spawn(crate::server::serve(
                    listener,
                    routes::probes(state),
                    settings.http.clone(),
                    shutdown.clone(),
                ));
            }
            Mode::Serve | Mode::Api => {
                tasks.spawn(crate::server::serve(
                    listener,
                    routes::api(state),
                    settings.http.clone(),
                    shutdown.clone(),
                ));
                tasks.spawn(hub.run());
                tasks.spawn(limits.run(pipeline.clone(), shutdown.clone()));
            }
        }
        tracing::info!(%addr, ?mode, "listening");

        if mode.runs_workers() {
            for i in 0..settings.workers.concurrency {
                let worker = Worker::new(pipeline.clone(), consumer_name("worker", i));
                tasks.spawn(worker.run(shutdown.clone()));
            }
            let reclaimer = Reclaimer::new(pipeline.clone(), consumer_name("reclaimer", 0));
            tasks.spawn(reclaimer.run(shutdown.clone()));
            tasks.spawn(Scheduler::new(pipeline.clone()).run(shutdown.clone()));
        }

        // Every role looks at the refresh schedule: the claim in Redis makes
        // it one load per tick, whichever replicas run.
        if let Some(schedule) = settings.data.refresh_schedule.clone() {
            tasks.spawn(Refresh::new(pipeline.clone(), schedule).run(shutdown.clone()));
        }

        // Every task runs until the token is cancelled; one ending early is a bug,
        // so it stops the rest too.
        let unexpected = tokio::select! {
            biased;
            _ = shutdown.cancelled() => false,
            _ = tasks.join_next() => {
                // The HTTP server ends on its own once the token is cancelled; that
                // race is a normal stop, anything else is not.
                let unexpected = !shutdown.is_cancelled();
                if unexpected {
                    tracing::error!("a service task stopped unexpectedly; shutting down");
                    shutdown.cancel();
                }
                unexpected
            }
        };
        let grace = settings.shutdown.grace;
        tracing::info!(?grace, "shutting down: finishing jobs in hand");
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                "grace period over: {} task(s) aborted; their jobs stay pending for another consumer",
                tasks.len()
            );
            tasks.shutdown().await;
        }
        tracing::info!("stopped");
        if unexpected {
            anyhow::bail!("a service task stopped unexpectedly (see the log above)");
        }
        Ok(())
    }
}

/// The API keys, or an open service said loudly. A malformed keys file
/// stops start-up (its message names the line).
fn load_keys(settings: &Settings, mode: Mode) -> anyhow::Result<KeyRing> {
    let auth = &settings.auth;
    let Some(path) = &auth.keys_file else {
        if mode != Mode::Worker {
            tracing::warn!(
                "NO API KEYS: anyone who reaches this port can load, delete and submit. \
                 Set GENE_API__AUTH__KEYS_FILE (see `gene-api keygen --help` and docs/security.md, API keys)"
            );
        }
        return Ok(KeyRing::default());
    };
    let ring = KeyRing::load(path, auth.protect_reads)?;
    tracing::info!(keys = ring.len(), protect_reads = ring.protect_reads(), file = %path.display(), "API keys loaded");
    Ok(ring)
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// The worker's probe server. A port that was set (the deployment files set
/// 5001) is used or the worker stops. With none set, the default port is
/// tried first and, if another process on this host holds it (a second
/// worker, typically), any free port: several workers then share a host with
/// default settings, and the log says where each one's probes are.
async fn bind_probe_port(settings: &Settings) -> anyhow::Result<TcpListener> {
    let (addr, explicit) = settings.worker_health_addr();
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::AddrInUse => {
            let listener = bind(SocketAddr::new(addr.ip(), 0)).await?;
            tracing::warn!(
                busy = %addr,
                addr = %listener.local_addr()?,
                "the default probe port is taken (another worker on this host?); \
                 /health and /ready listen on a free port instead. Set \
                 GENE_API__WORKERS__HEALTH_PORT to require a port"
            );
            Ok(listener)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr}")),
    }
}

/// Cancels `token` on SIGTERM or Ctrl-C (SIGINT). The handlers are installed
/// before this returns, so a signal that arrives right after start-up is not lost.
/// Must be called inside the runtime.
pub fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => tracing::info!("Ctrl-C received"),
                _ = term.recv() => tracing::info!("SIGTERM received"),
            }
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
    Ok(())
}

/// `gene-api healthcheck`: exit status for a container HEALTHCHECK, with no curl
/// in the image. Succeeds when `/health` on any of `ports` on localhost answers 200.
pub fn healthcheck(ports: &[u16]) -> bool {
    use std::io::{Read, Write};
    ports.iter().any(|port| {
        let addr = SocketAddr::from(([127, 0, 0, 1], *port));
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        if s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut head = [0u8; 12];
        s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
    })
}
