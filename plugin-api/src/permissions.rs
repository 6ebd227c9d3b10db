//! The GitHub permissions a plugin needs. When the host acts as a GitHub App, each job calls
//! GitHub with an installation token narrowed to the event's repository and to exactly these
//! permissions, so a plugin can do no more than it declared, even if it is compromised.

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// How much of one permission: GitHub's `read`, `write` (which includes read) or `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Access {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            _ => Err(format!(
                "invalid access {s:?}: expected \"read\", \"write\" or \"admin\""
            )),
        }
    }
}

/// A set of GitHub App permissions, named as GitHub names them (`contents`, `statuses`,
/// `checks`, `deployments`, `pull_requests`, ...: the keys of "Permissions required for
/// fine-grained tokens" in GitHub's REST docs), each with its [`Access`].
///
/// Declared by [`crate::Plugin::permissions`]; the CI runner's, for instance:
///
/// ```
/// use switchyard_plugin_api::Permissions;
///
/// let ci = Permissions::none().write("checks").write("statuses").read("contents");
/// assert_eq!(ci.to_string(), "checks: write, contents: read, statuses: write");
/// ```
///
/// In `config.toml` an entry may narrow them: `permissions = { contents = "read" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Permissions(BTreeMap<String, Access>);

impl Permissions {
    /// No permission at all: what a plugin that never calls GitHub declares (a notifier). Its
    /// jobs' tokens can read the repository's metadata only, which every token can.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds `name` at `access`, replacing what it had. Panics unless `name` is a permission
    /// name (lowercase letters, digits and `_`): a programming error, caught by the plugin's
    /// first test.
    pub fn with(mut self, name: &str, access: Access) -> Self {
        assert!(
            is_permission_name(name),
            "invalid permission name {name:?}: use GitHub's, e.g. \"contents\", \"pull_requests\""
        );
        self.0.insert(name.to_owned(), access);
        self
    }

    /// Adds `name: read`.
    pub fn read(self, name: &str) -> Self {
        self.with(name, Access::Read)
    }

    /// Adds `name: write`.
    pub fn write(self, name: &str) -> Self {
        self.with(name, Access::Write)
    }

    /// The access to `name`, if any.
    pub fn get(&self, name: &str) -> Option<Access> {
        self.0.get(name).copied()
    }

    /// Whether these permissions grant `name` at `access` or more.
    pub fn allows(&self, name: &str, access: Access) -> bool {
        self.get(name).is_some_and(|have| have >= access)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each permission and its access, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Access)> {
        self.0.iter().map(|(name, access)| (name.as_str(), *access))
    }

    /// Whether every permission here is granted by `other` at the same access or more.
    pub fn within(&self, other: &Permissions) -> bool {
        self.iter().all(|(name, access)| other.allows(name, access))
    }

    /// What of `self` lies outside `other`, as `name: access` items (empty when `self` is
    /// within `other`).
    pub fn beyond(&self, other: &Permissions) -> Vec<String> {
        self.iter()
            .filter(|(name, access)| !other.allows(name, *access))
            .map(|(name, access)| format!("{name}: {access}"))
            .collect()
    }
}

impl fmt::Display for Permissions {
    /// `checks: write, contents: read`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let items: Vec<String> = self
            .iter()
            .map(|(name, access)| format!("{name}: {access}"))
            .collect();
        f.write_str(&items.join(", "))
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        let mut permissions = Self::none();
        for (name, access) in map {
            if !is_permission_name(&name) {
                return Err(serde::de::Error::custom(format!(
                    "invalid permission name {name:?}: use GitHub's, e.g. \"contents\", \"pull_requests\""
                )));
            }
            let access: Access = access
                .parse()
                .map_err(|e: String| serde::de::Error::custom(format!("{name}: {e}")))?;
            permissions.0.insert(name, access);
        }
        Ok(permissions)
    }
}

fn is_permission_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_includes_read_and_narrowing_is_checked() {
        let ci = Permissions::none()
            .write("checks")
            .write("statuses")
            .read("contents");
        assert!(ci.allows("statuses", Access::Read));
        assert!(ci.allows("statuses", Access::Write));
        assert!(!ci.allows("contents", Access::Write));
        assert!(!ci.allows("deployments", Access::Read));
        let narrower = Permissions::none().read("statuses");
        assert!(narrower.within(&ci));
        let wider = Permissions::none().write("contents").read("issues");
        assert!(!wider.within(&ci));
        assert_eq!(wider.beyond(&ci), ["contents: write", "issues: read"]);
        assert!(Permissions::none().within(&Permissions::none()));
    }

    #[test]
    fn permissions_read_and_print_as_github_names_them() {
        let read: Permissions =
            serde_json::from_str(r#"{"statuses":"write","contents":"read"}"#).unwrap();
        assert_eq!(read.to_string(), "contents: read, statuses: write");
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            r#"{"contents":"read","statuses":"write"}"#
        );
        assert_eq!(Permissions::none().to_string(), "none");
        let bad = serde_json::from_str::<Permissions>(r#"{"contents":"everything"}"#);
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("contents: invalid access")
        );
        let bad = serde_json::from_str::<Permissions>(r#"{"Contents":"read"}"#);
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("invalid permission name")
        );
    }
}
