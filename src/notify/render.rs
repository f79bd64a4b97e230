//! Email rendering with minijinja templates: a subject, a plain-text part and an HTML
//! part, built in; an operator can override any of them from a folder.
//!
//! Blinding is enforced here and only here: `alert_context` is the one place that puts
//! the treatment arm into a template's context, and it does so only for an unblinded
//! recipient. Whatever a template asks for, a blinded recipient's context has no arm.

use crate::store::AlertRow;
use minijinja::{context, Environment, Value};
use serde::Serialize;
use std::path::Path;

const NAMES: [&str; 3] = ["email.subject.txt", "email.txt", "email.html"];
const BUILT_IN: [&str; 3] = [
    include_str!("../../templates/email.subject.txt"),
    include_str!("../../templates/email.txt"),
    include_str!("../../templates/email.html"),
];

/// What a template sees of one alert.
#[derive(Debug, Serialize)]
pub struct AlertContext {
    pub id: i64,
    pub rule_id: String,
    pub rule_version: String,
    pub title: String,
    pub severity: String,
    pub status: String,
    pub subject: String,
    pub site: Option<String>,
    pub summary: String,
    pub why: String,
    /// Only ever set for unblinded recipients.
    pub arm: Option<String>,
    /// The electronic signatures on the alert's decisions so far, one line each (21 CFR
    /// Part 11 §11.50: shown wherever the record is).
    pub signatures: Vec<String>,
}

/// The treatment arm a reader may see: none for a blinded reader. The one rule of blinding,
/// used by the emails (through [`alert_context`]) and by the console.
pub fn visible_arm(blinded: bool, arm: Option<&str>) -> Option<String> {
    if blinded {
        None
    } else {
        arm.map(str::to_string)
    }
}

/// The one door through which alert data reaches a template.
pub fn alert_context(alert: &AlertRow, blinded: bool, arm: Option<&str>) -> AlertContext {
    AlertContext {
        id: alert.id,
        rule_id: alert.rule_id.clone(),
        rule_version: alert.rule_version.clone(),
        title: alert.title.clone(),
        severity: alert.severity.to_string(),
        status: alert.status.to_string(),
        subject: alert.subject.clone(),
        site: alert.site.clone(),
        summary: alert.summary.clone(),
        why: alert.evidence.get("why").and_then(|w| w.as_str()).unwrap_or_default().to_string(),
        arm: visible_arm(blinded, arm),
        signatures: Vec::new(),
    }
}

pub struct Templates {
    env: Environment<'static>,
    /// The study's time zone, named in every email (`timezone` in the templates).
    timezone: chrono_tz::Tz,
    /// The console's address (`console.base_url`): each alert links to its page there,
    /// which asks whoever follows the link to sign in.
    console: Option<String>,
}

/// A rendered email.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Templates {
    /// The built-in templates, with any of `email.subject.txt`, `email.txt`,
    /// `email.html` found in `dir` taking their place. Every template is compiled now,
    /// so a broken override stops start-up rather than an alert.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, built_in) in NAMES.iter().zip(BUILT_IN) {
            let source = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(p) => std::fs::read_to_string(&p)
                    .map_err(|e| anyhow::anyhow!("cannot read template {}: {e}", p.display()))?,
                None => built_in.to_string(),
            };
            env.add_template_owned(name.to_string(), source)
                .map_err(|e| anyhow::anyhow!("template {name}: {e}"))?;
        }
        Ok(Self { env, timezone: chrono_tz::Tz::UTC, console: None })
    }

    /// The templates for a study in `timezone` (config `study.timezone`; UTC by default).
    pub fn in_zone(self, timezone: chrono_tz::Tz) -> Self {
        Self { timezone, ..self }
    }

    /// Alerts link to their page on the console at `base_url`.
    pub fn with_console(self, base_url: Option<String>) -> Self {
        Self { console: base_url, ..self }
    }

    /// Renders one email about one or more alerts for one recipient.
    pub fn render(
        &self,
        kind: &str,
        digest: bool,
        alerts: &[AlertContext],
        role: &str,
        study: &str,
    ) -> anyhow::Result<Rendered> {
        self.render_more(kind, digest, alerts, 0, role, study)
    }

    /// `render`, saying that `more` alerts of the same email are not listed.
    pub fn render_more(
        &self,
        kind: &str,
        digest: bool,
        alerts: &[AlertContext],
        more: usize,
        role: &str,
        study: &str,
    ) -> anyhow::Result<Rendered> {
        let ctx = context! {
            more => more,
            kind => kind,
            digest => digest,
            alerts => Value::from(minijinja::value::Serde(alerts)),
            recipient => context! { role => role },
            study => study,
            timezone => self.timezone.name(),
            console => self.console.clone(),
        };
        let get = |name: &str| -> anyhow::Result<String> {
            self.env.get_template(name)?.render(&ctx).map_err(|e| anyhow::anyhow!("template {name}: {e}"))
        };
        Ok(Rendered {
            // A header line: no line breaks, however the template is written.
            subject: get("email.subject.txt")?.split_whitespace().collect::<Vec<_>>().join(" "),
            text: get("email.txt")?,
            html: get("email.html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_group_lists_some_alerts_and_counts_the_rest() {
        let t = Templates::load(None).unwrap();
        let shown = [alert_context(&alert(), true, None), alert_context(&alert(), true, None)];
        let r = t.render_more("alert", false, &shown, 498, "safety-officer", "Study").unwrap();
        assert!(r.subject.contains("500 alerts"), "{}", r.subject);
        assert!(r.text.contains("… and 498 more alerts of this group"), "{}", r.text);
        assert!(r.html.contains("498 more alerts"), "{}", r.html);
        let one = t.render("alert", false, &shown[..1], "safety-officer", "Study").unwrap();
        assert!(!one.text.contains("more alert"));
    }

    fn alert() -> AlertRow {
        AlertRow {
            id: 7,
            rule_id: "infusion-reaction-severe".into(),
            rule_version: "v1".into(),
            subject: "KS-101".into(),
            site: Some("KS".into()),
            episode: "ae:AE-1".into(),
            level: 3,
            severity: crate::rules::Severity::Critical,
            title: "Grade 3 or higher infusion-related reaction".into(),
            summary: "Adverse event, CTCAE grade 3, onset study day 1.".into(),
            evidence: serde_json::json!({"why": "grade 3 >= 3"}),
            status: crate::alerts::AlertStatus::Open,
            raised_at: chrono::Utc::now(),
            clinical_time: None,
            escalation_step: 0,
            next_escalation_at: None,
        }
    }

    /// An operator's template that asks for everything, the arm included, in every way.
    const GREEDY: &str = "{{ alerts }} {% for a in alerts %}{{ a.arm }} {{ a }} {% for k in a %}{{ k }}={{ a[k] }} {% endfor %}{% endfor %}";

    #[test]
    fn no_template_can_show_the_arm_to_a_blinded_recipient() {
        let dir = tempfile::tempdir().unwrap();
        for name in NAMES {
            std::fs::write(dir.path().join(name), GREEDY).unwrap();
        }
        let t = Templates::load(Some(dir.path())).unwrap();
        let blinded = [alert_context(&alert(), true, Some("MSC-HIGH-DOSE"))];
        let r = t.render("alert", false, &blinded, "safety-officer", "Study").unwrap();
        for part in [&r.subject, &r.text, &r.html] {
            assert!(!part.contains("MSC-HIGH-DOSE"), "{part}");
            assert!(part.contains("KS-101"), "the template did render: {part}");
        }
        let unblinded = [alert_context(&alert(), false, Some("MSC-HIGH-DOSE"))];
        let r = t.render("alert", false, &unblinded, "dsmb-chair", "Study").unwrap();
        assert!(r.text.contains("MSC-HIGH-DOSE"));
    }

    #[test]
    fn the_built_in_templates_render_one_and_several_alerts() {
        let t = Templates::load(None).unwrap();
        let one = [alert_context(&alert(), true, None)];
        let r = t.render("alert", false, &one, "safety-officer", "Study").unwrap();
        assert_eq!(
            r.subject,
            "[vigil][CRITICAL] KS-101 — Grade 3 or higher infusion-related reaction (rule infusion-reaction-severe)"
        );
        assert!(r.text.contains("Why this fired: grade 3 >= 3 (rule infusion-reaction-severe, version v1)"));
        assert!(r.html.contains("<td>KS-101 (site KS)</td>"));
        let two = [alert_context(&alert(), true, None), alert_context(&alert(), true, None)];
        let r = t.render("alert", false, &two, "safety-officer", "Study").unwrap();
        assert!(r.subject.contains("2 alerts"), "{}", r.subject);
        let r = t.render("escalation", false, &one, "medical-monitor", "Study").unwrap();
        assert!(r.subject.contains("[ESCALATED]") && r.text.starts_with("ESCALATED"));
    }

    #[test]
    fn emails_name_the_studys_time_zone() {
        let one = [alert_context(&alert(), true, None)];
        let t = Templates::load(None).unwrap().in_zone(chrono_tz::Tz::Europe__Stockholm);
        let r = t.render("alert", false, &one, "safety-officer", "Study").unwrap();
        assert!(
            r.text.contains("local calendar days of the site; study time zone Europe/Stockholm"),
            "{}",
            r.text
        );
        assert!(r.html.contains("study time zone Europe&#x2f;Stockholm"), "{}", r.html);
        let r =
            Templates::load(None).unwrap().render("alert", false, &one, "safety-officer", "Study").unwrap();
        assert!(r.text.contains("study time zone UTC"), "{}", r.text);
    }

    #[test]
    fn a_broken_override_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("email.txt"), "{% for a in alerts %}").unwrap();
        assert!(Templates::load(Some(dir.path())).is_err());
    }
}
