//! The record of each configuration load: at start, on SIGHUP, through the API.

use super::Store;
use sqlx::Row;
use std::path::PathBuf;

/// One load of the configuration and rules, as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigLoad {
    pub id: i64,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    /// Who asked: `start`, `signal:SIGHUP`, `http:TOKEN-NAME`.
    pub actor: String,
    /// `applied` or `refused`.
    pub outcome: String,
    /// The files with their SHA-256 (applied), or the problems (refused), as JSON.
    pub detail: serde_json::Value,
}

impl Store {
    /// Records a load: the files now in force, or why the new set was refused.
    pub async fn record_config_load(
        &self,
        actor: &str,
        outcome: Result<&[(PathBuf, String)], &str>,
    ) -> anyhow::Result<()> {
        let (outcome, detail) = match outcome {
            Ok(files) => {
                let files: Vec<_> = files
                    .iter()
                    .map(|(p, h)| serde_json::json!({ "file": p.display().to_string(), "sha256": h }))
                    .collect();
                ("applied", serde_json::json!({ "files": files }))
            }
            Err(problems) => ("refused", serde_json::json!({ "problems": problems })),
        };
        sqlx::query("INSERT INTO config_loads (loaded_at, actor, outcome, detail) VALUES ($1, $2, $3, $4)")
            .bind(self.now_ms())
            .bind(actor)
            .bind(outcome)
            .bind(detail.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When a daemon first started on this database (the origin of report schedules, the
    /// same for every replica, and kept across restarts).
    pub async fn first_start(&self) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        let first: Option<i64> = sqlx::query(
            "SELECT MIN(loaded_at) AS t FROM config_loads WHERE actor = 'start' AND outcome = 'applied'",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get("t")?;
        Ok(first.map(super::to_time))
    }

    /// Every load, oldest first.
    pub async fn config_loads(&self) -> anyhow::Result<Vec<ConfigLoad>> {
        let rows = sqlx::query("SELECT id, loaded_at, actor, outcome, detail FROM config_loads ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(ConfigLoad {
                    id: r.try_get("id")?,
                    loaded_at: super::to_time(r.try_get("loaded_at")?),
                    actor: r.try_get("actor")?,
                    outcome: r.try_get("outcome")?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
                })
            })
            .collect()
    }
}
