//! The JSON-RPC envelope of a line from the server, read in one pass that decodes a response's
//! result straight into the type its caller waits for.
//!
//! A response used to be parsed three times: once to find its fields (the `result` validated as a
//! `RawValue`), once more to copy the `result` out, and again by the caller to decode it. Here the
//! envelope is walked member by member; when the `id` comes before the `result` (as most servers
//! write it), the `result` is decoded right where it is with the decoder of the request it
//! answers, so its bytes are parsed once and never copied. A `result` before the `id` is only
//! delimited, and decoded from its slice at the end.
//!
//! What is accepted is what a derived reader (kept in the tests as the reference) accepts: one
//! JSON object, unknown members ignored, duplicate known members refused, `null` taken as absent
//! except for `result`.

use std::any::Any;
use std::borrow::Cow;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::protocol::RpcError;

/// A decoded result, of the type the waiting caller asked for.
pub(crate) type Decoded = Box<dyn Any + Send>;

/// Decodes the JSON value at the start of the bytes; returns it and how many bytes it took.
pub(crate) type Decode = fn(&[u8]) -> Result<(Decoded, usize), serde_json::Error>;

/// The [`Decode`] of `R`.
pub(crate) fn decode<R: DeserializeOwned + Send + 'static>(
    bytes: &[u8],
) -> Result<(Decoded, usize), serde_json::Error> {
    let (value, len) = value_at::<R>(bytes)?;
    Ok((Box::new(value), len))
}

/// An incoming message; which members are present says what it is.
pub(crate) struct Envelope<'a> {
    pub(crate) id: Option<&'a RawValue>,
    pub(crate) method: Option<Cow<'a, str>>,
    pub(crate) params: Option<&'a RawValue>,
    /// Present even when it is `null` (a valid result).
    pub(crate) result: Option<ResultMember<'a>>,
    pub(crate) error: Option<RpcError>,
}

/// The `result` member, decoded if its request was known when it was read.
pub(crate) enum ResultMember<'a> {
    /// Read before the `id`, or for an id no request waits for: only delimited.
    Raw(&'a RawValue),
    /// Decoded for the request it answers.
    Decoded(Decoded),
    /// Well-formed JSON that is not what the request expects.
    Undecodable(serde_json::Error),
}

/// Reads one line. `decoder_for` is asked, with the `id`, for the decoder of the request a
/// `result` answers; it is asked only when the `id` comes first.
pub(crate) fn parse<'a>(
    frame: &'a [u8],
    mut decoder_for: impl FnMut(&RawValue) -> Option<Decode>,
) -> Result<Envelope<'a>, String> {
    if frame.first() != Some(&b'{') {
        return Err("not a JSON object (batches are not supported)".to_owned());
    }
    let mut envelope = Envelope {
        id: None,
        method: None,
        params: None,
        result: None,
        error: None,
    };
    // Which known members were seen: a duplicate is refused, as the derived reader does.
    let mut seen = [false; 5];
    let mut pos = skip_whitespace(frame, 1);
    if frame.get(pos) == Some(&b'}') {
        pos += 1;
    } else {
        loop {
            let (member, len) = member_at(&frame[pos..])?;
            pos = skip_whitespace(frame, pos + len);
            if frame.get(pos) != Some(&b':') {
                return Err(format!("expected `:` at byte {pos}"));
            }
            pos = skip_whitespace(frame, pos + 1);
            let rest = &frame[pos..];
            if let Some(member) = member {
                if std::mem::replace(&mut seen[member], true) {
                    return Err(format!("duplicate field `{}`", MEMBERS[member]));
                }
            }
            let len = match member {
                Some(0) => read(rest, &mut envelope.id)?,
                Some(1) => read(rest, &mut envelope.method)?,
                Some(2) => read(rest, &mut envelope.params)?,
                Some(3) => {
                    let decoder = envelope.id.and_then(&mut decoder_for);
                    let (result, len) = read_result(rest, decoder)?;
                    envelope.result = Some(result);
                    len
                }
                Some(4) => read(rest, &mut envelope.error)?,
                _ => skip_value(rest)?,
            };
            pos = skip_whitespace(frame, pos + len);
            match frame.get(pos) {
                Some(b',') => pos = skip_whitespace(frame, pos + 1),
                Some(b'}') => {
                    pos += 1;
                    break;
                }
                _ => return Err(format!("expected `,` or `}}` at byte {pos}")),
            }
        }
    }
    if skip_whitespace(frame, pos) != frame.len() {
        return Err(format!("trailing characters at byte {pos}"));
    }
    Ok(envelope)
}

/// Decodes a `result` read before its `id` (or for an unknown id), for the request it answers.
pub(crate) fn decode_raw(raw: &RawValue, decode: Decode) -> Result<Decoded, serde_json::Error> {
    decode(raw.get().as_bytes()).map(|(value, _)| value)
}

/// Reads a member's value into `slot`; returns the bytes it took.
fn read<'a, T: Deserialize<'a>>(bytes: &'a [u8], slot: &mut T) -> Result<usize, String> {
    let (value, len) = value_at::<T>(bytes).map_err(|error| error.to_string())?;
    *slot = value;
    Ok(len)
}

fn read_result(bytes: &[u8], decoder: Option<Decode>) -> Result<(ResultMember<'_>, usize), String> {
    if let Some(decode) = decoder {
        match decode(bytes) {
            Ok((value, len)) => return Ok((ResultMember::Decoded(value), len)),
            Err(error) => {
                // Not what the request expects; if it is well-formed JSON all the same, the
                // message stands and the request fails with the decoding error.
                let (_, len) = value_at::<&RawValue>(bytes).map_err(|error| error.to_string())?;
                return Ok((ResultMember::Undecodable(error), len));
            }
        }
    }
    let (raw, len) = value_at::<&RawValue>(bytes).map_err(|error| error.to_string())?;
    Ok((ResultMember::Raw(raw), len))
}

/// The members this reader keeps, by index.
const MEMBERS: [&str; 5] = ["id", "method", "params", "result", "error"];

/// Reads a member name: the index of a kept member, or `None`; and the bytes it took.
fn member_at(bytes: &[u8]) -> Result<(Option<usize>, usize), String> {
    let (name, len) = match plain_string_at(bytes) {
        Some(plain) => (Cow::Borrowed(plain), plain.len() + 2),
        None => {
            if bytes.first() != Some(&b'"') {
                return Err("expected a member name".to_owned());
            }
            // Escapes or non-ASCII: the JSON reader decodes it.
            let (name, len) = value_at::<Cow<'_, str>>(bytes).map_err(|error| error.to_string())?;
            (Cow::Owned(name.into_owned().into_bytes()), len)
        }
    };
    let member = MEMBERS
        .iter()
        .position(|member| member.as_bytes() == &*name);
    Ok((member, len))
}

/// The contents of a JSON string at the start of `bytes` if it is printable ASCII without
/// escapes (which needs no decoding or UTF-8 check).
fn plain_string_at(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let end = bytes[1..]
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte))?;
    (bytes[1 + end] == b'"').then(|| &bytes[1..1 + end])
}

/// Skips the value of a member this reader does not keep (`"jsonrpc":"2.0"` most often).
fn skip_value(bytes: &[u8]) -> Result<usize, String> {
    match plain_string_at(bytes) {
        Some(plain) => Ok(plain.len() + 2),
        None => value_at::<IgnoredAny>(bytes)
            .map(|(_, len)| len)
            .map_err(|error| error.to_string()),
    }
}

/// Reads the JSON value at the start of `bytes` (after optional whitespace); returns it and the
/// offset just past it.
fn value_at<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, usize), serde_json::Error> {
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
    match stream.next() {
        Some(Ok(value)) => Ok((value, stream.byte_offset())),
        Some(Err(error)) => Err(error),
        None => Err(serde::de::Error::custom("a value is missing")),
    }
}

fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An incoming JSON-RPC message; which fields are present says what it is.
    #[derive(Deserialize)]
    struct Incoming<'a> {
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
        #[serde(borrow, default)]
        method: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        params: Option<&'a RawValue>,
        /// Present even when it is `null` (a valid result), unlike a plain `Option`.
        #[serde(borrow, default, deserialize_with = "present")]
        result: Option<&'a RawValue>,
        #[serde(default)]
        error: Option<RpcError>,
    }

    /// Deserializes a field that is present, whatever its value (including `null`), as `Some`.
    fn present<'de, D>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        <&RawValue>::deserialize(deserializer).map(Some)
    }

    /// The reader this module replaced (derived from the struct), as the reference: parses one line; only a JSON object can be a JSON-RPC message (batches are not
    /// part of the 2025-11-25 stdio transport).
    fn parse_incoming(frame: &[u8]) -> Result<Incoming<'_>, String> {
        if frame.first() != Some(&b'{') {
            return Err("not a JSON object (batches are not supported)".to_owned());
        }
        serde_json::from_slice(frame).map_err(|error| error.to_string())
    }

    /// Reads `line` both with `parse` (with a decoder into `Value` for id 7) and with the derived
    /// reader, and checks that they agree.
    #[track_caller]
    fn check(line: &str) {
        let derived = parse_incoming(line.as_bytes());
        let walked = parse(line.as_bytes(), |id| {
            (id.get() == "7").then_some(decode::<serde_json::Value> as Decode)
        });
        match (derived, walked) {
            (Err(_), Err(_)) => {}
            (Ok(derived), Ok(walked)) => {
                assert_eq!(derived.id.map(RawValue::get), walked.id.map(RawValue::get));
                assert_eq!(derived.method, walked.method);
                assert_eq!(
                    derived.params.map(RawValue::get),
                    walked.params.map(RawValue::get)
                );
                assert_eq!(derived.error, walked.error);
                let walked_result = walked.result.map(|result| match result {
                    ResultMember::Raw(raw) => serde_json::from_str(raw.get()).unwrap(),
                    ResultMember::Decoded(value) => *value.downcast::<serde_json::Value>().unwrap(),
                    ResultMember::Undecodable(error) => panic!("{error}"),
                });
                let derived_result = derived
                    .result
                    .map(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).unwrap());
                assert_eq!(derived_result, walked_result);
            }
            (derived, walked) => panic!(
                "the readers disagree on {line:?}: derived {:?}, walked {:?}",
                derived.err(),
                walked.err()
            ),
        }
    }

    #[test]
    fn agrees_with_the_derived_reader() {
        for line in [
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}]}}"#,
            r#"{"result":{"a":[1,2,{"b":null}]},"jsonrpc":"2.0","id":7}"#,
            r#"{ "jsonrpc" : "2.0" , "id" : 7 , "result" : null } "#,
            r#"{"jsonrpc":"2.0","id":8,"result":"x"}"#,
            r#"{"jsonrpc":"2.0","id":"7","result":1}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}"#,
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"m","data":[1]}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":null,"params":null}"#,
            r#"{"jsonrpc":"2.0","\u0069d":7,"res\u0075lt":{}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{},"extra":{"deep":[[[]]]},"ünï":1}"#,
            r#"{}"#,
            r#"{ }"#,
            // Broken ones: both refuse them.
            r#"{"jsonrpc":"2.0","id":7,"result":{"a":}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{}} x"#,
            r#"{"jsonrpc":"2.0","id":7,"id":8,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{},}"#,
            r#"{"jsonrpc":"2.0","id":7 "result":{}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{}"#,
            r#"{"jsonrpc":"2.0",7:1}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":tru}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":1x}"#,
            r#"{"error":{"code":"x"},"id":7}"#,
            r#"[{"jsonrpc":"2.0","id":7,"result":{}}]"#,
            r#" {"jsonrpc":"2.0","id":7,"result":{}}"#,
            "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"\u{1}\"}",
            "",
            "{",
        ] {
            check(line);
        }
    }

    #[test]
    fn a_result_of_the_wrong_shape_fails_only_its_request() {
        let line = br#"{"jsonrpc":"2.0","id":7,"result":{"content":"not a list"},"x":1}"#;
        let envelope = parse(line, |_| {
            Some(decode::<crate::protocol::CallToolResult> as Decode)
        })
        .unwrap();
        assert!(matches!(
            envelope.result,
            Some(ResultMember::Undecodable(_))
        ));
    }
}
