//! Routing: which enabled plugins get a job for a delivery, from the event kind and action, the
//! plugin's subscriptions and the entry's repository filter. One generic path for every event,
//! and for a new comment, the entries taking its commands (see `crate::commands`).

use switchyard_plugin_api::Subscription;

use crate::{
    commands::{self, Comment},
    config::RepositoryPattern,
    event::{Delivery, EventKind, PayloadFacts},
    plugins::{LoadedPlugin, PluginSet},
};

/// What one plugin entry wants.
#[derive(Debug, Clone)]
pub struct Interest {
    pub subscriptions: Vec<Subscription>,
    /// `None`: every repository. Events without a repository never pass a filter.
    pub repositories: Option<Vec<RepositoryPattern>>,
}

impl Interest {
    pub fn wants(&self, kind: &EventKind, facts: &PayloadFacts) -> bool {
        let subscribed = self
            .subscriptions
            .iter()
            .any(|s| s.matches(kind.as_str(), facts.action.as_deref()));
        subscribed && self.covers(facts)
    }

    /// Whether the entry's `repositories` filter lets the event's repository through.
    pub fn covers(&self, facts: &PayloadFacts) -> bool {
        match (&self.repositories, &facts.repository) {
            (None, _) => true,
            (Some(patterns), Some(repository)) => patterns.iter().any(|p| p.matches(repository)),
            (Some(_), None) => false,
        }
    }
}

/// The plugins a replay of `delivery` goes to: `plugin` alone when given (it must be loaded),
/// else every plugin the delivery routes to now. `Err` says which plugins are loaded.
pub fn replay_targets(
    plugins: &PluginSet,
    delivery: &Delivery,
    plugin: Option<&str>,
) -> Result<Vec<String>, String> {
    match plugin {
        Some(name) if plugins.get(name).is_some() => Ok(vec![name.to_owned()]),
        Some(name) => {
            let loaded: Vec<&str> = plugins.iter().map(|p| p.name()).collect();
            Err(format!(
                "plugin {name:?} is not loaded (loaded: {})",
                loaded.join(", ")
            ))
        }
        None => Ok(route(plugins, delivery)),
    }
}

/// Names of the plugins that get a job for this delivery, in config order: those subscribed to
/// it, and for a new comment, those taking one of its commands (whatever their subscriptions)
/// whose `repositories` filter lets it through.
pub fn route(plugins: &PluginSet, delivery: &Delivery) -> Vec<String> {
    let comment = Comment::of(delivery);
    let takes_command = |plugin: &LoadedPlugin| {
        comment.as_ref().is_some_and(|comment| {
            plugin.interest.covers(&delivery.facts) && commands::takes(&plugin.commands, comment)
        })
    };
    plugins
        .iter()
        .filter(|plugin| {
            plugin.interest.wants(&delivery.kind, &delivery.facts) || takes_command(plugin)
        })
        .map(|plugin| plugin.name().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interest(subscriptions: &[&str], repositories: Option<&[&str]>) -> Interest {
        Interest {
            subscriptions: subscriptions.iter().map(|s| s.parse().unwrap()).collect(),
            repositories: repositories.map(|r| r.iter().map(|p| p.parse().unwrap()).collect()),
        }
    }

    #[test]
    fn interests_match_event_action_and_repository() {
        let ci = interest(&["pull_request.opened", "pull_request.synchronize"], None);
        let all = interest(&["*"], None);
        let deploys = interest(&["deployment"], Some(&["octo/*"]));
        let one_repo = interest(&["push"], Some(&["octo/app"]));
        // (interest, event, action, repository, expected)
        let cases = [
            (&ci, "pull_request", Some("opened"), Some("octo/app"), true),
            (
                &ci,
                "pull_request",
                Some("synchronize"),
                Some("octo/app"),
                true,
            ),
            (&ci, "pull_request", Some("closed"), Some("octo/app"), false),
            (&ci, "push", None, Some("octo/app"), false),
            (&all, "anything_new", None, None, true),
            (&all, "push", None, Some("x/y"), true),
            (
                &deploys,
                "deployment",
                Some("created"),
                Some("octo/app"),
                true,
            ),
            (
                &deploys,
                "deployment",
                Some("created"),
                Some("other/app"),
                false,
            ),
            (&deploys, "deployment", Some("created"), None, false),
            (&one_repo, "push", None, Some("octo/app"), true),
            (&one_repo, "push", None, Some("octo/lib"), false),
        ];
        for (interest, event, action, repository, expected) in cases {
            let facts = PayloadFacts {
                action: action.map(str::to_owned),
                repository: repository.map(str::to_owned),
                sender: None,
                private: None,
            };
            let kind = EventKind::parse(event).unwrap();
            assert_eq!(
                interest.wants(&kind, &facts),
                expected,
                "{interest:?} vs {event}.{action:?} in {repository:?}"
            );
        }
    }
}
