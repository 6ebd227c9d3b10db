//! The commands a plugin entry takes: the plugin's declarations, each checked, with the
//! permissions the entry's `commands` table raises. An entry may raise a command's permission,
//! never lower it (a config typo must not open a command to more people than its author meant).

use std::collections::BTreeMap;

use switchyard_plugin_api::{CommandSpec, Role};

/// The plugin's `declared` commands with the entry's `raised` permissions applied. `Err` says
/// what cannot be taken: a bad declaration, one declared twice, or an entry that names a command
/// the plugin does not take or sets one below the plugin's own permission.
pub(crate) fn effective(
    declared: Vec<CommandSpec>,
    raised: Option<&BTreeMap<String, Role>>,
) -> Result<Vec<CommandSpec>, String> {
    let mut commands: Vec<CommandSpec> = Vec::with_capacity(declared.len());
    for spec in declared {
        spec.check()
            .map_err(|reason| format!("the plugin declares {reason}"))?;
        if commands.iter().any(|c| c.name == spec.name) {
            return Err(format!("the plugin declares /{} twice", spec.name));
        }
        commands.push(spec);
    }
    for (name, &permission) in raised.into_iter().flatten() {
        let Some(spec) = commands.iter_mut().find(|c| c.name == *name) else {
            let taken: Vec<String> = commands.iter().map(|c| format!("/{}", c.name)).collect();
            return Err(format!(
                "{name:?}: the plugin takes no such command (it takes: {})",
                if taken.is_empty() {
                    "none".to_owned()
                } else {
                    taken.join(", ")
                }
            ));
        };
        if permission < spec.permission {
            return Err(format!(
                "{name} = \"{permission}\": below the plugin's own {}; an entry may only raise a command's permission",
                spec.permission
            ));
        }
        spec.permission = permission;
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> Vec<CommandSpec> {
        vec![
            CommandSpec::new("retest", "Builds again").or_author(),
            CommandSpec::new("lock", "Holds an environment").needs(Role::Maintain),
        ]
    }

    fn raise(pairs: &[(&str, Role)]) -> BTreeMap<String, Role> {
        pairs.iter().map(|(n, r)| (n.to_string(), *r)).collect()
    }

    #[test]
    fn an_entry_raises_a_commands_permission() {
        let raised = raise(&[("retest", Role::Maintain), ("lock", Role::Maintain)]);
        let commands = effective(declared(), Some(&raised)).unwrap();
        let permissions: Vec<Role> = commands.iter().map(|c| c.permission).collect();
        assert_eq!(permissions, [Role::Maintain, Role::Maintain]);
        // Raising keeps the rest of the declaration, "or the author" included.
        assert!(commands[0].or_author);
        let unraised = effective(declared(), None).unwrap();
        assert_eq!(unraised, declared());
    }

    #[test]
    fn an_entry_never_lowers_nor_invents_a_command() {
        let lowered = effective(declared(), Some(&raise(&[("lock", Role::Write)]))).unwrap_err();
        assert!(
            lowered.contains("below the plugin's own maintain"),
            "{lowered}"
        );
        let unknown = effective(declared(), Some(&raise(&[("deploy", Role::Admin)]))).unwrap_err();
        assert!(unknown.contains("/retest, /lock"), "{unknown}");
        let none = effective(Vec::new(), Some(&raise(&[("retest", Role::Admin)]))).unwrap_err();
        assert!(none.contains("it takes: none"), "{none}");
    }

    #[test]
    fn a_bad_or_repeated_declaration_fails_the_load() {
        let help = vec![CommandSpec::new("help", "mine")];
        assert!(
            effective(help, None)
                .unwrap_err()
                .contains("the host's own")
        );
        let twice = vec![
            CommandSpec::new("retest", "a"),
            CommandSpec::new("retest", "b"),
        ];
        assert!(
            effective(twice, None)
                .unwrap_err()
                .contains("/retest twice")
        );
    }
}
