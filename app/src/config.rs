//! Command line and environment configuration: one struct, every flag also a `GLASSBOX_*` variable.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};
use ipnet::IpNet;

/// The `glassbox` command line: a subcommand (`serve` when omitted) and its flags. Each
/// subcommand takes the flags after its name and shows, in `--help`, only the groups it uses.
#[derive(Debug, Parser)]
#[command(
    name = "glassbox",
    version,
    about = "Five interview services behind one TLS endpoint, with telemetry you can trust",
    long_about = None,
    args_conflicts_with_subcommands = true,
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Subcommand>,

    /// `glassbox --flag ...` is `glassbox serve --flag ...`.
    #[command(flatten)]
    serve: Config,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Run the HTTPS service (the default).
    Serve(Config),
    /// Create the local CA and server certificate, or renew them, then exit.
    Certs(Config),
    /// Print the OpenAPI document of a service with these settings, then exit.
    Openapi(Config),
    /// Run task workers only, for a Redis queue (`--queue redis://...`); `--bind` serves
    /// their `/metrics`, `/health` and `/status`.
    Worker(Config),
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Serve,
    Certs,
    Openapi,
    Worker,
}

impl Command {
    const ALL: [Self; 4] = [Self::Serve, Self::Certs, Self::Openapi, Self::Worker];

    fn name(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Certs => "certs",
            Self::Openapi => "openapi",
            Self::Worker => "worker",
        }
    }

    /// The flag groups this subcommand reads; `--help` shows only these (the others are
    /// still accepted, so one environment can serve every subcommand).
    fn groups(self) -> &'static [&'static str] {
        match self {
            Self::Serve => &GROUPS,
            Self::Worker => &[LISTENERS, TLS, LIMITS, STORAGE, TELEMETRY, TASKS],
            Self::Certs => &[TLS],
            // The document states each route's body limit and timeout.
            Self::Openapi => &[LIMITS, TASKS, ENDPOINTS],
        }
    }
}

// The flag groups, in the order `--help` lists them.
const LISTENERS: &str = "Listeners";
const TLS: &str = "TLS certificates";
const LIMITS: &str = "Connection and request limits";
const STORAGE: &str = "Data directory";
const STORE: &str = "Message store";
const TASKS: &str = "Tasks";
const TELEMETRY: &str = "Logs";
const DASHBOARD: &str = "Dashboard";
const ENDPOINTS: &str = "Seed endpoints";
const GROUPS: [&str; 9] = [
    LISTENERS, TLS, LIMITS, STORAGE, STORE, TASKS, TELEMETRY, DASHBOARD, ENDPOINTS,
];

/// The command line clap parses: every subcommand's help trimmed to its groups.
pub fn command() -> clap::Command {
    let mut command = <Cli as clap::CommandFactory>::command();
    for sub in Command::ALL {
        command = command.mut_subcommand(sub.name(), |c| {
            c.mut_args(|arg| {
                let used = arg
                    .get_help_heading()
                    .is_none_or(|heading| sub.groups().contains(&heading));
                arg.hide(!used)
            })
        });
    }
    command
}

/// Parses `argv` (the program name first) into what to run and its configuration.
pub fn try_parse_from<I, T>(argv: I) -> Result<(Command, Config), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let matches = command().try_get_matches_from(argv)?;
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(match cli.command {
        None => (Command::Serve, cli.serve),
        Some(Subcommand::Serve(config)) => (Command::Serve, config),
        Some(Subcommand::Certs(config)) => (Command::Certs, config),
        Some(Subcommand::Openapi(config)) => (Command::Openapi, config),
        Some(Subcommand::Worker(config)) => (Command::Worker, config),
    })
}

/// [`try_parse_from`] on this process's arguments; prints help, the version or the error
/// and exits as clap does.
pub fn parse() -> (Command, Config) {
    try_parse_from(std::env::args_os()).unwrap_or_else(|err| err.exit())
}

/// The configuration `glassbox` with no flags would run with (environment variables apply):
/// for tests and tools.
pub fn defaults() -> Config {
    try_parse_from(["glassbox"]).expect("the defaults parse").1
}

/// Everything the service can be told. Defaults run on a laptop.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// HTTPS listen address; port 0 picks a free port and logs it.
    #[arg(
        help_heading = LISTENERS,
        long,
        env = "GLASSBOX_BIND",
        default_value = "127.0.0.1:8443",
    )]
    pub bind: SocketAddr,

    /// A second HTTPS listener (same certificate) that alone serves the operator's routes:
    /// `/metrics`, `/logs`, `/dashboard` and its assets and data; `--bind` then answers those
    /// 404. `/status`, `/health` and `/openapi.json` are on both. Unset: everything on `--bind`.
    #[arg(help_heading = LISTENERS, long, env = "GLASSBOX_ADMIN_BIND")]
    pub admin_bind: Option<SocketAddr>,

    /// Serves the `/faults` API (on `--admin-bind` when it is set): error, latency, store and
    /// queue faults injected on purpose, kept in memory only (a restart clears them). Off:
    /// `/faults` answers 404.
    #[arg(help_heading = LISTENERS, long, env = "GLASSBOX_ALLOW_FAULTS")]
    pub allow_faults: bool,

    /// Threads answering requests (tokio workers; default: the number of cores).
    #[arg(help_heading = LISTENERS, long, env = "GLASSBOX_IO_THREADS")]
    pub io_threads: Option<usize>,

    /// Proxies whose `X-Forwarded-For` is believed, as addresses or CIDR ranges, comma
    /// separated (e.g. `127.0.0.1,10.0.0.0/8`). Requests from them are logged with the client
    /// address the proxy saw; from anyone else the header is ignored.
    #[arg(help_heading = LISTENERS, long, env = "GLASSBOX_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,

    /// On SIGINT or SIGTERM, how long in-flight requests and running tasks may take to finish
    /// before the service exits; a task still running then is queued again (it runs after a
    /// restart, or on another worker).
    #[arg(help_heading = LISTENERS, long, env = "GLASSBOX_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Directory holding `ca.crt`, `ca.key`, `server.crt` and `server.key`.
    #[arg(
        help_heading = TLS,
        long,
        env = "GLASSBOX_CERTS_DIR",
        default_value = "./certs",
    )]
    pub certs_dir: PathBuf,

    /// Extra DNS names or IP addresses for the server certificate, comma separated
    /// (for compose: the service names). localhost, 127.0.0.1 and ::1 are always included.
    #[arg(
        help_heading = TLS,
        long,
        env = "GLASSBOX_CERT_NAMES",
        value_delimiter = ',',
    )]
    pub cert_names: Vec<String>,

    /// Where the local CA's key is (default: `ca.key` in `--certs-dir`). Keep it where only
    /// `glassbox certs` runs: a server without it serves its certificate while it is valid.
    #[arg(help_heading = TLS, long, env = "GLASSBOX_CA_KEY")]
    pub ca_key: Option<PathBuf>,

    /// Your own certificate (PEM, leaf first, intermediates after it) to serve instead of the
    /// local CA's: used as it is, never renewed; read again when the file or `--tls-key`
    /// changes, or on SIGHUP (a pair that cannot be used is refused and the old one serves on).
    #[arg(
        help_heading = TLS,
        long,
        env = "GLASSBOX_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        help_heading = TLS,
        long,
        env = "GLASSBOX_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// `glassbox certs`: make a new local CA (and server certificate) even though one is
    /// there; for a CA that cannot be read or should no longer be trusted. Clients must then
    /// trust the new ca.crt.
    #[arg(help_heading = TLS, long)]
    pub new_ca: bool,

    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(help_heading = LIMITS, long, env = "GLASSBOX_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Requests to the seed endpoints served at once before new ones are shed with 503 and
    /// `Retry-After`. The service's own endpoints (health, status, metrics, logs, the
    /// dashboard) are never shed; the status endpoint lists each route's policy under
    /// `route_table`.
    #[arg(
        help_heading = LIMITS,
        long,
        env = "GLASSBOX_MAX_CONCURRENCY",
        default_value_t = 1024,
    )]
    pub max_concurrency: usize,

    /// Largest request head accepted: the method and target, and each header's name and value
    /// plus 32 bytes (HTTP/2's measure). Larger heads get 431 once the body they came with is
    /// read; a head over twice this is cut while it arrives, which bounds what a head held
    /// unfinished keeps.
    #[arg(help_heading = LIMITS, long, env = "GLASSBOX_MAX_HEAD_BYTES", default_value = "16KiB", value_parser = parse_bytes)]
    pub max_head_bytes: u64,

    /// How long a client may take to send a request's headers (HTTP/1) before it is disconnected.
    #[arg(help_heading = LIMITS, long, env = "GLASSBOX_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// How long a client may take to finish the TLS handshake.
    #[arg(help_heading = LIMITS, long, env = "GLASSBOX_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// How long a request body may bring no byte before the request gets 408 and its permit,
    /// memory and spool file are freed.
    #[arg(help_heading = LIMITS, long, env = "GLASSBOX_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// How long a connection may carry no request before it is closed (HTTP/2 with a GOAWAY).
    /// Keep it longer than a proxy's upstream keep-alive (nginx/glassbox.conf: 20s).
    #[arg(help_heading = LIMITS, long, env = "GLASSBOX_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// How long a response may wait for its client to read before the connection is dropped.
    #[arg(help_heading = LIMITS, long, env = "GLASSBOX_WRITE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// Connections open at once; beyond it the longest-idle connection is closed to make room,
    /// or the new one when none is idle. Also held below the open-file limit (raised to its
    /// hard limit at start), keeping 64 descriptors for files and stores.
    #[arg(
        help_heading = LIMITS,
        long,
        env = "GLASSBOX_MAX_CONNECTIONS",
        default_value_t = 10_000,
    )]
    pub max_connections: usize,

    /// New connections a second one client address may open (for IPv6, its /64), with one
    /// second's worth at once; beyond it a connection is closed before its TLS handshake, which
    /// costs the service far more CPU than its client. Connections from --trusted-proxies are
    /// not counted. 0: no limit.
    #[arg(
        help_heading = LIMITS,
        long,
        env = "GLASSBOX_MAX_CONNECTION_RATE",
        default_value_t = 1000,
    )]
    pub max_connection_rate: u32,

    /// Concurrent HTTP/2 streams one connection may open.
    #[arg(
        help_heading = LIMITS,
        long,
        env = "GLASSBOX_MAX_STREAMS",
        default_value_t = 100,
    )]
    pub max_streams: u32,

    /// HTTP/2 flow control: how many bytes of one request body a client may send before the
    /// service has read them (the stream's receive window). At most this much of an upload
    /// waits in memory per stream. The default lets a 1 GiB upload over HTTP/2 run about as
    /// fast as over HTTP/1.1 (BENCHMARKS.md); hyper's own is 1 MiB.
    #[arg(help_heading = LIMITS, long, env = "GLASSBOX_H2_STREAM_WINDOW", default_value = "8MiB", value_parser = parse_bytes)]
    pub h2_stream_window: u64,

    /// HTTP/2 flow control: the same for all of one connection's streams together; at most
    /// this much of a connection's request bodies waits in memory.
    #[arg(help_heading = LIMITS, long, env = "GLASSBOX_H2_CONNECTION_WINDOW", default_value = "16MiB", value_parser = parse_bytes)]
    pub h2_connection_window: u64,

    /// The share of --max-concurrency permits, and of --queue-capacity places, one client may
    /// hold (0 to 1]; beyond it its requests get 503. Also its share of --max-buffered-bytes
    /// (503), and of the disk's room above --min-free-disk that its task uploads, payloads,
    /// results and messages (embedded store) may hold, with that room (507). A client is its address, or the forwarded one
    /// behind a trusted proxy; for IPv6, its /64. The X-Client-Id clients of one address share
    /// its places in the queue.
    #[arg(
        help_heading = LIMITS,
        long,
        env = "GLASSBOX_CLIENT_SHARE",
        default_value_t = 0.5,
    )]
    pub client_share: f64,

    /// Memory for request bodies at once, in bytes, across requests (`/messages` and
    /// `/randomize` read theirs whole; a buffer counts as allocated, growing by doubling; a
    /// `/sum-evens` upload's spool takes its 1 MiB blocks from it, 2 to 5); a body that would
    /// pass it, or take its client past --client-share of it, gets 503.
    #[arg(help_heading = LIMITS, long, env = "GLASSBOX_MAX_BUFFERED_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub max_buffered_bytes: usize,

    /// Directory for the service's own data (created if missing).
    #[arg(
        help_heading = STORAGE,
        long,
        env = "GLASSBOX_DATA_DIR",
        default_value = "./data",
    )]
    pub data_dir: PathBuf,

    /// Free space to keep on the data directory's filesystem: messages (embedded store), task
    /// payloads and uploads that would leave less get 507 `insufficient storage`, checked
    /// before an upload is spooled (from its Content-Length) and every MiB while it is; and
    /// `/health` fails while free space is below it. One client's uploads, payloads, results
    /// and messages may hold at most --client-share of the room above it. Bytes, or with a unit: 512MiB,
    /// 1GiB, 0.
    #[arg(help_heading = STORAGE, long, env = "GLASSBOX_MIN_FREE_DISK", default_value = "1GiB", value_parser = parse_bytes)]
    pub min_free_disk: u64,

    /// Where messages are kept: `embedded` (a database file in the data directory) or a
    /// Redis server, `redis://host:port/db`, shared by several replicas.
    #[arg(
        help_heading = STORE,
        long,
        env = "GLASSBOX_STORE",
        default_value = "embedded",
    )]
    pub store: Backend,

    /// How long one store operation may take before the request gets 503.
    #[arg(help_heading = STORE, long, env = "GLASSBOX_STORE_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub store_timeout: Duration,

    /// Connections to a Redis store (each one multiplexed).
    #[arg(
        help_heading = STORE,
        long,
        env = "GLASSBOX_STORE_CONNECTIONS",
        default_value_t = 4,
    )]
    pub store_connections: usize,

    /// Threads for CPU-heavy work such as `/total`'s sum (default: the number of cores).
    #[arg(help_heading = TASKS, long, env = "GLASSBOX_COMPUTE_THREADS")]
    pub compute_threads: Option<usize>,

    /// Where tasks are queued: `embedded` (records in the data directory, in-process workers) or
    /// a Redis server, `redis://host:port/db`, whose tasks `glassbox worker` processes run.
    #[arg(
        help_heading = TASKS,
        long,
        env = "GLASSBOX_QUEUE",
        default_value = "embedded",
    )]
    pub queue: Backend,

    /// Task workers in this process (default: the number of cores). With a Redis queue the
    /// service runs none; `glassbox worker` runs this many.
    #[arg(help_heading = TASKS, long, env = "GLASSBOX_WORKERS")]
    pub workers: Option<usize>,

    /// Sum a `/sum-evens` upload while it arrives: each chunk goes to the fair scheduler once
    /// it is in the spooled file, so the result is ready about a chunk's parse time after the
    /// last byte. Only where this process's workers run the task (the embedded queue).
    /// `false`: a worker sums the payload file when it takes the task, as after a restart.
    #[arg(
        help_heading = TASKS,
        long,
        env = "GLASSBOX_SUM_WHILE_RECEIVING",
        default_value_t = true,
        action = clap::ArgAction::Set,
    )]
    pub sum_while_receiving: bool,

    /// Tasks that may wait in the queue; beyond it submissions get 503 with `Retry-After`. One
    /// client may hold --client-share of them.
    #[arg(
        help_heading = TASKS,
        long,
        env = "GLASSBOX_QUEUE_CAPACITY",
        default_value_t = 1000,
    )]
    pub queue_capacity: usize,

    /// How long finished and errored tasks (their status and result) are kept.
    #[arg(help_heading = TASKS, long, env = "GLASSBOX_TASK_TTL", default_value = "24h", value_parser = parse_duration)]
    pub task_ttl: Duration,

    /// Redis queue: how long a worker's claim on a running task lasts unless renewed; a task
    /// whose worker died runs again this long after.
    #[arg(help_heading = TASKS, long, env = "GLASSBOX_TASK_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub task_lease: Duration,

    /// How many times a task is started before it is given up as errored (a task runs again
    /// when the process or worker running it stopped).
    #[arg(
        help_heading = TASKS,
        long,
        env = "GLASSBOX_TASK_MAX_ATTEMPTS",
        default_value_t = 3,
    )]
    pub task_max_attempts: u32,

    /// The longest a randomize task may run (its `--randomize-delay` included); one that
    /// takes longer ends errored, `timed out after ...`.
    #[arg(help_heading = TASKS, long, env = "GLASSBOX_RANDOMIZE_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub randomize_timeout: Duration,

    /// The longest a sum-evens task may run; one that takes longer ends errored and its
    /// chunks stop being summed.
    #[arg(help_heading = TASKS, long, env = "GLASSBOX_SUM_EVENS_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub sum_evens_timeout: Duration,

    /// The SpaceTime seed's artificial delay before each randomize task (it slept 15 s).
    #[arg(help_heading = TASKS, long, env = "GLASSBOX_RANDOMIZE_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub randomize_delay: Duration,

    /// Largest PNG upload for `/randomize`, in bytes; larger ones get 413.
    #[arg(help_heading = TASKS, long, env = "GLASSBOX_MAX_IMAGE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_image_bytes: usize,

    /// Largest image `/randomize` takes, in pixels (width × height, from the PNG header):
    /// refuses decompression bombs with 413 before anything is decoded.
    #[arg(help_heading = TASKS, long, env = "GLASSBOX_MAX_IMAGE_PIXELS", default_value_t = 16 * 1024 * 1024)]
    pub max_image_pixels: u64,

    /// Largest `/sum-evens` upload, in bytes; larger ones get 413 (and leave nothing behind).
    #[arg(help_heading = TASKS, long, env = "GLASSBOX_MAX_UPLOAD_BYTES", default_value_t = 8 << 30)]
    pub max_upload_bytes: usize,

    /// Directory for the daily-rolling JSON log files (`glassbox.YYYY-MM-DD.log`).
    #[arg(
        help_heading = TELEMETRY,
        long,
        env = "GLASSBOX_LOG_DIR",
        default_value = "./logs",
    )]
    pub log_dir: PathBuf,

    /// Log filter in `tracing` syntax, e.g. `info` or `glassbox=debug,info`.
    #[arg(
        help_heading = TELEMETRY,
        long,
        env = "GLASSBOX_LOG_LEVEL",
        default_value = "info",
    )]
    pub log_level: String,

    /// The most bytes a log file holds: the line that would pass it begins the day's next part
    /// (`glassbox.DATE.part0001.log`). Bytes, or with a unit: 64MiB.
    #[arg(help_heading = TELEMETRY, long, env = "GLASSBOX_LOG_MAX_FILE_BYTES", default_value = "64MiB", value_parser = parse_bytes)]
    pub log_max_file_bytes: u64,

    /// The most bytes all log files may hold together; the oldest files go first. Bytes, or
    /// with a unit: 1GiB.
    #[arg(help_heading = TELEMETRY, long, env = "GLASSBOX_LOG_MAX_TOTAL_BYTES", default_value = "1GiB", value_parser = parse_bytes)]
    pub log_max_total_bytes: u64,

    /// How many log files to keep (days and parts together); the oldest go first.
    #[arg(
        help_heading = TELEMETRY,
        long,
        env = "GLASSBOX_LOG_KEEP_FILES",
        default_value_t = 14,
    )]
    pub log_keep_files: usize,

    /// How often the built-in dashboard (`/dashboard`) takes a sample; 100ms at the least.
    #[arg(help_heading = DASHBOARD, long, env = "GLASSBOX_DASHBOARD_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub dashboard_interval: Duration,

    /// How much history the dashboard keeps (samples are dropped oldest first).
    #[arg(help_heading = DASHBOARD, long, env = "GLASSBOX_DASHBOARD_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub dashboard_window: Duration,

    /// A Prometheus whose firing alerts the dashboard page shows (`http://host:port`; the
    /// browser reads its `/api/v1/alerts`, which Prometheus allows from any origin unless told
    /// otherwise). Unset, or while it does not answer: the demo burn-rate alert, evaluated in
    /// glassbox from the same samples the charts draw.
    #[arg(help_heading = DASHBOARD, long, env = "GLASSBOX_DASHBOARD_PROMETHEUS", value_parser = parse_origin)]
    pub dashboard_prometheus: Option<String>,

    /// Longest sleep `/sleep/{ms}` accepts; longer asks get 400 "sleep too long".
    #[arg(help_heading = ENDPOINTS, long, env = "GLASSBOX_MAX_SLEEP", default_value = "60s", value_parser = parse_duration)]
    pub max_sleep: Duration,

    /// Shortest sleep of `POST /work` (inclusive).
    #[arg(help_heading = ENDPOINTS, long, env = "GLASSBOX_WORK_SLEEP_MIN", default_value = "100ms", value_parser = parse_duration)]
    pub work_sleep_min: Duration,

    /// Longest sleep of `POST /work` (exclusive).
    #[arg(help_heading = ENDPOINTS, long, env = "GLASSBOX_WORK_SLEEP_MAX", default_value = "5000ms", value_parser = parse_duration)]
    pub work_sleep_max: Duration,

    /// Status codes `POST /work` answers with and their weights, as `code:weight,...`.
    #[arg(help_heading = ENDPOINTS, long, env = "GLASSBOX_WORK_WEIGHTS", default_value = "200:0.95,400:0.04,500:0.01", value_parser = parse_weights)]
    pub work_weights: WorkWeights,

    /// Seed for the random choices of `POST /work`, for reproducible runs; random when unset.
    #[arg(help_heading = ENDPOINTS, long, env = "GLASSBOX_SEED")]
    pub seed: Option<u64>,

    /// How long the simulated numbers API behind `/total` takes to answer.
    #[arg(help_heading = ENDPOINTS, long, env = "GLASSBOX_TOTAL_LATENCY", default_value = "1s", value_parser = parse_duration)]
    pub total_latency: Duration,

    /// The simulated numbers API returns 0..=COUNT; larger counts make `/total`'s sum heavier.
    #[arg(help_heading = ENDPOINTS, long, env = "GLASSBOX_TOTAL_COUNT", default_value_t = 1_000_000,
        value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub total_count: u64,
}

/// Where the message store or the task queue lives: `--store` and `--queue` take `embedded`
/// or a Redis URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// In this process, with its data in the data directory.
    Embedded,
    /// A Redis server, by URL (`redis://host:port/db`).
    Redis(String),
}

impl std::str::FromStr for Backend {
    type Err = FlagError;

    fn from_str(s: &str) -> Result<Self, FlagError> {
        if s == "embedded" {
            return Ok(Self::Embedded);
        }
        if s.starts_with("redis://") || s.starts_with("rediss://") {
            redis::Client::open(s).map_err(|e| FlagError::NotRedis {
                url: s.to_owned(),
                why: e.to_string(),
            })?;
            return Ok(Self::Redis(s.to_owned()));
        }
        Err(FlagError::NotABackend(s.to_owned()))
    }
}

/// A flag's value that cannot be taken, and why (clap prints it with the flag's name).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlagError {
    #[error("`{0}` is neither `embedded` nor a `redis://host:port/db` URL")]
    NotABackend(String),
    #[error("`{url}` is not a Redis URL: {why}")]
    NotRedis { url: String, why: String },
    #[error("{0} (examples: 250ms, 5s, 1m)")]
    Duration(#[from] humantime::DurationError),
    #[error("`{0}` is neither an IP address nor a CIDR range")]
    NotANetwork(String),
    #[error("`{0}` is not `code:weight`")]
    NotAWeight(String),
    #[error("`{0}` is not a status code")]
    NotAStatus(String),
    #[error("status {0} is outside 200..=599")]
    StatusOutOfRange(u16),
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("`{0}` is not a size (examples: 0, 4096, 512MiB, 1GiB)")]
    NotASize(String),
    #[error("weight {0} must be a finite number >= 0")]
    BadWeight(f64),
    #[error("at least one weight must be above 0")]
    NoWeight,
    #[error("`{0}` is not `http://host:port` (or https) with nothing after it")]
    NotAnOrigin(String),
}

/// Flags that do not go together, or a value clap cannot judge alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--work-sleep-min ({min:?}) must be below --work-sleep-max ({max:?})")]
    EmptyWorkRange { min: Duration, max: Duration },
    #[error("{0} must be above 0")]
    Zero(&'static str),
    #[error("{flag} must be at least {least:?}")]
    TooShort { flag: &'static str, least: Duration },
    #[error("{flag} must be 64KiB to 2GiB - 1 byte (an HTTP/2 window), not {bytes}")]
    Window { flag: &'static str, bytes: u64 },
    #[error("--max-head-bytes must be 1KiB to 1MiB, not {0}")]
    HeadSize(u64),
    #[error("--client-share must be above 0 and at most 1, not {0}")]
    Share(String),
}

impl ConfigError {
    /// The flag to change.
    pub fn flag(&self) -> &'static str {
        match self {
            Self::EmptyWorkRange { .. } => "--work-sleep-min",
            Self::Zero(flag) | Self::TooShort { flag, .. } => flag,
            Self::Share(_) => "--client-share",
            Self::HeadSize(_) => "--max-head-bytes",
            Self::Window { flag, .. } => flag,
        }
    }
}

/// `--max-head-bytes`'s range: below 1 KiB a browser's ordinary request would not fit; above
/// 1 MiB, ten thousand heads held unfinished would take gigabytes.
const HEAD_BYTES_LEAST: u64 = 1 << 10;
const HEAD_BYTES_MOST: u64 = 1 << 20;

/// Weighted status codes for `POST /work`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkWeights(pub Vec<(u16, f64)>);

/// A size in bytes: a number, or a number with `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024) or
/// `KB`, `MB`, `GB`, `TB` (powers of 1000).
fn parse_bytes(s: &str) -> Result<u64, FlagError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| FlagError::NotASize(s.to_owned()))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(FlagError::NotASize(s.to_owned())),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| FlagError::NotASize(s.to_owned()))
}

/// `http(s)://host[:port]`, with nothing after it: an origin a page may connect to.
fn parse_origin(s: &str) -> Result<String, FlagError> {
    let uri: axum::http::Uri = s
        .parse()
        .map_err(|_| FlagError::NotAnOrigin(s.to_owned()))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let bare = uri.path_and_query().is_none_or(|p| p.as_str() == "/");
    match (scheme_ok, uri.authority(), bare) {
        (true, Some(authority), true) => Ok(format!(
            "{}://{authority}",
            uri.scheme_str().unwrap_or("http")
        )),
        _ => Err(FlagError::NotAnOrigin(s.to_owned())),
    }
}

fn parse_duration(s: &str) -> Result<Duration, FlagError> {
    Ok(humantime::parse_duration(s)?)
}

/// A CIDR range, or one address as its own range.
fn parse_net(s: &str) -> Result<IpNet, FlagError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| FlagError::NotANetwork(s.to_owned()))
}

fn parse_weights(s: &str) -> Result<WorkWeights, FlagError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (code, weight) = part
            .split_once(':')
            .ok_or_else(|| FlagError::NotAWeight(part.to_owned()))?;
        let code: u16 = code
            .trim()
            .parse()
            .map_err(|_| FlagError::NotAStatus(code.to_owned()))?;
        if !(200..600).contains(&code) {
            return Err(FlagError::StatusOutOfRange(code));
        }
        let weight: f64 = weight
            .trim()
            .parse()
            .map_err(|_| FlagError::NotANumber(weight.to_owned()))?;
        if !weight.is_finite() || weight < 0.0 {
            return Err(FlagError::BadWeight(weight));
        }
        out.push((code, weight));
    }
    if out.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
        return Err(FlagError::NoWeight);
    }
    Ok(WorkWeights(out))
}

/// What one client may hold of a bound shared out by `--client-share`: `share` of `total`,
/// rounded up, at least one and at most all of it.
pub fn share_of(total: usize, share: f64) -> usize {
    ((total as f64 * share).ceil() as usize).clamp(1, total.max(1))
}

impl Config {
    /// The permits one client may hold: `--client-share` of `--max-concurrency`.
    pub fn client_permits(&self) -> usize {
        share_of(self.max_concurrency, self.client_share)
    }

    /// The request body memory one client may hold: `--client-share` of
    /// `--max-buffered-bytes`.
    pub fn client_buffered_bytes(&self) -> usize {
        share_of(self.max_buffered_bytes, self.client_share)
    }

    /// Threads for CPU-heavy work: the configured number, or the number of cores.
    pub fn compute_threads(&self) -> usize {
        self.compute_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }

    /// Task workers: the configured number, or the number of cores.
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }

    /// Checks what clap cannot: relations between flags, and values no flag's parser can
    /// refuse alone. Everything that starts the service calls it once, before anything else.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // `/work` draws whole milliseconds from min..max.
        if self.work_sleep_min.as_millis() >= self.work_sleep_max.as_millis() {
            return Err(ConfigError::EmptyWorkRange {
                min: self.work_sleep_min,
                max: self.work_sleep_max,
            });
        }
        for (flag, timeout) in [
            ("--store-timeout", self.store_timeout),
            // At 0 every connection is cut before its first request: a service that answers
            // nothing.
            ("--header-read-timeout", self.header_read_timeout),
            ("--tls-handshake-timeout", self.tls_handshake_timeout),
            ("--body-timeout", self.body_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--write-timeout", self.write_timeout),
            ("--task-ttl", self.task_ttl),
        ] {
            if timeout.is_zero() {
                return Err(ConfigError::Zero(flag));
            }
        }
        for (flag, value, least) in [
            ("--task-lease", self.task_lease, Duration::from_millis(100)),
            // A sample costs a pass over every route's interval histogram.
            (
                "--dashboard-interval",
                self.dashboard_interval,
                Duration::from_millis(100),
            ),
        ] {
            if value < least {
                return Err(ConfigError::TooShort { flag, least });
            }
        }
        if self.max_concurrency == 0 {
            return Err(ConfigError::Zero("--max-concurrency"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Zero("--max-connections"));
        }
        if self.max_streams == 0 {
            return Err(ConfigError::Zero("--max-streams"));
        }
        for (flag, bytes) in [
            ("--h2-stream-window", self.h2_stream_window),
            ("--h2-connection-window", self.h2_connection_window),
        ] {
            if !(65_535..(1 << 31)).contains(&bytes) {
                return Err(ConfigError::Window { flag, bytes });
            }
        }
        if !(HEAD_BYTES_LEAST..=HEAD_BYTES_MOST).contains(&self.max_head_bytes) {
            return Err(ConfigError::HeadSize(self.max_head_bytes));
        }
        if !(self.client_share > 0.0 && self.client_share <= 1.0) {
            return Err(ConfigError::Share(self.client_share.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        command().debug_assert();
    }

    fn parse<const N: usize>(argv: [&str; N]) -> Config {
        try_parse_from(argv).unwrap().1
    }

    #[test]
    fn sizes_parse_and_reject() {
        assert_eq!(parse_bytes("0").unwrap(), 0);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("2 GB").unwrap(), 2_000_000_000);
        for bad in ["", "MiB", "1.5GiB", "1 parsec", "-1", "99999999999TiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http2_windows_are_held_to_what_the_protocol_allows() {
        let config = parse([
            "glassbox",
            "--h2-stream-window",
            "4MiB",
            "--h2-connection-window",
            "8MiB",
        ]);
        assert_eq!(
            (config.h2_stream_window, config.h2_connection_window),
            (4 << 20, 8 << 20)
        );
        assert_eq!(config.validate(), Ok(()));
        for (flag, value) in [
            ("--h2-stream-window", "1KiB"),
            ("--h2-connection-window", "2GiB"),
        ] {
            let err = parse(["glassbox", flag, value]).validate().unwrap_err();
            assert_eq!(err.flag(), flag, "{err}");
        }
    }

    #[test]
    fn request_heads_are_held_between_1_kib_and_1_mib() {
        assert_eq!(parse(["glassbox"]).max_head_bytes, 16 << 10);
        assert_eq!(
            parse(["glassbox", "--max-head-bytes", "1MiB"]).validate(),
            Ok(())
        );
        for value in ["1000", "2MiB"] {
            let err = parse(["glassbox", "--max-head-bytes", value])
                .validate()
                .unwrap_err();
            assert_eq!(err.flag(), "--max-head-bytes", "{err}");
        }
    }

    #[test]
    fn weights_parse_and_reject() {
        assert_eq!(
            parse_weights("200:0.95, 400:0.04,500:0.01").unwrap().0,
            vec![(200, 0.95), (400, 0.04), (500, 0.01)]
        );
        assert!(parse_weights("200").is_err());
        assert!(parse_weights("199:1").is_err());
        assert!(parse_weights("200:-1").is_err());
        assert!(parse_weights("200:0").is_err());
        assert!(parse_weights("200:NaN").is_err());
    }

    #[test]
    fn flags_follow_the_subcommand_and_serve_is_the_default() {
        let (command, config) =
            try_parse_from(["glassbox", "serve", "--bind", "127.0.0.1:0"]).unwrap();
        assert_eq!((command, config.bind.port()), (Command::Serve, 0));
        let (command, config) = try_parse_from(["glassbox", "--bind", "127.0.0.1:0"]).unwrap();
        assert_eq!((command, config.bind.port()), (Command::Serve, 0));
        let (command, config) =
            try_parse_from(["glassbox", "certs", "--certs-dir", "/tmp/x"]).unwrap();
        assert_eq!(
            (command, config.certs_dir),
            (Command::Certs, PathBuf::from("/tmp/x"))
        );
    }

    fn help(argv: &[&str]) -> String {
        let err = try_parse_from(argv).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        err.render().to_string()
    }

    #[test]
    fn help_groups_flags_and_shows_each_subcommand_its_own() {
        let serve = help(&["glassbox", "serve", "--help"]);
        let mut at = 0;
        for group in GROUPS {
            let heading = format!("\n{group}:\n");
            let found = serve[at..]
                .find(&heading)
                .unwrap_or_else(|| panic!("{group} in order in\n{serve}"));
            at += found;
        }
        assert!(serve.contains("--bind") && serve.contains("--store-timeout"));
        let certs = help(&["glassbox", "certs", "--help"]);
        assert!(
            certs.contains("--certs-dir") && certs.contains("--new-ca"),
            "{certs}"
        );
        for other in [
            "--bind",
            "--data-dir",
            "--store",
            "--max-sleep",
            "--log-dir",
        ] {
            assert!(
                !certs.contains(other),
                "certs --help shows {other}:\n{certs}"
            );
        }
        let worker = help(&["glassbox", "worker", "--help"]);
        assert!(
            worker.contains("--queue") && worker.contains("--bind"),
            "{worker}"
        );
        for other in ["--store ", "--dashboard-interval", "--work-weights"] {
            assert!(
                !worker.contains(other),
                "worker --help shows {other}:\n{worker}"
            );
        }
        let openapi = help(&["glassbox", "openapi", "--help"]);
        assert!(
            openapi.contains("--max-sleep") && !openapi.contains("--bind"),
            "{openapi}"
        );
    }

    #[test]
    fn hidden_flags_are_still_accepted() {
        let (_, config) = try_parse_from(["glassbox", "certs", "--data-dir", "/tmp/d"]).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/tmp/d"));
    }

    #[test]
    fn backends_parse() {
        assert_eq!("embedded".parse::<Backend>(), Ok(Backend::Embedded));
        assert_eq!(
            "redis://127.0.0.1:6379/0".parse::<Backend>(),
            Ok(Backend::Redis("redis://127.0.0.1:6379/0".into()))
        );
        for bad in ["memory", "redis://", "redis://host:notaport", "amqp://x"] {
            assert!(bad.parse::<Backend>().is_err(), "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let config = parse(["glassbox", "--trusted-proxies", "127.0.0.1, 10.0.0.0/8,::1"]);
        let nets: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
        assert!(try_parse_from(["glassbox", "--trusted-proxies", "nginx"]).is_err());
        assert!(try_parse_from(["glassbox", "--store", "postgres://x"]).is_err());
    }

    #[test]
    fn zero_timeouts_are_rejected() {
        for flag in [
            "--store-timeout",
            "--header-read-timeout",
            "--tls-handshake-timeout",
        ] {
            let config = parse(["glassbox", flag, "0s"]);
            assert_eq!(
                config.validate().map_err(|e| e.to_string()),
                Err(format!("{flag} must be above 0"))
            );
            let config = parse(["glassbox", flag, "1ms"]);
            assert_eq!(config.validate(), Ok(()), "{flag}");
        }
    }

    #[test]
    fn short_intervals_are_rejected_not_clamped() {
        for (flag, short) in [("--task-lease", "99ms"), ("--dashboard-interval", "50ms")] {
            let config = parse(["glassbox", flag, short]);
            assert_eq!(
                config.validate().map_err(|e| e.to_string()),
                Err(format!("{flag} must be at least 100ms"))
            );
            let config = parse(["glassbox", flag, "100ms"]);
            assert_eq!(config.validate(), Ok(()), "{flag}");
        }
        let config = parse(["glassbox", "--max-concurrency", "0"]);
        assert_eq!(
            config.validate(),
            Err(ConfigError::Zero("--max-concurrency"))
        );
    }

    #[test]
    fn inverted_work_range_is_rejected() {
        let config = parse([
            "glassbox",
            "--work-sleep-min",
            "5s",
            "--work-sleep-max",
            "1s",
        ]);
        assert!(config.validate().is_err());
    }
}
