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

fn y_range(series: &[Series<'_>]) -> (f64, f64) {
    let values = series.iter().flat_map(|s| s.values.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-9);
    ((lo - pad).max(0.0).min(lo), hi + pad)
}

/// Per-batch values of each series against batch position; with `averages`, a dashed line at each
/// series' mean. Returns SVG text.
pub fn lines(title: &str, unit: &str, series: &[Series<'_>], averages: bool) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let _ = root.fill(&WHITE);
        let len = series.iter().map(|s| s.values.len()).max().unwrap_or(1).max(2);
        let (lo, hi) = y_range(series);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..(len - 1) as f64, lo..hi)
        else {
            return svg_error(title);
        };
        let _ = chart.configure_mesh().x_desc("batch").y_desc(unit).light_line_style(WHITE.mix(0.0)).draw();
        for s in series {
            let (name, values, c) = (s.name, s.values, colour(s.colour));
            let points = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(x, v)| (x as f64, *v));
            if let Ok(drawn) = chart.draw_series(LineSeries::new(points, c.stroke_width(1))) {
                drawn.label(name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            }
            if averages && !values.is_empty() {
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let dashes = (0..len - 1).step_by(2).map(|x| PathElement::new(vec![(x as f64, mean), ((x + 1) as f64, mean)], BLACK.mix(0.7).stroke_width(1)));
                let _ = chart.draw_series(dashes);
            }
        }
        let _ = chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK.mix(0.3)).draw();
        let _ = root.present();
    }
    svg
}

/// One box per series (quartiles, whiskers to 1.5 IQR as plotters draws them). Returns SVG text.
pub fn boxes(title: &str, unit: &str, series: &[Series<'_>]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let _ = root.fill(&WHITE);
        let names: Vec<String> = series.iter().map(|s| s.name.to_string()).collect();
        let (lo, hi) = y_range(series);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(names.as_slice().into_segmented(), lo as f32..hi as f32)
        else {
            return svg_error(title);
        };
        let _ = chart.configure_mesh().y_desc(unit).light_line_style(WHITE.mix(0.0)).draw();
        for (i, s) in series.iter().enumerate() {
            let finite: Vec<f64> = s.values.iter().copied().filter(|v| v.is_finite()).collect();
            if finite.is_empty() {
                continue;
            }
            let quartiles = Quartiles::new(&finite);
            let element = Boxplot::new_vertical(SegmentValue::CenterOf(&names[i]), &quartiles).width(40).style(colour(s.colour));
            let _ = chart.draw_series(std::iter::once(element));
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
        let svg = boxes("Upload time", "s/MiB", &two);
        assert!(svg.starts_with("<svg") && svg.contains("aws") && svg.contains("<rect"));
        assert!(lines("Empty", "s", &[], false).starts_with("<svg"));
    }
}
