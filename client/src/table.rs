//! The text tables the client and the benchmark print, written one way.
//!
//! [`TextTable`] is the terminal's table (the `--report` table, the audit's):
//! columns laid out by `comfy-table` without borders, two spaces between columns,
//! each column left- or right-aligned, a rule of dashes under the header, trailing
//! spaces trimmed. Tests and users read its rows by their first word and its columns
//! by the two spaces between them, so that is the format kept. A row may also be a
//! *note*: its first cell, then free text across the other columns ("proxy
//! unavailable: ...").
//!
//! [`MarkdownTable`] is the benchmark's table for BENCHMARKS.md: `| a | b |` rows
//! with `| --- | ---: |` alignment markers, cells not padded (comfy-table's Markdown
//! preset pads every cell to its column's width and has no alignment markers, so
//! this one is written here, in a few lines).

use std::fmt;

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

/// How a column's cells are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    /// Figures: right-aligned, so their units line up.
    Right,
}

/// Spaces between two columns of a [`TextTable`].
const GAP: u16 = 2;

enum Row {
    Cells(Vec<String>),
    /// A first cell, then text across the other columns.
    Note(String, String),
}

/// A plain text table for the terminal (see the module's doc).
pub struct TextTable {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Row>,
}

impl TextTable {
    /// A table with these columns: their headers and alignment.
    pub fn new(columns: &[(&str, Align)]) -> TextTable {
        TextTable {
            header: columns.iter().map(|(h, _)| h.to_string()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// A table whose first column is left-aligned and the others right-aligned
    /// (a name, then figures).
    pub fn figures(header: &[&str]) -> TextTable {
        let columns: Vec<(&str, Align)> = header
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, if i == 0 { Align::Left } else { Align::Right }))
            .collect();
        TextTable::new(&columns)
    }

    /// Adds a row of cells, one per column.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows
            .push(Row::Cells(cells.into_iter().map(Into::into).collect()));
        self
    }

    /// Adds a row that is its first cell, then `text` across the other columns.
    pub fn note(&mut self, first: impl Into<String>, text: impl Into<String>) -> &mut Self {
        self.rows.push(Row::Note(first.into(), text.into()));
        self
    }

    /// The columns laid out by comfy-table: the header, `rule` when given (one
    /// cell per column), then every row of cells.
    fn layout(&self, rule: Option<Vec<String>>) -> Table {
        let mut table = Table::new();
        table
            .load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(self.header.clone());
        if let Some(rule) = rule {
            table.add_row(rule);
        }
        for row in &self.rows {
            if let Row::Cells(cells) = row {
                table.add_row(cells.clone());
            }
        }
        let last = self.header.len().saturating_sub(1);
        for (i, column) in table.column_iter_mut().enumerate() {
            column.set_padding((0, if i == last { 0 } else { GAP }));
            column.set_cell_alignment(match self.align.get(i) {
                Some(Align::Right) => CellAlignment::Right,
                _ => CellAlignment::Left,
            });
        }
        table
    }

    /// The table's lines, each ending with a newline.
    pub fn render(&self) -> String {
        // The widths of the columns (header and rows of cells), for the rule.
        let widths = self.layout(None).column_max_content_widths();
        let rule = widths.iter().map(|w| "-".repeat(*w as usize)).collect();
        let first_width = widths.first().copied().unwrap_or(0) as usize;
        let mut lines = self
            .layout(Some(rule))
            .lines()
            .collect::<Vec<_>>()
            .into_iter();
        let mut out = String::new();
        let mut push = |line: &str| {
            out.push_str(line.trim_end());
            out.push('\n');
        };
        // The header and the rule.
        for line in lines.by_ref().take(2) {
            push(&line);
        }
        for row in &self.rows {
            match row {
                Row::Cells(_) => push(&lines.next().unwrap_or_default()),
                Row::Note(first, text) => push(&format!(
                    "{first:<first_width$}{:gap$}{text}",
                    "",
                    gap = GAP as usize
                )),
            }
        }
        out
    }
}

impl fmt::Display for TextTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// A compact Markdown table (see the module's doc).
pub struct MarkdownTable {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl MarkdownTable {
    /// A table with these columns: their headers and alignment.
    pub fn new(columns: &[(&str, Align)]) -> MarkdownTable {
        MarkdownTable {
            header: columns.iter().map(|(h, _)| h.to_string()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a column (for tables whose columns depend on the run).
    pub fn column(&mut self, header: impl Into<String>, align: Align) -> &mut Self {
        self.header.push(header.into());
        self.align.push(align);
        self
    }

    /// Adds a row of cells, one per column.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// The header, the alignment rule and the rows, each line ending with a newline.
    pub fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let rule: Vec<String> = self
            .align
            .iter()
            .map(|a| match a {
                Align::Left => "---".to_string(),
                Align::Right => "---:".to_string(),
            })
            .collect();
        let mut out = line(&self.header);
        out.push_str(&line(&rule));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

impl fmt::Display for MarkdownTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_table_lines_up_its_columns_two_spaces_apart() {
        let mut t = TextTable::new(&[
            ("server", Align::Left),
            ("head", Align::Left),
            ("retained MB", Align::Right),
        ]);
        t.row(["proxy", "retain", "116.4"]);
        t.note("wss", "unavailable: connection refused");
        t.row(["x", "", "2.1"]);
        assert_eq!(
            t.render(),
            "server  head    retained MB\n\
             ------  ------  -----------\n\
             proxy   retain        116.4\n\
             wss     unavailable: connection refused\n\
             x                       2.1\n"
        );
    }

    #[test]
    fn a_markdown_table_is_compact_with_alignment_markers() {
        let mut t = MarkdownTable::new(&[("stack", Align::Left), ("MB", Align::Right)]);
        t.column("settled", Align::Left);
        t.row(["ours", "1.0", "yes"]);
        assert_eq!(
            t.render(),
            "| stack | MB | settled |\n| --- | ---: | --- |\n| ours | 1.0 | yes |\n"
        );
    }
}
