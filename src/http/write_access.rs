//! Who may change state through the HTTP API (pause, resume).

use actix_web::{HttpRequest, HttpResponse};

use super::ApiState;

impl ApiState {
    /// The answer refusing a request that changes state (a pause, a resume), or `None` if it
    /// may. Every such endpoint calls this one check first.
    ///
    /// The HTTP API has one token today, `auth.http_token`, so a write needs what a read
    /// needs: that token when it is set (401 without it), nothing when it is not. Separate
    /// read and write tokens replace this check with their own.
    pub(crate) fn write_refusal(&self, req: &HttpRequest) -> Option<HttpResponse> {
        self.refusal(req)
    }
}
