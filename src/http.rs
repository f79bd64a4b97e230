//! The HTTP server. So far: `GET /healthz` (store reachable).

use crate::store::Store;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub async fn serve(addr: std::net::SocketAddr, store: Store) -> anyhow::Result<()> {
    let app = Router::new().route("/healthz", get(healthz)).with_state(store);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "HTTP server listening.");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn healthz(State(store): State<Store>) -> (StatusCode, Json<serde_json::Value>) {
    match store.record_count().await {
        Ok(n) => (StatusCode::OK, Json(json!({"status": "ok", "records": n}))),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "error", "error": e.to_string()}))),
    }
}
