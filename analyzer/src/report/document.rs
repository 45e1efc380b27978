//! A report as a list of blocks, rendered to Markdown or to self-contained HTML. The content is laid
//! out once; the two formats differ only in markup (and the HTML carries the figures).

/// One block of the document.
#[derive(Debug, Clone)]
pub enum Block {
    Heading(u8, String),
    Paragraph(String),
    Table { header: Vec<String>, rows: Vec<Vec<String>> },
    /// Preformatted text (the run spec).
    Code(String),
    /// SVG figures, shown in HTML only.
    Figures(Vec<String>),
    /// A table of contents: links to every level-2 heading of the document.
    Contents,
}

/// The anchor of a heading, as GitHub makes it: lower case, punctuation dropped, spaces as dashes.
pub fn slug(text: &str) -> String {
    text.to_lowercase().chars().filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_').map(|c| if c == ' ' { '-' } else { c }).collect()
}

fn sections(blocks: &[Block]) -> Vec<&str> {
    blocks.iter().filter_map(|b| if let Block::Heading(2, text) = b { Some(text.as_str()) } else { None }).collect()
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Renders blocks as GitHub-flavoured Markdown.
pub fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, text) => out.push_str(&format!("{} {text}\n\n", "#".repeat(*level as usize))),
            Block::Paragraph(text) => out.push_str(&format!("{text}\n\n")),
            Block::Table { header, rows } => {
                out.push_str(&format!("| {} |\n", header.iter().map(|h| md_cell(h)).collect::<Vec<_>>().join(" | ")));
                out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
                for row in rows {
                    out.push_str(&format!("| {} |\n", row.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")));
                }
                out.push('\n');
            }
            Block::Code(text) => out.push_str(&format!("```\n{}\n```\n\n", text.trim_end())),
            Block::Figures(_) => {}
            Block::Contents => {
                for text in sections(blocks) {
                    out.push_str(&format!("- [{}](#{})\n", md_cell(text), slug(text)));
                }
                out.push('\n');
            }
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:1em;overflow:auto}\
.figures{display:flex;flex-wrap:wrap;gap:8px}.figures svg{border:1px solid #eee;max-width:100%;height:auto}\
nav ul{columns:2;padding-left:1.2em}@media (max-width:700px){nav ul{columns:1}body{margin:1em auto}table{display:block;overflow-x:auto}}";

/// Renders blocks as one HTML page with inline CSS and inline SVG: it opens offline.
pub fn html(title: &str, blocks: &[Block]) -> String {
    let mut out = format!("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n", escape(title));
    for block in blocks {
        match block {
            Block::Heading(level, text) => out.push_str(&format!("<h{level} id=\"{}\">{}</h{level}>\n", escape(&slug(text)), escape(text))),
            Block::Contents => {
                out.push_str("<nav><ul>");
                for text in sections(blocks) {
                    out.push_str(&format!("<li><a href=\"#{}\">{}</a></li>", escape(&slug(text)), escape(text)));
                }
                out.push_str("</ul></nav>\n");
            }
            Block::Paragraph(text) => out.push_str(&format!("<p>{}</p>\n", escape(text))),
            Block::Table { header, rows } => {
                out.push_str("<table><thead><tr>");
                for h in header {
                    out.push_str(&format!("<th>{}</th>", escape(h)));
                }
                out.push_str("</tr></thead><tbody>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for c in row {
                        out.push_str(&format!("<td>{}</td>", escape(c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody></table>\n");
            }
            Block::Code(text) => out.push_str(&format!("<pre>{}</pre>\n", escape(text))),
            Block::Figures(svgs) => {
                out.push_str("<div class=\"figures\">\n");
                for svg in svgs {
                    out.push_str(svg);
                    out.push('\n');
                }
                out.push_str("</div>\n");
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_renderings_carry_the_same_cells_escaped_for_their_format() {
        let blocks = vec![
            Block::Heading(1, "Run <r>".into()),
            Block::Table { header: vec!["a|b".into(), "c".into()], rows: vec![vec!["1 < 2".into(), "x".into()]] },
            Block::Figures(vec!["<svg></svg>".into()]),
        ];
        let md = markdown(&blocks);
        assert!(md.contains("# Run <r>") && md.contains("| a\\|b | c |") && md.contains("| 1 < 2 | x |") && !md.contains("svg"));
        let page = html("t", &blocks);
        assert!(page.contains("<h1 id=\"run-r\">Run &lt;r&gt;</h1>") && page.contains("<td>1 &lt; 2</td>") && page.contains("<svg></svg>"));
    }
}
