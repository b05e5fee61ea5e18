//! The classic Prometheus text format (0.0.4) of `/metrics`, for clients that ask for it
//! (`Accept: text/plain` without `application/openmetrics-text`): tools such as
//! `promtool check metrics` and older scrapers read only that format, where a counter's family
//! carries its `_total` name. Prometheus itself asks for OpenMetrics, the default.

use std::collections::HashSet;

/// The content type of [`to_classic`]'s output.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request's `Accept` header asks for the classic text format rather than
/// OpenMetrics: it names `text/plain` and does not name `application/openmetrics-text`.
/// No header, `*/*` and anything else get OpenMetrics.
pub fn wants_classic(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let accept = accept.to_ascii_lowercase();
    accept.contains("text/plain") && !accept.contains("application/openmetrics-text")
}

/// Rewrites an OpenMetrics exposition (as [`crate::metrics::Metrics::render`] makes it) in
/// the classic text format: a counter family `x` becomes `x_total` (its samples' name),
/// `unknown` becomes `untyped`, and the `# UNIT` and `# EOF` lines go.
pub fn to_classic(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = if counters.contains(name) {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            let tail = if *prefix == "# TYPE " && tail == "unknown" {
                "untyped"
            } else {
                tail
            };
            Some(format!("{prefix}{name} {tail}"))
        });
        match rewritten {
            Some(line) => out.push_str(&line),
            None => {
                // A counter's creation time has no place in the classic format.
                let name = line.split(['{', ' ']).next().unwrap_or("");
                if name
                    .strip_suffix("_created")
                    .is_some_and(|family| counters.contains(family))
                {
                    continue;
                }
                out.push_str(line);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_total_name_and_eof_goes() {
        let om = "# HELP mod8_cache_hits Cache lookups answered.\n\
                  # TYPE mod8_cache_hits counter\n\
                  mod8_cache_hits_total{cache=\"app\"} 3\n\
                  # HELP mod8_queue_depth Messages.\n\
                  # TYPE mod8_queue_depth gauge\n\
                  # UNIT mod8_queue_depth messages\n\
                  mod8_queue_depth{name=\"q\"} 7\n\
                  # EOF\n";
        assert_eq!(
            to_classic(om),
            "# HELP mod8_cache_hits_total Cache lookups answered.\n\
             # TYPE mod8_cache_hits_total counter\n\
             mod8_cache_hits_total{cache=\"app\"} 3\n\
             # HELP mod8_queue_depth Messages.\n\
             # TYPE mod8_queue_depth gauge\n\
             mod8_queue_depth{name=\"q\"} 7\n"
        );
    }

    #[test]
    fn only_an_explicit_text_plain_gets_the_classic_format() {
        assert!(!wants_classic(None));
        assert!(!wants_classic(Some("*/*")));
        assert!(wants_classic(Some("text/plain; version=0.0.4")));
        assert!(!wants_classic(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
    }
}
