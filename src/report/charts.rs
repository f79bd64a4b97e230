//! The report's charts as SVG documents (plotters), for inlining into the HTML page and
//! embedding into the PDF.
//!
//! No font files are compiled in (plotters without `ttf`): label sizes are estimated, so
//! labels are kept short and legends small. Every chart has a title, axis labels with
//! units, and a legend when it has more than one series. Drawing is deterministic (integer
//! coordinates, no randomness), so the same numbers give the same SVG bytes. A chart
//! without data, or one that fails to draw, becomes a small SVG saying so: the report
//! never fails for a chart.

use super::{ChartData, EdishPoint, EdssTrajectory, MriAtVisit, Quadrant};
use chrono::{Duration, NaiveDate};
use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::BTreeMap;

const WIDTH: u32 = 760;
const HEIGHT: u32 = 420;
const FONT: &str = "sans-serif";

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn std::error::Error>>;
/// A point on the canvas, in pixels.
type BackendCoord = (i32, i32);

/// Tableau 10: distinguishable, and still distinct when printed in grey.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Grades 1–5, then not graded: green to red, then black for death.
const GRADE_COLOURS: [RGBColor; 6] = [PALETTE[2], PALETTE[0], PALETTE[1], PALETTE[3], BLACK, PALETTE[7]];

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Draw onto a fresh white canvas; on failure, a canvas that says what failed.
fn draw(title: &str, f: impl FnOnce(&Area) -> Drawn) -> String {
    let mut svg = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(Into::into)
            .and_then(|_| f(&root))
            .and_then(|_| root.present().map_err(Into::into))
    };
    match result {
        Ok(()) => svg,
        Err(e) => message(title, &format!("The chart could not be drawn: {e}")),
    }
}

/// A chart-sized SVG with a title and one line of text (no data, or an error).
fn message(title: &str, text: &str) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 120)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let _ = root.draw(&Text::new(title.to_string(), (20, 20), (FONT, 20).into_font().color(&BLACK)));
        let _ = root.draw(&Text::new(text.to_string(), (20, 70), (FONT, 15).into_font().color(&BLACK)));
        let _ = root.present();
    }
    svg
}

/// How a legend entry is marked.
#[derive(Clone, Copy)]
enum Marker {
    Line,
    Dot,
    Bar,
}

const LEGEND_PER_ROW: usize = 4;
const LEGEND_ROW: i32 = 24;

/// Split off a strip under the plot for a legend of `entries`, so that no legend box ever
/// covers data; returns the plot area and the strip (draw it with [`legend_strip`]).
fn with_legend_strip<'a>(root: &Area<'a>, entries: usize) -> (Area<'a>, Area<'a>) {
    let rows = i32::try_from(entries.div_ceil(LEGEND_PER_ROW)).unwrap_or(1);
    let height = i32::try_from(HEIGHT).unwrap_or(420);
    root.split_vertically(height - rows * LEGEND_ROW - 10)
}

fn legend_strip(area: &Area, entries: &[(String, RGBColor)], marker: Marker) -> Drawn {
    let width = i32::try_from(WIDTH).unwrap_or(760) - 80;
    let per = width / i32::try_from(LEGEND_PER_ROW).unwrap_or(4);
    for (i, (label, c)) in entries.iter().enumerate() {
        let (col, row) = (i % LEGEND_PER_ROW, i / LEGEND_PER_ROW);
        let x = 70 + per * i32::try_from(col).unwrap_or(0);
        let y = 12 + LEGEND_ROW * i32::try_from(row).unwrap_or(0);
        match marker {
            Marker::Line => area.draw(&line_key(*c)((x, y)))?,
            Marker::Dot => area.draw(&Circle::new((x + 9, y), 4, c.filled()))?,
            Marker::Bar => area.draw(&bar_key(*c)((x + 3, y)))?,
        }
        area.draw(&Text::new(
            label.clone(),
            (x + 24, y),
            tick_style().pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

fn title_style() -> TextStyle<'static> {
    (FONT, 24).into_font().into()
}

fn label_style() -> TextStyle<'static> {
    (FONT, 17).into_font().into()
}

fn tick_style() -> TextStyle<'static> {
    (FONT, 15).into_font().into()
}

/// A chart on `area` with the report's title, margins and axis label areas; `y_labels` is
/// the width of the y axis labels.
fn chart_on<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
    y_labels: u32,
) -> ChartBuilder<'a, 'static, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder.caption(title, title_style()).margin(14).x_label_area_size(44).y_label_area_size(y_labels);
    builder
}

/// The chart's mesh with its axis descriptions and the report's text styles, without the
/// light grid lines; the caller adds its labels and draws it.
fn mesh<'a, 'b, X, Y>(
    chart: &'b mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
) -> MeshStyle<'a, 'b, X, Y, SVGBackend<'a>>
where
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style(label_style())
        .label_style(tick_style())
        .light_line_style(WHITE.mix(0.0));
    mesh
}

/// The series' legend box, in one corner of the plot.
fn series_legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(tick_style())
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

/// A legend key for a line series.
fn line_key(c: RGBColor) -> impl Fn(BackendCoord) -> PathElement<BackendCoord> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
}

/// A legend key for a bar series.
fn bar_key(c: RGBColor) -> impl Fn(BackendCoord) -> Rectangle<BackendCoord> {
    move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled())
}

/// The arms named, sorted, each once.
fn arms_of<'a>(arms: impl Iterator<Item = Option<&'a str>>) -> Vec<&'a str> {
    let mut a: Vec<&str> = arms.flatten().collect();
    a.sort_unstable();
    a.dedup();
    a
}

/// A legend of arms, coloured in their order.
fn arm_legend(arms: &[&str]) -> Vec<(String, RGBColor)> {
    arms.iter().enumerate().map(|(i, a)| (a.to_string(), colour(i))).collect()
}

/// An integer axis end a little above the largest count (at least 1), so the top bar or
/// step has room for its label.
fn axis_max(max: usize) -> i32 {
    let max = i32::try_from(max).unwrap_or(i32::MAX / 2);
    (max + (max / 8).max(1)).max(1)
}

/// Cumulative dosed subjects by first-dose date; one line per arm plus the total in a
/// closed report.
pub(super) fn enrollment(data: &ChartData, closed: bool) -> String {
    const TITLE: &str = "Enrollment over time";
    let (Some(first), Some(last)) = (data.first_doses.first(), data.first_doses.last()) else {
        return message(TITLE, "No subject has been dosed yet.");
    };
    let (start, end) = (first.0 - Duration::days(7), last.0 + Duration::days(7));
    let mut series: Vec<(String, Vec<NaiveDate>)> = Vec::new();
    if closed {
        let mut by_arm: BTreeMap<&str, Vec<NaiveDate>> = BTreeMap::new();
        for (d, arm) in &data.first_doses {
            by_arm.entry(arm.as_deref().unwrap_or_default()).or_default().push(*d);
        }
        series.extend(by_arm.into_iter().map(|(arm, dates)| (arm.to_string(), dates)));
    }
    series.push((
        if closed { "Total" } else { "Dosed subjects" }.to_string(),
        data.first_doses.iter().map(|(d, _)| *d).collect(),
    ));
    let total = data.first_doses.len();
    draw(TITLE, |root| {
        let mut chart =
            chart_on(root, TITLE, 56).margin_right(44).build_cartesian_2d(start..end, 0..axis_max(total))?;
        mesh(&mut chart, "Date of first dose", "Dosed subjects (cumulative)")
            .x_labels(6)
            .x_label_formatter(&|d: &NaiveDate| d.format("%Y-%m-%d").to_string())
            .draw()?;
        let n = series.len();
        for (i, (label, dates)) in series.iter().enumerate() {
            // A step line: flat until the next first dose, then one step up.
            let mut points: Vec<(NaiveDate, i32)> = vec![(start, 0)];
            let mut k = 0;
            for d in dates {
                points.push((*d, k));
                k += 1;
                points.push((*d, k));
            }
            points.push((end, k));
            let c = if closed && i + 1 == n { BLACK } else { colour(i) };
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))?
                .label(format!("{label} ({})", dates.len()))
                .legend(line_key(c));
        }
        series_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// Adverse events per 4-week bucket of study time, one line per grade present.
pub(super) fn ae_by_grade(data: &ChartData) -> String {
    const TITLE: &str = "Adverse events by grade over time";
    if data.ae_onsets.is_empty() {
        return message(TITLE, "No adverse event with an onset date.");
    }
    // Bucket b covers study days 28b+1 ..= 28b+28; every onset before the first dose goes
    // to one bucket, b = -1 (histories can reach back years and would crush the axis).
    let bucket = |day: i64| if day >= 1 { (day - 1).div_euclid(28) } else { -1 };
    let mut counts: BTreeMap<i64, [usize; 6]> = BTreeMap::new();
    for (day, grade) in &data.ae_onsets {
        let slot = grade.map_or(5, |g| usize::from(g).clamp(1, 5) - 1);
        counts.entry(bucket(*day)).or_default()[slot] += 1;
    }
    let (lo, hi) = match (counts.keys().next(), counts.keys().next_back()) {
        // The axis starts at the first dose (or before, for pre-dose onsets) and shows at
        // least six bins, so that one bin is one bar, never the whole width.
        (Some(lo), Some(hi)) => ((*lo).min(0), (*hi).max((*lo).min(0) + 5)),
        _ => return message(TITLE, "No adverse event with an onset date."),
    };
    let max = counts.values().map(|c| c.iter().sum::<usize>()).max().unwrap_or(0);
    let present: Vec<usize> = (0..6).filter(|slot| counts.values().any(|c| c[*slot] > 0)).collect();
    const NAMES: [&str; 6] = ["Grade 1", "Grade 2", "Grade 3", "Grade 4", "Grade 5", "Not graded"];
    // One tick per bin, named by its weeks; every k-th when there are too many to read.
    let bins = usize::try_from(hi - lo + 1).unwrap_or(1);
    let every = i64::try_from(bins.div_ceil(13)).unwrap_or(1).max(1);
    let bin_label = |b: i64| if b < 0 { "before".to_string() } else { format!("{}–{}", 4 * b, 4 * b + 3) };
    let legend: Vec<(String, RGBColor)> =
        present.iter().map(|&slot| (NAMES[slot].to_string(), GRADE_COLOURS[slot])).collect();
    draw(TITLE, |root| {
        // The legend under the plot: a box in a corner would cover the bars of a busy period.
        let (plot, strip) = with_legend_strip(root, legend.len());
        let mut chart = chart_on(&plot, TITLE, 56)
            .build_cartesian_2d(lo as f64 - 0.5..hi as f64 + 0.5, 0..axis_max(max))?;
        // Bin names are written under each bin below, not as numeric ticks.
        mesh(&mut chart, "Study weeks of onset (4-week bins; week 0 = first dose)", "Adverse events (n)")
            .x_labels(0)
            .disable_x_mesh()
            .draw()?;
        for b in (lo..=hi).filter(|b| (b - lo) % every == 0) {
            let (px, py) = chart.backend_coord(&(b as f64, 0));
            root.draw(&Text::new(
                bin_label(b),
                (px, py + 6),
                tick_style().pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
        // One stacked bar per bin: grade 1 at the bottom, not graded on top.
        for &slot in &present {
            let c = GRADE_COLOURS[slot];
            let bars = counts.iter().filter(|(_, v)| v[slot] > 0).map(|(b, v)| {
                let below: usize = v[..slot].iter().sum();
                let (x0, x1) = (*b as f64 - 0.38, *b as f64 + 0.38);
                let (y0, y1) = (as_coord(below), as_coord(below + v[slot]));
                Rectangle::new([(x0, y0), (x1, y1)], c.filled())
            });
            chart.draw_series(bars)?;
        }
        // The total on top of each bar.
        chart.draw_series(counts.iter().map(|(b, v)| {
            let total: usize = v.iter().sum();
            Text::new(
                total.to_string(),
                (*b as f64, as_coord(total)),
                tick_style().pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
        legend_strip(&strip, &legend, Marker::Bar)
    })
}

/// A count as a chart coordinate.
fn as_coord(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// EDSS over study weeks, one line per subject; coloured by arm in a closed report.
pub(super) fn edss(trajectories: &[EdssTrajectory], closed: bool) -> String {
    const TITLE: &str = "EDSS trajectories";
    if trajectories.is_empty() {
        return message(TITLE, "No EDSS assessment of a dosed subject.");
    }
    let week = |day: i64| (if day >= 1 { day - 1 } else { day }) as f64 / 7.0;
    let days = trajectories.iter().flat_map(|t| t.points.iter().map(|(d, _)| week(*d)));
    let (min, max) = days.fold((0.0f64, 1.0f64), |(lo, hi), w| (lo.min(w), hi.max(w)));
    let arms = arms_of(trajectories.iter().map(|t| t.arm.as_deref()));
    // A legend of subjects is readable up to about a dozen lines.
    let subject_legend = !closed && trajectories.len() <= 12;
    let colour_of = |i: usize, t: &EdssTrajectory| match t.arm.as_deref() {
        Some(arm) if closed => colour(arms.iter().position(|a| *a == arm).unwrap_or(0)),
        _ => colour(i),
    };
    let legend: Vec<(String, RGBColor)> = if closed {
        arm_legend(&arms)
    } else if subject_legend {
        trajectories
            .iter()
            .enumerate()
            .map(|(i, t)| (t.subject.as_str().to_string(), colour_of(i, t)))
            .collect()
    } else {
        Vec::new()
    };
    draw(TITLE, |root| {
        let (plot, strip) = with_legend_strip(root, legend.len());
        let mut chart = chart_on(if legend.is_empty() { root } else { &plot }, TITLE, 50)
            .build_cartesian_2d((min - 2.0).floor()..(max * 1.05 + 2.0).ceil(), 0.0..10.0)?;
        mesh(&mut chart, "Study week (0 = first dose)", "EDSS (0–10)")
            .x_label_formatter(&|w: &f64| format!("{w:.0}"))
            .y_label_formatter(&|v: &f64| format!("{v:.1}"))
            .y_labels(11)
            .draw()?;
        for (i, t) in trajectories.iter().enumerate() {
            let c = colour_of(i, t);
            let points: Vec<(f64, f64)> = t.points.iter().map(|(d, v)| (week(*d), *v)).collect();
            chart.draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?;
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
        }
        if !legend.is_empty() {
            legend_strip(&strip, &legend, Marker::Line)?;
        }
        Ok(())
    })
}

/// Total new/enlarging T2 and Gd+ lesions per visit, as side-by-side bars.
pub(super) fn mri(rows: &[MriAtVisit]) -> String {
    const TITLE: &str = "MRI new lesions per visit";
    if rows.is_empty() {
        return message(TITLE, "No MRI scan recorded.");
    }
    let labels: Vec<String> = rows.iter().map(|r| r.visit.clone()).collect();
    let max = rows.iter().map(|r| r.total_new_t2.max(r.total_gd)).max().unwrap_or(0);
    let n = rows.len();
    let t2 = PALETTE[0];
    let gd = PALETTE[1];
    draw(TITLE, |root| {
        let mut chart = chart_on(root, TITLE, 56).build_cartesian_2d(
            -0.6..n as f64 - 0.4,
            0..axis_max(usize::try_from(max).unwrap_or(usize::MAX)),
        )?;
        // Visit names are written under each pair of bars below, not as numeric ticks.
        mesh(&mut chart, "Visit", "Lesions (total count)").x_labels(0).disable_x_mesh().draw()?;
        for (i, label) in labels.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64, 0));
            root.draw(&Text::new(
                label.clone(),
                (px, py + 6),
                tick_style().pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
        let bars = |offset: (f64, f64), value: fn(&MriAtVisit) -> u64, c: RGBColor| {
            rows.iter().enumerate().map(move |(i, r)| {
                let x = i as f64;
                let v = i32::try_from(value(r)).unwrap_or(i32::MAX);
                Rectangle::new([(x + offset.0, 0), (x + offset.1, v)], c.filled())
            })
        };
        chart
            .draw_series(bars((-0.36, -0.02), |r| r.total_new_t2, t2))?
            .label("New/enlarging T2")
            .legend(bar_key(t2));
        chart.draw_series(bars((0.02, 0.36), |r| r.total_gd, gd))?.label("Gd-enhancing").legend(bar_key(gd));
        // The count on top of each bar.
        let value_labels = rows.iter().enumerate().flat_map(|(i, r)| {
            let x = i as f64;
            [(x - 0.19, r.total_new_t2), (x + 0.19, r.total_gd)].map(|(x, v)| {
                Text::new(
                    v.to_string(),
                    (x, i32::try_from(v).unwrap_or(i32::MAX)),
                    tick_style().pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            })
        });
        chart.draw_series(value_labels)?;
        series_legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// The eDISH plot: peak ALT-or-AST against peak bilirubin (×ULN), log-log, with the
/// 3×/2× reference lines and the quadrant names.
pub(super) fn edish(points: &[EdishPoint], closed: bool) -> String {
    const TITLE: &str = "eDISH: peak ALT/AST vs peak bilirubin";
    if points.is_empty() {
        return message(TITLE, "No subject has both an ALT/AST and a bilirubin result with a ULN.");
    }
    let floor = 0.01;
    let xs = points.iter().map(|p| p.alt_ast_x_uln.max(floor));
    let ys = points.iter().map(|p| p.bili_x_uln.max(floor));
    let span = |vals: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = vals.fold((0.1f64, 10.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        (lo / 1.5, hi * 1.5)
    };
    let (x_lo, x_hi) = span(&mut xs.clone());
    let (y_lo, y_hi) = span(&mut ys.clone());
    let arms = arms_of(points.iter().map(|p| p.arm.as_deref()));
    let legend: Vec<(String, RGBColor)> = if closed { arm_legend(&arms) } else { Vec::new() };
    draw(TITLE, |root| {
        let (plot, strip) = with_legend_strip(root, legend.len());
        let mut chart = chart_on(if legend.is_empty() { root } else { &plot }, TITLE, 56)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())?;
        mesh(&mut chart, "Peak ALT or AST (×ULN, log scale)", "Peak total bilirubin (×ULN, log scale)")
            .x_label_formatter(&|v: &f64| short_number(*v))
            .y_label_formatter(&|v: &f64| short_number(*v))
            .draw()?;
        let dashed = BLACK.mix(0.6).stroke_width(1);
        chart.draw_series(DashedLineSeries::new(vec![(3.0, y_lo), (3.0, y_hi)], 6, 4, dashed))?;
        chart.draw_series(DashedLineSeries::new(vec![(x_lo, 2.0), (x_hi, 2.0)], 6, 4, dashed))?;
        let grey = BLACK.mix(0.7);
        let corner = |x: f64, y: f64, h: HPos, v: VPos, text: &str| {
            Text::new(text.to_string(), (x, y), tick_style().color(&grey).pos(Pos::new(h, v)))
        };
        chart.draw_series([
            corner(x_hi / 1.08, y_hi / 1.08, HPos::Right, VPos::Top, "Potential Hy's law"),
            corner(x_lo * 1.08, y_hi / 1.08, HPos::Left, VPos::Top, "Cholestasis"),
            corner(x_hi / 1.08, y_lo * 1.08, HPos::Right, VPos::Bottom, "Temple's corollary"),
            corner(x_lo * 1.08, y_lo * 1.08, HPos::Left, VPos::Bottom, "Normal"),
            corner(3.0 * 1.04, y_lo * 1.6, HPos::Left, VPos::Bottom, "3×ULN"),
            corner(x_lo * 1.08, 2.0 * 1.04, HPos::Left, VPos::Bottom, "2×ULN"),
        ])?;
        let at = |p: &EdishPoint| (p.alt_ast_x_uln.max(floor), p.bili_x_uln.max(floor));
        if closed {
            for (i, arm) in arms.iter().enumerate() {
                let c = colour(i);
                let mine = points.iter().filter(|p| p.arm.as_deref() == Some(*arm));
                chart.draw_series(mine.map(|p| Circle::new(at(p), 4, c.filled())))?;
            }
        } else {
            let c = colour(0);
            chart.draw_series(points.iter().map(|p| Circle::new(at(p), 4, c.filled())))?;
        }
        // Name the potential Hy's law cases: the DSMB will ask for them.
        chart.draw_series(points.iter().filter(|p| p.quadrant == Quadrant::PotentialHysLaw).map(|p| {
            Text::new(
                p.subject.as_str().to_string(),
                at(p),
                tick_style().pos(Pos::new(HPos::Right, VPos::Bottom)),
            )
        }))?;
        if !legend.is_empty() {
            legend_strip(&strip, &legend, Marker::Dot)?;
        }
        Ok(())
    })
}

/// `0.1`, `1`, `30`: axis numbers without trailing zeros.
fn short_number(v: f64) -> String {
    let s = if v >= 10.0 { format!("{v:.0}") } else { format!("{v:.2}") };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(short_number(0.1), "0.1");
        assert_eq!(short_number(1.0), "1");
        assert_eq!(short_number(2.5), "2.5");
        assert_eq!(short_number(30.0), "30");
    }

    #[test]
    fn an_empty_chart_says_so() {
        let svg = mri(&[]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("No MRI scan recorded."));
    }

    /// The texts of an SVG, in document order.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
            .collect()
    }

    #[test]
    fn adverse_events_over_time_have_one_named_tick_per_bin_and_narrow_bars() {
        let data = ChartData {
            ae_onsets: vec![(-5, None), (1, Some(1)), (2, Some(2)), (7, Some(1)), (30, Some(3))],
            ..ChartData::default()
        };
        let svg = ae_by_grade(&data);
        let texts = texts(&svg);
        let bins = ["before", "0–3", "4–7", "8–11", "12–15", "16–19"];
        let at: Vec<usize> =
            bins.iter().map(|b| texts.iter().position(|t| t == b).unwrap_or(usize::MAX)).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1] && w[1] != usize::MAX), "{texts:?}");
        assert!(!texts.iter().any(|t| t == "-0"), "{texts:?}");
        // The bars: one per occupied bin, each well under a sixth of the plot.
        let widths: Vec<f64> = svg
            .split("<rect")
            .skip(1)
            .filter(|r| !r.contains("fill=\"#FFFFFF\"") && r.contains("opacity=\"1\""))
            .filter_map(|r| r.split("width=\"").nth(1)?.split('"').next()?.parse().ok())
            .filter(|w| *w > 20.0)
            .collect();
        assert!(!widths.is_empty(), "{svg}");
        assert!(widths.iter().all(|w| *w < f64::from(WIDTH) / 6.0), "{widths:?}");
    }
}
