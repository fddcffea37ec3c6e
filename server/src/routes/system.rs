//! `/healthz`, `/readyz` and `/metrics`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::Problem;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database (and Redis, when configured) answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, body = Problem)))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.db.ping().await.is_ok();
    let bus = state.bus.is_connected();
    let body = json!({"database": database, "bus": bus});
    if database && bus {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("application/problem+json")
            .json(json!({"type": "/problems/unavailable", "title": "Service unavailable", "status": 503,
                         "detail": format!("database reachable: {database}, bus connected: {bus}")}))
    }
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus metrics", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut text = state.metrics.render(state.db.pool_status());
    text.push_str(&format!(
        "# HELP pulse_requests_queued API requests waiting for a turn (PULSE_MAX_IN_FLIGHT).\n\
         # TYPE pulse_requests_queued gauge\npulse_requests_queued {}\n",
        state.shedder.queued()
    ));
    // The push queue is shared by every instance: its depth and age come from the database.
    if let Ok((depth, oldest)) = pulse_schema::push::queue_stats(&state.db).await {
        let age = oldest.map_or(0.0, |at| {
            (pulse_schema::now_millis() - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        text.push_str(&format!(
            "# HELP pulse_push_queue_depth Pushes waiting to be sent (all instances).\n\
             # TYPE pulse_push_queue_depth gauge\npulse_push_queue_depth {depth}\n\
             # HELP pulse_push_queue_oldest_seconds Age of the oldest waiting push.\n\
             # TYPE pulse_push_queue_oldest_seconds gauge\npulse_push_queue_oldest_seconds {age}\n"
        ));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}
