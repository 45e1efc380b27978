//! The JSON the server speaks and its clients read: one contract for `/invocations`, `/score` and the
//! web page.
//!
//! Requests carry either one image as the raw body (`image/jpeg`, `image/png`, `application/x-image`)
//! or JSON with base64 images: `{"image": "..."}` or `{"images": ["...", ...]}` (the Azure ML and App
//! Service style), or Vertex AI's prediction request, `{"instances": [{"b64": "..."}, ...],
//! "parameters": {"confidence": 0.25}}`, whose answer is the same [`Response`] (its `predictions`,
//! one per instance, are what Vertex AI's contract asks for). A confidence threshold can come as
//! `?conf=`, a `"conf"` field or Vertex's `parameters.confidence`.

use std::time::Duration;

use base64::Engine;
use detector::Detector;
use serde::{Deserialize, Serialize};

use crate::batcher::Answer;

/// One detected object, its box in the original image's pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub class_id: usize,
    pub class_name: String,
    pub confidence: f32,
    /// Left, top, right, bottom.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// Detections of one image of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub width: u32,
    pub height: u32,
    pub detections: Vec<Detection>,
}

/// Which model answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub variant: String,
    pub classes: usize,
    pub input_size: u32,
    pub sha256: String,
    pub device: String,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// One entry per image, in request order.
    pub predictions: Vec<Prediction>,
    /// Time in the network for the forward passes that served this request (the longest one when the
    /// images went into several), milliseconds.
    pub inference_ms: f64,
    /// Longest time an image of this request waited in the queue before its forward pass.
    pub queue_ms: f64,
    /// Most images that shared a forward pass with an image of this request.
    pub batch_size: usize,
    pub model: ModelInfo,
}

/// A failed request: one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// The JSON request body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRequest {
    pub image: Option<String>,
    #[serde(default)]
    pub images: Vec<String>,
    pub conf: Option<f32>,
    /// Vertex AI's instances: `{"b64": "..."}` (its convention for binary data) or a bare string.
    #[serde(default)]
    pub instances: Vec<Instance>,
    /// Vertex AI's parameters of the whole request.
    pub parameters: Option<Parameters>,
}

/// One instance of a Vertex AI prediction request.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Instance {
    Binary { b64: String },
    Text(String),
}

/// The parameters of a Vertex AI prediction request this server reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    pub confidence: Option<f32>,
}

/// A request body the server cannot use, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    #[error("unsupported content type {0:?}: send image/jpeg, image/png, application/x-image, application/json or multipart/form-data")]
    ContentType(String),
    #[error("{0}")]
    Json(String),
    #[error("malformed multipart body: {0}")]
    Multipart(String),
    #[error("no image in the request")]
    Empty,
    #[error("{given} images in one request; at most {limit}")]
    TooMany { given: usize, limit: usize },
}

/// The images of a request and the threshold it asked for.
#[derive(Debug, Default)]
pub struct Parsed {
    pub images: Vec<Vec<u8>>,
    pub conf: Option<f32>,
}

/// Splits a request body into its images, by content type; refuses more than `max_images`.
pub fn parse_body(content_type: Option<&str>, body: &[u8], max_images: usize) -> Result<Parsed, BodyError> {
    let essence = content_type.unwrap_or("application/octet-stream").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let parsed = match essence.as_str() {
        "image/jpeg" | "image/jpg" | "image/png" | "application/x-image" | "application/octet-stream" => {
            Parsed { images: vec![body.to_vec()], conf: None }
        }
        "application/json" => {
            let request: JsonRequest = serde_json::from_slice(body).map_err(|e| BodyError::Json(format!("invalid JSON body: {e}")))?;
            let mut encoded = request.images;
            encoded.extend(request.image);
            encoded.extend(request.instances.into_iter().map(|i| match i {
                Instance::Binary { b64 } | Instance::Text(b64) => b64,
            }));
            let conf = request.conf.or(request.parameters.and_then(|p| p.confidence));
            let images = encoded
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    base64::engine::general_purpose::STANDARD
                        .decode(strip_data_url(text))
                        .map_err(|e| BodyError::Json(format!("image {i} is not base64: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Parsed { images, conf }
        }
        "multipart/form-data" => {
            let boundary = content_type.and_then(boundary).ok_or_else(|| BodyError::Multipart("no boundary in the content type".into()))?;
            multipart(body, &boundary, max_images)?
        }
        other => return Err(BodyError::ContentType(other.to_owned())),
    };
    if parsed.images.is_empty() || parsed.images.iter().all(Vec::is_empty) {
        return Err(BodyError::Empty);
    }
    if parsed.images.len() > max_images {
        return Err(BodyError::TooMany { given: parsed.images.len(), limit: max_images });
    }
    Ok(parsed)
}

/// Accepts `data:image/jpeg;base64,....` as browsers produce it, as well as bare base64.
fn strip_data_url(text: &str) -> &str {
    match text.split_once(";base64,") {
        Some((head, data)) if head.starts_with("data:") => data,
        _ => text,
    }
}

/// The `boundary` parameter of a `multipart/form-data` content type (quoted or not, 1 to 70
/// characters as RFC 2046 allows).
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        (!value.is_empty() && value.len() <= 70 && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')).then(|| value.to_owned())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Splits a `multipart/form-data` body (RFC 7578) into its images (parts with a file name or an
/// image content type, in order) and its `conf` field. Strict: a missing closing delimiter, a part
/// without headers or name, or more parts than `max_images` allows is refused before anything is
/// copied out of the body.
fn multipart(body: &[u8], boundary: &str, max_images: usize) -> Result<Parsed, BodyError> {
    let bad = |why: &str| BodyError::Multipart(why.to_owned());
    let delimiter = format!("--{boundary}");
    let start = find(body, delimiter.as_bytes()).ok_or_else(|| bad("no opening delimiter"))?;
    let separator = format!("\r\n--{boundary}");
    let mut rest = &body[start + delimiter.len()..];
    let mut spans = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            break; // the closing delimiter
        }
        rest = rest.strip_prefix(b"\r\n").ok_or_else(|| bad("a delimiter not followed by a line break"))?;
        let end = find(rest, separator.as_bytes()).ok_or_else(|| bad("no closing delimiter"))?;
        spans.push(&rest[..end]);
        if spans.len() > max_images + 1 {
            return Err(BodyError::TooMany { given: spans.len(), limit: max_images });
        }
        rest = &rest[end + separator.len()..];
    }
    let mut parsed = Parsed::default();
    for part in spans {
        let split = find(part, b"\r\n\r\n").ok_or_else(|| bad("a part without headers"))?;
        let head = std::str::from_utf8(&part[..split]).map_err(|_| bad("part headers are not UTF-8"))?;
        let content = &part[split + 4..];
        let (mut name, mut filename, mut image_type) = (None, false, false);
        for line in head.split("\r\n") {
            let (key, value) = line.split_once(':').ok_or_else(|| bad("a part header without a colon"))?;
            if key.trim().eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').skip(1) {
                    match param.split_once('=').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"'))) {
                        Some((k, v)) if k == "name" => name = Some(v.to_owned()),
                        Some((k, _)) if k == "filename" => filename = true,
                        _ => {}
                    }
                }
            } else if key.trim().eq_ignore_ascii_case("content-type") {
                image_type = value.trim().to_ascii_lowercase().starts_with("image/");
            }
        }
        let name = name.ok_or_else(|| bad("a part without a name"))?;
        if name == "conf" && !filename {
            let text = std::str::from_utf8(content).map_err(|_| bad("conf is not text"))?;
            parsed.conf = Some(text.trim().parse().map_err(|_| bad("conf is not a number"))?);
        } else if filename || image_type {
            parsed.images.push(content.to_vec());
        } else {
            return Err(BodyError::Multipart(format!("unexpected field {name:?} (send images as files, and conf)")));
        }
    }
    Ok(parsed)
}

/// Images larger than this many pixels (40 MP) are refused before decoding.
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// What a server (or the in-process model) tells about its model.
pub fn model_info(detector: &Detector, device: &str) -> ModelInfo {
    ModelInfo {
        variant: detector.model().variant().to_string(),
        classes: detector.model().classes(),
        input_size: detector.input_size,
        sha256: detector.weights_sha256.clone(),
        device: device.to_owned(),
    }
}

/// Builds the JSON answer of one request from its images' answers.
pub fn response(answers: Vec<Answer>, info: &ModelInfo, names: &[String]) -> Response {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Response {
        inference_ms: answers.iter().map(|a| ms(a.inference)).fold(0.0, f64::max),
        queue_ms: answers.iter().map(|a| ms(a.queued)).fold(0.0, f64::max),
        batch_size: answers.iter().map(|a| a.batch_size).max().unwrap_or(0),
        predictions: answers
            .into_iter()
            .map(|a| Prediction {
                width: a.detections.width,
                height: a.detections.height,
                detections: a
                    .detections
                    .detections
                    .iter()
                    .map(|d| Detection {
                        class_id: d.class_id,
                        class_name: names.get(d.class_id).cloned().unwrap_or_else(|| d.class_id.to_string()),
                        confidence: d.confidence,
                        bbox: [d.x1, d.y1, d.x2, d.y2],
                    })
                    .collect(),
            })
            .collect(),
        model: info.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_json_bodies_give_their_images() {
        let raw = parse_body(Some("image/jpeg"), b"\xff\xd8jpeg", 4).unwrap();
        assert_eq!((raw.images, raw.conf), (vec![b"\xff\xd8jpeg".to_vec()], None));
        let b64 = base64::engine::general_purpose::STANDARD.encode(b"png!");
        let body = format!(r#"{{"images": ["{b64}", "data:image/png;base64,{b64}"], "conf": 0.5}}"#);
        let json = parse_body(Some("application/json; charset=utf-8"), body.as_bytes(), 4).unwrap();
        assert_eq!((json.images.len(), json.images[1].as_slice(), json.conf), (2, &b"png!"[..], Some(0.5)));
        let one = parse_body(Some("application/json"), format!(r#"{{"image": "{b64}"}}"#).as_bytes(), 1).unwrap();
        assert_eq!(one.images.len(), 1);
        let vertex = format!(r#"{{"instances": [{{"b64": "{b64}"}}, "{b64}"], "parameters": {{"confidence": 0.1}}}}"#);
        let vertex = parse_body(Some("application/json"), vertex.as_bytes(), 4).unwrap();
        assert_eq!((vertex.images, vertex.conf), (vec![b"png!".to_vec(), b"png!".to_vec()], Some(0.1)));
        let unknown = format!(r#"{{"instances": [{{"b64": "{b64}"}}], "parameters": {{"iou": 0.1}}}}"#);
        assert!(parse_body(Some("application/json"), unknown.as_bytes(), 4).is_err(), "unknown parameters are refused, not ignored");
    }

    #[test]
    fn bad_bodies_are_one_line_errors() {
        assert!(matches!(parse_body(Some("text/plain"), b"x", 4), Err(BodyError::ContentType(_))));
        assert_eq!(parse_body(Some("image/png"), b"", 4).unwrap_err(), BodyError::Empty);
        assert_eq!(parse_body(Some("application/json"), b"{}", 4).unwrap_err(), BodyError::Empty);
        let err = parse_body(Some("application/json"), b"{\"image\": 3}", 4).unwrap_err().to_string();
        assert!(err.starts_with("invalid JSON body") && !err.contains('\n'), "{err}");
        assert!(parse_body(Some("application/json"), b"{\"image\": \"!!\"}", 4).unwrap_err().to_string().contains("not base64"));
        let many = format!(r#"{{"images": [{}]}}"#, ["\"AA==\""; 3].join(","));
        assert_eq!(parse_body(Some("application/json"), many.as_bytes(), 2).unwrap_err(), BodyError::TooMany { given: 3, limit: 2 });
    }

    /// A form field: name, file name, content type, content.
    type Field<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

    fn form(boundary: &str, parts: &[Field]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, filename, content_type, content) in parts {
            body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes());
            if let Some(f) = filename {
                body.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            if let Some(t) = content_type {
                body.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    #[test]
    fn multipart_forms_carry_files_and_conf() {
        let image = b"\xff\xd8 not really a jpeg \r\n--almost-boundary\r\n";
        let body = form("XyZ", &[("image", Some("a.jpg"), Some("image/jpeg"), image), ("conf", None, None, b"0.4"), ("more", None, Some("image/png"), b"png")]);
        let parsed = parse_body(Some("multipart/form-data; boundary=XyZ"), &body, 4).unwrap();
        assert_eq!(parsed.images, vec![image.to_vec(), b"png".to_vec()]);
        assert_eq!(parsed.conf, Some(0.4));
        let quoted = parse_body(Some("multipart/form-data; charset=utf-8; boundary=\"XyZ\""), &body, 4).unwrap();
        assert_eq!(quoted.images.len(), 2);
    }

    #[test]
    fn malformed_multipart_is_refused_with_a_reason() {
        let ok = form("b", &[("image", Some("a.jpg"), None, b"data")]);
        let refuse = |content_type: &str, body: &[u8], max: usize| parse_body(Some(content_type), body, max).unwrap_err().to_string();
        assert!(refuse("multipart/form-data", &ok, 4).contains("no boundary"));
        assert!(refuse("multipart/form-data; boundary=other", &ok, 4).contains("no opening delimiter"));
        assert!(refuse("multipart/form-data; boundary=b", &ok[..ok.len() - 8], 4).contains("no closing delimiter"));
        let nameless = b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--";
        assert!(refuse("multipart/form-data; boundary=b", nameless, 4).contains("without a name"));
        let headless = b"--b\r\nno headers at all\r\n--b--";
        assert!(refuse("multipart/form-data; boundary=b", headless, 4).contains("without headers"));
        let field = form("b", &[("comment", None, None, b"hello")]);
        assert!(refuse("multipart/form-data; boundary=b", &field, 4).contains("unexpected field \"comment\""));
        let conf = form("b", &[("conf", None, None, b"high")]);
        assert!(refuse("multipart/form-data; boundary=b", &conf, 4).contains("conf is not a number"));
        let many = form("b", &[("a", Some("1"), None, b"1"), ("b", Some("2"), None, b"2"), ("c", Some("3"), None, b"3"), ("d", Some("4"), None, b"4")]);
        assert!(matches!(parse_body(Some("multipart/form-data; boundary=b"), &many, 2), Err(BodyError::TooMany { .. })));
        assert!(!refuse("multipart/form-data; boundary=b", &ok[..20], 4).contains('\n'));
    }
}
