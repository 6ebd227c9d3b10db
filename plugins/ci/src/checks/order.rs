//! `needs`: each name resolved to checks (a `[[check]]`'s name stands for all its cells),
//! unknown names and cycles refused, and the checks put in an order that runs each after
//! what it needs.

use std::{collections::HashMap, ops::Range};

use toml::Spanned;

use super::{Check, FileError, Position, file::RawCheck};

/// `checks` in an order that runs each after the checks it needs, their `needs` resolved to
/// cell names; `raws` gives where each `needs` is written.
pub(super) fn sorted(
    mut checks: Vec<Check>,
    raws: &[Spanned<RawCheck>],
    place: &impl Fn(Range<usize>) -> Position,
) -> Result<Vec<Check>, FileError> {
    let needs_at = |family: &str| {
        raws.iter()
            .map(Spanned::get_ref)
            .find(|raw| raw.name.get_ref() == family)
            .and_then(|raw| raw.needs.as_ref())
            .map(|needs| place(needs.span()))
            .unwrap_or_default()
    };
    let index: HashMap<String, usize> = checks
        .iter()
        .enumerate()
        .map(|(at, check)| (check.name.clone(), at))
        .collect();
    let mut edges = vec![Vec::new(); checks.len()];
    for (at, check) in checks.iter().enumerate() {
        for needed in &check.needs {
            let found: Vec<usize> = match index.get(needed) {
                Some(&one) => vec![one],
                None => checks
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| &c.family == needed)
                    .map(|(i, _)| i)
                    .collect(),
            };
            if found.is_empty() {
                return Err(FileError::at(
                    needs_at(&check.family),
                    format!(
                        "{:?} needs {needed:?}, which no check is named",
                        check.family
                    ),
                ));
            }
            edges[at].extend(found);
        }
    }
    // Depth first: grey on the path, black when done; a grey one met again closes a cycle.
    let mut colour = vec![0u8; checks.len()];
    let mut order = Vec::with_capacity(checks.len());
    let mut path = Vec::new();
    for start in 0..checks.len() {
        visit(start, &edges, &mut colour, &mut order, &mut path).map_err(|cycle| {
            let names: Vec<&str> = cycle.iter().map(|&i| checks[i].name.as_str()).collect();
            FileError::at(
                needs_at(&checks[cycle[0]].family),
                format!("needs go round in a cycle: {}", names.join(" -> ")),
            )
        })?;
    }
    let resolved: Vec<Vec<String>> = edges
        .iter()
        .map(|needed| {
            let mut names: Vec<String> = needed.iter().map(|&i| checks[i].name.clone()).collect();
            names.sort();
            names.dedup();
            names
        })
        .collect();
    for (check, needs) in checks.iter_mut().zip(resolved) {
        check.needs = needs;
    }
    let mut slots: Vec<Option<Check>> = checks.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

fn visit(
    at: usize,
    edges: &[Vec<usize>],
    colour: &mut [u8],
    order: &mut Vec<usize>,
    path: &mut Vec<usize>,
) -> Result<(), Vec<usize>> {
    match colour[at] {
        2 => return Ok(()),
        1 => {
            let from = path.iter().position(|&p| p == at).unwrap_or(0);
            let mut cycle = path[from..].to_vec();
            cycle.push(at);
            return Err(cycle);
        }
        _ => {}
    }
    colour[at] = 1;
    path.push(at);
    for &next in &edges[at] {
        visit(next, edges, colour, order, path)?;
    }
    path.pop();
    colour[at] = 2;
    order.push(at);
    Ok(())
}
