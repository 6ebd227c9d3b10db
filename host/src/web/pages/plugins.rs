//! The plugins page: the loaded plugins with their settings (secrets never shown), those
//! disabled, and the last reload.

use askama::Template;
use axum::{Extension, extract::State, response::Response};

use super::super::{Viewer, WebState};
use super::{
    layout::{Head, PAGE_BYTES, filters, head, page, reserve},
    visible::masked,
};

struct PluginView {
    name: String,
    package: String,
    version: String,
    events: String,
    timeout_secs: u64,
    max_attempts: u32,
    settings: Vec<(String, String)>,
}

/// A config entry with `enabled = false`.
struct DisabledView {
    name: String,
    library: String,
}

/// The last reload: when, whether it took, and what it changed or why not.
struct ReloadView {
    at: String,
    ok: bool,
    summary: String,
}

#[derive(Template)]
#[template(path = "plugins.html")]
struct PluginsPage {
    head: Head,
    plugins: Vec<PluginView>,
    disabled: Vec<DisabledView>,
    reload: Option<ReloadView>,
}

/// Setting names whose values are never shown, whatever they hold.
fn secret_setting(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !key.ends_with("_env")
        && !key.ends_with("_file")
        && ["token", "secret", "password", "key", "url"]
            .iter()
            .any(|word| key.contains(word))
}

/// `GET /dashboard/plugins`: the loaded plugins with their settings, secrets never shown.
pub(in crate::web) async fn show(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
) -> Response {
    let reserved = match reserve(&state, PAGE_BYTES).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let set = state.plugins.current();
    let plugins = set
        .iter()
        .map(|plugin| PluginView {
            name: plugin.name().to_owned(),
            package: plugin.info.package.clone(),
            version: plugin.info.version.clone(),
            events: plugin
                .subscriptions()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            timeout_secs: plugin.entry.timeout_secs,
            max_attempts: plugin.entry.max_attempts,
            settings: plugin
                .entry
                .settings
                .iter()
                .map(|(key, value)| {
                    let shown = if secret_setting(key) {
                        "********".to_owned()
                    } else {
                        masked(&state, &value.to_string())
                    };
                    (key.clone(), shown)
                })
                .collect(),
        })
        .collect();
    let disabled = set
        .disabled()
        .iter()
        .map(|entry| DisabledView {
            name: entry.name.clone(),
            library: masked(&state, &entry.library.display().to_string()),
        })
        .collect();
    let reload = state.plugins.last_reload().map(|last| {
        let (ok, summary) = match last.outcome {
            Ok(summary) => (true, summary),
            Err(problem) => (false, problem),
        };
        ReloadView {
            at: last.at,
            ok,
            summary: masked(&state, &summary),
        }
    });
    let head = match head(&state, &viewer, "Plugins".to_owned()).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    page(
        reserved,
        &PluginsPage {
            head,
            plugins,
            disabled,
            reload,
        },
    )
}
