//! `POST /api/v1/clients/{proj}/pause`, `.../resume`, and the maintenance windows
//! `POST /api/v1/pause` and `POST /api/v1/resume`.

use std::time::{Duration, SystemTime};

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::clients::unavailable;
use super::{path_proj, ApiError, ApiState};
use crate::clock::rfc3339_opt;
use crate::protocol::Proj;
use crate::supervision::{glob, ClientState, PauseError, Target, Until};

/// The body of a pause of one client: optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    /// How long the pause lasts (`"10m"`); absent: until resumed.
    #[serde(rename = "for", default, with = "humantime_serde")]
    length: Option<Duration>,
}

/// The body of a client's resume: none, or `{}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoBody {}

/// The body of a window: `{"proj":"A-*","for":"10m"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowBody {
    /// The glob.
    proj: String,
    #[serde(rename = "for", default, with = "humantime_serde")]
    length: Option<Duration>,
}

/// The body of a window's resume: `{"proj":"A-*"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeBody {
    proj: String,
}

/// The answer about one client.
#[derive(Debug, Serialize)]
struct ClientAnswer {
    proj: Proj,
    state: ClientState,
    #[serde(with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    until: Option<SystemTime>,
}

/// The answer about a window.
#[derive(Debug, Serialize)]
struct WindowAnswer {
    proj: String,
    #[serde(with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    until: Option<SystemTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    paused: Option<Vec<Proj>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resumed: Option<Vec<Proj>>,
}

/// A JSON body, or the default for an empty one. Errors are the 400's message.
fn body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, String> {
    if bytes.trim_ascii().is_empty() {
        return Ok(T::default());
    }
    required(bytes)
}

/// A JSON object (serde would also read a struct from an array of its fields: `[null]`).
fn required<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("body: {e}"))?;
    if !value.is_object() {
        return Err("body: a JSON object is expected".into());
    }
    serde_json::from_value(value).map_err(|e| format!("body: {e}"))
}

fn until(length: Option<Duration>) -> Result<Option<Until>, String> {
    match length {
        Some(d) if d.is_zero() => Err("for: must be longer than zero".into()),
        Some(d) if d > Duration::from_secs(100 * 365 * 24 * 3600) => {
            Err("for: longer than a hundred years".into())
        }
        other => Ok(other.map(Until::after)),
    }
}

fn refused(e: PauseError) -> HttpResponse {
    match &e {
        PauseError::NotKnown(_) => ApiError::not_found(e.to_string()),
        PauseError::StillPaused { .. } => ApiError::respond(
            actix_web::http::StatusCode::CONFLICT,
            "conflict",
            e.to_string(),
        ),
    }
}

/// `POST /api/v1/clients/{proj}/pause`, body `{"for":"10m"}` or none: the client is not judged
/// late or offline until resumed (or until `for` runs out). 404 if it is not online.
pub(crate) async fn pause(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    if let Some(refused) = state.write_refusal(&req) {
        return refused;
    }
    let parsed = path_proj(&path)
        .and_then(|p| Ok((p, body::<PauseBody>(&bytes)?)))
        .and_then(|(p, body)| Ok((p, until(body.length)?)));
    let (proj, until) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => return ApiError::bad_request(message),
    };
    match state
        .registry
        .pause(Target::Proj(proj.clone()), until)
        .await
    {
        Ok(Ok(_)) => HttpResponse::Ok().json(ClientAnswer {
            proj,
            state: ClientState::Paused,
            until: until.map(|u| u.wall),
        }),
        Ok(Err(e)) => refused(e),
        Err(e) => unavailable(e),
    }
}

/// `POST /api/v1/clients/{proj}/resume`: its watchdog runs again from the later of its last
/// heartbeat and now. 404 if it is not online; 409 if a window still pauses it.
pub(crate) async fn resume(
    req: HttpRequest,
    state: web::Data<ApiState>,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    if let Some(refused) = state.write_refusal(&req) {
        return refused;
    }
    let proj = match path_proj(&path).and_then(|p| body::<NoBody>(&bytes).map(|_| p)) {
        Ok(proj) => proj,
        Err(message) => return ApiError::bad_request(message),
    };
    match state.registry.resume(Target::Proj(proj.clone())).await {
        Ok(Ok(_)) => {
            let now = match state.registry.get(proj.clone()).await {
                Ok(Some(info)) => info.state,
                _ => ClientState::Online,
            };
            HttpResponse::Ok().json(ClientAnswer {
                proj,
                state: now,
                until: None,
            })
        }
        Ok(Err(e)) => refused(e),
        Err(e) => unavailable(e),
    }
}

/// `POST /api/v1/pause`, body `{"proj":"A-*","for":"10m"}`: a maintenance window over every
/// client whose proj matches the glob, those online now and those that come online while it
/// lasts.
pub(crate) async fn pause_window(
    req: HttpRequest,
    state: web::Data<ApiState>,
    bytes: web::Bytes,
) -> HttpResponse {
    if let Some(refused) = state.write_refusal(&req) {
        return refused;
    }
    let parsed = required::<WindowBody>(&bytes).and_then(|body| {
        let pattern = glob(&body.proj).map_err(|e| format!("proj: {e}"))?;
        let until = until(body.length)?;
        Ok((body.proj, pattern, until))
    });
    let (glob_text, pattern, until) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => return ApiError::bad_request(message),
    };
    match state.registry.pause(Target::Glob(pattern), until).await {
        Ok(Ok(paused)) => HttpResponse::Ok().json(WindowAnswer {
            proj: glob_text,
            until: until.map(|u| u.wall),
            paused: Some(paused),
            resumed: None,
        }),
        Ok(Err(e)) => refused(e),
        Err(e) => unavailable(e),
    }
}

/// `POST /api/v1/resume`, body `{"proj":"A-*"}`: ends the window with that glob and the pauses
/// of the clients it matches, and resumes those no other window covers.
pub(crate) async fn resume_window(
    req: HttpRequest,
    state: web::Data<ApiState>,
    bytes: web::Bytes,
) -> HttpResponse {
    if let Some(refused) = state.write_refusal(&req) {
        return refused;
    }
    let parsed = required::<ResumeBody>(&bytes).and_then(|body| {
        let pattern = glob(&body.proj).map_err(|e| format!("proj: {e}"))?;
        Ok((body, pattern))
    });
    let (body, pattern) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => return ApiError::bad_request(message),
    };
    match state.registry.resume(Target::Glob(pattern)).await {
        Ok(Ok(resumed)) => HttpResponse::Ok().json(WindowAnswer {
            proj: body.proj,
            until: None,
            paused: None,
            resumed: Some(resumed),
        }),
        Ok(Err(e)) => refused(e),
        Err(e) => unavailable(e),
    }
}
