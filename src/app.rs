//! The running service: opens the store, binds the web listener (and the admin one, when
//! configured) and starts the scheduler and the delivery worker. The binary and every
//! integration test build it the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::delivery::worker::Stopped;
use crate::delivery::{Mailer, Worker};
use crate::domain::token::{LinkKeys, Links, random_token};
use crate::error::chain;
use crate::feeds::{ArxivLookup, Fetcher};
use crate::store::Store;
use crate::{scheduler, web};

/// What `serve` runs besides the web listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Run the feed and digest schedule. Extra replicas leave it to one instance.
    pub scheduler: bool,
    /// Deliver the outbox. Any number of instances may.
    pub worker: bool,
    /// Load the sample papers and reader (`serve --demo`).
    pub demo: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            scheduler: true,
            worker: true,
            demo: false,
        }
    }
}

pub struct App {
    /// Held while serving on SQLite: a second `serve` on the same file refuses to start.
    _serve_lock: Option<std::fs::File>,
    listener: TcpListener,
    addr: SocketAddr,
    /// The listener of `/metrics` when `admin_bind` is set.
    admin: Option<TcpListener>,
    limits: web::Limits,
    store: Store,
    fetcher: Fetcher,
    mailer: Mailer,
    links: Links,
    settings: Settings,
    options: ServeOptions,
}

impl App {
    /// Opens (and migrates) the database and binds the listener; nothing runs yet.
    pub async fn build(settings: Settings, options: ServeOptions) -> anyhow::Result<App> {
        Self::assemble(settings, options, None).await
    }

    /// As [`App::build`], serving on a listener the caller already bound (tests bind port
    /// 0 and put that port in `base_url` first, so nothing can take it in between).
    pub async fn build_with_listener(
        settings: Settings,
        options: ServeOptions,
        listener: TcpListener,
    ) -> anyhow::Result<App> {
        Self::assemble(settings, options, Some(listener)).await
    }

    /// Binds the listener, when none is given, last: once the database, mailer and links
    /// are ready.
    async fn assemble(
        settings: Settings,
        options: ServeOptions,
        listener: Option<TcpListener>,
    ) -> anyhow::Result<App> {
        let store = Store::open(&settings.database_url)
            .await
            .context("opening the database")?;
        let serve_lock = match store.sqlite_file() {
            Some(db) => Some(lock_sqlite(&db)?),
            None => None,
        };
        store
            .seed_default_feeds(Utc::now())
            .await
            .context("adding the default feeds")?;
        let fetcher = Fetcher::new(settings.fetch.clone(), &settings.user_agent())
            .context("building the HTTP client")?;
        let mailer = Mailer::from_settings(&settings).context("setting up the mailer")?;
        let links = links_for(&settings, &store).await?;
        let limits = connection_limits(&settings);
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(&settings.bind)
                .await
                .with_context(|| format!("binding the web listener to {}", settings.bind))?,
        };
        let addr = listener.local_addr()?;
        let admin = match &settings.admin_bind {
            Some(bind) => Some(
                TcpListener::bind(bind)
                    .await
                    .with_context(|| format!("binding the admin listener to {bind}"))?,
            ),
            None => None,
        };
        Ok(App {
            _serve_lock: serve_lock,
            listener,
            addr,
            admin,
            limits,
            store,
            fetcher,
            mailer,
            links,
            settings,
            options,
        })
    }

    /// The absolute links this instance puts in pages and emails.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The address actually bound (tests bind port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, when `admin_bind` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts the delivery worker; when it stops because the relay refused us for good,
    /// `/healthz` turns unavailable, so a supervisor or an alert sees it.
    fn spawn_worker(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
        delivery_stopped: Arc<std::sync::Mutex<Option<String>>>,
    ) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let worker = Worker::new(
            self.store.clone(),
            self.mailer.clone(),
            self.links.clone(),
            self.settings.delivery.clone(),
        );
        tokio::spawn(async move {
            let ran = worker.run(stop).await;
            if let Err(e) = &ran
                && e.downcast_ref::<Stopped>().is_some()
                && let Ok(mut slot) = delivery_stopped.lock()
            {
                *slot = Some(chain(e.as_ref()).to_string());
            }
            ran
        })
    }

    /// Serves until `shutdown` completes; then the listeners stop accepting, idle
    /// connections close at once and requests in progress get the grace, the worker lets
    /// the sends in flight finish and records them, the scheduler stops, and the store
    /// closes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        if self.options.demo {
            let note = crate::demo::load(&self.store, &self.mailer, &self.links)
                .await
                .context("loading the demo")?;
            tracing::info!("{note}");
        }
        let scheduler = self.options.scheduler.then(|| {
            let schedule = scheduler::Schedules::from_settings(&self.settings)?;
            Ok::<_, anyhow::Error>(tokio::spawn(scheduler::lead(
                schedule,
                self.store.clone(),
                self.fetcher.clone(),
                self.mailer.clone(),
            )))
        });
        let scheduler = scheduler.transpose()?;
        tracing::info!(
            addr = %self.addr,
            admin = ?self.admin_addr(),
            db = self.store.backend(),
            mail = %self.mailer.describe(),
            max_connections = self.limits.max_connections,
            "paperboy is listening: the subscribe form is at {}",
            self.links.home()
        );
        // Learn whether the relay takes UTF-8 addresses before the first reader asks.
        let relay = self.mailer.clone();
        tokio::spawn(async move { relay.greet_relay().await });
        let state = web::AppState::new(
            self.store.clone(),
            self.mailer.clone(),
            self.links.clone(),
            ArxivLookup::new(self.fetcher.clone(), &self.settings.fetch.arxiv_api_url),
            &self.settings,
        );
        let guard = state.guard.clone();
        let delivery_stopped = state.delivery_stopped.clone();
        let sweeper = tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                every.tick().await;
                guard.forget_idle();
            }
        });
        // One signal for everything: the listeners and the worker stop together.
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let worker = self
            .options
            .worker
            .then(|| self.spawn_worker(stop.clone(), delivery_stopped));
        let admin_router = self
            .admin
            .is_some()
            .then(|| web::admin_router(state.clone()));
        let router = web::router(
            state,
            self.settings.web.max_body_bytes,
            self.admin.is_none(),
        );
        let mut listeners = vec![tokio::spawn(web::serve(
            self.listener,
            router,
            self.limits,
            stop.clone(),
        ))];
        if let (Some(admin), Some(router)) = (self.admin, admin_router) {
            listeners.push(tokio::spawn(web::serve(
                admin,
                router,
                self.limits,
                stop.clone(),
            )));
        }
        let mut served = Ok(());
        for listener in listeners {
            if let Err(e) = listener.await {
                served = Err(anyhow::Error::new(e).context("web server"));
            }
        }
        sweeper.abort();
        // Sends in flight finish and are recorded; nothing new is claimed.
        if let Some(worker) = worker {
            match worker.await {
                Ok(Err(e)) => {
                    tracing::error!(error = %chain(e.as_ref()), "the delivery worker had stopped")
                }
                Err(e) => tracing::error!(error = %e, "the delivery worker panicked"),
                Ok(Ok(())) => {}
            }
        }
        if let Some(handle) = scheduler {
            // An interrupted fetch rolls back its transaction; the next run redoes it.
            handle.abort();
        }
        self.store.close().await;
        served
    }
}

/// The web listeners' deadlines and cap, after raising the soft limit on open files to
/// the hard one: the cap is lowered, with a warning, when the limit cannot hold it.
fn connection_limits(settings: &Settings) -> web::Limits {
    let limits = web::Limits::from_settings(&settings.web);
    let listeners = 1 + u64::from(settings.admin_bind.is_some());
    match web::raise_descriptor_limit() {
        Ok(descriptors) => {
            let fitted = limits.fit_descriptors(descriptors, listeners);
            if fitted.max_connections < limits.max_connections {
                tracing::warn!(
                    descriptors,
                    max_connections = fitted.max_connections,
                    "the open-file limit is low: web.max_connections lowered to fit it \
                     (raise it with `ulimit -n` or LimitNOFILE=)"
                );
            }
            fitted
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            limits
        }
    }
}

/// The links of this instance, signed with its key.
pub async fn links_for(settings: &Settings, store: &Store) -> anyhow::Result<Links> {
    Ok(Links::new(
        &settings.base_url,
        link_keys(settings, store).await?,
    ))
}

/// The key that signs links: `PAPERBOY_SECRET_KEY` when set, else one generated on the
/// first start and kept in the database, so every instance and restart agrees.
async fn link_keys(settings: &Settings, store: &Store) -> anyhow::Result<LinkKeys> {
    if let Some(secret) = &settings.secret_key {
        anyhow::ensure!(
            secret.expose().len() >= 32,
            "PAPERBOY_SECRET_KEY must be at least 32 characters"
        );
        return Ok(LinkKeys::new(secret.expose().as_bytes()));
    }
    let candidate = random_token().context("generating the secret key")?;
    let secret = store
        .instance_secret(&candidate)
        .await
        .context("reading the secret key from the database")?;
    Ok(LinkKeys::new(secret.as_bytes()))
}

/// Takes the lock file beside an SQLite database for as long as this process serves it.
fn lock_sqlite(db: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut path = db.as_os_str().to_owned();
    path.push(".serve.lock");
    let path = std::path::PathBuf::from(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another paperboy serve is already running on {} (it holds {}); stop it first, \
             or use PostgreSQL to run several instances",
            db.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("locking {}", path.display())))
        }
    }
}
