//! Run state in Redis. Every multi-key update is a Lua script, so it is atomic even with many
//! coordinators and workers writing at once.
//!
//! Keys, under the namespace: `run:{id}` (hash: plan and times), `run:{id}:batches` (hash: batch field
//! to `state|attempt|owner`), `run:{id}:counts` (hash: `platform|state` and `*|state` to counts),
//! `run:{id}:results` (hash: batch field to its encoded `BatchMetrics`, for load sweeps),
//! `runs` (sorted set of run ids by creation), `hb:{worker}` (heartbeat with a TTL), `workers`
//! (sorted set of worker ids by heartbeat expiry).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{BatchRef, BatchState, BatchStatus, Change, Outcome, RunMeta, RunProgress, RunStore, StateError};
use crate::{Namespace, now_ms};

/// Batches added per script call when creating a run, bounding the time Redis is blocked.
const ADD_CHUNK: usize = 4096;

const CREATE_RUN: &str = r#"
local existing = redis.call('HGET', KEYS[1], 'fingerprint')
if existing then
  if existing == ARGV[2] then return 0 else return -1 end
end
redis.call('HSET', KEYS[1], 'run_id', ARGV[1], 'fingerprint', ARGV[2], 'created_ms', ARGV[3],
  'total', ARGV[4], 'spec', ARGV[5], 'cancelled', '0')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"#;

const ADD_BATCHES: &str = r#"
local added = 0
for i = 1, #ARGV do
  if redis.call('HSETNX', KEYS[1], ARGV[i], 'pending|0|') == 1 then
    local platform = string.match(ARGV[i], '^([^|]*)|')
    redis.call('HINCRBY', KEYS[2], platform .. '|pending', 1)
    redis.call('HINCRBY', KEYS[2], '*|pending', 1)
    added = added + 1
  end
end
return added
"#;

// ARGV[1] = now in ms; then 5 per change: field, comma-separated from-states, to-state, owner, bump.
// Returns per change "A" .. previous (applied), "R" .. current (refused) or "M" (missing); or just
// "U" when the run does not exist (without the check, the finish time below would create its key).
const TRANSITION: &str = r#"
if redis.call('EXISTS', KEYS[3]) == 0 then return {'U'} end
local out = {}
local started = false
for i = 2, #ARGV, 5 do
  local field, from, to, owner, bump = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  local current = redis.call('HGET', KEYS[1], field)
  if not current then
    table.insert(out, 'M')
  else
    local state, attempt = string.match(current, '^([^|]*)|([^|]*)|')
    if string.find(',' .. from .. ',', ',' .. state .. ',', 1, true) then
      local next_attempt = tonumber(attempt) + tonumber(bump)
      redis.call('HSET', KEYS[1], field, to .. '|' .. next_attempt .. '|' .. owner)
      local platform = string.match(field, '^([^|]*)|')
      redis.call('HINCRBY', KEYS[2], platform .. '|' .. state, -1)
      redis.call('HINCRBY', KEYS[2], platform .. '|' .. to, 1)
      redis.call('HINCRBY', KEYS[2], '*|' .. state, -1)
      redis.call('HINCRBY', KEYS[2], '*|' .. to, 1)
      if to == 'running' then started = true end
      table.insert(out, 'A' .. current)
    else
      table.insert(out, 'R' .. current)
    end
  end
end
if started then redis.call('HSETNX', KEYS[3], 'started_ms', ARGV[1]) end
local terminal = 0
for _, s in ipairs({'done', 'failed', 'cancelled'}) do
  terminal = terminal + tonumber(redis.call('HGET', KEYS[2], '*|' .. s) or '0')
end
if terminal >= tonumber(redis.call('HGET', KEYS[3], 'total') or '0') then
  redis.call('HSETNX', KEYS[3], 'finished_ms', ARGV[1])
else
  redis.call('HDEL', KEYS[3], 'finished_ms')
end
return out
"#;

// KEYS[1] = the run, KEYS[2] = its results; ARGV = batch field, payload. 0 when the run is unknown.
const PUT_RESULT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"#;

/// Run state in a Redis server, through a connection manager that reconnects by itself.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    ns: Namespace,
}

fn unavailable(e: redis::RedisError) -> StateError {
    // Redis errors never include the password, but may include the URL's host: fine for logs.
    StateError::Unavailable(e.to_string())
}

impl RedisStore {
    /// Connects to `url` (`redis://[:password@]host:port[/db]`), failing after 10 s.
    pub async fn connect(url: &str, ns: Namespace) -> Result<Self, StateError> {
        let redacted = crate::redact(url);
        let client = redis::Client::open(url)
            .map_err(|e| StateError::Unavailable(format!("invalid Redis URL {redacted}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let connection = tokio::time::timeout(Duration::from_secs(10), ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| StateError::Unavailable(format!("Redis at {redacted}: no answer within 10 s")))?
            .map_err(|e| StateError::Unavailable(format!("Redis at {redacted}: {e}")))?;
        Ok(Self { connection, ns })
    }

    fn run_key(&self, run_id: &str) -> String {
        self.ns.key(&format!("run:{run_id}"))
    }

    /// `UnknownRun` unless the run exists.
    async fn known(&self, con: &mut ConnectionManager, run_id: &str) -> Result<(), StateError> {
        match con.exists::<_, bool>(self.run_key(run_id)).await.map_err(unavailable)? {
            true => Ok(()),
            false => Err(StateError::UnknownRun(run_id.to_owned())),
        }
    }
}

fn parse_outcome(raw: &str) -> Result<Outcome, StateError> {
    match raw.split_at_checked(1) {
        Some(("A", rest)) => Ok(Outcome::Applied(BatchStatus::decode(rest)?)),
        Some(("R", rest)) => Ok(Outcome::Refused(BatchStatus::decode(rest)?)),
        Some(("M", "")) => Ok(Outcome::Missing),
        _ => Err(StateError::Corrupt(format!("transition result {raw:?}"))),
    }
}

fn state_list(states: &[BatchState]) -> String {
    states.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

#[async_trait]
impl RunStore for RedisStore {
    async fn create_run(&self, meta: &RunMeta, now_ms: i64) -> Result<bool, StateError> {
        let mut con = self.connection.clone();
        let run_key = self.run_key(&meta.run_id);
        let created: i64 = Script::new(CREATE_RUN)
            .key(&run_key)
            .key(self.ns.key("runs"))
            .arg(&meta.run_id)
            .arg(&meta.fingerprint)
            .arg(now_ms)
            .arg(meta.total())
            .arg(&meta.spec)
            .invoke_async(&mut con)
            .await
            .map_err(unavailable)?;
        if created < 0 {
            return Err(StateError::PlanMismatch { run_id: meta.run_id.clone() });
        }
        // Batches are added in chunks after the plan is stored; a crash in between is repaired by
        // the next call, since adding is idempotent. The marker skips the work once complete.
        let complete: Option<String> = con.hget(&run_key, "batches_complete").await.map_err(unavailable)?;
        if complete.is_none() {
            let fields: Vec<String> = meta.batches().map(|b| b.field()).collect();
            let script = Script::new(ADD_BATCHES);
            for chunk in fields.chunks(ADD_CHUNK) {
                let _: i64 = script
                    .key(format!("{run_key}:batches"))
                    .key(format!("{run_key}:counts"))
                    .arg(chunk)
                    .invoke_async(&mut con)
                    .await
                    .map_err(unavailable)?;
            }
            let _: () = con.hset(&run_key, "batches_complete", 1).await.map_err(unavailable)?;
        }
        Ok(created == 1)
    }

    async fn progress(&self, run_id: &str) -> Result<Option<RunProgress>, StateError> {
        let mut con = self.connection.clone();
        let run_key = self.run_key(run_id);
        let meta: BTreeMap<String, String> = con.hgetall(&run_key).await.map_err(unavailable)?;
        if meta.is_empty() {
            return Ok(None);
        }
        let counts: BTreeMap<String, i64> = con.hgetall(format!("{run_key}:counts")).await.map_err(unavailable)?;
        let int = |k: &str| meta.get(k).and_then(|v| v.parse::<i64>().ok());
        let mut platforms: BTreeMap<String, BTreeMap<BatchState, u64>> = BTreeMap::new();
        for (field, n) in counts {
            let Some((platform, state)) = field.split_once('|') else { continue };
            if platform == "*" {
                continue;
            }
            let state: BatchState = state.parse().map_err(StateError::Corrupt)?;
            platforms.entry(platform.to_owned()).or_default().insert(state, n.max(0) as u64);
        }
        Ok(Some(RunProgress {
            run_id: run_id.to_owned(),
            total: int("total").unwrap_or(0).max(0) as u64,
            created_unix_ms: int("created_ms").unwrap_or(0),
            started_unix_ms: int("started_ms"),
            finished_unix_ms: int("finished_ms"),
            cancelled: int("cancelled") == Some(1),
            platforms,
        }))
    }

    async fn spec(&self, run_id: &str) -> Result<String, StateError> {
        let mut con = self.connection.clone();
        let spec: Option<String> = con.hget(self.run_key(run_id), "spec").await.map_err(unavailable)?;
        spec.ok_or_else(|| StateError::UnknownRun(run_id.to_owned()))
    }

    async fn transition(&self, run_id: &str, changes: &[Change], now_ms: i64) -> Result<Vec<Outcome>, StateError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.connection.clone();
        let run_key = self.run_key(run_id);
        let script = Script::new(TRANSITION);
        let mut invocation = script.key(format!("{run_key}:batches"));
        invocation.key(format!("{run_key}:counts")).key(&run_key).arg(now_ms);
        for change in changes {
            invocation
                .arg(change.batch.field())
                .arg(state_list(change.from))
                .arg(change.to.as_str())
                .arg(&change.owner)
                .arg(u8::from(change.bump_attempt));
        }
        let raw: Vec<String> = invocation.invoke_async(&mut con).await.map_err(unavailable)?;
        if raw == ["U"] {
            return Err(StateError::UnknownRun(run_id.to_owned()));
        }
        if raw.len() != changes.len() {
            return Err(StateError::Corrupt(format!("{} results for {} changes", raw.len(), changes.len())));
        }
        raw.iter().map(|r| parse_outcome(r)).collect()
    }

    async fn batches_in(&self, run_id: &str, states: &[BatchState]) -> Result<Vec<(BatchRef, BatchStatus)>, StateError> {
        let mut con = self.connection.clone();
        let all: Vec<(String, String)> =
            con.hgetall(format!("{}:batches", self.run_key(run_id))).await.map_err(unavailable)?;
        if all.is_empty() {
            // An empty hash is either a run with none or no run at all.
            self.known(&mut con, run_id).await?;
        }
        let mut found = Vec::new();
        for (field, value) in all {
            let status = BatchStatus::decode(&value)?;
            if states.contains(&status.state) {
                found.push((BatchRef::parse_field(&field)?, status));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    async fn set_cancelled(&self, run_id: &str, cancelled: bool) -> Result<(), StateError> {
        let mut con = self.connection.clone();
        let run_key = self.run_key(run_id);
        self.known(&mut con, run_id).await?;
        con.hset(&run_key, "cancelled", u8::from(cancelled)).await.map_err(unavailable)
    }

    async fn is_cancelled(&self, run_id: &str) -> Result<bool, StateError> {
        let mut con = self.connection.clone();
        let flag: Option<String> = con.hget(self.run_key(run_id), "cancelled").await.map_err(unavailable)?;
        Ok(flag.as_deref() == Some("1"))
    }

    async fn heartbeat(&self, worker_id: &str, payload: &[u8], ttl_ms: u64) -> Result<(), StateError> {
        let mut con = self.connection.clone();
        let expires = now_ms() + ttl_ms as i64;
        redis::pipe()
            .atomic()
            .pset_ex(self.ns.key(&format!("hb:{worker_id}")), payload, ttl_ms)
            .ignore()
            .zadd(self.ns.key("workers"), worker_id, expires)
            .ignore()
            .zrembyscore(self.ns.key("workers"), "-inf", now_ms())
            .ignore()
            .query_async::<()>(&mut con)
            .await
            .map_err(unavailable)
    }

    async fn heartbeats(&self) -> Result<Vec<Vec<u8>>, StateError> {
        let mut con = self.connection.clone();
        let ids: Vec<String> =
            con.zrangebyscore(self.ns.key("workers"), now_ms(), "+inf").await.map_err(unavailable)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.ns.key(&format!("hb:{id}"))).collect();
        let beats: Vec<Option<Vec<u8>>> = con.mget(keys).await.map_err(unavailable)?;
        Ok(beats.into_iter().flatten().collect())
    }

    async fn clock_us(&self) -> Result<i64, StateError> {
        let mut con = self.connection.clone();
        // TIME answers the server's clock as [seconds, microseconds], both as strings.
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut con).await.map_err(unavailable)?;
        Ok(secs * 1_000_000 + micros)
    }

    async fn put_result(&self, run_id: &str, batch: &BatchRef, payload: &[u8]) -> Result<(), StateError> {
        let mut con = self.connection.clone();
        let run_key = self.run_key(run_id);
        let stored: i64 = Script::new(PUT_RESULT)
            .key(&run_key)
            .key(format!("{run_key}:results"))
            .arg(batch.field())
            .arg(payload)
            .invoke_async(&mut con)
            .await
            .map_err(unavailable)?;
        match stored {
            1 => Ok(()),
            _ => Err(StateError::UnknownRun(run_id.to_owned())),
        }
    }

    async fn results(&self, run_id: &str) -> Result<Vec<(BatchRef, Vec<u8>)>, StateError> {
        let mut con = self.connection.clone();
        let all: Vec<(String, Vec<u8>)> = con.hgetall(format!("{}:results", self.run_key(run_id))).await.map_err(unavailable)?;
        if all.is_empty() {
            // An empty hash is either a run with none or no run at all.
            self.known(&mut con, run_id).await?;
        }
        let mut found = all.into_iter().map(|(field, payload)| Ok((BatchRef::parse_field(&field)?, payload))).collect::<Result<Vec<_>, StateError>>()?;
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }
}
