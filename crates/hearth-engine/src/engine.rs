//! The engine thread: owns the model, the KV cache and every sequence. Commands come in
//! through a channel; between steps new requests join the running batch.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use hearth_models::{Next, TopLogits};
use hearth_text::{IncrementalDetokenizer, Tokenizer};
use tokio::sync::mpsc::UnboundedSender;

use crate::constraint;
use crate::model_runner::ModelRunner;
use crate::sampler::{make_rng, sample, sample_drawn, sample_head, SampleContext, Sampled};
use crate::scheduler::Scheduler;
use crate::sequence::{SeqId, SeqStatus, Sequence};
use crate::stats::EngineStats;
use crate::stop::{StopChecker, TokenVerdict};
use crate::types::{Event, FinishReason, Request, Usage};

/// How a sequence's next token comes out of a step.
enum Choice<'a> {
    /// Sampled here from its logits.
    Logits(&'a mut [f32]),
    /// Chosen by the model (a plain argmax, see `Sequence::next_pick`).
    Token(u32),
    /// Drawn from the head of its logits (`Pick::Sample`); the whole row is entry
    /// `.1` of the step, fetched from the model when the head does not decide.
    Head(&'a TopLogits, usize),
}

pub enum Command {
    Submit {
        id: SeqId,
        request: Request,
        events: UnboundedSender<Event>,
    },
    Abort(SeqId),
}

pub struct Engine {
    pub scheduler: Scheduler,
    pub runner: ModelRunner,
    pub tokenizer: Arc<Tokenizer>,
    pub stats: Arc<EngineStats>,
    pub max_model_len: usize,
    eos_ids: Vec<u32>,
}

impl Engine {
    pub fn new(
        scheduler: Scheduler,
        runner: ModelRunner,
        tokenizer: Arc<Tokenizer>,
        stats: Arc<EngineStats>,
        max_model_len: usize,
    ) -> Self {
        let eos_ids = tokenizer.eos_ids().to_vec();
        Engine {
            scheduler,
            runner,
            tokenizer,
            stats,
            max_model_len,
            eos_ids,
        }
    }

    /// Runs until every handle is gone and no work is left.
    pub fn run(mut self, commands: Receiver<Command>) {
        loop {
            if !self.scheduler.has_work() {
                match commands.recv() {
                    Ok(cmd) => self.apply(cmd),
                    Err(_) => return,
                }
            }
            loop {
                match commands.try_recv() {
                    Ok(cmd) => self.apply(cmd),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) if self.scheduler.has_work() => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if self.scheduler.has_work() {
                self.step();
            }
            self.publish_stats();
        }
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Submit {
                id,
                request,
                events,
            } => {
                let detok =
                    IncrementalDetokenizer::new(self.tokenizer.clone(), &request.prompt_ids);
                let stop = StopChecker::new(detok, request.params.stop.clone());
                let constraint = request.params.constraint.as_ref().map(|c| c.start());
                self.stats
                    .prompt_tokens
                    .fetch_add(request.prompt_ids.len() as u64, Ordering::Relaxed);
                self.scheduler.add(Sequence {
                    id,
                    prompt_len: request.prompt_ids.len(),
                    token_ids: request.prompt_ids,
                    num_computed: 0,
                    block_table: Vec::new(),
                    num_hashed_blocks: 0,
                    status: SeqStatus::Waiting,
                    rng: make_rng(request.params.seed),
                    params: request.params,
                    stop,
                    events,
                    cached_prompt_tokens: 0,
                    admitted_once: false,
                    constraint,
                });
            }
            Command::Abort(id) => {
                if let Some(seq) = self.scheduler.remove(id) {
                    if !seq.admitted_once {
                        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                    }
                    self.stats.aborted_requests.fetch_add(1, Ordering::Relaxed);
                    let _ = seq.events.send(Event::Finished {
                        reason: FinishReason::Abort,
                        usage: usage(&seq),
                    });
                }
            }
        }
    }

    fn step(&mut self) {
        let plan = self.scheduler.schedule();
        self.stats
            .queued
            .fetch_sub(plan.newly_admitted as u64, Ordering::Relaxed);
        self.stats
            .preemptions
            .fetch_add(plan.preempted as u64, Ordering::Relaxed);
        self.stats
            .prefix_cache_queries
            .fetch_add(plan.prefix_query_tokens as u64, Ordering::Relaxed);
        self.stats
            .prefix_cache_hit_tokens
            .fetch_add(plan.prefix_hit_tokens as u64, Ordering::Relaxed);
        if plan.entries.is_empty() {
            return;
        }
        let outputs = self.runner.step(&plan, &self.scheduler);
        self.scheduler.copied(&plan);
        let outputs = match outputs {
            Ok(o) => o,
            Err(e) => return self.fail_all(&plan.entries, &e.to_string()),
        };
        self.stats.steps.fetch_add(1, Ordering::Relaxed);
        let mut used = Vec::with_capacity(outputs.len());
        for (i, (&(id, n), next)) in plan.entries.iter().zip(outputs).enumerate() {
            self.scheduler.computed(id, n);
            match next {
                Some(Next::Top(head)) => self.emit_next_token(id, Choice::Head(&head, i)),
                Some(Next::Logits(mut logits)) => {
                    self.emit_next_token(id, Choice::Logits(&mut logits));
                    used.push(logits);
                }
                Some(Next::Token(tok)) => self.emit_next_token(id, Choice::Token(tok)),
                None => {}
            }
        }
        self.runner.recycle(used);
    }

    /// Samples, appends and reports one token of `id`; ends the sequence if it stops.
    fn emit_next_token(&mut self, id: SeqId, choice: Choice) {
        let max_model_len = self.max_model_len;
        let Some(seq) = self.scheduler.seqs.get_mut(&id) else {
            return;
        };
        if seq.constraint.as_ref().is_some_and(|c| c.is_finished()) {
            // The constraint allows nothing more (a choice of ""): no token to sample.
            return self.finish_seq(id, FinishReason::Stop);
        }
        let p = &seq.params;
        let early = seq.num_generated() < p.min_tokens;
        let mut banned: Vec<u32> = Vec::new();
        if seq.min_tokens_bans() {
            banned.extend(&p.stop_token_ids);
            if !p.ignore_eos {
                banned.extend(&self.eos_ids);
            }
        }
        let mask = match constraint::next_mask(seq.constraint.as_mut()) {
            Ok(m) => m,
            Err(e) => return self.fail_seq(id, &format!("constraint: {e}")),
        };
        let p = &seq.params;
        let (prompt, generated) = seq.token_ids.split_at(seq.prompt_len);
        let ctx = SampleContext {
            params: p,
            prompt,
            generated,
            banned: &banned,
            mask: mask.as_ref(),
        };
        let sampled = match choice {
            Choice::Logits(logits) => sample(logits, &ctx, &mut seq.rng),
            // The model's argmax, asked for only where sampling is a plain argmax.
            Choice::Token(token_id) => Sampled {
                token_id,
                logprob: None,
            },
            Choice::Head(head, entry) => match sample_head(head, p, &mut seq.rng) {
                Ok(token_id) => Sampled {
                    token_id,
                    logprob: None,
                },
                // The draw fell past the head: the row decides, with the same number.
                Err(drawn) => match self.runner.last_logits(entry) {
                    Ok(mut row) => sample_drawn(&mut row, &ctx, &mut seq.rng, drawn),
                    Err(e) => return self.fail_seq(id, &format!("logits: {e}")),
                },
            },
        };
        let tok = sampled.token_id;
        seq.token_ids.push(tok);
        let is_stop =
            p.stop_token_ids.contains(&tok) || (!p.ignore_eos && self.eos_ids.contains(&tok));
        let ends = is_stop && !early;
        let complete = match constraint::advance(seq.constraint.as_mut().filter(|_| !ends), tok) {
            Ok(c) => c,
            Err(e) => return self.fail_seq(id, &format!("constraint: {e}")),
        };
        let verdict = if ends {
            TokenVerdict::StopToken
        } else if complete {
            TokenVerdict::Complete
        } else if seq.num_generated() >= p.max_tokens || seq.len() >= max_model_len {
            TokenVerdict::LastAllowed
        } else {
            TokenVerdict::Normal
        };
        let (text, finish) = seq.stop.on_token(tok, verdict);
        self.stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
        let delta = Event::Delta {
            text,
            token_ids: vec![tok],
            logprobs: sampled.logprob.into_iter().collect(),
        };
        let client_gone = seq.events.send(delta).is_err();
        if let Some(reason) = finish {
            if let Some(seq) = self.scheduler.remove(id) {
                self.stats.finished_requests.fetch_add(1, Ordering::Relaxed);
                let _ = seq.events.send(Event::Finished {
                    reason,
                    usage: usage(&seq),
                });
            }
        } else if client_gone {
            self.apply(Command::Abort(id));
        }
    }

    fn finish_seq(&mut self, id: SeqId, reason: FinishReason) {
        if let Some(seq) = self.scheduler.remove(id) {
            self.stats.finished_requests.fetch_add(1, Ordering::Relaxed);
            let usage = usage(&seq);
            let _ = seq.events.send(Event::Finished { reason, usage });
        }
    }

    /// Ends one sequence with an error (its constraint failed).
    fn fail_seq(&mut self, id: SeqId, message: &str) {
        tracing::warn!(error = message, "sequence failed");
        if let Some(seq) = self.scheduler.remove(id) {
            let _ = seq.events.send(Event::Error(message.to_string()));
        }
    }

    fn fail_all(&mut self, entries: &[(SeqId, usize)], message: &str) {
        tracing::error!(error = message, "model step failed; failing its requests");
        for &(id, _) in entries {
            if let Some(seq) = self.scheduler.remove(id) {
                let _ = seq.events.send(Event::Error(message.to_string()));
            }
        }
    }

    fn publish_stats(&self) {
        let s = &self.stats;
        let b = &self.scheduler.blocks;
        s.total_blocks
            .store(b.num_blocks() as u64, Ordering::Relaxed);
        s.used_blocks.store(b.num_used() as u64, Ordering::Relaxed);
        s.cached_free_blocks
            .store(b.num_cached_free() as u64, Ordering::Relaxed);
        s.running
            .store(self.scheduler.num_running() as u64, Ordering::Relaxed);
        s.waiting
            .store(self.scheduler.num_waiting() as u64, Ordering::Relaxed);
        s.heartbeat_ms
            .store(crate::stats::unix_ms(), Ordering::Relaxed);
    }
}

fn usage(seq: &Sequence) -> Usage {
    Usage {
        prompt_tokens: seq.prompt_len,
        completion_tokens: seq.num_generated(),
        cached_prompt_tokens: seq.cached_prompt_tokens,
    }
}
