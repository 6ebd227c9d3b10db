//! Running a command for a plugin: output streamed line by line into the job's log, a timeout,
//! and the whole process group killed when the timeout fires or the job is dropped.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use std::path::Path;

use nix::{sys::signal::Signal, unistd::Pid};
use switchyard_plugin_api::{HostError, RunOutput, RunRequest};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};

use crate::{
    job_log::JobLogs,
    journal::JobId,
    sandbox::{Allowance, Prepared, Sandbox, Setup, is_full},
};

/// Where and how a job's command runs.
pub struct Place<'a> {
    pub sandbox: &'a Sandbox,
    /// What the plugin entry allows its commands.
    pub allowance: &'a Allowance,
    /// The job's workspace: the command's default folder, and where it may write.
    pub workspace: &'a Path,
    /// Variables holding the host's secrets: never inherited, even unsandboxed.
    pub hidden_env: &'a [String],
    /// The workspace's size when it is a filesystem of its own (`disk_mib`).
    pub disk_mib: Option<u64>,
}

/// Times a sandbox that ended while it was set up is started, before its output is shown.
const SANDBOX_TRIES: u32 = 3;

/// Kills the process group when dropped: covers timeouts and jobs cut off by the host, and
/// reaches grandchildren that `kill_on_drop` alone would leave behind.
struct ProcessGroup(Option<Pid>);

impl ProcessGroup {
    fn kill(&mut self) {
        if let Some(group) = self.0.take() {
            let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `request` in `place`'s sandbox, appending its output to `job`'s log.
pub async fn run(
    request: RunRequest,
    logs: JobLogs,
    job: JobId,
    place: &Place<'_>,
) -> Result<RunOutput, HostError> {
    let started = Instant::now();
    let mut tries = 0;
    let (mut child, mut group, _groups, _stack) = loop {
        tries += 1;
        let Prepared {
            mut command,
            groups,
            network,
        } = place.sandbox.prepare(
            &request,
            place.workspace,
            place.allowance,
            &format!("job-{job}"),
        )?;
        for variable in place.hidden_env {
            command.env_remove(variable);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| HostError::Run(format!("could not start `{}`: {e}", request.program)))?;
        let group = ProcessGroup(child.id().map(|pid| Pid::from_raw(pid as i32)));
        // The command waits inside its sandbox until its network is up; ended with it.
        let Some(network) = network else {
            break (child, group, groups, None);
        };
        match network.connect().await {
            Ok(stack) => break (child, group, groups, Some(stack)),
            Err(Setup::SandboxEnded) if tries < SANDBOX_TRIES => {
                let note = "switchyard: the sandbox ended while it was set up; starting it again\n";
                let _ = logs.append(job, note.as_bytes()).await;
            }
            // Its output says why; the command did not run.
            Err(Setup::SandboxEnded) => break (child, group, groups, None),
            Err(Setup::Failed(error)) => return Err(error),
        }
    };

    let tail = request
        .keep_output
        .map(|bytes| Arc::new(Mutex::new(Tail::new(bytes.min(MAX_KEPT_OUTPUT)))));
    let stdout = copy_lines(child.stdout.take(), logs.clone(), job, tail.clone());
    let stderr = copy_lines(child.stderr.take(), logs.clone(), job, tail.clone());
    let finish = async {
        let (status, (), ()) = tokio::join!(child.wait(), stdout, stderr);
        status
    };
    let timeout = request
        .timeout_secs
        .map(Duration::from_secs)
        .unwrap_or(Duration::MAX);
    let (exit_code, timed_out) = match tokio::time::timeout(timeout, finish).await {
        // Background processes the command left behind die with the group when it drops.
        Ok(Ok(status)) => (status.code(), false),
        Ok(Err(e)) => {
            return Err(HostError::Run(format!(
                "waiting for `{}` failed: {e}",
                request.program
            )));
        }
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            let line = format!(
                "switchyard: killed after {} s (timeout)\n",
                timeout.as_secs()
            );
            let _ = logs.append(job, line.as_bytes()).await;
            (None, true)
        }
    };
    let failed = !timed_out && exit_code != Some(0);
    if let Some(disk_mib) = place
        .disk_mib
        .filter(|_| failed && is_full(place.workspace))
    {
        let line = format!("switchyard: the build's workspace is full: disk_mib = {disk_mib}\n");
        let _ = logs.append(job, line.as_bytes()).await;
    }
    let output = tail.map_or_else(String::new, |tail| {
        tail.lock().unwrap_or_else(|p| p.into_inner()).text()
    });
    Ok(RunOutput {
        exit_code,
        timed_out,
        duration_ms: started.elapsed().as_millis() as u64,
        output,
    })
}

/// Most output a plugin gets back (`keep_output`): held in the host's memory meanwhile.
pub const MAX_KEPT_OUTPUT: usize = 16 << 20;

/// The last bytes of a command's output, kept for the plugin that asked (`keep_output`).
struct Tail {
    kept: Vec<u8>,
    max: usize,
}

impl Tail {
    fn new(max: usize) -> Self {
        Self {
            kept: Vec::new(),
            max,
        }
    }

    /// Adds whole lines, masked as the log has them.
    fn push(&mut self, lines: &[u8]) {
        self.kept.extend_from_slice(lines);
        // Trimmed in bulk, so a long build does not move its tail at every line.
        if self.kept.len() > self.max.saturating_mul(2).max(READ_CHUNK) {
            let cut = self.kept.len() - self.max;
            self.kept.drain(..cut);
        }
    }

    /// The last `max` bytes, starting at a line.
    fn text(&self) -> String {
        let mut start = self.kept.len().saturating_sub(self.max);
        if start > 0 {
            start = self.kept[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.kept.len(), |at| start + at + 1);
        }
        String::from_utf8_lossy(&self.kept[start..]).into_owned()
    }
}

/// Longest line of a command's output that reaches the log: the rest of a longer line is
/// dropped and the cut noted, so a command printing without newlines cannot make the host hold
/// its output in memory.
pub const MAX_LINE: usize = 64 * 1024;

/// Bytes of output read at a time; the whole lines among them are written to the log at once.
const READ_CHUNK: usize = 64 * 1024;

async fn copy_lines(
    stream: Option<impl AsyncRead + Unpin>,
    logs: JobLogs,
    job: JobId,
    tail: Option<Arc<Mutex<Tail>>>,
) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::with_capacity(READ_CHUNK, stream);
    let mut line = Line::new(&logs);
    let mut lines = Vec::with_capacity(READ_CHUNK);
    // Output read close together is written as one chunk, when a write costs a statement.
    let gather = logs.gather_delay();
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let filled = match due {
            Some(due) => tokio::select! {
                filled = reader.fill_buf() => Some(filled),
                () = tokio::time::sleep_until(due) => None,
            },
            None => Some(reader.fill_buf().await),
        };
        let chunk = match filled {
            None => {
                write(&logs, job, &mut lines).await;
                due = None;
                continue;
            }
            Some(Ok([]) | Err(_)) => break,
            Some(Ok(chunk)) => chunk,
        };
        let new = lines.len();
        for piece in chunk.split_inclusive(|&b| b == b'\n') {
            line.push(piece);
            if piece.ends_with(b"\n") {
                line.finish(&logs, &mut lines);
            }
        }
        let read = chunk.len();
        reader.consume(read);
        keep(&logs, tail.as_deref(), &lines[new..]);
        match gather {
            Some(delay) if lines.len() < READ_CHUNK => {
                due.get_or_insert_with(|| tokio::time::Instant::now() + delay);
            }
            _ => {
                write(&logs, job, &mut lines).await;
                due = None;
            }
        }
    }
    // A last line without a newline.
    let new = lines.len();
    if !line.kept.is_empty() {
        line.finish(&logs, &mut lines);
    }
    keep(&logs, tail.as_deref(), &lines[new..]);
    write(&logs, job, &mut lines).await;
}

fn keep(logs: &JobLogs, tail: Option<&Mutex<Tail>>, lines: &[u8]) {
    if let Some(tail) = tail.filter(|_| !lines.is_empty()) {
        let masked = logs.mask(lines);
        tail.lock().unwrap_or_else(|p| p.into_inner()).push(&masked);
    }
}

async fn write(logs: &JobLogs, job: JobId, lines: &mut Vec<u8>) {
    if lines.is_empty() {
        return;
    }
    if let Err(error) = logs.append(job, lines).await {
        tracing::warn!(%job, error = error.to_string(), "cannot write job log");
    }
    lines.clear();
}

/// A line being read: its first bytes, and how many more were dropped.
struct Line {
    kept: Vec<u8>,
    dropped: u64,
    /// Bytes kept past the cut: room for the longest secret, so one straddling the cut is
    /// masked whole before the line is cut, never shown in part.
    keep: usize,
}

impl Line {
    fn new(logs: &JobLogs) -> Self {
        Self {
            kept: Vec::new(),
            dropped: 0,
            keep: MAX_LINE + logs.longest_secret(),
        }
    }

    fn push(&mut self, piece: &[u8]) {
        let taken = self.keep.saturating_sub(self.kept.len()).min(piece.len());
        self.kept.extend_from_slice(&piece[..taken]);
        self.dropped += (piece.len() - taken) as u64;
    }

    /// Moves the line to `out`, cut and noted if it was too long.
    fn finish(&mut self, logs: &JobLogs, out: &mut Vec<u8>) {
        let length = self.kept.len() as u64 + self.dropped;
        if length > MAX_LINE as u64 {
            let mut cut = logs.mask(&self.kept);
            cut.truncate(MAX_LINE);
            out.extend_from_slice(&cut);
            let note =
                format!("\nswitchyard: line cut: {length} bytes, the first {MAX_LINE} kept\n");
            out.extend_from_slice(note.as_bytes());
        } else {
            out.extend_from_slice(&self.kept);
        }
        self.kept.clear();
        self.dropped = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;

    /// Running unsandboxed in the test's folder: these tests are about output, timeouts and
    /// the environment, not the sandbox (see the integration tests' `sandbox` module).
    fn unsandboxed(hidden_env: &[String]) -> Place<'_> {
        static OFF: LazyLock<Sandbox> = LazyLock::new(Sandbox::off);
        static NOTHING: LazyLock<Allowance> = LazyLock::new(Allowance::default);
        Place {
            sandbox: &OFF,
            allowance: &NOTHING,
            workspace: Path::new("."),
            hidden_env,
            disk_mib: None,
        }
    }

    #[tokio::test]
    async fn output_read_close_together_is_one_append_when_the_journal_keeps_the_log() {
        use crate::journal::{
            LogStore as _,
            conformance::{host, statements_run},
        };
        let Some(server) = switchyard_testkit::TestPostgres::get() else {
            return;
        };
        let url = server.database();
        let journal = Arc::new(host(&url, 30_000).await);
        let logs = JobLogs::new(std::path::PathBuf::new(), []).kept_in(journal.clone());
        let Some(before) = statements_run(&url, "job_logs").await else {
            return;
        };
        // 300 writes of a line each, in a few milliseconds.
        let script = "for i in $(seq 1 300); do echo \"line $i\"; done";
        let output = run(RunRequest::shell(script), logs, JobId(1), &unsandboxed(&[])).await;
        assert_eq!(output.unwrap().exit_code, Some(0));
        let appends = statements_run(&url, "job_logs").await.unwrap() - before;
        let length = journal.log_len(JobId(1)).await.unwrap();
        let chunks = journal.log_chunks(JobId(1), 0, length).await.unwrap();
        let log: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
        let expected: String = (1..=300).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(log).unwrap(), expected);
        assert!(
            (1..30).contains(&appends),
            "{appends} appends for 300 lines"
        );
    }

    async fn run_script(
        script: &str,
        timeout_secs: Option<u64>,
    ) -> (Result<RunOutput, HostError>, String) {
        let dir = tempfile::tempdir().unwrap();
        let logs = JobLogs::new(dir.path().to_owned(), ["sup3rsecret".to_owned()]);
        let mut request = RunRequest::shell(script).env("GREETING", "hello");
        request.timeout_secs = timeout_secs;
        let output = run(request, logs.clone(), JobId(1), &unsandboxed(&[])).await;
        let log = std::fs::read_to_string(logs.path(JobId(1))).unwrap_or_default();
        (output, log)
    }

    #[tokio::test]
    async fn output_and_exit_codes_are_captured() {
        let (output, log) = run_script("echo $GREETING; echo oops >&2; exit 3", None).await;
        let output = output.unwrap();
        assert_eq!((output.exit_code, output.timed_out), (Some(3), false));
        assert!(log.contains("hello\n") && log.contains("oops\n"), "{log}");
    }

    #[tokio::test]
    async fn the_output_kept_is_the_logs_last_whole_lines_masked_and_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let logs = JobLogs::new(dir.path().to_owned(), ["sup3rsecret".to_owned()]);
        let script =
            "i=0; while [ $i -lt 5000 ]; do echo line $i; i=$((i+1)); done; echo sup3rsecret";
        let request = RunRequest::shell(script).keep_output(100);
        let output = run(request, logs.clone(), JobId(1), &unsandboxed(&[]))
            .await
            .unwrap();
        assert!(output.output.len() <= 100, "{:?}", output.output);
        assert!(output.output.starts_with("line "), "{:?}", output.output);
        assert!(
            output.output.ends_with("line 4999\n********\n"),
            "{:?}",
            output.output
        );
        assert!(
            !output.output.contains("sup3rsecret"),
            "{:?}",
            output.output
        );
        let (output, _) = run_script("echo hello", None).await;
        assert_eq!(output.unwrap().output, "");
    }

    #[tokio::test]
    async fn secrets_in_output_are_masked() {
        let (output, log) = run_script("echo token=sup3rsecret", None).await;
        assert!(output.unwrap().success());
        assert_eq!(log, "token=********\n");
    }

    #[tokio::test]
    async fn the_hosts_secret_variables_are_not_inherited() {
        let dir = tempfile::tempdir().unwrap();
        let logs = JobLogs::new(dir.path().to_owned(), []);
        // HOME is set wherever tests run; hide it as if it held a secret.
        let request = RunRequest::shell("echo \"HOME=[${HOME:-unset}]\"");
        let hidden = ["HOME".to_owned()];
        run(request, logs.clone(), JobId(1), &unsandboxed(&hidden))
            .await
            .unwrap();
        let log = std::fs::read_to_string(logs.path(JobId(1))).unwrap();
        assert_eq!(log, "HOME=[unset]\n");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // The background grandchild would write the marker if it outlived the timeout.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let (output, log) = run_script(&script, Some(1)).await;
        let output = output.unwrap();
        assert!(output.timed_out && output.exit_code.is_none());
        assert!(log.contains("killed after 1 s"), "{log}");
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert!(!marker.exists(), "a grandchild outlived the timeout");
    }

    #[tokio::test]
    async fn a_line_past_the_maximum_is_cut_and_the_cut_noted() {
        // 300 MB without a newline, then a short line: read through without holding it.
        let script = "head -c 300000000 /dev/zero | tr '\\0' a; echo; echo sup3rsecret after";
        let (output, log) = run_script(script, None).await;
        assert!(output.unwrap().success());
        let mut lines = log.lines();
        let cut = lines.next().unwrap();
        assert_eq!(cut.len(), MAX_LINE);
        assert!(cut.bytes().all(|b| b == b'a'));
        let note = format!("switchyard: line cut: 300000001 bytes, the first {MAX_LINE} kept");
        assert_eq!(lines.next(), Some(note.as_str()));
        assert_eq!(lines.next(), Some("******** after"));
        assert_eq!(lines.next(), None);
    }

    #[tokio::test]
    async fn a_secret_across_the_cut_is_masked_whole() {
        let pad = MAX_LINE - 4;
        let script = format!("head -c {pad} /dev/zero | tr '\\0' a; echo sup3rsecret; echo");
        let (output, log) = run_script(&script, None).await;
        assert!(output.unwrap().success());
        let first = log.lines().next().unwrap();
        assert_eq!(first.len(), MAX_LINE);
        assert!(
            first.ends_with("aaaa****"),
            "{}",
            &first[first.len() - 20..]
        );
        assert!(!log.contains("sup3"), "a part of the secret is shown");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let logs = JobLogs::new(dir.path().to_owned(), []);
        let request = RunRequest {
            program: "/no/such/program".into(),
            ..Default::default()
        };
        let error = run(request, logs, JobId(1), &unsandboxed(&[]))
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("could not start `/no/such/program`"),
            "{error}"
        );
    }
}
