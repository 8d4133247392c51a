//! Policy evaluation: pure and synchronous.
//!
//! `(snapshot, signals, what the counters said) -> Decision`. No I/O, no clock,
//! no async: the engine gathers the counter results first and passes them in.

use super::{Action, Rule, Snapshot};
use crate::decision::{Decision, Reason, StepUpMethod, Verdict};
use crate::signals::Signals;
use std::sync::Arc;
use std::time::Duration;

/// A rule whose condition held for this request.
#[derive(Debug, Clone)]
pub struct Fired<'a> {
    pub rule: &'a Rule,
    /// Overrides the rule's message (an operator's block reason).
    pub message: Option<Arc<str>>,
    /// For limits and backoff: when the same request would conform again.
    pub retry_after: Option<Duration>,
}

/// Turns the rules that fired into a decision.
///
/// Enforced rules (not shadow, and the policy not in global shadow) add their
/// points to the score (capped at 100) and raise the verdict to their action's;
/// the score thresholds then raise it further. Shadow rules are only reported.
/// `retry_after` is the longest wait among enforced throttles, set only when the
/// verdict is not `Allow`.
pub fn evaluate(snap: &Snapshot, _signals: &Signals, fired: &[Fired<'_>]) -> Decision {
    let mut verdict = Verdict::Allow;
    let mut points: u32 = 0;
    let mut retry_after: Option<Duration> = None;
    let mut methods: Vec<StepUpMethod> = Vec::new();
    let mut reasons = Vec::with_capacity(fired.len());

    for f in fired {
        let enforced = f.rule.always_enforced || !(snap.shadow || f.rule.shadow);
        reasons.push(Reason {
            code: f.rule.id.clone(),
            message: f.message.clone().unwrap_or_else(|| f.rule.message.clone()),
            shadow: !enforced,
        });
        if !enforced {
            continue;
        }
        points += u32::from(f.rule.points);
        verdict = verdict.max(f.rule.action.verdict());
        if let Action::StepUp(m) = &f.rule.action {
            for x in m {
                if !methods.contains(x) {
                    methods.push(*x);
                }
            }
        }
        if let Some(r) = f.retry_after {
            retry_after = Some(retry_after.map_or(r, |cur| cur.max(r)));
        }
    }

    let score = points.min(100) as u8;
    if score >= snap.block_at {
        verdict = Verdict::Block;
    } else if score >= snap.step_up_at {
        verdict = verdict.max(Verdict::StepUp);
    }
    let step_up = match verdict {
        Verdict::StepUp if methods.is_empty() => snap.step_up_methods.clone(),
        Verdict::StepUp => methods,
        _ => Vec::new(),
    };
    Decision {
        verdict,
        score,
        reasons,
        retry_after: if verdict == Verdict::Allow {
            None
        } else {
            retry_after
        },
        step_up,
        policy_version: snap.version.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compile;

    const POLICY: &str = r#"
version = "t1"
[scoring]
step_up_at = 30
block_at = 60
step_up_methods = ["email_otp"]

[[limit]]
id = "a.block"
key = "phone"
rate = "1/1h"
action = "block"

[[limit]]
id = "b.score"
key = "ip"
rate = "1/1h"
action = "score"
score = 35

[[limit]]
id = "c.step"
key = "device"
rate = "1/1h"
action = "step_up"
step_up_methods = ["captcha", "reverse_sms"]

[[limit]]
id = "d.shadow"
key = "account"
rate = "1/1h"
action = "block"
shadow = true
"#;

    fn snap() -> Snapshot {
        compile("t.toml", POLICY).unwrap()
    }

    fn fire<'a>(s: &'a Snapshot, ids: &[(&str, u64)]) -> Vec<Fired<'a>> {
        ids.iter()
            .map(|(id, secs)| Fired {
                rule: &s.limits.iter().find(|l| &*l.rule.id == *id).unwrap().rule,
                message: None,
                retry_after: Some(Duration::from_secs(*secs)),
            })
            .collect()
    }

    #[test]
    fn nothing_fired_is_allow_with_zero_score() {
        let s = snap();
        let d = evaluate(&s, &Signals::default(), &[]);
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.score, 0);
        assert!(d.reasons.is_empty() && d.retry_after.is_none() && d.step_up.is_empty());
        assert_eq!(&*d.policy_version, "t1");
    }

    #[test]
    fn block_rule_blocks_with_longest_retry() {
        let s = snap();
        let d = evaluate(
            &s,
            &Signals::default(),
            &fire(&s, &[("a.block", 10), ("c.step", 90)]),
        );
        assert_eq!(d.verdict, Verdict::Block);
        assert_eq!(d.score, 100);
        assert_eq!(d.retry_after, Some(Duration::from_secs(90)));
        assert!(d.step_up.is_empty());
    }

    #[test]
    fn score_rule_crosses_step_up_threshold_with_default_methods() {
        let s = snap();
        let d = evaluate(&s, &Signals::default(), &fire(&s, &[("b.score", 5)]));
        assert_eq!(d.verdict, Verdict::StepUp);
        assert_eq!(d.score, 35);
        assert_eq!(d.step_up, vec![StepUpMethod::EmailOtp]);
    }

    #[test]
    fn step_up_rule_uses_its_own_methods_and_points_add_up_to_block() {
        let s = snap();
        let d = evaluate(&s, &Signals::default(), &fire(&s, &[("c.step", 5)]));
        assert_eq!(d.verdict, Verdict::StepUp);
        assert_eq!(
            d.step_up,
            vec![StepUpMethod::Captcha, StepUpMethod::ReverseSms]
        );
        assert_eq!(d.score, 30);
        let d = evaluate(
            &s,
            &Signals::default(),
            &fire(&s, &[("c.step", 5), ("b.score", 5)]),
        );
        assert_eq!(d.score, 65);
        assert_eq!(d.verdict, Verdict::Block);
    }

    #[test]
    fn shadow_rules_are_reported_not_enforced() {
        let s = snap();
        let d = evaluate(&s, &Signals::default(), &fire(&s, &[("d.shadow", 5)]));
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.score, 0);
        assert_eq!(d.retry_after, None);
        assert_eq!(d.reasons.len(), 1);
        assert!(d.reasons[0].shadow);

        let mut global = snap();
        global.shadow = true;
        let d = evaluate(
            &global,
            &Signals::default(),
            &fire(&global, &[("a.block", 5)]),
        );
        assert_eq!(d.verdict, Verdict::Allow);
        assert!(d.reasons[0].shadow);
    }
}
