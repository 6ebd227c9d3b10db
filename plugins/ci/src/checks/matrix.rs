//! A check's `matrix` into cells: one check per combination of its values, named
//! `db (engine=postgres, os=linux)` (keys in alphabetical order), each value in the cell's
//! environment under its key upper-cased. The size is counted before anything is built.

use std::ops::Range;

use super::{Bounds, Check, FileError, MAX_NAME, Position, check_name, file::RawCheck};

/// The cells of `raw`'s matrix made from `base`, or `base` alone without a matrix.
pub(super) fn expand(
    raw: &RawCheck,
    base: Check,
    bounds: &Bounds,
    place: &impl Fn(Range<usize>) -> Position,
) -> Result<Vec<Check>, FileError> {
    let Some(matrix) = &raw.matrix else {
        return Ok(vec![base]);
    };
    let at = place(matrix.span());
    let axes = matrix.get_ref();
    if axes.is_empty() {
        return Err(FileError::at(
            at,
            "matrix is empty: leave it out for one check",
        ));
    }
    // Counted before any cell is made: 100 x 100 is refused without building 10,000.
    let cells = axes.values().fold(1usize, |cells, list| {
        cells.saturating_mul(list.get_ref().len())
    });
    if cells > bounds.max_matrix_cells {
        return Err(FileError::at(
            at,
            format!(
                "the matrix has {cells} cells, more than this entry's max_matrix_cells = {}",
                bounds.max_matrix_cells
            ),
        ));
    }
    let mut values = Vec::new();
    for (key, list) in axes {
        let env = key.to_ascii_uppercase();
        super::file::env_name(&env).map_err(|_| {
            FileError::at(
                at,
                "a matrix key is not a variable name (letters, digits and _)",
            )
        })?;
        if list.get_ref().is_empty() {
            return Err(FileError::at(
                place(list.span()),
                format!("matrix.{key} has no values"),
            ));
        }
        let mut axis = Vec::new();
        for value in list.get_ref() {
            let text = match value.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(FileError::at(
                        place(value.span()),
                        format!(
                            "matrix.{key} holds a value that is not a string, integer or boolean"
                        ),
                    ));
                }
            };
            check_name(&text, &format!("a value of matrix.{key}"))
                .map_err(|e| FileError::at(place(value.span()), e))?;
            axis.push((key.clone(), env.clone(), text));
        }
        values.push(axis);
    }
    let mut out = vec![(Vec::new(), base.env.clone())];
    for axis in &values {
        out = out
            .into_iter()
            .flat_map(|(named, env)| {
                axis.iter().map(move |(key, var, value)| {
                    let mut named = named.clone();
                    named.push(format!("{key}={value}"));
                    let mut env = env.clone();
                    env.insert(var.clone(), value.clone());
                    (named, env)
                })
            })
            .collect();
    }
    out.into_iter()
        .map(|(named, env)| {
            let name = format!("{} ({})", base.name, named.join(", "));
            let length = name.chars().count();
            if length > MAX_NAME {
                return Err(FileError::at(
                    at,
                    format!("a matrix cell's name has {length} characters; at most {MAX_NAME}"),
                ));
            }
            Ok(Check {
                name,
                env,
                ..base.clone()
            })
        })
        .collect()
}
