//! The report's figures as SVG text, drawn with plotters: per-batch line charts (one platform with its
//! average, or all platforms overlaid) and box plots, as the paper's Figures 3–16.

use plotters::prelude::*;

const SIZE: (u32, u32) = (720, 300);

fn colour(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 6] =
        [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];
    COLOURS[i % COLOURS.len()]
}

/// One series of a chart: its name, values and colour index (a platform keeps its colour in every
/// figure).
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    pub name: &'a str,
    pub values: &'a [f64],
    pub colour: usize,
}

/// The y range of `series`, with a band at the top kept free for the legend (`legend` rows of it),
/// so that the legend never covers data.
fn y_range(series: &[Series<'_>], legend: usize) -> (f64, f64) {
    let values = series.iter().flat_map(|s| s.values.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-9);
    let lo = (lo - pad).max(0.0).min(lo);
    // Each legend row takes about 22 of the plot's ~230 pixels.
    let free = (legend as f64 * 22.0 + 12.0) / 230.0;
    let top = if legend == 0 { hi + pad } else { lo + (hi + pad - lo) / (1.0 - free.min(0.6)) };
    (lo, top)
}

/// Points to draw for a series of `n` values over `columns` pixel columns: all of them when they
/// fit; else, per column, the first and last index and those of its minimum and maximum, in order,
/// so that every peak and dip stays visible and the SVG stays small (the statistics never see this).
pub fn decimate(values: &[f64], columns: usize) -> Vec<(usize, f64)> {
    let finite: Vec<(usize, f64)> = values.iter().copied().enumerate().filter(|(_, v)| v.is_finite()).collect();
    if finite.len() <= 4 * columns.max(1) {
        return finite;
    }
    let per = finite.len().div_ceil(columns);
    let mut out = Vec::with_capacity(4 * columns);
    for chunk in finite.chunks(per) {
        let min = chunk.iter().copied().reduce(|a, b| if b.1 < a.1 { b } else { a }).expect("chunks are not empty");
        let max = chunk.iter().copied().reduce(|a, b| if b.1 > a.1 { b } else { a }).expect("chunks are not empty");
        let mut keep = vec![chunk[0], min, max, chunk[chunk.len() - 1]];
        keep.sort_by_key(|p| p.0);
        keep.dedup_by_key(|p| p.0);
        out.extend(keep);
    }
    out
}

/// Plot width in pixels of a chart `width` wide (the y labels take the rest).
fn columns(width: u32) -> usize {
    width.saturating_sub(90) as usize
}

/// Per-batch values of each series against batch position; with `averages`, a dashed line at each
/// series' mean. `size` is the chart's (width, height): the full size, or a small multiple.
/// Returns SVG text.
pub fn lines(title: &str, unit: &str, series: &[Series<'_>], averages: bool) -> String {
    lines_sized(title, unit, series, averages, SIZE)
}

/// [`lines`] at a given size: a small multiple is (360, 180).
pub fn lines_sized(title: &str, unit: &str, series: &[Series<'_>], averages: bool, size: (u32, u32)) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let _ = root.fill(&WHITE);
        let len = series.iter().map(|s| s.values.len()).max().unwrap_or(1).max(2);
        let legend = if series.len() > 1 { series.len() } else { 0 };
        let (lo, hi) = y_range(series, legend);
        let small = size.1 < SIZE.1;
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", if small { 13 } else { 16 }))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..(len - 1) as f64, lo..hi)
        else {
            return svg_error(title);
        };
        // Batches are whole numbers: integer ticks, labelled without decimals.
        let ticks = (len - 1).clamp(1, if small { 5 } else { 10 });
        let _ = chart
            .configure_mesh()
            .x_desc("batch")
            .y_desc(unit)
            .x_labels(ticks + 1)
            .x_label_formatter(&|x| format!("{}", x.round() as i64))
            .y_label_formatter(&|y| super::content::short(*y))
            .light_line_style(WHITE.mix(0.0))
            .draw();
        for s in series {
            let (name, values, c) = (s.name, s.values, colour(s.colour));
            let points = decimate(values, columns(size.0)).into_iter().map(|(x, v)| (x as f64, v));
            if let Ok(drawn) = chart.draw_series(LineSeries::new(points, c.stroke_width(1))) {
                drawn.label(name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            }
            let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
            if averages && !finite.is_empty() {
                let mean = finite.iter().sum::<f64>() / finite.len() as f64;
                let step = (len / 60).max(1);
                let dashes = (0..len - 1).step_by(2 * step).map(|x| PathElement::new(vec![(x as f64, mean), ((x + step).min(len - 1) as f64, mean)], BLACK.mix(0.7).stroke_width(1)));
                let _ = chart.draw_series(dashes);
            }
        }
        if legend > 0 {
            let _ = chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).background_style(WHITE.mix(0.8)).border_style(BLACK.mix(0.3)).draw();
        }
        let _ = root.present();
    }
    svg
}

/// One box per series (quartiles, whiskers to 1.5 IQR as plotters draws them), each with its
/// median's confidence interval, when given, as a black bar beside it. Returns SVG text.
pub fn boxes(title: &str, unit: &str, series: &[Series<'_>], median_ci: &[Option<(f64, f64)>]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let _ = root.fill(&WHITE);
        let names: Vec<String> = series.iter().map(|s| s.name.to_string()).collect();
        let (lo, hi) = y_range(series, 0);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(names.as_slice().into_segmented(), lo as f32..hi as f32)
        else {
            return svg_error(title);
        };
        // Platform names as they are, not as Rust strings in quotes.
        let label = |v: &SegmentValue<&String>| match v {
            SegmentValue::CenterOf(name) | SegmentValue::Exact(name) => (*name).clone(),
            SegmentValue::Last => String::new(),
        };
        let _ = chart.configure_mesh().x_desc("platform").y_desc(unit).x_label_formatter(&label).y_label_formatter(&|y| super::content::short(f64::from(*y))).light_line_style(WHITE.mix(0.0)).draw();
        for (i, s) in series.iter().enumerate() {
            let finite: Vec<f64> = s.values.iter().copied().filter(|v| v.is_finite()).collect();
            if finite.is_empty() {
                continue;
            }
            let quartiles = Quartiles::new(&finite);
            let element = Boxplot::new_vertical(SegmentValue::CenterOf(&names[i]), &quartiles).width(40).style(colour(s.colour));
            let _ = chart.draw_series(std::iter::once(element));
            if let Some(Some((ci_lo, ci_hi))) = median_ci.get(i) {
                let median = quartiles.median() as f32;
                let bar = ErrorBar::new_vertical(SegmentValue::CenterOf(&names[i]), *ci_lo as f32, median, *ci_hi as f32, BLACK.stroke_width(3), 12);
                let _ = chart.draw_series(std::iter::once(bar));
            }
        }
        let _ = root.present();
    }
    svg
}

/// One line of a chart against a measured x (offered load): its name, points and colour index.
#[derive(Debug, Clone)]
pub struct XySeries<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
    pub colour: usize,
}

/// The knee chart: a latency against offered load, one line (with a mark per stage) per series,
/// and the target as a dashed horizontal line. Returns SVG text.
pub fn knee(title: &str, x_desc: &str, unit: &str, series: &[XySeries<'_>], target: Option<f64>) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let _ = root.fill(&WHITE);
        let points = || series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite());
        let x_hi = points().map(|(x, _)| x).fold(0.0, f64::max).max(1e-9) * 1.05;
        let y_hi = points().map(|(_, y)| y).chain(target).fold(0.0, f64::max).max(1e-9) * 1.1;
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_hi, 0f64..y_hi)
        else {
            return svg_error(title);
        };
        let _ = chart.configure_mesh().x_desc(x_desc).y_desc(unit).light_line_style(WHITE.mix(0.0)).draw();
        if let Some(t) = target {
            let dashes = (0..40).map(|i| PathElement::new(vec![(x_hi * i as f64 / 40.0, t), (x_hi * (i as f64 + 0.5) / 40.0, t)], BLACK.mix(0.6).stroke_width(1)));
            if let Ok(drawn) = chart.draw_series(dashes) {
                drawn.label(format!("target {t} {unit}")).legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.6).stroke_width(1)));
            }
        }
        for s in series {
            let c = colour(s.colour);
            let mut pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            if let Ok(drawn) = chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2))) {
                drawn.label(s.name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            }
            let _ = chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())));
        }
        let _ = chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).background_style(WHITE.mix(0.8)).border_style(BLACK.mix(0.3)).draw();
        let _ = root.present();
    }
    svg
}

fn svg_error(title: &str) -> String {
    format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"40\"><text x=\"10\" y=\"25\">{title}: no chart (no data)</text></svg>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_series() {
        let (a, b) = ([1.0, 1.2, 0.9, 1.1], [0.5, 0.6, 0.4, 0.55]);
        let two = [Series { name: "aws", values: &a, colour: 0 }, Series { name: "azure", values: &b, colour: 1 }];
        let svg = lines("Upload time", "s/MiB", &two, true);
        assert!(svg.starts_with("<svg") && svg.contains("aws") && svg.contains("azure") && svg.contains("polyline"), "{svg}");
        let svg = boxes("Upload time", "s/MiB", &two, &[Some((1.0, 1.15)), None]);
        assert!(svg.starts_with("<svg") && svg.contains("aws") && !svg.contains("\"aws\"") && !svg.contains("&quot;aws") && svg.contains("<rect"), "{svg}");
        assert!(lines("Empty", "s", &[], false).starts_with("<svg"));
        // Whole-number batch labels: "5", never "5.0".
        let long: Vec<f64> = (0..40).map(f64::from).collect();
        let svg = lines("Long", "s", &[Series { name: "aws", values: &long, colour: 0 }], false);
        let labels: Vec<&str> = svg.lines().map(str::trim).filter(|l| !l.starts_with('<') && !l.is_empty()).collect();
        assert!(labels.contains(&"5") && labels.contains(&"35"), "{labels:?}");
        assert!(labels.iter().all(|l| !l.ends_with(".0")), "no decimals on the batch axis: {labels:?}");
    }

    #[test]
    fn long_series_are_decimated_keeping_every_peak_and_dip() {
        let mut values: Vec<f64> = (0..100_000).map(|i| f64::from(i % 7)).collect();
        values[54_321] = 100.0;
        values[12_345] = -50.0;
        let drawn = decimate(&values, 600);
        assert!(drawn.len() <= 4 * 600, "{} points drawn", drawn.len());
        assert!(drawn.contains(&(54_321, 100.0)) && drawn.contains(&(12_345, -50.0)));
        assert!(drawn.windows(2).all(|w| w[0].0 < w[1].0), "in order");
        let short = [1.0, f64::NAN, 3.0];
        assert_eq!(decimate(&short, 600), [(0, 1.0), (2, 3.0)], "short series are drawn whole");
    }
}
