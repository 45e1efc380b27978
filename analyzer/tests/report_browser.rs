//! The HTML report opened in a real headless Chromium shows its charts: a screenshot is taken and the
//! charts' line colours are looked for in its pixels. `scripts/test.sh` installs Debian's chromium.

mod common;

use analyzer::report::config::{Catalog, DEFAULT_CATALOG, DEFAULT_REQUIREMENTS, Requirements};
use analyzer::report::{Options, build, render};

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Chromium is needed for this test (scripts/test.sh installs Debian's chromium)")
}

#[test]
fn headless_chromium_renders_the_reports_charts() {
    let metrics = common::metrics("browser", &common::PAPERLIKE, 40, 1, 3);
    let catalog = Catalog::parse(DEFAULT_CATALOG).unwrap();
    let requirements = Requirements::parse(DEFAULT_REQUIREMENTS).unwrap();
    let html = render(&build("browser", &metrics, &catalog, &requirements, &Options::default())).html;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html).unwrap();
    // A desktop window, and a narrow (mobile) one: the charts shrink to fit, they are not cut off.
    for (name, size, least) in [("shot.png", "1200,5000", 1000), ("narrow.png", "420,9000", 300)] {
        let shot = dir.path().join(name);
        let status = std::process::Command::new(chromium())
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"])
            .args(["--disable-component-update", "--disable-sync", "--hide-scrollbars", &format!("--window-size={size}")])
            .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("file://{}", page.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "chromium failed");
        if let Some(keep) = std::env::var_os("KEEP_SCREENSHOT") {
            std::fs::copy(&shot, std::path::Path::new(&keep).with_file_name(name)).unwrap();
        }
        let image = image::open(&shot).expect("a PNG screenshot").to_rgb8();
        let count = |rgb: [u8; 3]| image.pixels().filter(|p| p.0.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) < 24)).count();
        // The first platform's series is drawn in blue, the second's in orange (charts.rs).
        let (blue, orange) = (count([31, 119, 180]), count([255, 127, 14]));
        assert!(blue > least && orange > least, "{name}: chart lines visible: {blue} blue and {orange} orange pixels");
        // Nothing wider than the window: the right edge column is page background.
        let right = image.width() - 1;
        let edge_ink = (0..image.height()).filter(|&y| image.get_pixel(right, y).0.iter().any(|c| *c < 200)).count();
        assert!(edge_ink < 50, "{name}: {edge_ink} dark pixels on the right edge: something is cut off");
    }
}
