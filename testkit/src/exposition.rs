//! The Prometheus text exposition format, parsed into samples, so tests ask for a series by
//! name and labels instead of matching lines.

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order the line lists them.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether every `(label, value)` of `labels` is the sample's.
    pub fn has(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(key, value)| self.label(key) == Some(*value))
    }
}

/// Every sample of a scrape, and the `# TYPE` of each family.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: Vec<(String, String)>,
}

impl Exposition {
    /// Parses a scrape; a line that is not a sample, a comment or empty fails the test.
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                if let Some((family, kind)) = rest.split_once(' ') {
                    out.types.push((family.to_owned(), kind.to_owned()));
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            out.samples
                .push(parse_sample(line).unwrap_or_else(|| panic!("not a sample line: {line}")));
        }
        out
    }

    /// The value of the sample with exactly these labels (in any order).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels.len() == labels.len() && s.has(labels))
            .map(|s| s.value)
    }

    /// The sum over the samples of `name` that have all of `labels` (and maybe others).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Requests to `route` answered with `status`, every method together: the server's own
    /// count (`http_server_request_duration_seconds_count`).
    pub fn answered(&self, route: &str, status: &str) -> f64 {
        self.sum(
            "http_server_request_duration_seconds_count",
            &[("http_route", route), ("http_response_status_code", status)],
        )
    }

    /// The samples of `name` that have all of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name == name && s.has(labels))
    }

    /// The `# TYPE` of a family.
    pub fn kind(&self, family: &str) -> Option<&str> {
        self.types
            .iter()
            .find(|(name, _)| name == family)
            .map(|(_, kind)| kind.as_str())
    }
}

/// The value of the sample written as `series` (`name{a="b"}` or `name`), as in a scrape.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    let wanted = parse_sample(&format!("{series} 0"))?;
    let labels: Vec<(&str, &str)> = wanted
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Exposition::parse(text).get(&wanted.name, &labels)
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (series, Vec::new()),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `a="x",b="y \"quoted\""` into pairs, unescaping `\"`, `\\` and `\n`.
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim_start_matches(',').to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# HELP x_total things
# TYPE x_total counter
x_total{route="/a",code="200"} 3
x_total{route="/a",code="500"} 1
x_total{route="/b \"q\"",code="200"} 2.5
up 1
h_bucket{le="+Inf"} 7
"#;

    #[test]
    fn samples_are_found_by_name_and_labels() {
        let scrape = Exposition::parse(SCRAPE);
        assert_eq!(
            scrape.get("x_total", &[("code", "500"), ("route", "/a")]),
            Some(1.0)
        );
        assert_eq!(
            scrape.get("x_total", &[("route", "/a")]),
            None,
            "labels must all match"
        );
        assert_eq!(scrape.sum("x_total", &[("route", "/a")]), 4.0);
        assert_eq!(scrape.sum("x_total", &[]), 6.5);
        assert_eq!(
            scrape.get("x_total", &[("route", "/b \"q\""), ("code", "200")]),
            Some(2.5)
        );
        assert_eq!(scrape.get("up", &[]), Some(1.0));
        assert_eq!(scrape.kind("x_total"), Some("counter"));
        assert_eq!(
            sample(SCRAPE, r#"x_total{code="200",route="/a"}"#),
            Some(3.0)
        );
        assert_eq!(sample(SCRAPE, r#"h_bucket{le="+Inf"}"#), Some(7.0));
        assert_eq!(sample(SCRAPE, "down"), None);
    }
}
