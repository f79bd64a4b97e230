//! `vigil users` and `vigil tokens`: the people who act in vigil and their API tokens.
//! These commands run on the server (they need the database's credentials), so they act
//! as the local operator, named in the audit trail. A password is read from the terminal
//! (or a line of stdin), never from an argument.

use super::{print_rows, Findings, Output};
use clap::Subcommand;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil::accounts::{check_new_password, hash_password, Scope};
use vigil::config::Config;
use vigil::store::Store;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add a person (the password is asked for, twice on a terminal).
    Add {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        /// The user id: unique, and never given to anyone else.
        id: String,
        /// The printed name shown with the person's signatures.
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        /// Roles (those of `recipients`, and `admin`), comma-separated.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Every person, with their roles and state.
    List {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    /// Disable an account: no more sign-in, signing or tokens; its history stays.
    Disable {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        id: String,
    },
    /// Set a new password (asked for); lifts a lockout.
    Passwd {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        id: String,
    },
    /// Lift a lockout without changing the password.
    Unlock {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        id: String,
    },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Give a person an API token (printed once; only its hash is kept).
    Add {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        user: String,
        /// A name for the token (where it is used: "laptop", "edc-bridge").
        #[arg(long)]
        name: String,
        /// What it may do: ingest, read, operate, reload (comma-separated).
        #[arg(long, default_value = "read,operate")]
        scopes: String,
    },
    List {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Output,
    },
    Revoke {
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        id: i64,
    },
}

/// Reads a password: hidden at a terminal, else the next line of stdin.
pub fn read_password(prompt: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.is_empty() {
        return Err(Findings(
            "no password given (type it at the prompt, or send it as a line on stdin)".into(),
        )
        .into());
    }
    Ok(password)
}

fn new_password(config: &Config, id: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let password = read_password(&format!("New password for {id}: "))?;
    check_new_password(&config.accounts, id, &password).map_err(Findings)?;
    if std::io::stdin().is_terminal() && read_password("Again: ")? != password {
        return Err(Findings("the two passwords differ".into()).into());
    }
    Ok(password)
}

async fn open(config: &Path) -> anyhow::Result<(Config, Store)> {
    let config = Config::load(config)?;
    let store = Store::connect(&config.database_url).await?.with_zones(config.study.zones.clone());
    Ok((config, store))
}

/// Seals what the command wrote into the audit chain, and closes.
async fn done(store: Store) -> anyhow::Result<ExitCode> {
    store.seal_audit().await?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn users(command: UsersCommand) -> anyhow::Result<ExitCode> {
    let by = vigil::audit::local_operator();
    match command {
        UsersCommand::Add { config, id, name, email, roles } => {
            let (config, store) = open(&config).await?;
            let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if id.is_empty() || id.len() > 64 || !id.chars().all(plain) {
                return Err(Findings(format!(
                    "user id `{id}`: use 1 to 64 letters, digits, `.`, `_` or `-`"
                ))
                .into());
            }
            for role in &roles {
                if role != vigil::config::ADMIN_ROLE && !config.recipients.contains_key(role) {
                    return Err(Findings(format!(
                        "role `{role}` is not defined under recipients (nor is it `admin`)"
                    ))
                    .into());
                }
            }
            if name.trim().is_empty() || !email.contains('@') {
                return Err(Findings("a user needs a printed name and an email address".into()).into());
            }
            let password = new_password(&config, &id)?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
            store.create_user(&id, name.trim(), email.trim(), &roles, &hash, &by).await?;
            println!("user {id} added ({}), by {by}", roles.join(", "));
            done(store).await
        }
        UsersCommand::List { config, format } => {
            let (_, store) = open(&config).await?;
            let users = store.users().await?;
            store.close().await;
            print_rows(format, &users, Some("no users"), |u| {
                let state = if u.disabled_at.is_some() {
                    "disabled"
                } else if u.locked_at.is_some() {
                    "LOCKED"
                } else {
                    "active"
                };
                format!("{:<16} {:<8} {:<28} {:<32} {}", u.id, state, u.name, u.email, u.roles.join(","))
            })
        }
        UsersCommand::Disable { config, id } => {
            let (_, store) = open(&config).await?;
            store.disable_user(&id, &by).await.map_err(|e| Findings(e.to_string()))?;
            println!("user {id} disabled, by {by}");
            done(store).await
        }
        UsersCommand::Passwd { config, id } => {
            let (config, store) = open(&config).await?;
            if store.user(&id).await?.is_none() {
                return Err(Findings(format!("no user `{id}`")).into());
            }
            let password = new_password(&config, &id)?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
            store.set_password(&id, &hash, &by).await?;
            println!("password of {id} changed, by {by}");
            done(store).await
        }
        UsersCommand::Unlock { config, id } => {
            let (_, store) = open(&config).await?;
            store.unlock_user(&id, &by).await.map_err(|e| Findings(e.to_string()))?;
            println!("user {id} unlocked, by {by}");
            done(store).await
        }
    }
}

pub async fn tokens(command: TokensCommand) -> anyhow::Result<ExitCode> {
    let by = vigil::audit::local_operator();
    match command {
        TokensCommand::Add { config, user, name, scopes } => {
            let (_, store) = open(&config).await?;
            let scopes = Scope::parse_list(&scopes).map_err(Findings)?;
            let token = vigil::accounts::new_token()?;
            let id = store
                .create_token(&user, &name, &vigil::accounts::token_digest(&token), &scopes, &by)
                .await
                .map_err(|e| Findings(e.to_string()))?;
            eprintln!("token #{id} for {user} ({}): shown once, keep it secret", Scope::list(&scopes));
            println!("{token}");
            done(store).await
        }
        TokensCommand::List { config, format } => {
            let (_, store) = open(&config).await?;
            let tokens = store.tokens().await?;
            store.close().await;
            print_rows(format, &tokens, Some("no tokens"), |t| {
                let state = if t.revoked_at.is_some() { "revoked" } else { "live" };
                format!(
                    "#{:<4} {:<16} {:<16} {:<8} {}",
                    t.id,
                    t.user_id,
                    t.name,
                    state,
                    Scope::list(&t.scopes)
                )
            })
        }
        TokensCommand::Revoke { config, id } => {
            let (_, store) = open(&config).await?;
            store.revoke_token(id, &by).await.map_err(|e| Findings(e.to_string()))?;
            println!("token #{id} revoked, by {by}");
            done(store).await
        }
    }
}
