//! Start-up failures, as an operator meets them: the real binary, its stderr and its exit
//! status. Each failure is one sentence naming the flag and the `GLASSBOX_*` variable that
//! fix it, with a status of its own (64 flags, 69 address, 73 directory, 78 certificate).

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

/// Runs `glassbox args...` with its directories in `dir` and a free port, unless `args` name
/// them (every subcommand accepts every flag; `certs` reads only its own).
fn run(dir: &Path, args: &[&str]) -> Output {
    let mut command = testkit::glassbox::command();
    command.args(args);
    for (flag, value) in [
        ("--certs-dir", dir.join("certs")),
        ("--data-dir", dir.join("data")),
        ("--log-dir", dir.join("logs")),
        ("--bind", "127.0.0.1:0".into()),
    ] {
        if !args.contains(&flag) {
            command.arg(flag).arg(value);
        }
    }
    command.output().expect("glassbox runs")
}

/// Checks the exit status and that stderr is one sentence naming `flag` and its variable.
fn assert_refused(out: &Output, status: i32, flag: &str, words: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(status), "stderr: {stderr}");
    let line = stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one line: {stderr}");
    let variable = format!(
        "GLASSBOX_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    );
    assert!(line.starts_with("glassbox: "), "{line}");
    assert!(line.contains(flag) && line.contains(&variable), "{line}");
    assert!(line.contains(words), "{words:?} in {line}");
    assert!(
        !line.starts_with("glassbox: {"),
        "plain words, not JSON: {line}"
    );
    line.to_owned()
}

#[test]
fn a_taken_port_names_bind_and_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(dir.path(), &["serve", "--bind", &addr]);
    assert_refused(&out, 69, "--bind", &addr);
    // The JSON log line is still there for the log pipeline.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#""message":"glassbox failed""#),
        "{stdout}"
    );

    let out = run(dir.path(), &["serve", "--admin-bind", &addr]);
    assert_refused(
        &out,
        69,
        "--admin-bind",
        "another process is listening there",
    );
}

#[test]
fn an_unwritable_data_or_log_directory_exits_73() {
    let dir = tempfile::tempdir().unwrap();
    // A file where a directory should be: no process, root included, can write under it.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let under_file = file.join("dir");
    let under_file = under_file.to_str().unwrap();
    let out = run(dir.path(), &["serve", "--data-dir", under_file]);
    assert_refused(&out, 73, "--data-dir", "cannot write the data directory");
    let out = run(dir.path(), &["serve", "--log-dir", under_file]);
    assert_refused(&out, 73, "--log-dir", "cannot write the log directory");
    let out = run(dir.path(), &["certs", "--certs-dir", under_file]);
    assert_refused(&out, 73, "--certs-dir", "cannot write certificates");
}

#[test]
fn a_corrupt_key_exits_78_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["certs"]).status.success());
    std::fs::write(dir.path().join("certs/ca.key"), "not a key\n").unwrap();
    for command in ["serve", "certs"] {
        let out = run(dir.path(), &[command]);
        let line = assert_refused(&out, 78, "--certs-dir", "ca.key");
        assert!(line.contains("--new-ca"), "{line}");
    }
}

#[test]
fn flags_that_do_not_go_together_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["serve", "--work-sleep-min", "5s", "--work-sleep-max", "1s"],
    );
    assert_refused(
        &out,
        64,
        "--work-sleep-min",
        "must be below --work-sleep-max",
    );
    let out = run(dir.path(), &["serve", "--body-timeout", "0s"]);
    assert_refused(&out, 64, "--body-timeout", "must be above 0");
    let out = run(dir.path(), &["worker"]);
    assert_refused(&out, 64, "--queue", "redis://host:port/db");
    let out = run(dir.path(), &["serve", "--log-level", "x=["]);
    assert_refused(&out, 64, "--log-level", "not a log filter");
}

#[test]
fn just_demo_refuses_a_taken_port_before_building_anything() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .env("GLASSBOX_BIND", &addr)
        .output()
        .expect("bash runs the demo script");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&addr) && stderr.contains("GLASSBOX_BIND=127.0.0.1:"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("Building"),
        "refused before building: {stdout}"
    );
}
