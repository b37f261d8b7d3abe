//! nginx as a reference server: one worker, TLS with the run's certificate, HTTP/1.1 and
//! HTTP/2 on one port, in the foreground in its own process group (stopped with the run).

use std::path::Path;

use anyhow::{Context, Result};

use crate::run::Run;
use crate::server::{Server, command};

/// Starts nginx with `locations` (directives for its one `server` block) under `name` in the
/// run's directory, placed like the servers it is compared with.
pub(crate) fn start(run: &Run, name: &str, locations: &str) -> Result<Server> {
    let port = testkit::free_port();
    let dir = run.path(name);
    std::fs::create_dir_all(dir.join("temp"))?;
    let (dir_text, certs) = (dir.display(), run.path("certs"));
    let certs = certs.display();
    // `user root` keeps the worker able to use the run's private directory when the
    // benchmark runs as root (nginx ignores it otherwise, and runs as the user).
    let conf = format!(
        "user root;
worker_processes 1;
daemon off;
pid {dir_text}/nginx.pid;
error_log {dir_text}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    # A connection serves as many requests as the load generator sends (nginx closes it after
    # 1,000 by default, and h2load does not open another).
    keepalive_requests 100000000;
    client_body_temp_path {dir_text}/temp/body;
    proxy_temp_path {dir_text}/temp/proxy;
    fastcgi_temp_path {dir_text}/temp/fastcgi;
    uwsgi_temp_path {dir_text}/temp/uwsgi;
    scgi_temp_path {dir_text}/temp/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {certs}/server.crt;
        ssl_certificate_key {certs}/server.key;
        {locations}
    }}
}}
"
    );
    let file = dir.join("nginx.conf");
    std::fs::write(&file, conf)?;
    let args = [
        "-p".to_owned(),
        dir_text.to_string(),
        "-e".to_owned(),
        dir.join("error.log").display().to_string(),
        "-c".to_owned(),
        file.display().to_string(),
    ];
    Server::start_command(
        name,
        command(
            &run.settings.placement.server_pin,
            Path::new("nginx"),
            &args,
        ),
        port,
    )
    .context("nginx (Debian's nginx package) is needed")
}
