//! A subject's EDSS over time as an inline SVG, with the baseline and the worsening
//! threshold of the trial's own disability rule drawn: the line a safety officer checks a
//! new score against. Drawn with plotters in the DSMB report's style.

use crate::model::EdssVisit;
use crate::rules::progression::ProgressionParams;
use chrono::NaiveDate;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const WIDTH: u32 = 760;
const HEIGHT: u32 = 360;
const FONT: &str = "sans-serif";
const SCORE: RGBColor = RGBColor(31, 119, 180);
const BASELINE: RGBColor = RGBColor(44, 120, 44);
const THRESHOLD: RGBColor = RGBColor(190, 30, 30);

/// The baseline visit of the rule's definition and the score that counts as worsening.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Threshold {
    pub baseline: EdssVisit,
    /// The change required from this baseline (by the rule's baseline bands).
    pub required: f64,
    /// baseline + required, at most 10.
    pub worse_at: f64,
}

/// The first visit out of relapse influence (0 ≤ visit − onset < exclusion days), as the
/// rule's scan takes it, and the threshold from it. With a roving baseline this is the
/// first baseline; later ones move with confirmed events.
pub(crate) fn threshold(
    visits: &[EdssVisit],
    relapses: &[NaiveDate],
    params: &ProgressionParams,
) -> Option<Threshold> {
    let mut sorted = visits.to_vec();
    sorted.sort_by_key(|v| v.date);
    let baseline = sorted.into_iter().find(|v| {
        !relapses.iter().any(|onset| {
            let d = (v.date - *onset).num_days();
            (0..params.relapse_exclusion_days).contains(&d)
        })
    })?;
    let required = params.min_change.required(baseline.score);
    let worse_at = (baseline.score.value() + required).min(10.0);
    Some(Threshold { baseline, required, worse_at })
}

/// The chart, or a short SVG saying there is no EDSS to draw. `title` is the chart's
/// accessible name.
pub(crate) fn svg(visits: &[EdssVisit], threshold: Option<&Threshold>, title: &str) -> String {
    let mut sorted = visits.to_vec();
    sorted.sort_by_key(|v| v.date);
    let drawn = match (sorted.first(), sorted.last()) {
        (Some(first), Some(last)) => draw(&sorted, first.date, last.date, threshold),
        _ => Err("no EDSS assessment".into()),
    };
    let svg = match drawn {
        Ok(svg) => svg,
        Err(_) => return String::new(),
    };
    accessible(&svg, title)
}

type Drawn = Result<String, Box<dyn std::error::Error>>;

fn draw(visits: &[EdssVisit], first: NaiveDate, last: NaiveDate, threshold: Option<&Threshold>) -> Drawn {
    let day = |d: NaiveDate| (d - first).num_days() as f64;
    let span = day(last).max(28.0);
    let pad = (span * 0.04).max(3.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, strip) = root.split_vertically(HEIGHT as i32 - 34);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(46)
            .y_label_area_size(54)
            .build_cartesian_2d(-pad..span + pad, 0.0..10.0)?;
        chart
            .configure_mesh()
            .x_desc("Date")
            .y_desc("EDSS")
            .axis_desc_style((FONT, 19).into_font())
            .label_style((FONT, 17).into_font())
            .light_line_style(WHITE.mix(0.0))
            .x_labels(6)
            .y_labels(11)
            .x_label_formatter(&|d: &f64| {
                (first + chrono::Duration::days(d.round() as i64)).format("%Y-%m-%d").to_string()
            })
            .y_label_formatter(&|v: &f64| format!("{v:.0}"))
            .draw()?;
        let x_range = (-pad, span + pad);
        if let Some(t) = threshold {
            let b = t.baseline.score.value();
            chart.draw_series(LineSeries::new([(x_range.0, b), (x_range.1, b)], BASELINE.stroke_width(2)))?;
            chart.draw_series(DashedLineSeries::new(
                [(x_range.0, t.worse_at), (x_range.1, t.worse_at)],
                8,
                5,
                THRESHOLD.stroke_width(2),
            ))?;
        }
        let points: Vec<(f64, f64)> = visits.iter().map(|v| (day(v.date), v.score.value())).collect();
        chart.draw_series(LineSeries::new(points.clone(), SCORE.stroke_width(2)))?;
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, SCORE.filled())))?;
        // The legend under the plot, so it never covers a score.
        let mut keys: Vec<(String, RGBColor)> = vec![("EDSS".into(), SCORE)];
        if let Some(t) = threshold {
            keys.push((format!("baseline {:.1} ({})", t.baseline.score.value(), t.baseline.date), BASELINE));
            keys.push((format!("worsening at ≥ {:.1} (+{:.1})", t.worse_at, t.required), THRESHOLD));
        }
        let mut x = 60;
        for (label, c) in keys {
            strip.draw(&PathElement::new(vec![(x, 14), (x + 22, 14)], c.stroke_width(3)))?;
            strip.draw(&Text::new(
                label.clone(),
                (x + 28, 14),
                TextStyle::from((FONT, 17).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            x += 44 + 9 * label.chars().count() as i32;
        }
        root.present()?;
    }
    Ok(svg)
}

/// Gives the SVG a role, an accessible name, and a size that follows the page width.
fn accessible(svg: &str, title: &str) -> String {
    let title = title.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    match svg.find("<svg") {
        Some(start) => {
            let Some(end) = svg[start..].find('>').map(|e| start + e) else { return String::new() };
            let open = &svg[start..end];
            format!(
                "{open} class=\"chart\" role=\"img\" aria-labelledby=\"edss-chart-title\"><title id=\"edss-chart-title\">{title}</title>{}",
                &svg[end + 1..]
            )
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Edss;

    fn visit(date: &str, score: f64) -> EdssVisit {
        EdssVisit { date: date.parse().unwrap(), visit: None, score: Edss::parse(score).unwrap() }
    }

    #[test]
    fn the_threshold_follows_the_baseline_band() {
        let params = ProgressionParams::default(); // variant A: +1.5 from 0, +1.0 to 5.0, +0.5 above
        let low = threshold(&[visit("2020-01-01", 0.0)], &[], &params).unwrap();
        assert_eq!((low.required, low.worse_at), (1.5, 1.5));
        let mid = threshold(&[visit("2020-01-01", 4.0), visit("2020-04-01", 5.5)], &[], &params).unwrap();
        assert_eq!((mid.required, mid.worse_at), (1.0, 5.0));
        let high = threshold(&[visit("2020-01-01", 6.5)], &[], &params).unwrap();
        assert_eq!((high.required, high.worse_at), (0.5, 7.0));
        let top = threshold(&[visit("2020-01-01", 10.0)], &[], &params).unwrap();
        assert_eq!(top.worse_at, 10.0, "never above the scale");
        assert_eq!(threshold(&[], &[], &params), None);
    }

    #[test]
    fn a_visit_in_a_relapse_window_is_not_the_baseline() {
        let params = ProgressionParams::default(); // 30 days after a relapse onset
        let visits = [visit("2020-01-20", 6.0), visit("2020-02-10", 3.5), visit("2020-01-05", 5.0)];
        let onset: NaiveDate = "2020-01-01".parse().unwrap();
        let t = threshold(&visits, &[onset], &params).unwrap();
        assert_eq!(t.baseline.date, "2020-02-10".parse::<NaiveDate>().unwrap(), "31 days after is usable");
        assert_eq!(t.worse_at, 4.5);
        // Without the relapse the earliest visit is the baseline, whatever the input order.
        assert_eq!(threshold(&visits, &[], &params).unwrap().baseline.score.value(), 5.0);
    }

    #[test]
    fn the_chart_is_an_accessible_svg_with_the_lines_named() {
        let visits = [visit("2020-01-01", 3.0), visit("2020-04-01", 4.5)];
        let t = threshold(&visits, &[], &ProgressionParams::default());
        let svg = svg(&visits, t.as_ref(), "EDSS of KS-1 <test>");
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{svg}");
        assert!(
            svg.contains("role=\"img\"")
                && svg.contains("<title id=\"edss-chart-title\">EDSS of KS-1 &lt;test&gt;</title>")
        );
        assert!(svg.contains("baseline 3.0 (2020-01-01)"), "{svg}");
        assert!(svg.contains("worsening at ≥ 4.0 (+1.0)"), "{svg}");
        assert!(svg.contains("2020-01-01"));
        assert_eq!(svg.matches("<circle").count(), 2, "one dot per visit");
        assert_eq!(super::svg(&[], None, "x"), "");
    }
}
