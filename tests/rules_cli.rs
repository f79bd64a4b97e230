//! `vigil check` and `vigil test` as operators and CI use them: exit codes and the exact
//! locations they print (a table of cases, like promtool's own tests).

use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn vigil(args: &[&str]) -> (i32, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).current_dir(REPO).output().expect("run vigil");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_and_test_exit_codes_and_messages() {
    let bad_config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad_config.path(), "study:\n  title: T\nemail:\n  from: nobody\n").unwrap();
    let bad_config = bad_config.path().to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, i32, Vec<&str>)> = vec![
        (vec!["check", "--config", "config.example.yaml"], 0, vec!["rules valid, configuration valid"]),
        (
            vec!["check", "tests/fixtures/broken-rules.yaml"],
            1,
            vec![
                "tests/fixtures/broken-rules.yaml:7:7: unknown field `grde`",
                "(did you mean `grade`?)",
                "tests/fixtures/broken-rules.yaml:11:14: `measure`: unknown variant `t2_new`",
            ],
        ),
        (vec!["check", "--config", &bad_config], 2, vec!["`email.from`: `nobody` is not an email address"]),
        (vec!["test", "rules/"], 0, vec!["passed, 0 failed"]),
        (
            vec!["test", "tests/fixtures/failing.test.yaml"],
            1,
            vec![
                "FAIL",
                "missing:    {rule: infusion-reaction-severe, subject: KS-900}",
                "unexpected: {rule: infusion-reaction-any",
                "0 passed, 1 failed",
            ],
        ),
        (vec!["test", "tests/fixtures/no-such-dir"], 1, vec!["no-such-dir: cannot read"]),
        (vec!["frobnicate"], 2, vec!["unrecognized subcommand"]),
    ];
    for (args, code, needles) in cases {
        let (got, text) = vigil(&args);
        assert_eq!(got, code, "vigil {args:?} exited {got}:\n{text}");
        for n in needles {
            assert!(text.contains(n), "vigil {args:?}: expected `{n}` in:\n{text}");
        }
    }
}

#[test]
fn every_shipped_rule_has_a_test() {
    let rules = vigil::rules::load_rules(&[format!("{REPO}/rules").into()]).expect("shipped rules load");
    let tests = std::fs::read_to_string(format!("{REPO}/rules/tests/msc-progressive-ms.test.yaml")).unwrap();
    for r in &rules.rules {
        assert!(
            tests.contains(&format!("rule: {}", r.id)),
            "rule `{}` has no test expecting it to fire",
            r.id
        );
    }
}
