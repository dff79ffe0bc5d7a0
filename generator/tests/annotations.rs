//! The annotations file's checks: every message, exactly, with its line and column; and
//! all problems of a file reported together.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on setup errors, as tests do"
)]

use std::path::Path;

/// A small spec with the shapes the checks look at.
const SPEC: &str = r#"
openapi: 3.0.3
info: {title: Shop, version: '1'}
paths:
  /v1/customers:
    get:
      operationId: ListCustomers
      tags: [Customers]
      parameters:
        - {name: starting_after, in: query, schema: {type: string}}
        - {name: limit, in: query, schema: {type: integer}}
      responses:
        '200':
          description: A page.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/CustomerList'}
    post:
      operationId: CreateCustomer
      tags: [Customers]
      responses:
        '200': {description: ok}
  /v1/customers/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      operationId: GetCustomer
      tags: [Customers]
      responses:
        '200': {description: ok}
    delete:
      operationId: DeleteCustomer
      tags: [Customers]
      responses:
        '200': {description: ok}
  /v1/search:
    get:
      operationId: SearchCustomers
      tags: [Search]
      responses:
        '200': {description: ok}
components:
  schemas:
    Customer:
      type: object
      properties:
        id: {type: string}
    CustomerList:
      type: object
      properties:
        data:
          type: array
          items: {$ref: '#/components/schemas/Customer'}
        has_more: {type: boolean}
"#;

/// The problems of `annotations` against [`SPEC`], as `line:column: message`.
fn problems(annotations: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("openapi.yaml");
    let file = dir.path().join("polvo.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    std::fs::write(&file, annotations).unwrap();
    let error = polvo_gen::Builder::new()
        .spec(&spec)
        .annotations(&file)
        .rustfmt(false)
        .render_crate()
        .unwrap_err();
    assert!(error.is_user_error());
    let prefix = format!("{}:", file.display());
    error
        .to_string()
        .lines()
        .map(|line| line.strip_prefix(&prefix).unwrap_or(line).to_owned())
        .collect()
}

/// The one problem of `annotations`.
fn problem(annotations: &str) -> String {
    let all = problems(annotations);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap()
}

#[test]
fn unknown_keys_everywhere_with_suggestions() {
    assert_eq!(
        problem("bucket: {}\n"),
        "1:1: unknown key \"bucket\" at the top level; did you mean \"buckets\"?"
    );
    assert_eq!(
        problem("buckets:\n  default:\n    limit: [\"1/s\"]\n"),
        "3:5: unknown key \"limit\" in `buckets.default`; did you mean \"limits\"?"
    );
    assert_eq!(
        problem("groups:\n  - match: {operation: GetCustomer, verb: GET}\n"),
        "2:37: unknown key \"verb\" in `groups[0].match`"
    );
    assert_eq!(
        problem("retry:\n  backof: {base: 1s, max: 2s}\n"),
        "2:3: unknown key \"backof\" in `retry`; did you mean \"backoff\"?"
    );
    assert_eq!(
        problem("service:\n  crate_name: x\n"),
        "2:3: unknown key \"crate_name\" in `service`"
    );
}

#[test]
fn rates_durations_and_numbers() {
    assert_eq!(
        problem("buckets:\n  default:\n    limits: [\"100/fortnight\"]\n"),
        "3:14: invalid rate \"100/fortnight\" in `buckets.default.limits[0]`: unknown period \
         unit (expected a form like \"100/s\", \"5000/h\" or \"10/2s\")"
    );
    assert_eq!(
        problem("buckets:\n  default:\n    limits: [{rate: 0/s, burst: 2}]\n"),
        "3:21: invalid rate \"0/s\" in `buckets.default.limits[0].rate`: count is 0 (expected \
         a form like \"100/s\", \"5000/h\" or \"10/2s\")"
    );
    assert_eq!(
        problem("buckets:\n  default:\n    limits: [{rate: 1/s, burst: 0}]\n"),
        "3:33: `buckets.default.limits[0].burst` must be a whole number of at least 1, not 0"
    );
    assert_eq!(
        problem("retry:\n  max_retry_after: 10\n"),
        "2:20: invalid duration 10 in `retry.max_retry_after`: no unit (expected a form like \
         \"250ms\", \"2s\", \"5min\" or \"1h\")"
    );
    assert_eq!(
        problem("retry:\n  backoff: {base: 2s, max: 1s}\n"),
        "2:19: backoff base in `retry.backoff` is above its max"
    );
    assert_eq!(
        problem("retry:\n  statuses: [429, 700]\n"),
        "2:19: `retry.statuses[1]` must be a whole number from 100 to 599, not 700"
    );
    assert_eq!(
        problem("retry:\n  budget: {ratio: 2}\n"),
        "2:19: `retry.budget.ratio` must be a number from 0 to 1, not 2"
    );
    assert_eq!(
        problem("retry:\n  budget: {ratio: 0, min_per_second: 0}\n"),
        "2:11: `retry.budget` allows no retries at all; write `budget: off` to turn it off"
    );
    assert_eq!(
        problem("bulk: {max_concurrency: -1}\n"),
        "1:25: `bulk.max_concurrency` must be a whole number of at least 1, not -1"
    );
    assert_eq!(
        problem("groups:\n  - match: {operation: GetCustomer}\n    cost: two\n"),
        "3:11: `groups[0].cost` must be a whole number of at least 1, not \"two\""
    );
}

#[test]
fn shapes_and_required_keys() {
    assert_eq!(
        problem("buckets: [a]\n"),
        "1:10: `buckets` must be a mapping"
    );
    assert_eq!(problem("groups: {a: 1}\n"), "1:9: `groups` must be a list");
    assert_eq!(
        problem("groups:\n  - cost: 2\n"),
        "2:5: `groups[0]` needs `match` or `operation`"
    );
    assert_eq!(
        problem("groups:\n  - match: {}\n"),
        "2:12: `groups[0].match` needs one of `operation`, `tag`, `method`, `path`"
    );
    assert_eq!(
        problem("groups:\n  - match: {method: FETCH}\n"),
        "2:21: \"FETCH\" is not an HTTP method"
    );
    assert_eq!(
        problem("groups:\n  - match: {tag: Customers}\n    rename: List\n"),
        "3:13: \"List\" in `groups[0].rename` is not a snake_case name"
    );
    assert_eq!(
        problem("modes:\n  test:\n    buckets: {}\n"),
        "3:5: `modes.test` needs `when`"
    );
    assert_eq!(
        problem("modes:\n  test:\n    when: {key_prefix: a, base_url: b}\n"),
        "3:11: `modes.test.when` needs exactly one of `key_prefix`, `base_url`"
    );
    assert_eq!(
        problem("tracking: {scheme: x-rate-limit}\n"),
        "1:20: unknown tracking scheme \"x-rate-limit\"; did you mean \"x-ratelimit\"?"
    );
    assert_eq!(
        problem("tracking: {reset: epoch_ms}\n"),
        "1:19: unknown reset kind \"epoch_ms\"; did you mean \"epoch-ms\"?"
    );
    assert_eq!(
        problem("tracking:\n  headers: {remaining: \"x rate\"}\n"),
        "2:24: header name \"x rate\" in `tracking.headers.remaining` is not a valid header name"
    );
    assert_eq!(
        problem("pagination:\n  - match: {tag: Customers}\n"),
        "2:5: `pagination[0]` needs exactly one of `cursor`, `offset`, `page`, `link_header`"
    );
    assert_eq!(
        problem("pagination:\n  - match: {tag: Customers}\n    offset: {param: x}\n"),
        "3:13: `pagination[0].offset` needs `items`"
    );
    assert_eq!(
        problem("store: {shared: memcached, url_env: X}\n"),
        "1:17: unknown shared store \"memcached\"; only \"redis\" is supported"
    );
    assert_eq!(
        problem("store: {shared: redis}\n"),
        "1:8: `store` needs `url_env`"
    );
    assert_eq!(
        problem("store: {shared: redis, url_env: REDIS-URL}\n"),
        "1:33: \"REDIS-URL\" in `store.url_env` is not an environment variable name"
    );
    assert_eq!(
        problem("store: {shared: redis, url_env: R, on_failure: {local_share: 0}}\n"),
        "1:62: `store.on_failure.local_share` must be a number above 0 and at most 1, not 0"
    );
}

#[test]
fn names_must_exist_in_the_spec() {
    assert_eq!(
        problem("groups:\n  - match: {operation: CreateCustomr}\n"),
        "2:24: operation \"CreateCustomr\" not found; did you mean \"CreateCustomer\"?"
    );
    assert_eq!(
        problem("groups:\n  - match: {operation: \"Serch*\"}\n"),
        "2:24: operation glob \"Serch*\" matches no operation"
    );
    assert_eq!(
        problem("groups:\n  - match: {tag: Customer}\n"),
        "2:18: tag \"Customer\" not found; did you mean \"Customers\"?"
    );
    assert_eq!(
        problem("groups:\n  - match: {path: /v1/customer}\n"),
        "2:19: path \"/v1/customer\" not found; did you mean \"/v1/customers\"?"
    );
    assert_eq!(
        problem("groups:\n  - match: {path: \"/v2/*\"}\n"),
        "2:19: path glob \"/v2/*\" matches no path"
    );
    assert_eq!(
        problem("groups:\n  - match: {method: PATCH}\n"),
        "2:21: no operation uses method PATCH"
    );
    assert_eq!(
        problem("groups:\n  - operation: GetCustomers\n"),
        "2:16: operation \"GetCustomers\" not found; did you mean \"GetCustomer\"?"
    );
    assert_eq!(
        problem("groups:\n  - match: {tag: Search, method: POST}\n"),
        "2:5: group matches no operation"
    );
}

#[test]
fn buckets_modes_and_renames_must_fit() {
    assert_eq!(
        problem(
            "buckets:\n  search: {limits: [1/s]}\ngroups:\n  - match: {tag: Search}\n    buckets: [serch]\n"
        ),
        "5:15: bucket \"serch\" is not defined; did you mean \"search\"?"
    );
    assert_eq!(
        problem(
            "buckets:\n  writes: {limits: [10/s]}\ngroups:\n  - match: {method: POST}\n    buckets: [writes]\n    cost: 5\n"
        ),
        "6:11: cost 5 is above the burst of 1 of bucket \"writes\"; raise the burst or lower \
         the cost"
    );
    assert_eq!(
        problem("groups:\n  - match: {tag: Customers}\n    rename: fetch\n"),
        "3:13: rename needs a group that selects one operation; this one selects 4 \
         (ListCustomers, CreateCustomer, GetCustomer, ...)"
    );
    assert_eq!(
        problem(
            "buckets:\n  default: {limits: [{rate: 10/s, burst: 2}]}\ngroups:\n  - match: \
             {method: POST}\n    cost: 2\nmodes:\n  test:\n    when: {key_prefix: t}\n    \
             buckets: {default: {limits: [1/s]}}\n"
        ),
        "5:11: cost 2 is above the burst of 1 of bucket \"default\" in mode \"test\"; raise \
         the burst or lower the cost"
    );
    assert_eq!(
        problem("groups:\n  - operation: GetCustomer\n    rename: list\n"),
        "3:13: method name \"list\" is already taken in resource \"customers\" by operation \
         \"ListCustomers\""
    );
    assert_eq!(
        problem(
            "service:\n  base_urls: {live: \"https://a\", sandbox: \"https://b\"}\nmodes:\n  test:\n    when: {base_url: sandbx}\n"
        ),
        "5:22: base URL \"sandbx\" not found in service.base_urls; did you mean \"sandbox\"?"
    );
    assert_eq!(
        problem(
            "modes:\n  test:\n    when: {key_prefix: sk_test_}\n    buckets:\n      defualt: {limits: [1/s]}\n"
        ),
        "5:7: bucket \"defualt\" is not defined; did you mean \"default\"?"
    );
}

#[test]
fn pagination_names_must_exist_in_the_operation() {
    assert_eq!(
        problem(
            "pagination:\n  - match: {operation: ListCustomers}\n    cursor: {param: after, \
             items: data, next: last_item.id}\n"
        ),
        "3:21: query parameter \"after\" not found in operation \"ListCustomers\""
    );
    assert_eq!(
        problem(
            "pagination:\n  - match: {operation: ListCustomers}\n    cursor: {param: \
             starting_after, items: dat, has_more: has_more, next: last_item.id}\n"
        ),
        "3:44: field \"dat\" not found in the response of operation \"ListCustomers\"; did you \
         mean \"data\"?"
    );
    assert_eq!(
        problem("pagination:\n  - match: {operation: GetCustomer}\n    link_header: true\n"),
        "1:1: operation \"GetCustomer\" has no JSON response to page through"
    );
    assert_eq!(
        problem("pagination:\n  - match: {tag: Search, method: DELETE}\n    link_header: true\n"),
        "2:5: pagination rule matches no operation"
    );
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let text = "buckets:\n  default: {limits: [\"1/x\"]}\ngroups:\n  - match: {operation: Nope}\n    buckets: [missing]\nretry: {attempts: 0}\n";
    assert_eq!(
        problems(text),
        [
            "2:22: invalid rate \"1/x\" in `buckets.default.limits[0]`: unknown period unit \
             (expected a form like \"100/s\", \"5000/h\" or \"10/2s\")",
            "4:24: operation \"Nope\" not found",
            "5:15: bucket \"missing\" is not defined",
            "6:19: `retry.attempts` must be a whole number of at least 1, not 0",
        ]
    );
}

#[test]
fn invalid_yaml_stops_at_once() {
    let error =
        polvo_gen::annotations::Annotations::parse(Path::new("p.yaml"), "a: [\n").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("p.yaml:2:1: invalid annotations: "),
        "{error}"
    );
}

#[test]
fn the_documented_example_reads_without_problems() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/annotations.md"),
    )
    .unwrap();
    let start = doc.find("```yaml\n").unwrap() + "```yaml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let parsed = polvo_gen::annotations::Annotations::parse(Path::new("doc"), &doc[start..end]);
    let annotations = parsed.unwrap();
    assert_eq!(annotations.buckets.len(), 3);
    assert_eq!(annotations.groups.len(), 3);
    assert_eq!(annotations.pagination.len(), 3);
    assert!(annotations.store.is_some());
}

#[test]
fn the_cli_prints_one_line_per_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("openapi.yaml");
    let file = dir.path().join("polvo.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    std::fs::write(
        &file,
        "groups:\n  - match: {tag: Nope}\n    buckets: [nope]\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_polvo-gen"))
        .args(["generate", "--spec", spec.to_str().unwrap()])
        .args(["--annotations", file.to_str().unwrap()])
        .args(["--out", dir.path().join("out").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let file = file.display();
    assert_eq!(
        stderr,
        format!(
            "error: {file}:2:18: tag \"Nope\" not found\nerror: {file}:3:15: bucket \"nope\" is \
             not defined\n"
        )
    );
}

#[test]
fn a_shared_store_reads_its_url_from_the_environment_at_build() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("openapi.yaml");
    let file = dir.path().join("polvo.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let store = "store: {shared: redis, url_env: SHOP_REDIS_URL, on_failure: fail}\n";
    std::fs::write(&file, store).unwrap();
    let generation = polvo_gen::Builder::new()
        .spec(&spec)
        .annotations(&file)
        .rustfmt(false)
        .render_crate()
        .unwrap();
    let text = |name: &str| {
        let file = generation.files.iter().find(|f| f.path.ends_with(name));
        file.unwrap().contents.clone()
    };
    assert!(text("Cargo.toml").contains("features = [\"redis\"]"));
    let client = text("client.rs");
    assert!(client.contains("QUOTA_URL_ENV: &'static str = \"SHOP_REDIS_URL\""));
    assert!(client.contains("shared_quota_with"));
    assert!(client.contains("polvo_runtime::OnFailure::Fail"));
}
