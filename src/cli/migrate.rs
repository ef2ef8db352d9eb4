//! `paperboy migrate`: apply pending migrations and say so.

use crate::config::Settings;
use crate::store::Store;

use super::CliError;

pub async fn run(settings: Settings) -> Result<(), CliError> {
    let store = Store::connect(&settings.database_url)
        .await
        .map_err(|e| CliError::Other(e.into()))?;
    store
        .migrate()
        .await
        .map_err(|e| CliError::Other(e.into()))?;
    say!(
        "database is up to date ({})",
        settings.database_url.redacted()
    );
    Ok(())
}
