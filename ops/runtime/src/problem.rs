//! Every error a service answers is `application/problem+json` (RFC 9457), including the ones
//! actix-web makes before a handler runs: an unknown path (404), a method the path does not
//! take (405), a body or query its extractors refuse (400, 413, 415). Left alone, those come
//! back as an empty body or a line of plain text, and a client that parses our errors (every
//! rejection has `type`, `title`, `status`, `detail`) is left guessing.
//!
//! [`problem_errors`] is a middleware that leaves the services' own problem documents untouched
//! and rewrites any other error response into one, keeping the original text in `detail` with
//! a hint of what to do, and keeping the headers that matter to the client (`Allow`,
//! `Retry-After`, `WWW-Authenticate`).
//!
//! What it cannot reach — a request head the HTTP parser itself refuses, answered by
//! actix-http's connection layer before any middleware runs — is the listener's own work:
//! [`crate::serve::head`] checks every head first and writes the same kind of document.

use actix_web::HttpResponse;
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};

/// Headers of the original error response a client still needs.
const KEPT_HEADERS: [header::HeaderName; 3] =
    [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE];

/// The `type` URI of a problem with `status`.
pub fn problem_type(status: StatusCode) -> String {
    format!("https://schema.rix.cn/problems/{}", status.as_u16())
}

/// A problem document (RFC 9457) as both services write it: what, and where in the request.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary (the status's reason phrase).
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened, and what to do.
    pub detail: String,
    /// Where and what, one per problem found (a JSON Pointer into the request: `/query/q`,
    /// `/headers/authorization`, a field of the body).
    pub errors: Vec<ProblemField>,
    /// How many problems were found in all, when `errors` holds only the first of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors_total: Option<usize>,
}

/// One `{pointer, message}` of a problem document.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ProblemField {
    /// JSON Pointer into the request.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl Problem {
    /// A problem of `status` with one error at `pointer` (`""`: the request as a whole) saying
    /// `detail`, typed by its status.
    pub fn new(status: StatusCode, pointer: &str, detail: &str) -> Problem {
        Problem {
            type_uri: problem_type(status),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.to_owned(),
            errors: vec![ProblemField {
                pointer: pointer.to_owned(),
                message: detail.to_owned(),
            }],
            errors_total: None,
        }
    }

    /// A response builder with this document's status and content type, for a caller that
    /// adds headers (`Retry-After`, `WWW-Authenticate`) before [`Problem::body`].
    pub fn builder(&self) -> actix_web::HttpResponseBuilder {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut builder = HttpResponse::build(status);
        builder.content_type("application/problem+json");
        builder
    }

    /// This document as JSON.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a problem is plain JSON")
    }

    /// The response: this document as `application/problem+json`, with its status.
    pub fn response(&self) -> HttpResponse {
        self.builder().body(self.body())
    }
}

/// A problem document for `status` with `detail`, as a response.
pub fn problem(status: StatusCode, detail: &str) -> HttpResponse {
    Problem::new(status, "", detail).response()
}

/// What to tell a client whose request actix-web refused before a handler saw it.
fn detail_for(status: StatusCode, method: &Method, path: &str, said: &str) -> String {
    let said = said.trim();
    let hint = match status {
        StatusCode::NOT_FOUND => format!(
            "no such resource: {method} {path}; the API is listed at /openapi.json"
        ),
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "{path} does not take {method}; the Allow header lists what it takes"
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than this service accepts; send less per request".into()
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "send the body as application/json (Content-Type header)".into()
        }
        StatusCode::BAD_REQUEST => {
            "the request could not be read; percent-encode the query (curl -G --data-urlencode 'q=…'), and send JSON bodies as UTF-8".into()
        }
        _ => String::new(),
    };
    match (said.is_empty(), hint.is_empty()) {
        (true, true) => status.canonical_reason().unwrap_or("error").to_lowercase(),
        (true, false) => hint,
        (false, true) => said.to_owned(),
        (false, false) => format!("{said}: {hint}"),
    }
}

/// Whether the response already says what went wrong in a form its reader expects: a problem
/// document for programs, or an HTML page for people (the gateway's portal writes its own error
/// pages, in the reader's language).
fn is_problem(res: &actix_web::dev::ServiceResponse<impl MessageBody>) -> bool {
    res.response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/problem+json")
                || v.as_bytes().starts_with(b"text/html")
        })
}

/// The middleware: every error response that is not already a problem document (or a page for
/// people) becomes one.
pub fn problem_errors<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(|res: ServiceResponse<B>| {
        if is_problem(&res) {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        Ok(ErrorHandlerResponse::Future(Box::pin(async move {
            let (req, res) = res.into_parts();
            let status = res.status();
            let kept: Vec<(header::HeaderName, HeaderValue)> = res
                .headers()
                .iter()
                .filter(|(name, _)| KEPT_HEADERS.contains(name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            // What actix said: its error's message, else the (short) body it wrote.
            let said = match res.error() {
                Some(e) => e.to_string(),
                None => match actix_web::body::to_bytes_limited(res.into_body(), 4096).await {
                    Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                    _ => String::new(),
                },
            };
            let detail = detail_for(status, req.method(), req.path(), &said);
            let mut rewritten = problem(status, &detail);
            for (name, value) in kept {
                rewritten.headers_mut().insert(name, value);
            }
            Ok(ServiceResponse::new(req, rewritten).map_into_right_body())
        })))
    })
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpResponse, test, web};
    use serde_json::Value;

    use super::*;

    #[derive(serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        n: u32,
    }

    async fn take(_: web::Json<Body>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    async fn own_problem() -> HttpResponse {
        problem(StatusCode::CONFLICT, "the service's own words")
    }

    async fn read<B: MessageBody>(
        res: ServiceResponse<B>,
    ) -> (StatusCode, Option<String>, Option<String>, Value) {
        let status = res.status();
        let header_text = |name| {
            res.headers()
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        };
        let content_type = header_text(header::CONTENT_TYPE);
        let allow = header_text(header::ALLOW);
        let body: Value = serde_json::from_slice(&test::read_body(res).await).unwrap();
        (status, content_type, allow, body)
    }

    #[actix_web::test]
    async fn every_refusal_before_a_handler_is_a_problem_document_that_says_what_to_do() {
        let app = test::init_service(
            App::new()
                .wrap(problem_errors())
                .service(web::resource("/v1/things").route(web::post().to(take)))
                .route("/v1/conflict", web::get().to(own_problem)),
        )
        .await;
        let (status, ct, _, body) = read(
            test::call_service(
                &app,
                test::TestRequest::get().uri("/v1/nothing").to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        assert_eq!(body["status"], 404);
        assert_eq!(body["type"], "https://schema.rix.cn/problems/404");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("GET /v1/nothing") && detail.contains("/openapi.json"),
            "{detail}"
        );

        let (status, ct, allow, body) = read(
            test::call_service(
                &app,
                test::TestRequest::get().uri("/v1/things").to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, 405);
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("does not take GET"),
            "{body}"
        );
        assert_eq!(allow.as_deref(), Some("POST"), "the Allow header is kept");

        let bad_json = test::TestRequest::post()
            .uri("/v1/things")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload("{\"n\": \"seven\"}")
            .to_request();
        let (status, ct, _, body) = read(test::call_service(&app, bad_json).await).await;
        assert_eq!(status, 400);
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("invalid type"),
            "actix's own words are kept: {detail}"
        );

        // A service's own problem document passes untouched.
        let (status, _, _, body) = read(
            test::call_service(
                &app,
                test::TestRequest::get().uri("/v1/conflict").to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, 409);
        assert_eq!(body["detail"], "the service's own words");
    }
}
