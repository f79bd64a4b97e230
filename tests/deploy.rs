//! The systemd unit in `deploy/` runs: vigil started with the unit's own command line and
//! environment file (paths moved into a temporary folder) serves, ingests, and stops
//! cleanly on SIGTERM, as `systemctl stop` sends it. (`.ci/run` also checks the unit with
//! `systemd-analyze verify`.)

mod common;

use common::{free_port, wait_for};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
use std::process::{Command, Stdio};
use std::time::Duration;

const UNIT: &str = include_str!("../deploy/vigil.service");
const ENV: &str = include_str!("../deploy/vigil.env.example");

/// The value of `key=` in the unit's [Service] section.
fn directive<'a>(key: &str) -> &'a str {
    UNIT.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}"))
}

#[tokio::test]
async fn vigil_runs_with_the_units_command_line_and_environment_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("var-lib-vigil");
    let etc = dir.path().join("etc-vigil");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&etc).unwrap();
    // The unit's paths, moved under the temporary folder.
    let relocate = |s: &str| {
        s.replace("/var/lib/vigil", &state.display().to_string())
            .replace("/etc/vigil", &etc.display().to_string())
    };
    let port = free_port();
    // The shipped example configuration, installed as the unit's comments say, with its
    // writable folders under the state directory (/etc is read-only under ProtectSystem).
    let example = include_str!("../config.example.yaml").replace("var/", &format!("{}/", state.display()));
    std::fs::write(etc.join("vigil.yaml"), example).unwrap();
    copy_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")), &etc.join("rules"));
    assert_eq!(directive("EnvironmentFile"), "/etc/vigil/vigil.env");
    std::fs::write(etc.join("vigil.env"), relocate(ENV)).unwrap();

    let exec = relocate(directive("ExecStart"));
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/vigil"), "the unit runs the installed binary");
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command.args(words).current_dir(relocate(directive("WorkingDirectory")));
    for line in std::fs::read_to_string(etc.join("vigil.env")).unwrap().lines() {
        if let Some((k, v)) = line.split_once('=').filter(|_| !line.trim_start().starts_with('#')) {
            command.env(k.trim(), v.trim());
        }
    }
    let log = dir.path().join("vigil.log");
    let mut child = command
        .env_remove("VIGIL_SMTP_URL")
        .env("VIGIL_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env_remove("VIGIL_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    let health = format!("http://127.0.0.1:{port}/healthz");
    let started = std::time::Instant::now();
    loop {
        if reqwest::get(&health).await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(started.elapsed() < Duration::from_secs(30), "vigil did not answer /healthz:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The environment file's inbox and database are the ones in use.
    let inbox = state.join("inbox");
    std::fs::write(inbox.join("a.tmp"), include_str!("../examples/infusion-reaction.ndjson")).unwrap();
    std::fs::rename(inbox.join("a.tmp"), inbox.join("a.ndjson")).unwrap();
    wait_for("the file to be processed", Duration::from_secs(30), || {
        std::fs::read_dir(state.join("outbox")).ok().and_then(|d| (d.count() > 0).then_some(()))
    });
    assert!(state.join("vigil.db").exists());

    // systemctl stop: SIGTERM, and a clean exit within the unit's TimeoutStopSec.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "vigil did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exit.success(), "exit {exit:?}\n{text}");
    assert!(text.contains("Shutting down"), "{text}");
    // The loops finished what they were doing and stopped, rather than being dropped.
    assert!(text.contains("Stopped cleanly."), "{text}");
}

/// A validation record names exactly what runs: version, commit, build and features.
#[test]
fn the_version_names_the_commit_the_build_and_the_pdf_feature() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil")).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("vigil {} (commit ", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains("build") && text.contains("pdf reports"), "{text}");
}
