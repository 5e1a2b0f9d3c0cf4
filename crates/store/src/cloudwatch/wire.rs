//! CloudWatch's Query protocol: an action and its parameters as a form-encoded POST,
//! signed with Signature Version 4 (the `aws-sigv4` crate), answered in XML. The one
//! protocol both CloudWatch and the emulators we test against (moto) accept; the SDKs'
//! newer JSON and CBOR protocols are not needed for three actions.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::credentials::Credentials;

/// The API version the Query protocol names.
const API_VERSION: &str = "2010-08-01";
/// Attempts at a call answered with throttling or a server error.
const ATTEMPTS: u32 = 4;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("{0}")]
    Transport(String),
    /// CloudWatch answered with an error: its code and message.
    #[error("{action} answered {status}: {code}: {message}")]
    Api {
        action: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{action} answered what is not its XML answer ({reason}): {body}")]
    Unreadable {
        action: String,
        reason: String,
        body: String,
    },
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

/// A signing client of one endpoint and region.
pub(crate) struct Client {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    credentials: Credentials,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// RFC 3986 percent-encoding of a form value (what SigV4 and the Query protocol expect).
fn encode(value: &str, out: &mut String) {
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
}

/// `Action=…&Version=…&name=value…`.
pub(crate) fn form(action: &str, params: &[(String, String)]) -> String {
    let mut body = format!("Action={action}&Version={API_VERSION}");
    for (name, value) in params {
        body.push('&');
        encode(name, &mut body);
        body.push('=');
        encode(value, &mut body);
    }
    body
}

#[derive(Debug, Deserialize)]
struct ErrorResponse {
    #[serde(rename = "Error")]
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

impl Client {
    pub(crate) fn new(
        endpoint: String,
        region: String,
        credentials: Credentials,
    ) -> Result<Client, WireError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| WireError::Transport(e.to_string()))?;
        Ok(Client {
            http,
            endpoint,
            region,
            credentials,
        })
    }

    fn signed_headers(&self, body: &str) -> Result<Vec<(String, String)>, WireError> {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let identity = aws_credential_types::Credentials::new(
            &self.credentials.access_key_id,
            &self.credentials.secret_access_key,
            self.credentials.session_token.clone(),
            None,
            "modelwatch",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("monitoring")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| WireError::Signing(e.to_string()))?
            .into();
        let content_type = (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        let request = SignableRequest::new(
            "POST",
            &self.endpoint,
            std::iter::once(content_type),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| WireError::Signing(e.to_string()))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| WireError::Signing(e.to_string()))?
            .into_parts();
        let mut headers = vec![(content_type.0.to_owned(), content_type.1.to_owned())];
        headers.extend(
            instructions
                .headers()
                .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
        Ok(headers)
    }

    /// Calls `action`; the answer's XML text. Throttling and server errors are retried
    /// a few times with a growing pause.
    pub(crate) async fn call(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, WireError> {
        let body = form(action, params);
        let mut pause = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let mut request = self.http.post(&self.endpoint).body(body.clone());
            for (name, value) in self.signed_headers(&body)? {
                request = request.header(name, value);
            }
            let response = request
                .send()
                .await
                .map_err(|e| WireError::Transport(e.without_url().to_string()))?;
            let status = response.status();
            let text = response
                .text()
                .await
                .map_err(|e| WireError::Transport(e.without_url().to_string()))?;
            if status.is_success() {
                return Ok(text);
            }
            let (code, message) = match quick_xml::de::from_str::<ErrorResponse>(&text) {
                Ok(answer) => (answer.error.code, answer.error.message),
                Err(_) => (String::new(), text.chars().take(300).collect()),
            };
            let retry =
                status.is_server_error() || status.as_u16() == 429 || code.contains("Throttl");
            if retry && attempt < ATTEMPTS {
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
                continue;
            }
            return Err(WireError::Api {
                action: action.to_owned(),
                status: status.as_u16(),
                code,
                message,
            });
        }
    }

    /// Calls `action` and reads its XML answer as `T` (the root element's content).
    pub(crate) async fn call_xml<T: for<'de> Deserialize<'de>>(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<T, WireError> {
        let text = self.call(action, params).await?;
        quick_xml::de::from_str(&text).map_err(|e| WireError::Unreadable {
            action: action.to_owned(),
            reason: e.to_string(),
            body: text.chars().take(300).collect(),
        })
    }
}

/// A list in the Query protocol's XML: `<member>` elements.
#[derive(Debug, Deserialize)]
pub(crate) struct Members<T> {
    #[serde(rename = "member", default = "Vec::new")]
    pub(crate) member: Vec<T>,
}

impl<T> Default for Members<T> {
    fn default() -> Self {
        Members { member: Vec::new() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetMetricDataResponse {
    pub(crate) get_metric_data_result: GetMetricDataResult,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetMetricDataResult {
    #[serde(default)]
    pub(crate) metric_data_results: Members<MetricDataResult>,
    #[serde(default)]
    pub(crate) next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MetricDataResult {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) timestamps: Members<String>,
    #[serde(default)]
    pub(crate) values: Members<f64>,
    #[serde(default)]
    pub(crate) status_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListMetricsResponse {
    pub(crate) list_metrics_result: ListMetricsResult,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListMetricsResult {
    #[serde(default)]
    pub(crate) metrics: Members<ListedMetric>,
    #[serde(default)]
    pub(crate) next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListedMetric {
    pub(crate) metric_name: String,
    #[serde(default)]
    pub(crate) dimensions: Members<Dimension>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Dimension {
    pub(crate) name: String,
    pub(crate) value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_percent_encode_names_and_values() {
        let body = form(
            "PutMetricData",
            &[
                ("Namespace".into(), "team/ml models".into()),
                ("MetricData.member.1.Value".into(), "1e-5".into()),
            ],
        );
        assert_eq!(
            body,
            "Action=PutMetricData&Version=2010-08-01&Namespace=team%2Fml%20models\
             &MetricData.member.1.Value=1e-5"
        );
    }

    #[test]
    fn answers_and_errors_are_read_from_their_xml() {
        let answer: GetMetricDataResponse = quick_xml::de::from_str(
            r#"<GetMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">
            <GetMetricDataResult><MetricDataResults><member><Id>q0</Id><Label>x</Label>
            <Timestamps><member>1970-01-01T00:00:01Z</member><member>1970-01-01T00:00:02Z</member></Timestamps>
            <Values><member>0.1</member><member>1.5E-7</member></Values><StatusCode>Complete</StatusCode>
            </member><member><Id>q1</Id><Timestamps/><Values/><StatusCode>Complete</StatusCode></member>
            </MetricDataResults><NextToken>abc</NextToken></GetMetricDataResult>
            <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetMetricDataResponse>"#,
        )
        .unwrap();
        let result = answer.get_metric_data_result;
        assert_eq!(result.next_token.as_deref(), Some("abc"));
        let results = &result.metric_data_results.member;
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].values.member, [0.1, 1.5e-7]);
        assert_eq!(results[0].timestamps.member[1], "1970-01-01T00:00:02Z");
        assert!(results[1].values.member.is_empty());
        let error: ErrorResponse = quick_xml::de::from_str(
            "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameterValue</Code>\
             <Message>bad</Message></Error><RequestId>r</RequestId></ErrorResponse>",
        )
        .unwrap();
        assert_eq!(
            (error.error.code.as_str(), error.error.message.as_str()),
            ("InvalidParameterValue", "bad")
        );
    }
}
