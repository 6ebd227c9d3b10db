//! A page's query: its parameters, and the link to the next page of a list.

use std::collections::HashMap;

use axum::extract::Query;

pub(super) type Params = Query<HashMap<String, String>>;

/// A query parameter, blank counted as absent.
pub(super) fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn page_link(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    format!("{path}?{}", query.finish())
}

/// A list's rows were read one past a page of `size`: when that one came, it is cut off and
/// the answer is the link to the page after the rest, `filters` kept and `before` the key of
/// the last row shown.
pub(super) fn next_page<T>(
    rows: &mut Vec<T>,
    size: usize,
    path: &str,
    filters: &[(&str, Option<&str>)],
    key: impl Fn(&T) -> String,
) -> Option<String> {
    (rows.len() > size).then(|| {
        rows.truncate(size);
        let last = rows.last().map(key).unwrap_or_default();
        let mut params = filters.to_vec();
        params.push(("before", Some(&last)));
        page_link(path, &params)
    })
}
