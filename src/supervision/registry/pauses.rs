//! The registry's side of pauses: pausing and resuming clients (by name or by a window's
//! glob), the ends of pauses, and the clients that come online inside a window.

use std::sync::{Arc, MutexGuard};

use actix::{AsyncContext, Context, Handler, Message};
use glob::Pattern;

use super::Registry;
use crate::clock;
use crate::events::Event;
use crate::protocol::Proj;
use crate::supervision::client::Rearm;
use crate::supervision::client_record::ClientRecord;
use crate::supervision::pauses::{Cover, PauseBook, Until};

/// What a pause or a resume is for.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// One client, by name.
    Proj(Proj),
    /// Every client whose proj matches, now and (for a pause) as they come online.
    Glob(Pattern),
}

/// Pause `target` until `until` (or until resumed).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Proj>, PauseError>")]
pub(crate) struct Pause {
    pub target: Target,
    pub until: Option<Until>,
}

/// End the pause of `target`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Proj>, PauseError>")]
pub(crate) struct Resume {
    pub target: Target,
}

/// Why a pause or a resume of one client was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PauseError {
    /// The client is not online (not known): there is nothing to pause or resume.
    #[error("client {0} is not known (not online)")]
    NotKnown(Proj),
    /// The client's own pause ended, but a maintenance window still pauses it.
    #[error("client {proj} is still paused by the window {window:?}; resume the window")]
    StillPaused {
        /// The client.
        proj: Proj,
        /// The window's glob.
        window: String,
    },
}

impl Registry {
    fn book(&self) -> MutexGuard<'_, PauseBook> {
        self.deps.pauses.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn announce_paused(&self, proj: &Proj, cover: &Cover) {
        self.deps.pipeline.publish(
            Event::Paused {
                proj: proj.clone(),
                until: cover.until().map(|u| u.wall),
                window: cover.window(),
                at: clock::wall_now(),
            },
            None,
        );
    }

    /// Ends `record`'s pause and re-arms its watchdog from the later of its last heartbeat
    /// and now. Answers whether it was paused.
    fn resume_client(&self, proj: &Proj, record: &Arc<ClientRecord>, expired: bool) -> bool {
        let Some(applied) = record.resume(clock::now(), &self.deps.detection) else {
            return false;
        };
        if let Some(client) = self.clients.get(proj).and_then(|e| e.client.upgrade()) {
            client.do_send(Rearm {
                record: record.clone(),
                applied,
            });
        }
        self.deps.pipeline.publish(
            Event::Resumed {
                proj: proj.clone(),
                expired,
                at: clock::wall_now(),
            },
            None,
        );
        true
    }

    /// Resumes the paused clients that `matching` selects and no pause covers any more.
    fn resume_uncovered(&self, matching: impl Fn(&Proj) -> bool, expired: bool) -> Vec<Proj> {
        let candidates: Vec<(Proj, Arc<ClientRecord>)> = {
            let book = self.book();
            self.clients
                .iter()
                .filter(|(p, e)| matching(p) && e.record.is_paused() && book.cover(p).is_none())
                .map(|(p, e)| (p.clone(), e.record.clone()))
                .collect()
        };
        candidates
            .into_iter()
            .filter(|(p, record)| self.resume_client(p, record, expired))
            .map(|(p, _)| p)
            .collect()
    }

    /// A client that just came online inside a window is paused at once.
    pub(super) fn paused_on_arrival(&self, proj: &Proj, record: &ClientRecord) {
        let cover = self.book().cover(proj);
        if let Some(cover) = cover {
            if record.pause() {
                self.announce_paused(proj, &cover);
            }
        }
    }

    /// A client that went offline loses its pause by name (a window stays).
    pub(super) fn forget_pause(&self, proj: &Proj) {
        let mut book = self.book();
        if book.forget(proj) {
            book.save();
        }
    }

    /// At start: the recovered clients that were paused are paused again (no event: their
    /// state did not change), and the ends of pauses are timed.
    pub(super) fn restore_pauses(&mut self, ctx: &mut Context<Self>) {
        {
            let book = self.book();
            for (proj, entry) in &self.clients {
                if book.cover(proj).is_some() {
                    entry.record.pause();
                }
            }
        }
        self.time_pause_ends(ctx);
    }

    /// Times the next end of a pause (replacing the timer timed before).
    fn time_pause_ends(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.pause_timer.take() {
            ctx.cancel_future(timer);
        }
        let Some(next) = self.book().next_end() else {
            return;
        };
        let after = next.saturating_duration_since(clock::now());
        self.pause_timer = Some(ctx.run_later(after, |act, ctx| {
            act.pause_timer = None;
            act.end_pauses(ctx);
        }));
    }

    /// Ends the pauses that ran out, and resumes the clients they covered.
    fn end_pauses(&mut self, ctx: &mut Context<Self>) {
        let ended = {
            let mut book = self.book();
            let ended = book.expire(clock::now());
            if ended {
                book.save();
            }
            ended
        };
        if ended {
            self.resume_uncovered(|_| true, true);
        }
        self.time_pause_ends(ctx);
    }
}

impl Handler<Pause> for Registry {
    type Result = Result<Vec<Proj>, PauseError>;

    fn handle(&mut self, msg: Pause, ctx: &mut Context<Self>) -> Self::Result {
        let paused = match msg.target {
            Target::Proj(proj) => {
                let Some(entry) = self.clients.get(&proj) else {
                    return Err(PauseError::NotKnown(proj));
                };
                let record = entry.record.clone();
                {
                    let mut book = self.book();
                    book.pause_proj(proj.clone(), msg.until);
                    book.save();
                }
                if record.pause() {
                    self.announce_paused(&proj, &Cover::Proj(msg.until));
                }
                vec![proj]
            }
            Target::Glob(pattern) => {
                {
                    let mut book = self.book();
                    book.pause_window(pattern.clone(), msg.until);
                    book.save();
                }
                let cover = Cover::Window(pattern.as_str().to_owned(), msg.until);
                let matching: Vec<(Proj, Arc<ClientRecord>)> = self
                    .clients
                    .iter()
                    .filter(|(p, _)| pattern.matches(p.as_str()))
                    .map(|(p, e)| (p.clone(), e.record.clone()))
                    .collect();
                for (proj, record) in &matching {
                    if record.pause() {
                        self.announce_paused(proj, &cover);
                    }
                }
                matching.into_iter().map(|(p, _)| p).collect()
            }
        };
        self.time_pause_ends(ctx);
        Ok(paused)
    }
}

impl Handler<Resume> for Registry {
    type Result = Result<Vec<Proj>, PauseError>;

    fn handle(&mut self, msg: Resume, ctx: &mut Context<Self>) -> Self::Result {
        let resumed = match msg.target {
            Target::Proj(proj) => {
                let Some(entry) = self.clients.get(&proj) else {
                    return Err(PauseError::NotKnown(proj));
                };
                let record = entry.record.clone();
                let cover = {
                    let mut book = self.book();
                    if book.resume_proj(&proj) {
                        book.save();
                    }
                    book.cover(&proj)
                };
                if let Some(window) = cover.and_then(|c| c.window()) {
                    return Err(PauseError::StillPaused { proj, window });
                }
                if self.resume_client(&proj, &record, false) {
                    vec![proj]
                } else {
                    Vec::new()
                }
            }
            Target::Glob(pattern) => {
                {
                    let mut book = self.book();
                    book.resume_glob(&pattern);
                    book.save();
                }
                self.resume_uncovered(|p| pattern.matches(p.as_str()), false)
            }
        };
        self.time_pause_ends(ctx);
        Ok(resumed)
    }
}
