//! The `switchyard` command: parse the command line, set up logging, run, map errors to an exit
//! code. Everything else lives in the library.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchyard::{Config, plugins::PluginSet, send::SendRequest};

/// Receives GitHub webhooks and routes each event to handler plugins.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve webhooks until SIGINT or SIGTERM.
    Serve {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
    },
    /// Sign a payload file with the configured secret and POST it to the server.
    Send {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Event name, as in X-GitHub-Event (e.g. pull_request).
        #[arg(long)]
        event: String,
        /// Delivery id (default: a fresh UUID).
        #[arg(long)]
        delivery: Option<String>,
        /// Webhook URL (default: the config's listen address and webhook_path).
        #[arg(long)]
        url: Option<String>,
        /// JSON payload file.
        file: PathBuf,
    },
    /// Validate the config and load every enabled plugin.
    Check {
        #[arg(long, default_value = "config.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli.command)));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("switchyard: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config } => {
            switchyard::serve(Config::load(&config)?).await?;
        }
        Command::Send {
            config,
            event,
            delivery,
            url,
            file,
        } => {
            let config = Config::load(&config)?;
            let answer = switchyard::send::send(
                &config,
                SendRequest {
                    event,
                    file,
                    url,
                    delivery,
                },
            )
            .await?;
            println!("HTTP {}\n{}", answer.status, answer.body);
            if !(200..300).contains(&answer.status) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Check { config } => {
            let config = Config::load(&config)?;
            switchyard::app::Secrets::from_env(&config)?;
            let plugins = PluginSet::load(&config)?;
            println!("{}: ok", config.file.display());
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
            }
            for entry in config.plugins.iter().filter(|p| !p.enabled) {
                println!("  {} (disabled)", entry.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
