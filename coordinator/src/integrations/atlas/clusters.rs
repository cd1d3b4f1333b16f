//! Cluster actions: `atlas.create_cluster_like`, `atlas.wait_cluster`,
//! `atlas.connection_string`, `atlas.delete_cluster`, and what makes one
//! cluster like another.

use super::actions::{IfEmpty, Outputs, check_cluster, check_project, outputs, str_of};
use super::client::{Deadline, Endpoint};
use super::{Atlas, Error};
use crate::credentials::percent_encode;
use ripcord_engine::actions as args;
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use serde_json::{Value as J, json};
use tracing::{debug, info, warn};

impl Atlas {
    pub(super) async fn create_cluster_like(
        &self,
        a: &args::AtlasCreateClusterLike,
        key: &Key,
        d: Deadline,
    ) -> Result<Outputs, Error> {
        check_project(&a.project)?;
        check_cluster("like", &a.like)?;
        check_cluster("name", &a.name)?;
        if a.name == a.like {
            return Err(Error::Refused(format!("the new cluster's name must differ from the source's ({})", a.like)));
        }
        let source = self.client.cluster(&a.project, &a.like, d).await?;
        let body = like_body(&source, &a.name, a.region.as_deref(), a.instance_size.as_deref())?;
        let want = Shape::of(&body);
        let created = self.find_or_create_cluster(a, &body, &want, key, d).await?;
        let got = Shape::of(&created);
        if !want.major.is_empty() && !got.major.is_empty() && got.major != want.major {
            return Err(Error::Refused(format!(
                "cluster {} runs MongoDB {} but {} runs {}: a restore needs the same major version; \
                 delete {} before trying again",
                a.name, got.major, a.like, want.major, a.name
            )));
        }
        Ok(outputs([
            ("name", Value::str(str_of(&created["name"]).if_empty(&a.name))),
            ("state", Value::str(str_of(&created["stateName"]))),
            ("region", Value::str(got.region.if_empty(&want.region))),
            ("mongo_version", Value::str(got.major.if_empty(&want.major))),
        ]))
    }

    /// The cluster an earlier try or attempt created, if it is like `want`,
    /// or a new one from `body`; looks again before every retry.
    async fn find_or_create_cluster(
        &self,
        a: &args::AtlasCreateClusterLike,
        body: &J,
        want: &Shape,
        key: &Key,
        d: Deadline,
    ) -> Result<J, Error> {
        let mut failures = 0u32;
        loop {
            if let Some(existing) = self.client.get_cluster(&a.project, &a.name, d).await? {
                if let Some(diff) = want.differs(&Shape::of(&existing)) {
                    return Err(Error::Refused(format!(
                        "cluster {} already exists in project {} and is not like {}: {diff}; \
                         choose another name or delete it",
                        a.name, a.project, a.like
                    )));
                }
                info!(key = %key, cluster = %a.name, like = %a.like, state = %str_of(&existing["stateName"]),
                    "reusing the cluster an earlier attempt created");
                return Ok(existing);
            }
            match self.client.call(Endpoint::CreateCluster, &[&a.project], &[], Some(body), d).await {
                Ok(created) => {
                    info!(key = %key, cluster = %a.name, like = %a.like, region = %want.region,
                        size = %want.instance_size, mongo = %want.major, "atlas cluster creation started");
                    return Ok(created);
                }
                // An earlier try went through after all: look again.
                Err(e) if e.code() == Some("DUPLICATE_CLUSTER_NAME") && failures == 0 => failures += 1,
                Err(e) if e.retryable() => {
                    let Some(delay) = self.client.retry.wait(failures, None, d) else { return Err(e) };
                    warn!(key = %key, error = %e, "atlas cluster creation failed, looking again before retrying");
                    failures += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) async fn wait_cluster(&self, a: &args::AtlasWaitCluster, d: Deadline) -> Result<Outputs, Error> {
        check_project(&a.project)?;
        check_cluster("cluster", &a.cluster)?;
        let want = a.state.as_deref().unwrap_or("IDLE").trim().to_ascii_uppercase();
        let mut poll = self.poll(d);
        loop {
            let state = match self.client.call(Endpoint::GetCluster, &[&a.project, &a.cluster], &[], None, d).await {
                Ok(c) => str_of(&c["stateName"]),
                Err(e) if want == "DELETED" && e.code() == Some("CLUSTER_NOT_FOUND") => "DELETED".to_string(),
                Err(e) => return Err(e),
            };
            if state == want {
                return Ok(outputs([("state", Value::str(state))]));
            }
            if state == "DELETING" && want != "DELETED" {
                return Err(Error::Refused(format!(
                    "cluster {} is being deleted; it will not become {want}",
                    a.cluster
                )));
            }
            debug!(cluster = %a.cluster, state = %state, want = %want, "waiting for atlas cluster");
            if !poll.sleep().await {
                return Err(Error::Timeout(format!(
                    "cluster {} is still {state} after {}; waiting for {want}",
                    a.cluster,
                    poll.waited()
                )));
            }
        }
    }

    pub(super) async fn connection_string(
        &self,
        a: &args::AtlasConnectionString,
        d: Deadline,
    ) -> Result<Outputs, Error> {
        check_project(&a.project)?;
        check_cluster("cluster", &a.cluster)?;
        let c = self.client.cluster(&a.project, &a.cluster, d).await?;
        let cs = &c["connectionStrings"];
        let uri = str_of(&cs["standardSrv"]).if_empty(&str_of(&cs["standard"]));
        if uri.is_empty() {
            return Err(Error::Refused(format!(
                "cluster {} has no connection string yet (state {}): wait for IDLE first",
                a.cluster,
                str_of(&c["stateName"]).if_empty("unknown")
            )));
        }
        let (scheme, rest) = uri.split_once("://").unwrap_or(("mongodb", uri.as_str()));
        let host = rest.split(['/', '?']).next().unwrap_or(rest).to_string();
        let connection_string = match a.credentials.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            None => uri.clone(),
            Some(name) => {
                let creds = self.credentials.db(name).map_err(|e| Error::Refused(e.to_string()))?;
                format!("{scheme}://{}:{}@{rest}", percent_encode(&creds.user), percent_encode(creds.password.expose()))
            }
        };
        Ok(outputs([("connection_string", Value::str(connection_string)), ("host", Value::str(host))]))
    }

    pub(super) async fn delete_cluster(
        &self,
        a: &args::AtlasDeleteCluster,
        key: &Key,
        d: Deadline,
    ) -> Result<Outputs, Error> {
        check_project(&a.project)?;
        check_cluster("cluster", &a.cluster)?;
        let done = || outputs([("deleted", Value::Bool(true))]);
        match self.client.get_cluster(&a.project, &a.cluster, d).await? {
            None => {
                info!(key = %key, cluster = %a.cluster, "atlas cluster already gone");
                return Ok(done());
            }
            Some(c) if str_of(&c["stateName"]) == "DELETING" => {
                info!(key = %key, cluster = %a.cluster, "atlas cluster already being deleted");
                return Ok(done());
            }
            Some(_) => {}
        }
        let query = [("retainBackups", "true".to_string())];
        match self.client.call(Endpoint::DeleteCluster, &[&a.project, &a.cluster], &query, None, d).await {
            Ok(_) => {
                info!(key = %key, cluster = %a.cluster, "atlas cluster deletion started (backups retained)");
                Ok(done())
            }
            Err(e) if e.code() == Some("CLUSTER_NOT_FOUND") => Ok(done()),
            Err(e) => Err(e),
        }
    }
}

/// What makes a cluster "like" another for a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    major: String,
    provider: String,
    region: String,
    instance_size: String,
    nodes: u64,
}

impl Shape {
    fn of(c: &J) -> Shape {
        let primary = primary_region(c);
        let (provider, region, size) = primary.map_or_else(Default::default, |r| {
            (str_of(&r["providerName"]), str_of(&r["regionName"]), str_of(&r["electableSpecs"]["instanceSize"]))
        });
        let nodes = region_configs(c).map(|r| r["electableSpecs"]["nodeCount"].as_u64().unwrap_or(0)).sum();
        Shape { major: major_of(c), provider, region, instance_size: size, nodes }
    }

    /// How `have` differs from this, if it does.
    fn differs(&self, have: &Shape) -> Option<String> {
        let mut diffs = Vec::new();
        let mut cmp = |what: &str, want: &str, got: &str| {
            if !want.is_empty() && want != got {
                diffs.push(format!("{what} {} instead of {want}", got.if_empty("unset")));
            }
        };
        cmp("MongoDB", &self.major, &have.major);
        cmp("provider", &self.provider, &have.provider);
        cmp("region", &self.region, &have.region);
        cmp("instance size", &self.instance_size, &have.instance_size);
        if self.nodes != 0 && self.nodes != have.nodes {
            diffs.push(format!("{} electable nodes instead of {}", have.nodes, self.nodes));
        }
        if diffs.is_empty() { None } else { Some(diffs.join(", ")) }
    }
}

fn region_configs(c: &J) -> impl Iterator<Item = &J> {
    c["replicationSpecs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["regionConfigs"].as_array().into_iter().flatten())
}

fn primary_region(c: &J) -> Option<&J> {
    region_configs(c).max_by_key(|r| r["priority"].as_i64().unwrap_or(0))
}

/// The MongoDB major version a cluster runs ("7.0"), or "".
pub(super) fn major_of(c: &J) -> String {
    match c["mongoDBMajorVersion"].as_str() {
        Some(v) if !v.is_empty() => major_version(v),
        _ => c["mongoDBVersion"].as_str().map(major_version).unwrap_or_default(),
    }
}

/// "7.0.12" → "7.0".
pub(super) fn major_version(v: &str) -> String {
    v.trim().split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Atlas region names are `US_EAST_1`; `us-east-1` is accepted too.
fn atlas_region(r: &str) -> String {
    r.trim().to_ascii_uppercase().replace('-', "_")
}

/// The create body for a cluster like `source`: same type, MongoDB major
/// version, provider, instance size, node count, disk, auto-scaling and
/// backup settings; optionally in `region` (the primary region moves, other
/// regions are dropped) and with another instance size.
fn like_body(source: &J, name: &str, region: Option<&str>, size: Option<&str>) -> Result<J, Error> {
    const COPIED: [&str; 7] = [
        "clusterType",
        "mongoDBMajorVersion",
        "versionReleaseSystem",
        "backupEnabled",
        "pitEnabled",
        "encryptionAtRestProvider",
        "configServerManagementMode",
    ];
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!(name));
    for f in COPIED {
        if let Some(v) = source.get(f).filter(|v| !v.is_null()) {
            body.insert(f.into(), v.clone());
        }
    }
    if body.get("versionReleaseSystem").and_then(J::as_str) == Some("CONTINUOUS") {
        body.remove("mongoDBMajorVersion");
    }
    body.insert("terminationProtectionEnabled".into(), json!(false));
    let specs = source["replicationSpecs"].as_array().filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::Refused(format!("cannot copy {}: its description has no replicationSpecs", str_of(&source["name"])))
    })?;
    let mut out_specs = Vec::new();
    for spec in specs {
        let configs: Vec<&J> = spec["regionConfigs"].as_array().into_iter().flatten().collect();
        let chosen: Vec<&J> = match region {
            Some(_) => {
                configs.iter().copied().max_by_key(|r| r["priority"].as_i64().unwrap_or(0)).into_iter().collect()
            }
            None => configs,
        };
        let mut s = serde_json::Map::new();
        if let Some(z) = spec.get("zoneName").filter(|z| !z.is_null()) {
            s.insert("zoneName".into(), z.clone());
        }
        let regions = chosen.into_iter().map(|rc| like_region(rc, region, size)).collect();
        s.insert("regionConfigs".into(), J::Array(regions));
        out_specs.push(J::Object(s));
    }
    body.insert("replicationSpecs".into(), J::Array(out_specs));
    Ok(J::Object(body))
}

/// One region config of a cluster like the source's, optionally moved to
/// `region` (as the primary) and with another instance size.
fn like_region(rc: &J, region: Option<&str>, size: Option<&str>) -> J {
    const REGION_FIELDS: [&str; 8] = [
        "providerName",
        "backingProviderName",
        "regionName",
        "priority",
        "electableSpecs",
        "readOnlySpecs",
        "analyticsSpecs",
        "autoScaling",
    ];
    let mut r = serde_json::Map::new();
    for f in REGION_FIELDS {
        if let Some(v) = rc.get(f).filter(|v| !v.is_null()) {
            r.insert(f.into(), v.clone());
        }
    }
    if let Some(region) = region {
        r.insert("regionName".into(), json!(atlas_region(region)));
        r.insert("priority".into(), json!(7));
    }
    if let Some(size) = size {
        for s in ["electableSpecs", "readOnlySpecs"] {
            if let Some(J::Object(o)) = r.get_mut(s) {
                o.insert("instanceSize".into(), json!(size.trim().to_ascii_uppercase()));
            }
        }
    }
    J::Object(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(version: &str, region: &str, size: &str, nodes: u64) -> J {
        json!({
            "name": "chat-prod", "clusterType": "REPLICASET", "mongoDBMajorVersion": version,
            "mongoDBVersion": format!("{version}.12"), "backupEnabled": true, "pitEnabled": true,
            "stateName": "IDLE", "id": "x",
            "replicationSpecs": [{ "id": "r1", "zoneId": "z", "zoneName": "Zone 1", "regionConfigs": [{
                "providerName": "AWS", "regionName": region, "priority": 7,
                "electableSpecs": { "instanceSize": size, "nodeCount": nodes },
            }]}],
        })
    }

    #[test]
    fn like_body_copies_the_spec_and_overrides_region_and_size() {
        let src = cluster("7.0", "US_EAST_1", "M20", 3);
        let body = like_body(&src, "restore-1", None, None).unwrap();
        assert_eq!(body["name"], "restore-1");
        assert_eq!(body["mongoDBMajorVersion"], "7.0");
        assert_eq!(body["pitEnabled"], true);
        assert!(body.get("id").is_none() && body["replicationSpecs"][0].get("id").is_none());
        assert_eq!(Shape::of(&body), Shape::of(&src));
        let moved = like_body(&src, "restore-1", Some("eu-west-1"), Some("m30")).unwrap();
        let rc = &moved["replicationSpecs"][0]["regionConfigs"][0];
        assert_eq!(rc["regionName"], "EU_WEST_1");
        assert_eq!(rc["electableSpecs"]["instanceSize"], "M30");
        assert_eq!(rc["electableSpecs"]["nodeCount"], 3);
        let diff = Shape::of(&body).differs(&Shape::of(&cluster("8.0", "US_EAST_1", "M20", 3))).unwrap();
        assert!(diff.contains("MongoDB 8.0 instead of 7.0"), "{diff}");
    }

    #[test]
    fn major_versions_come_from_either_field() {
        assert_eq!(major_of(&json!({"mongoDBMajorVersion": "7.0"})), "7.0");
        assert_eq!(major_of(&json!({"mongoDBMajorVersion": "", "mongoDBVersion": "8.0.4"})), "8.0");
        assert_eq!(major_of(&json!({})), "");
    }
}
