//! The `switchyard` command: parse the command line, set up logging, run, map errors to an exit
//! code. Everything else lives in the library.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchyard::{
    Config,
    journal::{RecentFilter, StoreTarget},
    ops::commands,
    plugins::PluginSet,
    sandbox::{Disks, Sandbox},
    send::{Payload, SendRequest},
    server::TlsCertificates,
};

/// The host's own allocations: mimalloc keeps freed memory in per-thread pages and returns it
/// to the kernel lazily and in bulk, where glibc's malloc hands it back at every chance.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Receives GitHub webhooks and routes each event to handler plugins.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log lines as text, or as one JSON object each (for log collectors).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SWITCHYARD_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve webhooks until SIGINT or SIGTERM.
    Serve {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Try plugins locally: answer their GitHub calls with a stand-in on 127.0.0.1 that
        /// prints each call on stdout, instead of calling [github] api_url. No token needed.
        #[arg(long)]
        github_stand_in: bool,
    },
    /// Sign a payload (a file, or one of GitHub's examples) and POST it to the server.
    Send {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Event name, as in X-GitHub-Event (e.g. pull_request); with --example, the example's.
        #[arg(long, required_unless_present = "example")]
        event: Option<String>,
        /// Send GitHub's example payload for EVENT or EVENT.ACTION (e.g. deployment,
        /// pull_request.synchronize) instead of a file.
        #[arg(long, value_name = "NAME", conflicts_with = "file")]
        example: Option<String>,
        /// Change a field before sending: a dotted path and a value (JSON, or else a string),
        /// e.g. --set deployment.sha=abc123 --set repository.full_name=me/app. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Delivery id (default: a fresh UUID).
        #[arg(long)]
        delivery: Option<String>,
        /// Webhook URL (default: the config's listen address and webhook_path).
        #[arg(long)]
        url: Option<String>,
        /// JSON payload file.
        #[arg(required_unless_present = "example")]
        file: Option<PathBuf>,
    },
    /// Validate the config and its secrets (a GitHub App's key too), load every enabled
    /// plugin, and print each one's events and GitHub permissions.
    Check {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
    },
    /// As the GitHub App ([github] auth = "app"), ask GitHub who the App is and list its
    /// installations: shows at once whether the App id and private key are right.
    App {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
    },
    /// List recent deliveries and their jobs' verdicts and states, from the journal.
    Deliveries {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// How many deliveries, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only deliveries of this event (e.g. pull_request).
        #[arg(long)]
        event: Option<String>,
        /// Only deliveries with a job that failed, errored or timed out (its verdict; for jobs
        /// recorded before verdicts were, its state `failed`).
        #[arg(long)]
        failed: bool,
    },
    /// Dispatch a stored delivery again, through the running server.
    Replay {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Only to this plugin (default: every plugin it routes to now).
        #[arg(long)]
        plugin: Option<String>,
        /// The delivery id (X-GitHub-Delivery).
        delivery: String,
    },
    /// Show the running server's plugins: versions, subscriptions, enabled state.
    Plugins {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
    },
    /// Apply the journal's schema migrations (the server also does at start) and print the
    /// schema version before and after.
    Migrate {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
    },
    /// Look for deliveries GitHub failed to deliver (none of their attempts answered OK) that
    /// the journal lacks, and ask GitHub to deliver them again: one round of what `[catch_up]`
    /// does in the server, printing what it found and redelivered.
    CatchUp {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Look this far back (e.g. 6h, 30m, 2d) instead of back to where the last round got.
        #[arg(long, value_name = "AGE")]
        since: Option<String>,
        /// Print what is missing, but redeliver nothing and leave the journal's mark.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy the journal to PATH, consistently, while the server runs.
    Backup {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Where to write the copy (replaced if it exists).
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let logging = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal; none in a file or a journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let log_format = cli.log_format;
    match log_format {
        LogFormat::Text => logging.init(),
        LogFormat::Json => logging.json().init(),
    }
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|runtime| {
            // A server survives a SIGHUP from its first moments (a certificate renewal hook or
            // `systemctl reload` can fire while it loads its config): once tokio handles the
            // signal it stays handled, and `serve` reloads on those that come once it runs.
            let _hangups = matches!(cli.command, Command::Serve { .. }).then(|| {
                let _runtime = runtime.enter();
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            });
            let result = runtime.block_on(run(cli.command));
            // Work left on the blocking pool (a journal read, a command's pipe) must not hold
            // up an exit the shutdown grace already bounded.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            result
        });
    match result {
        Ok(code) => code,
        Err(error) => {
            match log_format {
                LogFormat::Text => eprintln!("switchyard: {error:#}"),
                // A collector reads one JSON object a line: the last word is one too.
                LogFormat::Json => {
                    tracing::error!(error = format!("{error:#}"), "switchyard stopped")
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// SQLite and the plugins still allocate through glibc's malloc, which trims a thread's heap as
/// soon as 128 KiB at its top are free. The journal's writer frees about that much after every
/// batch, and each trim flushes the TLB of every core: under load this cost a third of the CPU
/// spent running jobs. Up to 64 MiB of freed memory per heap now stays for reuse.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
    unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve {
            config,
            github_stand_in,
        } => {
            switchyard::serve(Config::load(&config)?, github_stand_in).await?;
        }
        Command::Send {
            config,
            event,
            example,
            sets,
            delivery,
            url,
            file,
        } => {
            let config = Config::load(&config)?;
            let payload = match (example, file) {
                (Some(name), _) => Payload::Example(name),
                (None, Some(file)) => Payload::File(file),
                (None, None) => unreachable!("clap requires a file or --example"),
            };
            let answer = switchyard::send::send(
                &config,
                SendRequest {
                    event,
                    payload,
                    sets,
                    url,
                    delivery,
                },
            )
            .await?;
            print!("{}", switchyard::send::describe(&answer));
            if !(200..300).contains(&answer.status) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Deliveries {
            config,
            limit,
            event,
            failed,
        } => {
            let config = Config::load(&config)?;
            let filter = RecentFilter {
                limit,
                event,
                failed,
                ..RecentFilter::default()
            };
            print!("{}", commands::deliveries(&config, filter).await?);
        }
        Command::Replay {
            config,
            plugin,
            delivery,
        } => {
            let config = Config::load(&config)?;
            let answer = commands::replay(&config, delivery, plugin).await?;
            print!("{}", switchyard::send::describe(&answer));
            if !(200..300).contains(&answer.status) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Plugins { config } => {
            let config = Config::load(&config)?;
            let answer = commands::plugins(&config).await?;
            if answer.status != 200 {
                println!("HTTP {}\n{}", answer.status, answer.body);
                return Ok(ExitCode::FAILURE);
            }
            let body = serde_json::from_str(&answer.body).unwrap_or_default();
            print!("{}", commands::format_plugins(&config, &body));
        }
        Command::Migrate { config } => {
            let config = Config::load(&config)?;
            match switchyard::wiring::store_target(&config)? {
                StoreTarget::Sqlite(path) => {
                    switchyard::journal::SqliteJournal::open(&path)?;
                    println!("{}: migrated", path.display());
                }
                StoreTarget::Postgres(settings) => {
                    let target = switchyard::journal::mask_url(&settings.url);
                    let (before, after) = switchyard::journal::migrate_only(&settings, true)
                        .await
                        .with_context(|| format!("cannot migrate {target}"))?;
                    println!("{target}: schema version {before} -> {after}");
                }
            }
        }
        Command::Backup { config, path } => {
            let config = Config::load(&config)?;
            if let StoreTarget::Postgres(_) = switchyard::wiring::store_target(&config)? {
                anyhow::bail!(
                    "[store] backend = \"postgres\": back the database up with PostgreSQL's own tools (pg_dump, or base backups with WAL archiving); see docs/postgres.md"
                );
            }
            let store = config.store_path();
            switchyard::journal::backup(&store, &path)
                .with_context(|| format!("cannot back up {}", store.display()))?;
            println!("{} backed up to {}", store.display(), path.display());
        }
        Command::CatchUp {
            config,
            since,
            dry_run,
        } => {
            let since = since
                .as_deref()
                .map(switchyard::catch_up::parse_since)
                .transpose()
                .map_err(|problem| anyhow::anyhow!("--since {problem}"))?;
            let config = Config::load(&config)?;
            print!("{}", commands::catch_up(&config, since, dry_run).await?);
        }
        Command::App { config } => {
            let config = Config::load(&config)?;
            print!("{}", switchyard::ops::commands::github_app(&config).await?);
        }
        Command::Check { config } => {
            let config = Config::load(&config)?;
            let secrets = switchyard::wiring::Secrets::from_env(&config)?;
            let tls = match config.tls_files() {
                Some((cert, key)) => {
                    TlsCertificates::load(&cert, &key)?;
                    format!("https, certificate {}", cert.display())
                }
                None => "plain http (TLS off: [server] tls_cert unset)".to_owned(),
            };
            let store = match switchyard::wiring::store_target(&config)? {
                StoreTarget::Sqlite(path) => format!("sqlite, {}", path.display()),
                StoreTarget::Postgres(settings) => {
                    let target = switchyard::journal::mask_url(&settings.url);
                    let (found, _) = switchyard::journal::migrate_only(&settings, false)
                        .await
                        .with_context(|| format!("cannot reach the journal database {target}"))?;
                    let known = switchyard::journal::schema_version();
                    let state = match found.cmp(&known) {
                        std::cmp::Ordering::Equal => "current".to_owned(),
                        std::cmp::Ordering::Less => {
                            format!("migrated to {known} at start or by `switchyard migrate`")
                        }
                        std::cmp::Ordering::Greater => {
                            format!("newer than this build's {known}: upgrade this host")
                        }
                    };
                    format!("postgres, {target}, schema version {found} ({state})")
                }
            };
            let plugins = PluginSet::check(&config)?;
            // Tries a sandboxed command, as the server does at start.
            let sandbox = Sandbox::start(&config.sandbox, config.secret_files()).await?;
            println!("{}: ok", config.file.display());
            println!("  serving: {tls}");
            println!("  store: {store}");
            println!("  sandbox: {}", sandbox.describe());
            // As the server decides it (wiring): a root host whose commands are sandboxed.
            let mounts = nix::unistd::geteuid().is_root()
                && config.sandbox.mode != switchyard::config::SandboxMode::None;
            let disks = Disks::start(config.sandbox.disk_reserve_mib, mounts).await;
            println!("  workspaces: {}", disks.describe());
            println!(
                "  github: {}",
                switchyard::ops::commands::github_identity(&config, &secrets)
            );
            println!(
                "  catch-up: {}",
                switchyard::catch_up::describe_settings(&config)
            );
            if config.dashboard.enabled {
                let sign_in = match switchyard::web::load_tokens(&config) {
                    Ok(tokens) => {
                        let names: Vec<&str> =
                            tokens.iter().map(|(name, _)| name.as_str()).collect();
                        format!("sign-in tokens for {}", names.join(", "))
                    }
                    Err(hint) => format!("no sign-in yet: {hint}"),
                };
                println!("  dashboard: {sign_in}");
            }
            let app = config.github.auth == switchyard::config::GitHubAuth::App;
            for plugin in plugins.iter() {
                let events: Vec<String> = plugin
                    .subscriptions()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                println!(
                    "  {} ({} {}): {}",
                    plugin.name(),
                    plugin.info.package,
                    plugin.info.version,
                    events.join(", ")
                );
                println!(
                    "    permissions: {}",
                    switchyard::ops::commands::describe_permissions(plugin)
                );
            }
            for name in plugins.undeclared() {
                let effect = match app {
                    true => "its jobs' App tokens get all of the installation's permissions",
                    false => {
                        "as a GitHub App, its jobs' tokens would get all of the installation's permissions"
                    }
                };
                println!(
                    "  warning: {name} declares no GitHub permissions: {effect}; give its entry `permissions = {{ ... }}`"
                );
            }
            for entry in config.plugins.iter().filter(|p| !p.enabled) {
                println!("  {} (disabled)", entry.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
