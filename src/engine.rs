//! One request through the stages: signals -> one store call -> pure policy
//! evaluation -> effects (record the send, metrics).

use crate::clock::SharedClock;
use crate::decision::{Decision, Verdict};
use crate::keys::{domain_tag, KeyHasher};
use crate::limits::{CheckBatch, Effects, RateCheck, Remembered, StateStore, StoreError};
use crate::metrics;
use crate::policy::{evaluate, Count, Fired, Snapshot};
use crate::request::{AssessInput, AssessmentId, Event, Outcome, ReportInput};
use crate::signals::{Signals, SubjectBuf};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no assessment {0}: unknown or expired")]
    UnknownAssessment(AssessmentId),
}

/// Restart-only engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How long an assessment can be named in a `Report`.
    pub assessment_ttl: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            assessment_ttl: Duration::from_secs(3600),
        }
    }
}

/// The answer to an `Assess`.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub id: AssessmentId,
    pub decision: Decision,
    pub signals: Signals,
}

pub struct Engine<S> {
    policy: ArcSwap<Snapshot>,
    store: S,
    keys: KeyHasher,
    clock: SharedClock,
    ids: IdGen,
    options: EngineOptions,
    /// Key domain of per-number backoff: fixed, so renaming the rule keeps state.
    backoff_domain: u64,
}

impl<S: StateStore> Engine<S> {
    pub fn new(
        policy: Snapshot,
        store: S,
        keys: KeyHasher,
        clock: SharedClock,
        options: EngineOptions,
    ) -> Self {
        metrics::policy_loaded(&policy);
        Engine {
            policy: ArcSwap::from_pointee(policy),
            store,
            keys,
            clock,
            ids: IdGen::new(),
            options,
            backoff_domain: domain_tag("backoff/phone"),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Snapshot> {
        self.policy.load_full()
    }

    /// Swaps in a new policy; requests in flight finish on the old one. Counters
    /// are keyed by rule id and survive.
    pub fn set_policy(&self, policy: Snapshot) {
        metrics::policy_loaded(&policy);
        self.policy.store(Arc::new(policy));
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    pub async fn assess(&self, input: &AssessInput) -> Result<Assessment, EngineError> {
        let started = Instant::now();
        let snap = self.policy.load();
        let now = self.clock.now_nanos();
        let signals = Signals::gather(input);

        let mut buf: SubjectBuf = [0; 18];
        let mut rates = Vec::with_capacity(snap.limits.len());
        let mut checked = Vec::with_capacity(snap.limits.len());
        for limit in &snap.limits {
            if !limit.rule.applies(input.event, input.channel) {
                continue;
            }
            if let Some(subject) = signals.subject(limit.key, input, &mut buf) {
                rates.push(RateCheck {
                    key: self.keys.key(limit.rule.tag, subject),
                    quota: limit.quota,
                    take: limit.count == Count::Attempts,
                });
                checked.push(&limit.rule);
            }
        }
        let backoff_key = input
            .phone
            .as_ref()
            .map(|p| self.keys.key(self.backoff_domain, p.digits().as_bytes()));
        let backoff = snap
            .backoff
            .as_ref()
            .filter(|b| b.rule.applies(input.event, input.channel))
            .zip(backoff_key);

        let id = self.ids.next();
        let batch = CheckBatch {
            now,
            rates,
            backoff: backoff.map(|(_, k)| k),
            remember: Some((
                id,
                Remembered {
                    expires_at: now + self.options.assessment_ttl.as_nanos() as u64,
                    event: input.event,
                    backoff_key,
                },
            )),
        };
        let results = self
            .store
            .check(&batch)
            .await
            .inspect_err(|_| metrics::store_error())?;

        let mut fired: Vec<Fired<'_>> = checked
            .iter()
            .zip(&results.rates)
            .filter_map(|(rule, wait)| {
                wait.map(|w| Fired {
                    rule,
                    retry_after: Some(w),
                })
            })
            .collect();
        if let (Some((b, _)), Some(wait)) = (backoff, results.backoff) {
            fired.push(Fired {
                rule: &b.rule,
                retry_after: Some(wait),
            });
        }
        let decision = evaluate(&snap, &signals, &fired);

        // Effects of an allowed request: limits that count allowed requests take
        // their cell, and an OTP send is a send for the number's backoff (even
        // when the backoff rule is in shadow, so shadow mode reports what
        // enforcement would do).
        if decision.verdict == Verdict::Allow {
            let effects = Effects {
                now,
                record_send: backoff
                    .filter(|_| input.event == Event::OtpSend)
                    .map(|(b, key)| (key, b.params)),
                reset_backoff: None,
                take: batch.rates.iter().filter(|r| !r.take).copied().collect(),
            };
            if effects.record_send.is_some() || !effects.take.is_empty() {
                self.store
                    .apply(&effects)
                    .await
                    .inspect_err(|_| metrics::store_error())?;
            }
        }
        metrics::decision(input, &decision, started.elapsed());
        Ok(Assessment {
            id,
            decision,
            signals,
        })
    }

    pub async fn report(&self, input: &ReportInput) -> Result<(), EngineError> {
        let started = Instant::now();
        let now = self.clock.now_nanos();
        let remembered = match input.assessment_id {
            Some(id) => Some(
                self.store
                    .recall(id, now)
                    .await?
                    .ok_or(EngineError::UnknownAssessment(id))?,
            ),
            None => None,
        };
        let backoff_key = remembered.and_then(|r| r.backoff_key).or_else(|| {
            input
                .phone
                .as_ref()
                .map(|p| self.keys.key(self.backoff_domain, p.digits().as_bytes()))
        });
        if input.outcome == Outcome::OtpVerified {
            if let Some(key) = backoff_key {
                let effects = Effects {
                    now,
                    reset_backoff: Some(key),
                    ..Effects::default()
                };
                self.store
                    .apply(&effects)
                    .await
                    .inspect_err(|_| metrics::store_error())?;
            }
        }
        metrics::report(input.outcome, started.elapsed());
        Ok(())
    }

    /// Drops idle state; run on a schedule.
    pub fn evict_idle(&self) -> usize {
        let n = self.store.evict_idle(self.clock.now_nanos());
        metrics::store_stats(self.store.stats(), n);
        n
    }
}

/// Unique assessment ids: a random 64-bit process prefix, then a counter run
/// through a bijective mixer (so ids do not reveal traffic volume and spread
/// evenly over map shards).
struct IdGen {
    prefix: u64,
    counter: AtomicU64,
}

impl IdGen {
    fn new() -> Self {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).expect("the OS random source is available");
        IdGen {
            prefix: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            counter: AtomicU64::new(u64::from_le_bytes(b[8..].try_into().expect("8 bytes"))),
        }
    }

    fn next(&self) -> AssessmentId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        AssessmentId((u128::from(self.prefix) << 64) | u128::from(splitmix64(n)))
    }
}

/// splitmix64's finaliser: a bijection on u64.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique() {
        let g = IdGen::new();
        let ids: HashSet<_> = (0..10_000).map(|_| g.next()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
