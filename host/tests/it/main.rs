//! Integration tests: the real host, real plugin libraries loaded through libloading, a fake
//! GitHub on 127.0.0.1. One binary; one line per module.

mod support;

mod bad_files; // cut or replaced plugin libraries, a full disk: refused or reported, host serving
mod browser; // the dashboard in headless Chromium over WebDriver: sign in, a delivery arrives, a live log, #L links, folding
mod browser_pages; // the repository, pull request and commit pages and search in headless Chromium; a private repository hidden from a visitor
mod catch_up; // missed deliveries redelivered after an outage, once each; no rescan after a restart; the catch-up command
mod checks; // the CI runner's check runs as a GitHub App: states, the log's end, annotations in batches, Re-run, Cancel, other Apps ignored
mod ci; // the CI runner: statuses around a real checkout and test run, superseding, forks
mod ci_commands; // the CI runner's /retest, /test and /cancel: recorded verdicts, who may give each, one sha at a time
mod commands; // comment commands: declared by plugins, trusted by the host (every role), acknowledged, refused once, quotes and bots ignored, token and App mode
mod dashboard; // the web dashboard over HTTP: access, every page, filters, paging, log viewer, escaping and masking
mod dashboard_access; // trusted proxies and the sign-in limit, strong tokens, private repositories hidden from visitors, sign-out everywhere, foreign Hosts, stored headers, deploying replays confirmed
mod dashboard_actions; // replay, cancel and lock release: sign-in, CSRF (origin and form token), the audit trail
mod deploy_commands; // /deploy, /lock, /unlock, /where: each environment's permission, sticky locks held where the deploy runs, required checks and --force
mod deployer; // merge -> deployment -> webhook -> locked deploy with statuses
mod docs; // README and docs/: links, paths and switchyard commands that exist; README's commands
mod durability; // kill -9 and restart lose no accepted delivery; SIGTERM exits 0
mod github; // the GitHub client through a plugin: auth, retries, rate limits, 4xx
mod github_answers; // GitHub's answers within bounds: over the limit, slow, cut off; a token with a line break
mod github_app; // as a GitHub App: JWT, cached and narrowed tokens, skew, refusals, checkouts
mod hostile; // slow, silent, huge and many clients; stalled log readers; log links need their key
mod ingress; // signed deliveries, every bad input's answer, replays, form bodies
mod ingress_properties; // arbitrary bytes, headers and form bodies: documented answers only
mod leases; // hosts on PostgreSQL: a job through three rolling restarts, a cut database connection stops a deploy in time, SIGHUP while starting
mod lifecycle; // services closed at a job's end, shutdown in its grace, retries, refused ends, contained plugins
mod loading; // the ABI handshake and its refusals; `switchyard check`
mod log_lines; // the host's log, text and JSON, read whole after a busy run: plain words and fields, no Debug text
mod notifiers; // chat and pager against a local receiver: content, trigger/resolve, retries, secrets
mod operations; // health, metrics, replay, and the operator commands against a server process
mod pages; // the repository, pull request and commit pages, search, times in UTC without the script, private repositories absent
mod plugin_failures; // panics, hangs, retries and host services seen from a job
mod postgres; // hosts sharing PostgreSQL: each job once, leases after kill -9, logs across hosts, the database away and back, one catch-up round
mod queue; // jobs past the memory budget wait in the journal and still run, once each
mod reload; // live reload under load, bad edits, libraries rebuilt in place
mod repo_checks; // .switchyard.toml: checks, matrices and needs each their own status, a refused file one failing check, /test NAME and /test ?
mod retention; // old jobs, logs and deliveries pruned under load; ids kept 7 days; backups
mod sandbox; // hostile builds reach nothing of the host (files, network, disk); limits, pass_env, binds, no bubblewrap
mod service; // install.sh's layout and credentials, the systemd unit verified
mod shutdowns; // SIGTERM: a running job handed back as interrupted and run again, whatever its plugin does; the interruption ceiling
mod sign_in; // "Sign in with GitHub": state and PKCE, the person's token kept nowhere, who may sign in and the refresh, what each sees and may do
mod tls; // HTTPS with the configured certificate, renewed on SIGHUP; bad files refused
mod try_out; // a deploy tried locally: --github-stand-in, send --example with --set, no token
mod verdicts; // a failed build's verdict on its badge, the filter, the counts, its page in the browser (its end without a reload), the CLI and the metrics; errored, timed out, cancelled on both backends
