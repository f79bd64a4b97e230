//! `vigil alerts`: list and show alerts, acknowledge and resolve them, silence them, and
//! test who an alert of a rule would reach.

use super::{open_store, print, print_rows, Findings, Output};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil::config::Config;
use vigil::store::Store;

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Every alert, oldest first.
    List {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    /// One alert with its explanation: the records, baseline, threshold and rule version.
    Show {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        id: i64,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    /// Acknowledge an alert: you have it; its escalation stops.
    Ack(TransitionArgs),
    /// Resolve an alert.
    Resolve(TransitionArgs),
    /// Silence alerts matching a rule, subject and/or site until the silence expires.
    Silence {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        rule: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        site: Option<String>,
        /// How long, e.g. 4h, 2d.
        #[arg(long = "for")]
        duration: String,
        /// Act as this person (their password is asked for); default: the local operator.
        #[arg(long)]
        user: Option<String>,
        /// Why (required: a silence must be explained).
        #[arg(long)]
        comment: String,
    },
    /// End a silence before its time (the alerts it kept quiet open again and are notified
    /// at the next clock pass), as a named person or the local operator; signed where given or
    /// where the study requires it (`signatures.required: [close_silence]`).
    Unsilence {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        id: i64,
        #[arg(long)]
        user: Option<String>,
        /// Sign: reviewed, approved or responsible (needs --user).
        #[arg(long)]
        sign: Option<String>,
    },
    /// The silences, active and ended.
    Silences {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    /// Who would receive an alert of this rule (and its escalation chain).
    Route {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        rule: String,
        /// Default: the rule's severity.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        site: Option<String>,
    },
}

/// An alert and who acts on it: the arguments of `ack` and `resolve`.
#[derive(clap::Args)]
pub struct TransitionArgs {
    #[arg(long, env = "VIGIL_CONFIG")]
    config: PathBuf,
    id: i64,
    /// Act as this person: their password is asked for (terminal, or a line of stdin).
    /// Without it the local operator (this machine's account) acts.
    #[arg(long)]
    user: Option<String>,
    /// Sign the action electronically with this meaning: reviewed, approved or responsible
    /// (needs --user; the password is the signature).
    #[arg(long)]
    sign: Option<String>,
    #[arg(long)]
    comment: Option<String>,
}

pub async fn run(command: AlertsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AlertsCommand::List { config, format } => list(&config, format).await,
        AlertsCommand::Show { config, id, format } => show(&config, id, format).await,
        AlertsCommand::Ack(args) => transition(args, vigil::alerts::Transition::Acknowledge).await,
        AlertsCommand::Resolve(args) => transition(args, vigil::alerts::Transition::Resolve).await,
        AlertsCommand::Silence { config, rule, subject, site, duration, user, comment } => {
            silence(
                &config,
                rule.as_deref(),
                subject.as_deref(),
                site.as_deref(),
                &duration,
                user.as_deref(),
                &comment,
            )
            .await
        }
        AlertsCommand::Silences { config, format } => silences(&config, format).await,
        AlertsCommand::Unsilence { config, id, user, sign } => {
            unsilence(&config, id, user.as_deref(), sign.as_deref()).await
        }
        AlertsCommand::Route { config, rule, severity, site } => {
            route(&config, &rule, severity.as_deref(), site.as_deref())
        }
    }
}

/// The subject of an alert, or `cohort` for a cohort alert.
fn subject_or_cohort(subject: &str) -> &str {
    if subject.is_empty() {
        "cohort"
    } else {
        subject
    }
}

async fn list(config: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let alerts = store.alerts().await?;
    store.close().await;
    print_rows(output, &alerts, Some("no alerts"), |a| {
        format!(
            "#{:<5} {:<8} {:<9} {:<10} {} ({}, {})",
            a.id,
            a.severity.as_str().to_uppercase(),
            a.status,
            subject_or_cohort(&a.subject),
            a.title,
            a.rule_id,
            a.raised_at.format("%Y-%m-%d %H:%M UTC")
        )
    })
}

async fn show(config: &Path, id: i64, output: Output) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let alert = store.alert(id).await?;
    let events = store.alert_events(id).await?;
    let emails = store.deliveries_of_alert(id).await?;
    store.close().await;
    let Some(a) = alert else {
        return Err(Findings(format!("no alert #{id}")).into());
    };
    print(output, &serde_json::json!({"alert": a, "history": events, "emails": emails}), || {
        println!("Alert #{} [{}] {} — {}", a.id, a.severity.as_str().to_uppercase(), a.status, a.title);
        println!("Subject: {} (site {})", subject_or_cohort(&a.subject), a.site.as_deref().unwrap_or("-"));
        println!("What:    {}", a.summary);
        if let Some(why) = a.evidence.get("why").and_then(|w| w.as_str()) {
            println!("Why:     {why}");
        }
        if let Some(rule) = a.evidence.get("rule") {
            println!(
                "Rule:    {} version {} ({}), defined at {}:{}",
                a.rule_id,
                a.rule_version,
                rule["kind"].as_str().unwrap_or("?"),
                rule["file"].as_str().unwrap_or("?"),
                rule["line"]
            );
        }
        println!("Episode: {} (level {})", a.episode, a.level);
        println!("Evidence:");
        for line in serde_json::to_string_pretty(&a.evidence["details"])?.lines() {
            println!("  {line}");
        }
        println!("History:");
        let content = a.signed_content();
        for e in &events {
            println!(
                "  {}  {:<12} by {}{}",
                e.at.format("%Y-%m-%d %H:%M:%S UTC"),
                e.action,
                e.actor,
                e.comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default()
            );
            if let Some(s) = &e.signature {
                let holds = if s.holds_for(&content) {
                    "bound to this alert"
                } else {
                    "DOES NOT MATCH this alert's content"
                };
                println!("      {} — {holds}", s.line());
            }
        }
        println!("Emails:");
        for m in &emails {
            println!(
                "  #{} {} to {} ({}): {} after {} attempt(s){}",
                m.id,
                m.kind,
                m.recipient,
                m.role,
                m.status.to_uppercase(),
                m.attempts,
                m.last_error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default()
            );
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Who acts from the command line: the person named by `--user` once their password is
/// checked (a wrong one counts toward lockout), with their authority for `action`; else the
/// local operator, who holds the database's credentials anyway.
async fn actor(
    config: &Config,
    store: &Store,
    user: Option<&str>,
    action: vigil::config::Action,
    purpose: &str,
) -> anyhow::Result<(String, Option<(vigil::accounts::User, vigil::access::Accounts)>)> {
    let Some(id) = user else { return Ok((vigil::audit::local_operator(), None)) };
    let accounts = vigil::access::Accounts::new(store.clone(), config);
    let password = super::users::read_password(&format!("Password for {id}: "))?;
    let person = match accounts.authenticate(id, &password, purpose).await? {
        Ok(p) => p,
        Err(e) => {
            store.seal_audit().await?;
            return Err(Findings(format!("{id}: {e}; nothing was done")).into());
        }
    };
    if !config.authority.permits(&person.roles, action) {
        let detail = serde_json::json!({"reason": "no authority", "via": "cli"});
        store.audit(&person.actor(), &format!("{} refused", action.as_str()), "user", id, &detail).await?;
        store.seal_audit().await?;
        return Err(Findings(format!(
            "{id} may not {}: it needs one of the roles {:?}",
            action.as_str(),
            config.authority.roles_for(action)
        ))
        .into());
    }
    Ok((person.actor(), Some((person, accounts))))
}

/// Who acts on `action` (see [`actor`]), and their signature over `content` where `--sign`
/// asks for one; refused when the study requires a signature and none is given.
#[allow(clippy::too_many_arguments)]
pub(super) async fn signed_actor(
    config: &Config,
    store: &Store,
    user: Option<&str>,
    sign: Option<&str>,
    action: vigil::config::Action,
    entity: &str,
    id: &str,
    content: &serde_json::Value,
    comment: Option<&str>,
) -> anyhow::Result<(String, Option<vigil::accounts::NewSignature>)> {
    let meaning = sign.map(vigil::accounts::Meaning::parse).transpose().map_err(Findings)?;
    if meaning.is_some() && user.is_none() {
        return Err(Findings("--sign needs --user: a signature is a person's".into()).into());
    }
    if meaning.is_none() && config.authority.requires_signature(action) {
        return Err(Findings(format!(
            "this study requires an electronic signature to {}: add --user ID --sign MEANING",
            action.as_str()
        ))
        .into());
    }
    let purpose = if meaning.is_some() { "signature" } else { "sign-in" };
    let (by, person) = actor(config, store, user, action, purpose).await?;
    let signature = match (meaning, &person) {
        (Some(m), Some((p, accounts))) => {
            Some(accounts.signature(p, m, action, entity, id, content, comment, config.study.zones.study))
        }
        _ => None,
    };
    Ok((by, signature))
}

async fn transition(args: TransitionArgs, action: vigil::alerts::Transition) -> anyhow::Result<ExitCode> {
    let TransitionArgs { config, id, user, sign, comment } = args;
    let config = Config::load(&config)?;
    let store = Store::connect(&config.database_url).await?.with_zones(config.study.zones.clone());
    let authority = match action {
        vigil::alerts::Transition::Resolve => vigil::config::Action::Resolve,
        _ => vigil::config::Action::Acknowledge,
    };
    let alert = store.alert(id).await?.ok_or_else(|| Findings(format!("no alert #{id}")))?;
    let (by, signature) = signed_actor(
        &config,
        &store,
        user.as_deref(),
        sign.as_deref(),
        authority,
        "alert",
        &id.to_string(),
        &alert.signed_content(),
        comment.as_deref(),
    )
    .await?;
    let second_person = config.alerting.second_person_resolves_critical;
    let result =
        store.transition_signed(id, action, &by, comment.as_deref(), second_person, signature.as_ref()).await;
    store.seal_audit().await?;
    store.close().await;
    match result {
        Ok(a) if action == vigil::alerts::Transition::Resolve && a.status.as_str() != "resolved" => {
            println!(
                "alert #{} {}: resolution asked by {by}; a second person must confirm it \
                 (`vigil alerts resolve {}` by someone else)",
                a.id, a.status, a.id
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(a) => {
            let signed =
                signature.map(|s| format!(", signed ({}) by {}", s.meaning.as_str(), s.printed_name));
            println!("alert #{} {} by {by}{}", a.id, a.status, signed.unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.downcast_ref::<vigil::store::TransitionError>().is_some() => {
            Err(Findings(e.to_string()).into())
        }
        Err(e) => Err(e),
    }
}

async fn silence(
    config: &Path,
    rule: Option<&str>,
    subject: Option<&str>,
    site: Option<&str>,
    duration: &str,
    user: Option<&str>,
    comment: &str,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let span = vigil::rules::Span::parse(duration).map_err(|e| anyhow::anyhow!("--for: {e}"))?;
    if rule.is_none() && subject.is_none() && site.is_none() {
        anyhow::bail!("a silence needs at least one of --rule, --subject, --site");
    }
    vigil::alerts::silence::check_request(span, config.alerting.max_silence, comment)
        .map_err(anyhow::Error::msg)?;
    let store = Store::connect(&config.database_url).await?;
    let (by, _) = actor(&config, &store, user, vigil::config::Action::Silence, "sign-in").await?;
    let expires = store.now() + span.chrono();
    let id = store.create_silence(rule, subject, site, expires, &by, comment).await?;
    store.seal_audit().await?;
    store.close().await;
    println!("silence #{id} until {}, by {by}", expires.format("%Y-%m-%d %H:%M UTC"));
    Ok(ExitCode::SUCCESS)
}

async fn unsilence(
    config: &Path,
    id: i64,
    user: Option<&str>,
    sign: Option<&str>,
) -> anyhow::Result<ExitCode> {
    use vigil::config::Action;
    let config = Config::load(config)?;
    let store = Store::connect(&config.database_url).await?.with_zones(config.study.zones.clone());
    let silence = store.silences().await?.into_iter().find(|s| s.id == id && !s.ended);
    let silence = silence.ok_or_else(|| Findings(format!("no active silence #{id}")))?;
    let content = silence.signed_content();
    let (by, signature) = signed_actor(
        &config,
        &store,
        user,
        sign,
        Action::CloseSilence,
        "silence",
        &id.to_string(),
        &content,
        None,
    )
    .await?;
    let closed = store.close_silence(id, &by, signature.as_ref()).await?;
    store.seal_audit().await?;
    store.close().await;
    if !closed {
        return Err(Findings(format!("silence #{id} has ended already")).into());
    }
    let signed = signature
        .map(|s| format!(", signed ({}) by {}", s.meaning.as_str(), s.printed_name))
        .unwrap_or_default();
    println!("silence #{id} ended by {by}{signed}; its alerts open again at the next clock pass");
    Ok(ExitCode::SUCCESS)
}

async fn silences(config: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let silences = store.silences().await?;
    store.close().await;
    print_rows(output, &silences, None, |s| {
        format!(
            "#{:<4} {:<7} until {}  rule={} subject={} site={}  by {}: {}",
            s.id,
            if s.ended { "ended" } else { "active" },
            s.expires_at.format("%Y-%m-%d %H:%M UTC"),
            s.rule_id.as_deref().unwrap_or("*"),
            s.subject.as_deref().unwrap_or("*"),
            s.site.as_deref().unwrap_or("*"),
            s.created_by,
            s.comment
        )
    })
}

fn route(
    config: &Path,
    rule_id: &str,
    severity: Option<&str>,
    site: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let rules = vigil::daemon::load_rules(&config)?;
    let Some(rule) = rules.get(rule_id) else {
        return Err(Findings(format!("no rule `{rule_id}`")).into());
    };
    let severity = match severity.unwrap_or(rule.severity.as_str()) {
        "critical" => vigil::rules::Severity::Critical,
        "warning" => vigil::rules::Severity::Warning,
        "info" => vigil::rules::Severity::Info,
        other => anyhow::bail!("--severity `{other}`: use critical, warning or info"),
    };
    let router = vigil::alerts::Router::new(&config);
    println!("rule {} ({}), severity {severity}, site {}:", rule.id, rule.title, site.unwrap_or("-"));
    for r in router.recipients(rule, severity, site) {
        println!("  {:<18} {:<36} {}", r.role, r.address, if r.blinded { "blinded" } else { "UNBLINDED" });
    }
    match router.escalation(Some(rule), severity) {
        Some((after, chain)) => {
            println!("escalation: every {} min unacknowledged → {}", after.num_minutes(), chain.join(" → "))
        }
        None => println!("escalation: none"),
    }
    Ok(ExitCode::SUCCESS)
}
