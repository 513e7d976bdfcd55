//! The readable summary: one Markdown table per scenario, a row per
//! implementation, a column per key (ready to paste into BENCHMARKS.md).

use crate::common::Report;

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let mut scenarios: Vec<&str> = Vec::new();
    for line in &report.lines {
        if !scenarios.contains(&line.scenario) {
            scenarios.push(line.scenario);
        }
    }
    for scenario in scenarios {
        let lines: Vec<_> = report
            .lines
            .iter()
            .filter(|l| l.scenario == scenario)
            .collect();
        let mut keys: Vec<&str> = Vec::new();
        for line in &lines {
            for (k, _) in &line.fields {
                if !keys.contains(k) {
                    keys.push(k);
                }
            }
        }
        out.push_str(&format!(
            "### {scenario}\n\n| impl | {} |\n",
            keys.join(" | ")
        ));
        out.push_str(&format!("|---|{}\n", "---:|".repeat(keys.len())));
        for line in lines {
            let cells: Vec<&str> = keys.iter().map(|k| line.get(k).unwrap_or("–")).collect();
            out.push_str(&format!("| {} | {} |\n", line.imp, cells.join(" | ")));
        }
        out.push('\n');
    }
    for note in &report.notes {
        out.push_str(&format!("{note}\n"));
    }
    out
}
