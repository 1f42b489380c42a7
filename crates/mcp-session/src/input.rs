//! Multi-round-trip requests of revision 2026-07-28: answering a result that asks for input.
//!
//! In the stateless revision a server does not send requests of its own; a `tools/call`,
//! `prompts/get`, `resources/read` or `tasks/result` may instead be answered with a result whose
//! `resultType` is `input_required` (early drafts: `incomplete`), carrying `inputRequests` (a map
//! of `roots/list`, `sampling/createMessage` and `elicitation/create` requests by key) and an
//! opaque `requestState`. The session answers every input request the way it answers a server's
//! own request in 2025-11-25 (the roots provider, the [`ClientRequestHandler`]), then sends the
//! original request again, with a new id, its `inputResponses` and the `requestState` exactly as
//! it came (and none when none came). A request goes through at most [`MAX_INPUT_ROUNDS`] such
//! rounds, and a round answers at most [`MAX_CLIENT_REQUESTS`] input requests.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::protocol::RpcError;
use crate::session::{encode_request, SessionOptions};
use crate::{ClientRequestHandler, Error, RequestOptions, Session, MAX_CLIENT_REQUESTS};

/// How many `input_required` answers one request may get before it fails with
/// [`Error::TooManyInputRounds`].
pub const MAX_INPUT_ROUNDS: usize = 8;

/// The requests whose result may ask for input (revision 2026-07-28).
const INPUT_METHODS: &[&str] = &[
    "tools/call",
    "prompts/get",
    "resources/read",
    "tasks/result",
];

/// The members of a result that say whether it is complete.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultKind {
    #[serde(default)]
    result_type: Option<String>,
    #[serde(default)]
    input_requests: Option<Map<String, Value>>,
    #[serde(default)]
    request_state: Option<Value>,
}

/// One input request of an `input_required` result.
#[derive(Deserialize)]
struct InputRequest {
    method: String,
    #[serde(default)]
    params: Option<Value>,
}

impl Session {
    /// Whether requests of `method` may be answered with `input_required`: the stateless
    /// revision was agreed and the method is one that may ask for input.
    pub(crate) fn takes_input(&self, method: &str) -> bool {
        self.is_stateless() && INPUT_METHODS.contains(&method)
    }

    /// Sends `method` with `params` and answers every `input_required` result it gets, until a
    /// complete result comes (decoded into `R`).
    ///
    /// # Cancel safety
    ///
    /// As for [`Session::request`]: dropping the future cancels the round in flight.
    pub(crate) async fn request_with_input<R: DeserializeOwned>(
        &self,
        method: &str,
        params: Map<String, Value>,
        options: &RequestOptions,
    ) -> Result<R, Error> {
        let server = self.server().clone();
        let mut round_params = params.clone();
        for round in 0..=MAX_INPUT_ROUNDS {
            let sent = Value::Object(round_params);
            let raw: Box<RawValue> = self
                .exchange(method, options, |id, meta| {
                    encode_request(id, method, Some(sent), meta)
                })
                .await?;
            let kind: ResultKind =
                serde_json::from_str(raw.get()).map_err(|source| Error::Decode {
                    server: server.clone(),
                    method: method.to_owned(),
                    source,
                })?;
            let incomplete = matches!(
                kind.result_type.as_deref(),
                Some("input_required" | "incomplete")
            );
            if !incomplete {
                return serde_json::from_str(raw.get()).map_err(|source| Error::Decode {
                    server: server.clone(),
                    method: method.to_owned(),
                    source,
                });
            }
            if round == MAX_INPUT_ROUNDS {
                break;
            }
            tracing::debug!(server = %server, method, round, n_requests = kind.input_requests.as_ref().map_or(0, Map::len), "the server asks for input");
            round_params = params.clone();
            if let Some(requests) = kind.input_requests {
                let responses = self.answer_inputs(method, requests).await?;
                round_params.insert("inputResponses".to_owned(), Value::Object(responses));
            }
            // Echoed exactly as it came, and only when it came.
            if let Some(state) = kind.request_state {
                round_params.insert("requestState".to_owned(), state);
            }
        }
        Err(Error::TooManyInputRounds {
            server,
            method: method.to_owned(),
            rounds: MAX_INPUT_ROUNDS,
        })
    }

    /// Answers the input requests of one round, concurrently; the first that cannot be
    /// answered fails the whole request.
    async fn answer_inputs(
        &self,
        method: &str,
        requests: Map<String, Value>,
    ) -> Result<Map<String, Value>, Error> {
        let server = self.server();
        if requests.len() > MAX_CLIENT_REQUESTS {
            return Err(Error::InputRequest {
                server: server.clone(),
                method: method.to_owned(),
                input_method: "(many)".to_owned(),
                code: -32000,
                message: format!(
                    "{} input requests in one result; at most {MAX_CLIENT_REQUESTS} are answered",
                    requests.len()
                ),
            });
        }
        let options = self.options();
        let answers = requests.into_iter().map(|(key, request)| async move {
            let request: InputRequest = match serde_json::from_value(request) {
                Ok(request) => request,
                Err(error) => {
                    return Err((
                        "(malformed)".to_owned(),
                        RpcError::invalid_params(format!(
                            "input request `{key}` is malformed: {error}"
                        )),
                    ))
                }
            };
            let answer = answer_one(self, options, &request.method, request.params).await;
            match answer {
                Ok(result) => Ok((key, result)),
                Err(error) => Err((request.method, error)),
            }
        });
        let mut responses = Map::new();
        for answer in futures::future::join_all(answers).await {
            match answer {
                Ok((key, result)) => {
                    responses.insert(key, result);
                }
                Err((input_method, error)) => {
                    return Err(Error::InputRequest {
                        server: server.clone(),
                        method: method.to_owned(),
                        input_method,
                        code: error.code,
                        message: error.message,
                    })
                }
            }
        }
        Ok(responses)
    }
}

/// Answers one input request as the session answers a server's request of `method`.
async fn answer_one(
    session: &Session,
    options: &SessionOptions,
    method: &str,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    if method == "roots/list" {
        return match &options.roots {
            Some(provider) => Ok(serde_json::json!({ "roots": provider.roots() })),
            None => Err(RpcError::method_not_found(method)),
        };
    }
    let Some(handler) = options
        .client_requests
        .as_ref()
        .filter(|handler| handler.handles(method))
    else {
        return Err(RpcError::method_not_found(method));
    };
    check_elicitation_mode(handler.as_ref(), method, params.as_ref())?;
    let timeout = options.request_timeout;
    // The same bound as the server's own requests: at most MAX_CLIENT_REQUESTS handler runs.
    let slot = tokio::time::timeout(timeout, session.client_request_slot()).await;
    let Ok(Some(_slot)) = slot else {
        return Err(RpcError::new(
            -32000,
            format!("too many requests to the host at once (at most {MAX_CLIENT_REQUESTS})"),
        ));
    };
    match tokio::time::timeout(timeout, handler.handle(session.server(), method, params)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(RpcError::internal(format!(
            "the host did not answer {method} within {} ms",
            millis(timeout)
        ))),
    }
}

/// Refuses an `elicitation/create` of a mode (`form`, the default, or `url`) the handler did not
/// declare: an `elicitation` capability without `form` or `url` means form only.
pub(crate) fn check_elicitation_mode(
    handler: &dyn ClientRequestHandler,
    method: &str,
    params: Option<&Value>,
) -> Result<(), RpcError> {
    if method != "elicitation/create" {
        return Ok(());
    }
    let mode = params
        .and_then(|params| params.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("form");
    let capabilities = handler.capabilities();
    let declared = capabilities.get("elicitation").and_then(Value::as_object);
    let supported = match declared {
        None => false,
        Some(modes) if !modes.contains_key("form") && !modes.contains_key("url") => mode == "form",
        Some(modes) => modes.contains_key(mode),
    };
    if supported {
        Ok(())
    } else {
        Err(RpcError::invalid_params(format!(
            "this client does not support {mode}-mode elicitation"
        )))
    }
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}
