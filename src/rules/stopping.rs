//! `bayesian_stopping`: the beta-binomial toxicity stopping rule of small phase I trials
//! (Geller et al. 2003; Thall–Simon style; docs/clinical-reference.md §5.3). With a Beta(a, b) prior on
//! the event rate p, x of n evaluable subjects with the event give the posterior
//! Beta(a + x, b + n − x); the rule fires when Pr(p > p0 | x, n) ≥ threshold.
//! A subject counts in x when at least one of its adverse events matches `event`.
//! Episode "bayesian-stopping", level = x, so each further subject alerts again.

use super::cohort::{self, Denominator, Evaluable};
use super::expr::{self, Expr};
use super::{Context, Contribution, Finding, Kind, Totals};
use crate::model::SubjectHistory;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

/// The rule as written in the rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BayesianStoppingParams {
    /// CEL over each adverse event (`ae`, `subject`): the monitored event (e.g. a DLT).
    pub event: String,
    /// The highest acceptable event rate.
    pub p0: f64,
    /// Required: the prior drives when the rule stops (a flat prior stops on the first
    /// event), so it must be chosen deliberately.
    pub prior: Prior,
    /// Fire when Pr(p > p0 | x, n) reaches this.
    pub threshold: f64,
    /// n: dosed subjects (default) or all subjects.
    #[serde(default)]
    pub evaluable: Evaluable,
    /// A dosed subject counts in n only this long after the first dose (the DLT window).
    pub evaluable_after: Option<super::Span>,
    /// The rule judges only from this many evaluable subjects on. Required, like the
    /// prior: with a weak prior one event in the first subject can cross the boundary, and
    /// whether that should stop the trial is the protocol's decision, not a default.
    pub min_evaluable: u32,
}

/// The rule ready to run: its event condition compiled once, at load.
#[derive(Debug, Clone)]
pub struct BayesianStoppingRule {
    pub event: Expr,
    pub p0: f64,
    pub prior: Prior,
    pub threshold: f64,
    pub denominator: Denominator,
    pub min_evaluable: u32,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prior {
    pub a: f64,
    pub b: f64,
}

impl Kind for BayesianStoppingRule {
    const NAME: &'static str = "bayesian_stopping";
    type Params = BayesianStoppingParams;

    fn check(p: BayesianStoppingParams) -> Result<Self, (String, String)> {
        if !(p.p0 > 0.0 && p.p0 < 1.0) {
            return Err(("p0".into(), format!("a rate strictly between 0 and 1, not {}", p.p0)));
        }
        for (key, v) in [("prior.a", p.prior.a), ("prior.b", p.prior.b)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err((key.into(), format!("a Beta prior parameter must be positive, not {v}")));
            }
        }
        if !(p.threshold > 0.0 && p.threshold < 1.0) {
            return Err((
                "threshold".into(),
                format!("a probability strictly between 0 and 1 (typically 0.8 to 0.9), not {}", p.threshold),
            ));
        }
        if p.min_evaluable == 0 {
            return Err(("min_evaluable".into(), "at least 1 evaluable subject".into()));
        }
        let event = cohort::compile(&p.event).map_err(|e| ("event".to_string(), e))?;
        Ok(Self {
            event,
            p0: p.p0,
            prior: p.prior,
            threshold: p.threshold,
            denominator: Denominator::parse(p.evaluable, p.evaluable_after)?,
            min_evaluable: p.min_evaluable,
        })
    }

    fn contribution(&self, h: &SubjectHistory, as_of: DateTime<Utc>) -> Option<Contribution> {
        Some(cohort::contribute(&self.event, &self.denominator, h, as_of).0)
    }

    /// With a DLT window, time alone makes a subject evaluable.
    fn is_time_driven(&self) -> bool {
        self.denominator.after.is_some()
    }

    /// The subject-level "rule could not be evaluated" finding, if any: `contribution`
    /// cannot carry it.
    fn evaluate(&self, h: &SubjectHistory, ctx: &Context) -> Vec<Finding> {
        let (_, errors) = cohort::contribute(&self.event, &self.denominator, h, ctx.as_of);
        if errors.is_empty() {
            return Vec::new();
        }
        vec![expr::evaluation_error(self.event.source(), "adverse event", &errors)]
    }

    fn is_cohort(&self) -> bool {
        true
    }

    fn judge(&self, totals: &Totals, ctx: &Context) -> Vec<Finding> {
        let x = totals.matching_subjects;
        // Contributions make every matching subject evaluable; the max guards old totals.
        let n = totals.evaluable.max(x);
        if n == 0 || n < self.min_evaluable {
            return Vec::new();
        }
        let Prior { a, b } = self.prior;
        let posterior = posterior_exceeds(a, b, x, n, self.p0);
        if posterior.is_nan() || posterior < self.threshold {
            return Vec::new();
        }
        let who = self.denominator.noun();
        vec![Finding {
            episode: "bayesian-stopping".into(),
            clinical_time: None,
            level: i64::from(x),
            severity: ctx.severity,
            title: None,
            summary: format!(
                "Stopping boundary reached: {x} of {n} {who} subject{} had the monitored event ({}); \
                 the probability that the event rate exceeds {} is now {:.3}.",
                if n == 1 { "" } else { "s" },
                totals.subjects.join(", "),
                self.p0,
                posterior
            ),
            why: format!(
                "Pr(p > {p0} | x = {x}, n = {n}) = {posterior:.3} >= {t} under the posterior Beta({pa}, {pb}) \
                 from the prior Beta({a}, {b}); event: `{e}`",
                p0 = self.p0,
                t = self.threshold,
                pa = a + f64::from(x),
                pb = b + f64::from(n - x),
                e = self.event.source(),
            ),
            evidence: json!({
                "x": x,
                "n": n,
                "posterior_probability": posterior,
                "prior": {"a": a, "b": b},
                "posterior": {"a": a + f64::from(x), "b": b + f64::from(n - x)},
                "p0": self.p0,
                "threshold": self.threshold,
                "evaluable_means": who,
                "subjects": totals.subjects,
                "event": self.event.source(),
            }),
        }]
    }
}

/// Pr(p > p0 | x events in n subjects) under a Beta(a, b) prior: 1 − I_{p0}(a + x, b + n − x).
/// `x` above `n` is read as `n = x`.
pub fn posterior_exceeds(a: f64, b: f64, x: u32, n: u32, p0: f64) -> f64 {
    let n = n.max(x);
    upper_regularized_beta(p0, a + f64::from(x), b + f64::from(n - x))
}

/// 1 − I_x(a, b), the upper tail of the Beta(a, b) distribution, computed directly on
/// the side where the continued fraction converges (no cancellation near 1).
fn upper_regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x.is_nan() || a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        (1.0 - front * beta_continued_fraction(a, b, x) / a).clamp(0.0, 1.0)
    } else {
        (front * beta_continued_fraction(b, a, 1.0 - x) / b).clamp(0.0, 1.0)
    }
}

/// The continued fraction of the incomplete beta function (modified Lentz; Numerical
/// Recipes `betacf`).
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const MAX_ITERATIONS: u32 = 1000;
    const EPS: f64 = 1e-15;
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let nonzero = |v: f64| if v.abs() < TINY { TINY } else { v };
    // One Lentz step for the coefficient `aa`: updates c and d, returns their product.
    let step = |aa: f64, c: &mut f64, d: &mut f64| {
        *d = 1.0 / nonzero(1.0 + aa * *d);
        *c = nonzero(1.0 + aa / *c);
        *d * *c
    };
    let mut c = 1.0;
    let mut d = 1.0 / nonzero(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=MAX_ITERATIONS {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        h *= step(m * (b - m) * x / ((qam + m2) * (a + m2)), &mut c, &mut d);
        let del = step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)), &mut c, &mut d);
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// ln Γ(z) for z > 0 (Lanczos, g = 7, n = 9; about 15 significant digits).
fn ln_gamma(z: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if z < 0.5 {
        // Reflection: Γ(z) Γ(1 − z) = π / sin(πz).
        let pi = std::f64::consts::PI;
        return (pi / (pi * z).sin()).ln() - ln_gamma(1.0 - z);
    }
    let z = z - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (z + i as f64);
    }
    let t = z + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (z + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Record, SubjectId};
    use crate::rules::Severity;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn ln_gamma_matches_known_values() {
        assert!(close(ln_gamma(1.0), 0.0, 1e-13));
        assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-13));
        assert!(close(ln_gamma(10.0), 362_880f64.ln(), 1e-12));
        assert!(close(ln_gamma(0.4), 2.218_159_543_757_688f64.ln(), 1e-12));
        assert!(close(ln_gamma(100.5), 361.435_540_467_777_6, 1e-9));
    }

    #[test]
    fn the_worked_example_boundaries() {
        // docs/clinical-reference.md §5.3: p0 = 0.2, prior Beta(0.4, 1.6), c = 0.8 → stop at x ≥ 1 (n = 1),
        // 2 (n = 2–4), 3 (n = 5–8), 4 (n = 9–12).
        let boundary = |n: u32| match n {
            1 => 1,
            2..=4 => 2,
            5..=8 => 3,
            _ => 4,
        };
        for n in 1..=12u32 {
            let x = boundary(n);
            let at = posterior_exceeds(0.4, 1.6, x, n, 0.2);
            let below = posterior_exceeds(0.4, 1.6, x - 1, n, 0.2);
            assert!(at >= 0.8, "n = {n}, x = {x}: {at}");
            assert!(below < 0.8, "n = {n}, x = {}: {below}", x - 1);
        }
    }

    #[test]
    fn a_flat_prior_stops_on_the_first_event() {
        assert!(close(posterior_exceeds(1.0, 1.0, 1, 1, 0.2), 0.96, 1e-12));
        assert!(close(posterior_exceeds(1.0, 1.0, 0, 0, 0.2), 0.8, 1e-12));
    }

    /// P(Bin(m, p) ≤ k), by summing the mass function.
    fn binomial_cdf(m: u32, p: f64, k: i64) -> f64 {
        let mut total = 0.0;
        let mut coefficient = 1.0; // C(m, j)
        for j in 0..=m {
            if i64::from(j) > k {
                break;
            }
            total += coefficient * p.powi(j as i32) * (1.0 - p).powi((m - j) as i32);
            coefficient = coefficient * f64::from(m - j) / f64::from(j + 1);
        }
        total
    }

    #[test]
    fn integer_priors_agree_with_the_binomial_identity() {
        // Pr(p > p0) = P(Bin(a + b + n − 1, p0) ≤ a + x − 1) for integer a, b.
        for (a, b, x, n, p0) in
            [(1, 1, 1, 1, 0.2), (1, 1, 2, 6, 0.2), (2, 3, 1, 5, 0.3), (1, 4, 3, 10, 0.25), (3, 1, 0, 12, 0.1)]
        {
            let direct = posterior_exceeds(f64::from(a), f64::from(b), x, n, p0);
            let identity = binomial_cdf(a + b + n - 1, p0, i64::from(a + x) - 1);
            assert!(close(direct, identity, 1e-12), "{a} {b} {x} {n} {p0}: {direct} vs {identity}");
        }
    }

    #[test]
    fn edge_values() {
        assert_eq!(upper_regularized_beta(0.0, 2.0, 3.0), 1.0);
        assert_eq!(upper_regularized_beta(1.0, 2.0, 3.0), 0.0);
        // Both branches of the continued fraction, around the switch point.
        for x in [0.01, 0.3, 0.42, 0.43, 0.7, 0.99] {
            let (a, b) = (4.0, 5.0);
            let sym = 1.0 - upper_regularized_beta(1.0 - x, b, a);
            assert!(close(upper_regularized_beta(x, a, b), sym, 1e-12), "{x}");
        }
        // x > n reads as n = x.
        assert_eq!(posterior_exceeds(0.4, 1.6, 3, 2, 0.2), posterior_exceeds(0.4, 1.6, 3, 3, 0.2));
    }

    fn ctx() -> Context<'static> {
        Context { severity: Severity::Critical, as_of: Utc::now(), schedule: &[] }
    }

    const RULE: &str =
        "{event: \"ae.grade >= 3 && ae.related in ['possible','probable','definite']\", p0: 0.2, \
                        prior: {a: 0.4, b: 1.6}, threshold: 0.8, min_evaluable: 1}";

    fn rule(yaml: &str) -> BayesianStoppingRule {
        BayesianStoppingRule::check(serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    fn totals(x: u32, n: u32) -> Totals {
        Totals {
            evaluable: n,
            matching_subjects: x,
            events: x,
            subjects: (1..=x).map(|i| format!("S{i}")).collect(),
        }
    }

    #[test]
    fn judges_at_the_boundary_with_evidence() {
        let r = rule(RULE);
        assert!(r.judge(&totals(2, 5), &ctx()).is_empty());
        let f = r.judge(&totals(3, 5), &ctx());
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].episode.as_str(), f[0].level, f[0].severity),
            ("bayesian-stopping", 3, Severity::Critical)
        );
        let e = &f[0].evidence;
        assert_eq!((e["x"].as_u64(), e["n"].as_u64()), (Some(3), Some(5)));
        assert_eq!(e["prior"], json!({"a": 0.4, "b": 1.6}));
        assert_eq!((e["p0"].as_f64(), e["threshold"].as_f64()), (Some(0.2), Some(0.8)));
        let p = e["posterior_probability"].as_f64().unwrap();
        assert!(close(p, posterior_exceeds(0.4, 1.6, 3, 5, 0.2), 0.0) && p >= 0.8);
        assert!(
            f[0].summary.starts_with("Stopping boundary reached: 3 of 5 dosed subjects"),
            "{}",
            f[0].summary
        );
        // Idempotent; a further subject with the event raises the level.
        assert_eq!(r.judge(&totals(3, 5), &ctx()), f);
        assert_eq!(r.judge(&totals(4, 6), &ctx())[0].level, 4);
        // Nobody evaluable yet: nothing to judge.
        assert!(r.judge(&totals(0, 0), &ctx()).is_empty());
    }

    #[test]
    fn judges_nothing_before_min_evaluable_subjects() {
        // 1 of 1 crosses the boundary of the default rule; with min_evaluable 3 it waits.
        assert_eq!(rule(RULE).judge(&totals(1, 1), &ctx()).len(), 1);
        let r = rule(&RULE.replace("min_evaluable: 1", "min_evaluable: 3"));
        assert!(r.judge(&totals(1, 1), &ctx()).is_empty());
        assert!(r.judge(&totals(2, 2), &ctx()).is_empty());
        assert_eq!(r.judge(&totals(2, 3), &ctx()).len(), 1, "2 of 3 is past the boundary");
        // It must be said: no silent default.
        let missing = RULE.replace(", min_evaluable: 1", "");
        assert!(serde_yaml::from_str::<BayesianStoppingParams>(&missing).is_err());
        let zero = RULE.replace("min_evaluable: 1", "min_evaluable: 0");
        let zero = BayesianStoppingRule::check(serde_yaml::from_str(&zero).unwrap());
        assert_eq!(zero.err().map(|e| e.0), Some("min_evaluable".to_string()));
    }

    #[test]
    fn contributions_from_histories() {
        let r = rule(RULE);
        let h = SubjectHistory::new(
            SubjectId::parse("S1").unwrap(),
            vec![Record::from_json(
                r#"{"subject":"S1","doses":[{"start":"2019-02-26T09:10:00+01:00"}],
                    "adverse_events":[{"term":"Anaphylaxis","grade":4,"related":"definite"},
                                      {"term":"Rash","grade":3,"related":"possible"}]}"#,
            )
            .unwrap()],
        );
        assert_eq!(
            r.contribution(&h, Utc::now()).unwrap(),
            Contribution { evaluable: true, matching: true, events: 2 }
        );
        assert!(r.evaluate(&h, &ctx()).is_empty());
        let t = Totals::from_contributions([("S1", r.contribution(&h, Utc::now()).unwrap())]);
        // One of one: Pr(p > 0.2) ≥ 0.8 with this prior (the worked example's n = 1 row).
        assert_eq!(r.judge(&t, &ctx()).len(), 1);
    }

    #[test]
    fn check_refuses_bad_parameters_and_expressions() {
        let check =
            |yaml: &str| BayesianStoppingRule::check(serde_yaml::from_str(yaml).unwrap()).unwrap_err();
        let base = RULE;
        let (key, _) = check(&base.replace("p0: 0.2", "p0: 1.2"));
        assert_eq!(key, "p0");
        let (key, _) = check(&base.replace("a: 0.4", "a: 0"));
        assert_eq!(key, "prior.a");
        let (key, _) = check(&base.replace("b: 1.6", "b: -1"));
        assert_eq!(key, "prior.b");
        let (key, _) = check(&base.replace("threshold: 0.8", "threshold: 1"));
        assert_eq!(key, "threshold");
        let (key, msg) = check(&base.replace("ae.grade >= 3", "ae.grde >= 3"));
        assert_eq!(key, "event");
        assert!(msg.contains("did you mean `grade`"), "{msg}");
        let (_, msg) = check(&base.replace("ae.grade >= 3", "ae.grade >= 3 &&"));
        assert!(msg.contains("syntax error"), "{msg}");
        let (_, msg) = check(&base.replace("ae.grade >= 3", "ae.grade > 'x'"));
        assert!(msg.contains("no matching overload"), "{msg}");
        assert!(serde_yaml::from_str::<BayesianStoppingParams>(&base.replace("p0: 0.2, ", "")).is_err());
        assert!(
            serde_yaml::from_str::<BayesianStoppingParams>(&base.replace("b: 1.6", "b: 1.6, c: 1")).is_err()
        );
    }

    #[test]
    fn an_unevaluable_event_counts_and_is_reported() {
        let r = rule(RULE);
        let h = SubjectHistory::new(
            SubjectId::parse("S1").unwrap(),
            vec![Record::from_json(
                r#"{"subject":"S1","doses":[{"start":"2019-02-26T09:10:00+01:00"}],
                    "adverse_events":[{"id":"X","term":"Seizure","related":"probable"}]}"#,
            )
            .unwrap()],
        );
        assert!(r.contribution(&h, Utc::now()).unwrap().matching);
        let f = r.evaluate(&h, &ctx());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].episode, "evaluation-error");
        assert!(f[0].why.contains("null_type"), "{}", f[0].why);
    }
}
