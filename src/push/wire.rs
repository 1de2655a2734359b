//! Grafana Pyroscope's push API, as its own agents speak it: a connect-protocol unary call,
//! `POST {server}/push.v1.PusherService/Push`, whose body is a gzipped protobuf
//! `PushRequest` (`api/push/v1/push.proto`) holding one series per process, each with an
//! uncompressed pprof `raw_profile`. The messages below carry that proto's field numbers.

use std::io::Write;

use flate2::write::GzEncoder;
use prost::Message;

/// The path of the push call under the server's URL.
pub const PUSH_PATH: &str = "/push.v1.PusherService/Push";

#[derive(Clone, PartialEq, Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub series: Vec<RawProfileSeries>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RawProfileSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<LabelPair>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<RawSample>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LabelPair {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct RawSample {
    /// A pprof profile, encoded.
    #[prost(bytes = "vec", tag = "1")]
    pub raw_profile: Vec<u8>,
    /// A unique id for the sample (a UUID, as Grafana's agents send).
    #[prost(string, tag = "2")]
    pub id: String,
}

/// One process's profile of one window, with its series labels.
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub profile: crate::render::pprof::Profile,
}

/// The gzipped request body for these series.
pub fn encode(series: &[Series]) -> Vec<u8> {
    let request = PushRequest {
        series: series
            .iter()
            .map(|s| RawProfileSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(name, value)| LabelPair {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                samples: vec![RawSample {
                    raw_profile: s.profile.encode_to_vec(),
                    id: uuid::Uuid::new_v4().to_string(),
                }],
            })
            .collect(),
    };
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&request.encode_to_vec());
    gz.finish().unwrap_or_default()
}
