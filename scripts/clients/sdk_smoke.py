"""Smoke test of the Python SDK generated from openapi/openapi.json by
openapi-python-client, against a running paysync + localstripe.

Every call goes through the generated code: request bodies are built with the
generated models (from_dict) and answers are parsed into the generated models,
so a spec that disagrees with the server (a wrong type, a missing status
code) makes this fail.

Each raw answer is also validated against the response schema the committed
spec documents for its status code (the generated Python code itself does
not check types).

usage: sdk_smoke.py PACKAGE_DIR PAYSYNC_URL STRIPE_URL BUCKET TOKEN [SPEC]
"""
import importlib
import inspect
import json
import pkgutil
import sys
import typing
import urllib.parse
import urllib.request

import jsonschema_rs

pkg_dir, url, stripe_url, bucket, token = sys.argv[1:6]
spec_path = sys.argv[6] if len(sys.argv) > 6 else "openapi/openapi.json"
spec = json.load(open(spec_path))


def json_schema(node):
    """OpenAPI 3.0 schema -> JSON Schema: inline $refs, `nullable` as a null type."""
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return json_schema(spec["components"]["schemas"][name])
    out = {k: json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and "type" in out:
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def response_schema(op_id, status):
    for item in spec["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") == op_id:
                resp = op["responses"].get(str(status))
                if resp is None:
                    sys.exit(f"FAIL {op_id}: status {status} is not documented")
                media = next(v for k, v in resp["content"].items() if k.startswith("application/json"))
                return json_schema(media["schema"])
    sys.exit(f"FAIL the spec has no operation {op_id}")


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(w.capitalize() for w in rest)
sys.path.insert(0, pkg_dir)
client_pkg = importlib.import_module("paysync_client")
from paysync_client import AuthenticatedClient  # noqa: E402
from paysync_client.types import Unset  # noqa: E402

client = AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True)

# operation id (snake case) -> generated module
ops = {}
api = importlib.import_module("paysync_client.api")
for tag in pkgutil.iter_modules(api.__path__):
    tag_pkg = importlib.import_module(f"paysync_client.api.{tag.name}")
    for mod in pkgutil.iter_modules(tag_pkg.__path__):
        ops[mod.name] = importlib.import_module(f"paysync_client.api.{tag.name}.{mod.name}")


def call(op, want, body=None, **params):
    """Call operation `op` through the generated client; check the status and
    that the answer parsed into a generated model (not left unparsed)."""
    if op not in ops:
        sys.exit(f"FAIL the generated SDK has no operation {op} (have: {sorted(ops)})")
    fn = ops[op].sync_detailed
    kwargs = dict(client=client, **params)
    if body is not None:
        hints = typing.get_type_hints(fn)
        body_type = hints["body"]
        # Optional[...] / Union: the first model type in it
        for t in typing.get_args(body_type) or (body_type,):
            if hasattr(t, "from_dict"):
                body_type = t
                break
        kwargs["body"] = body_type.from_dict(body)
    resp = fn(**kwargs)
    if resp.status_code != want:
        sys.exit(f"FAIL {op}: status {resp.status_code}, want {want}: {resp.content[:300]!r}")
    errors = [str(e) for e in jsonschema_rs.Draft4Validator(response_schema(camel(op), resp.status_code)).iter_errors(json.loads(resp.content))]
    if errors:
        sys.exit(f"FAIL {op}: the {resp.status_code} answer does not match the spec: {errors[0]}")
    if resp.parsed is None or isinstance(resp.parsed, Unset):
        sys.exit(f"FAIL {op}: {resp.status_code} answer not described by the spec: {resp.content[:300]!r}")
    print(f"ok   {op} -> {resp.status_code} {type(resp.parsed).__name__}")
    return resp.parsed


def card_token(number="4242424242424242"):
    data = urllib.parse.urlencode(
        {"card[number]": number, "card[exp_month]": "12", "card[exp_year]": "2030", "card[cvc]": "123"}
    ).encode()
    req = urllib.request.Request(f"{stripe_url}/v1/tokens", data=data)
    req.add_header("Authorization", "Bearer sk_test_sdk")
    with urllib.request.urlopen(req) as r:
        return json.load(r)["id"]


buckets = call("list_buckets", 200)
call("get_bucket", 200, id=bucket)
call("attach_credit_card", 200, body={"token": card_token()}, id=bucket)
cards = call("fetch_credit_cards", 200, id=bucket)
# The Stripe objects are typed models: their fields are attributes.
if [c.last4 for c in cards.data] != ["4242"]:
    sys.exit(f"FAIL fetch_credit_cards: the attached card is not listed: {cards.to_dict()}")
call("fetch_default_credit_card", 200, id=bucket)
call("subscribe", 200, body={"plan": "starter"}, id=bucket)
state = call("get_subcription_state", 200, id=bucket)
if state.status != "active":
    sys.exit(f"FAIL get_subcription_state: {state.to_dict()}")
call("get_subcription", 200, id=bucket)
invoices = call("get_invoices", 200, id=bucket)
if [(i.status, i.total) for i in invoices] != [("paid", 1900)]:
    sys.exit(f"FAIL get_invoices: {[i.to_dict() for i in invoices]}")
# An error answer parses too (the documented error body).
call("start_trial", 400, body={"plan": "no-such-plan"}, id=bucket)
print("sdk smoke OK")
