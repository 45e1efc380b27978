//! Exporters: rows to CSV or JSON bytes; the caller decides where they go.

use crate::rows::BatchRow;

/// Formats of `analyzer export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

fn csv_field(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) if s.contains([',', '"', '\n']) => format!("\"{}\"", s.replace('"', "\"\"")),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders rows in `format`. CSV has a header row with the field names of [`BatchRow`].
pub fn render(rows: &[BatchRow], format: Format) -> Vec<u8> {
    match format {
        Format::Json => {
            let mut out = serde_json::to_vec_pretty(rows).expect("rows serialise");
            out.push(b'\n');
            out
        }
        Format::Csv => {
            let values: Vec<serde_json::Map<String, serde_json::Value>> = rows.iter().map(fields).collect();
            let header: Vec<String> = match values.first() {
                Some(first) => first.keys().cloned().collect(),
                None => fields(&BatchRow::from_metrics(&Default::default())).into_iter().map(|(k, _)| k).collect(),
            };
            let mut out = header.join(",");
            out.push('\n');
            for map in &values {
                let line: Vec<String> = header.iter().map(|k| csv_field(&map[k])).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
            out.into_bytes()
        }
    }
}

/// A row's fields by name, in declaration order (serde_json keeps insertion order here).
fn fields(row: &BatchRow) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(row).expect("rows serialise") {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("a struct serialises to an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_header_and_one_line_per_row_in_field_order() {
        let mut row = BatchRow::from_metrics(&Default::default());
        row.platform = "aws".into();
        row.host = "a,b".into();
        let csv = String::from_utf8(render(&[row.clone(), row], Format::Csv)).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("job_key,run_id,round,platform,"), "{}", lines[0]);
        assert!(lines[1].contains(",aws,") && lines[1].contains("\"a,b\""));
        assert_eq!(String::from_utf8(render(&[], Format::Csv)).unwrap().lines().count(), 1);
        let json: serde_json::Value = serde_json::from_slice(&render(&[], Format::Json)).unwrap();
        assert_eq!(json, serde_json::json!([]));
    }
}
