//! The running service: opens the store, binds the web listener and starts the scheduler.
//! The binary and every integration test build it the same way.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use chrono::Utc;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::feeds::Fetcher;
use crate::store::Store;
use crate::{scheduler, web};

/// What `serve` runs besides the web listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Run the feed schedule. Extra replicas leave it to one instance.
    pub scheduler: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { scheduler: true }
    }
}

pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    store: Store,
    fetcher: Fetcher,
    settings: Settings,
    options: ServeOptions,
}

impl App {
    /// Opens (and migrates) the database and binds the listener; nothing runs yet.
    pub async fn build(settings: Settings, options: ServeOptions) -> anyhow::Result<App> {
        let store = Store::open(&settings.database_url)
            .await
            .context("opening the database")?;
        store
            .seed_default_feeds(Utc::now())
            .await
            .context("adding the default feeds")?;
        let fetcher = Fetcher::new(settings.fetch.clone(), &settings.user_agent())
            .context("building the HTTP client")?;
        let listener = TcpListener::bind(&settings.bind)
            .await
            .with_context(|| format!("binding the web listener to {}", settings.bind))?;
        let addr = listener.local_addr()?;
        Ok(App {
            listener,
            addr,
            store,
            fetcher,
            settings,
            options,
        })
    }

    /// The address actually bound (tests bind port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` completes, then stops the scheduler and closes the store.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let scheduler = self.options.scheduler.then(|| {
            let schedule = scheduler::Schedules::from_settings(&self.settings)?;
            Ok::<_, anyhow::Error>(tokio::spawn(scheduler::run(
                schedule,
                self.store.clone(),
                self.fetcher.clone(),
            )))
        });
        let scheduler = scheduler.transpose()?;
        tracing::info!(addr = %self.addr, db = self.store.backend(), "paperboy is listening");
        let router = web::router(web::AppState::new(self.store.clone()));
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(handle) = scheduler {
            // An interrupted fetch rolls back its transaction; the next run redoes it.
            handle.abort();
        }
        self.store.close().await;
        served.context("web server")
    }
}
