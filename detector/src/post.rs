//! From the network's raw output to detections: confidence threshold, per-class non-maximum
//! suppression, and boxes mapped back from the letterboxed frame to the original image. Pure code on
//! the host, one image at a time.

use serde::Serialize;

/// Thresholds of post-processing, ultralytics' defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PostOptions {
    /// Minimum class score to keep a box.
    pub confidence: f32,
    /// Boxes of one class overlapping more than this (intersection over union) are suppressed.
    pub iou: f32,
    /// Most detections kept per image.
    pub max_detections: usize,
}

impl Default for PostOptions {
    fn default() -> Self {
        Self { confidence: 0.25, iou: 0.7, max_detections: 300 }
    }
}

/// One detected object, its box in pixels of the original image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    pub class_id: usize,
    pub confidence: f32,
    /// Left, top, right, bottom.
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// How an image was fitted into the network's input: scaled by `scale`, then shifted by the padding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    /// Original image size, to clip boxes.
    pub width: u32,
    pub height: u32,
}

impl Letterbox {
    /// The identity: the image is the input.
    pub fn none(width: u32, height: u32) -> Self {
        Self { scale: 1.0, pad_x: 0.0, pad_y: 0.0, width, height }
    }
}

fn iou(a: &Detection, b: &Detection) -> f32 {
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = w * h;
    let union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Decodes one image's output, `rows = 4 + classes` rows of `anchors` values each (row-major, as
/// `[4 + classes, A]`): each anchor's best class above the threshold, per-class NMS, best first, boxes
/// mapped back through `letterbox` and clipped to the image.
pub fn detections(output: &[f32], classes: usize, anchors: usize, letterbox: &Letterbox, options: &PostOptions) -> Vec<Detection> {
    assert_eq!(output.len(), (4 + classes) * anchors, "output of {classes} classes and {anchors} anchors");
    let at = |row: usize, a: usize| output[row * anchors + a];
    let mut candidates: Vec<Detection> = Vec::new();
    for a in 0..anchors {
        let (class_id, confidence) =
            (0..classes).map(|c| (c, at(4 + c, a))).fold((0, f32::NEG_INFINITY), |best, x| if x.1 > best.1 { x } else { best });
        // NaN scores compare false and are dropped with the low ones.
        if confidence.partial_cmp(&options.confidence).is_none_or(|o| o.is_lt()) {
            continue;
        }
        let (cx, cy, w, h) = (at(0, a), at(1, a), at(2, a), at(3, a));
        candidates.push(Detection { class_id, confidence, x1: cx - w / 2.0, y1: cy - h / 2.0, x2: cx + w / 2.0, y2: cy + h / 2.0 });
    }
    candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut kept: Vec<Detection> = Vec::new();
    for candidate in candidates {
        if kept.len() == options.max_detections {
            break;
        }
        if kept.iter().all(|k| k.class_id != candidate.class_id || iou(k, &candidate) <= options.iou) {
            kept.push(candidate);
        }
    }
    let (max_x, max_y) = (letterbox.width as f32, letterbox.height as f32);
    for d in &mut kept {
        d.x1 = ((d.x1 - letterbox.pad_x) / letterbox.scale).clamp(0.0, max_x);
        d.x2 = ((d.x2 - letterbox.pad_x) / letterbox.scale).clamp(0.0, max_x);
        d.y1 = ((d.y1 - letterbox.pad_y) / letterbox.scale).clamp(0.0, max_y);
        d.y2 = ((d.y2 - letterbox.pad_y) / letterbox.scale).clamp(0.0, max_y);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an output of `classes` classes from (cx, cy, w, h, class, score) boxes.
    fn output(classes: usize, boxes: &[(f32, f32, f32, f32, usize, f32)]) -> Vec<f32> {
        let anchors = boxes.len();
        let mut out = vec![0.0; (4 + classes) * anchors];
        for (a, &(cx, cy, w, h, class, score)) in boxes.iter().enumerate() {
            for (row, v) in [cx, cy, w, h].into_iter().enumerate() {
                out[row * anchors + a] = v;
            }
            out[(4 + class) * anchors + a] = score;
        }
        out
    }

    fn run(classes: usize, boxes: &[(f32, f32, f32, f32, usize, f32)]) -> Vec<Detection> {
        detections(&output(classes, boxes), classes, boxes.len(), &Letterbox::none(640, 640), &PostOptions::default())
    }

    #[test]
    fn overlapping_boxes_of_one_class_keep_the_best() {
        let found = run(2, &[(100.0, 100.0, 50.0, 50.0, 0, 0.8), (102.0, 101.0, 50.0, 50.0, 0, 0.9), (300.0, 300.0, 40.0, 40.0, 0, 0.5)]);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].confidence, found[0].x1, found[0].y1), (0.9, 77.0, 76.0));
        assert_eq!(found[1].confidence, 0.5);
    }

    #[test]
    fn overlapping_boxes_of_two_classes_are_both_kept() {
        let found = run(2, &[(100.0, 100.0, 50.0, 50.0, 0, 0.8), (100.0, 100.0, 50.0, 50.0, 1, 0.7)]);
        assert_eq!(found.iter().map(|d| d.class_id).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn boxes_at_the_border_are_clipped_and_mapped_back() {
        // A 1280×960 image letterboxed into 640×640: scale 0.5, 80 px of padding above and below.
        let letterbox = Letterbox { scale: 0.5, pad_x: 0.0, pad_y: 80.0, width: 1280, height: 960 };
        let out = output(1, &[(630.0, 100.0, 40.0, 60.0, 0, 0.9)]);
        let found = detections(&out, 1, 1, &letterbox, &PostOptions::default());
        assert_eq!((found[0].x1, found[0].x2, found[0].y1, found[0].y2), (1220.0, 1280.0, 0.0, 100.0));
    }

    #[test]
    fn nothing_above_the_threshold_is_no_detection() {
        assert!(run(3, &[(100.0, 100.0, 50.0, 50.0, 2, 0.2), (10.0, 10.0, 5.0, 5.0, 0, f32::NAN)]).is_empty());
        assert!(run(3, &[]).is_empty());
    }

    #[test]
    fn at_most_max_detections() {
        let boxes: Vec<_> = (0..400).map(|i| ((i % 20) as f32 * 30.0 + 15.0, (i / 20) as f32 * 30.0 + 15.0, 10.0, 10.0, 0, 0.5)).collect();
        assert_eq!(run(1, &boxes).len(), 300);
    }
}
